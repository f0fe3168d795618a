import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, hostname } from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";

// The only module that reads process.env and the command line. Everything else receives a Config.

// Schemas are immutable, so the 79 integer settings share one per bound pair (38): building a zod schema is most of
// this module's start-up cost, paid by every process (bench/startup.ts).
const integer = z.coerce.number().int();
const ints = new Map<string, typeof integer>();
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const key = `${min} ${max}`;
  let schema = ints.get(key);
  if (!schema) ints.set(key, (schema = integer.min(min).max(max)));
  return schema;
};
const bool = z.enum(["1", "0", "true", "false", "yes", "no"]).transform((v) => v === "1" || v === "true" || v === "yes");

/** Milliseconds of a duration like `30m` or `6h`; 0 for `off`. */
function durationMs(v: string): number {
  return parseDuration(v) ?? 0;
}

const csv = (v: string) =>
  v
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
const addressList = z.string().transform((v, ctx) => {
  const list = csv(v);
  for (const a of list) {
    if (!/^(\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/.test(a)) {
      ctx.issues.push({ code: "custom", message: `not an address or IPv4 CIDR: '${a}'`, input: v });
    }
  }
  return list;
});
const hostList = z.string().transform((v) => csv(v).map((h) => h.toLowerCase()));

/** Parses a duration like `90d`, `12h`, `30m`, `45s`, `500ms` to milliseconds; null when malformed. */
export function parseDuration(v: string): number | null {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  const ms = Number(m[1]) * unit;
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}

const roleSchema = z.enum(["primary", "http", "sync", "standalone", "stress", "test"]);
export type ProcessRole = z.infer<typeof roleSchema>;

/** The settings of Search Console's client: part of every process's settings and the CLI's (which needs no others). */
const gscClientSettings = () => ({
  GSC_SERVICE_ACCOUNT_FILE: z.string().min(1).optional(),
  GSC_API_BASE_URL: z.url().default("https://searchconsole.googleapis.com"),
  GSC_TOKEN_URL: z.url().optional(),
  // Google sign-in (`bun run cli auth login`): the stored refresh token (authorized-user JSON, mode 0600),
  // the OAuth client downloaded from Google Cloud, and the consent page (tests: a fake on loopback).
  GSC_CREDENTIALS_FILE: z.string().min(1).default("./data/credentials.json"),
  GSC_CLIENT_SECRET_FILE: z.string().min(1).default("./client_secret.json"),
  GSC_AUTH_URL: z.url().default("https://accounts.google.com/o/oauth2/v2/auth"),
  // One Search Console request's time limit (with GSC_MAX_RETRIES and GSC_RETRY_BASE_MS: docs/sync.md).
  GSC_TIMEOUT_MS: int(100).default(60_000),
});

// Built on first use: a process the supervisor started takes its settings as handed on (settingsHandOff) and never
// builds it (~120 settings' schemas: ~45 ms of CPU a process, bench/startup.ts).
const buildEnvSchema = () =>
  z.object({
    PORT: int(0, 65535).default(8000),
    HOST: z.string().min(1).default("0.0.0.0"),
    WORKERS: int(1, 256).default(availableParallelism()),
    SYNC_WORKERS: int(0, 64).default(1),
    // JSC's top JIT tier (FTL) in the HTTP worker processes the supervisor starts, set at their start
    // (BUN_JSC_useFTLJIT). off: a request's code stops at the tier below (DFG), whose compiles cost a fraction of the
    // top tier's; a worker's JIT threads no longer spend ~20 µs of CPU per request for tens of seconds after its start
    // or after its traffic changes (docs/benchmarks/request-path.md). Their children (analytics, MCP query, backup
    // processes) inherit it.
    HTTP_JIT_TOP_TIER: z.enum(["on", "off"]).default("off"),
    // mimalloc's purge delay (ms) for the HTTP worker processes the supervisor starts (and their children), set at their
    // start with the free blocks inside used pages left alone (MIMALLOC_PURGE_DELAY, MIMALLOC_PURGE_HOLES=0): freed memory
    // goes back to the kernel this long after it was freed. Bun's own (100 ms, holes too) kept its allocator thread at
    // 10-35 µs of CPU per request under load (docs/benchmarks/request-path.md); a burst's memory (an export, a report)
    // is still handed back about this long after it ends. -1: never (RSS stays at its high-water mark, as sync workers).
    HTTP_MALLOC_PURGE_DELAY: z.coerce.number().int().min(-1).default(10_000),
    DATABASE_URL: z.string().min(1).default("./data/app.db"),
    SHUTDOWN_TIMEOUT_MS: int(0).default(10_000),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    REQUEST_LOG: bool.default(false),
    // json: one JSON object per line (for collectors); pretty: aligned, readable lines for a terminal.
    LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
    // How long the supervisor waits for each worker's metrics before leaving it out of a scrape.
    METRICS_TIMEOUT_MS: int(10, 60_000).default(1000),
    // Browser origins allowed to call the API from their pages (CORS): `*` for any (the original's
    // behaviour), else a comma-separated allow-list. Unset: none, so no web page can drive the local API.
    CORS_ORIGINS: z
      .string()
      .default("")
      .transform((s, ctx): "*" | string[] => {
        if (s.trim() === "*") return "*";
        const origins: string[] = [];
        for (const o of s
          .split(",")
          .map((x) => x.trim())
          .filter(Boolean)) {
          const origin = originOf(o);
          if (origin) origins.push(origin);
          else
            ctx.issues.push({
              code: "custom",
              message: `'${o}' is not an origin like https://app.example.com or http://localhost:3000 (or use * alone)`,
              input: s,
            });
        }
        return origins;
      }),

    // Pragmas set on every connection at open.
    SQLITE_BUSY_TIMEOUT_MS: int(0).default(30_000),
    SQLITE_SYNCHRONOUS: z.enum(["OFF", "NORMAL", "FULL", "EXTRA"]).default("NORMAL"),
    SQLITE_CACHE_SIZE: z.coerce.number().int().default(-64_000),
    // The sync worker's own cache_size (its writer connection): a day written into a big file touches a page of the
    // day × query rollup per query (keyed by query), ~all of a property's rollup pages each day; with the cache
    // holding them they are not read again for every day (docs/benchmarks/ingest-export.md). Used only as pages are.
    SYNC_SQLITE_CACHE_SIZE: z.coerce.number().int().default(-262_144),
    // 0 (no memory map): SQLite drops a connection's whole map whenever it sees another connection's commit
    // (munmap + mmap + a page fault per page touched again), which made every read after a write ~8x dearer.
    SQLITE_MMAP_SIZE: int(0).default(0),
    SQLITE_JOURNAL_SIZE_LIMIT: z.coerce.number().int().min(-1).default(67_108_864),
    SQLITE_TEMP_STORE: z.enum(["DEFAULT", "FILE", "MEMORY"]).default("MEMORY"),
    SQLITE_WAL_AUTOCHECKPOINT: int(0).default(1000),
    // The reader's statements share one read transaction per event-loop turn (src/db/sqlite/read-snapshot.ts).
    SQLITE_READ_SNAPSHOT_PER_TURN: bool.default(true),

    // Write path: how long one process keeps retrying to take the write lock before giving up with 503.
    WRITE_LOCK_TIMEOUT_MS: int(1).default(30_000),
    WRITE_MAX_BATCH: int(1, 10_000).default(256),
    // PostgreSQL: connections per process, and the longest one statement may run (ms, 0: no limit).
    PG_POOL_SIZE: int(1, 1000).default(10),
    PG_STATEMENT_TIMEOUT_MS: int(0).default(30_000),
    // How long a request waits for an unreachable database (PostgreSQL down, restarting) before 503.
    DB_RIDE_THROUGH_MS: int(0, 60_000).default(2000),
    // PostgreSQL: how long a new connection may take before the server counts as not answering (a silent
    // server); generous, as a busy host starts backends slowly (a slow connect is no outage).
    PG_CONNECT_TIMEOUT_MS: int(100, 120_000).default(5000),
    // A write transaction holding the lock longer than this is logged with what it was doing.
    WRITE_LOCK_WARN_MS: int(1).default(1000),

    // The name this machine's processes register under (db_connections, /health): several machines may
    // serve one PostgreSQL database, and pids repeat across them.
    SITESYNC_HOST_NAME: z.string().trim().min(1).max(255).default(hostname()),
    // How often each process refreshes its db_connections row. PostgreSQL judges a process gone after 5 of
    // these without one, SQLite a row after 15 (every process of a deployment must use the same value).
    REGISTRY_HEARTBEAT_MS: int(100, 60_000).default(2000),

    // Supervisor: a worker that does not answer its IPC ping for this long is killed and restarted (0: off).
    WATCHDOG_TIMEOUT_MS: int(0).default(10_000),
    // ...unless it keeps using CPU (busy with synchronous work, not stopped or hung): then only after this.
    WATCHDOG_BUSY_TIMEOUT_MS: int(0).default(60_000),
    // Supervisor: a worker that lived this long before dying starts again at once (its restart backoff resets).
    BACKOFF_RESET_MS: int(100, 3_600_000).default(10_000),
    // Several instances (on different ports) may serve one database file only when this is set.
    ALLOW_SHARED_DATABASE: bool.default(false),

    // Checkpointer (run by one process: the supervisor, or a standalone tool).
    CHECKPOINT_INTERVAL_MS: int(50).default(1000),
    CHECKPOINT_TRUNCATE_BYTES: int(0).default(64 * 1024 * 1024),
    OPTIMIZE_INTERVAL_MS: int(1000).default(3_600_000),

    // Sync engine.
    SYNC_DAILY_AT: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, "expected HH:MM (24h, UTC)")
      .default("03:00"),
    SYNC_SCHEDULER: bool.default(true),
    // How often each sync worker checks whether a site is due its daily sync.
    SYNC_SCHEDULER_INTERVAL_MS: int(50).default(60_000),
    SYNC_CATCHUP_DAYS: int(1, 3650).default(30),
    // Each day (at SYNC_DAILY_AT) every active site gets a `recheck` of its last N final days: their
    // property totals are asked again and a day Google corrected is fetched again (gsc_corrections). 0: off.
    SYNC_RECHECK_DAYS: int(0, 480).default(7),
    // How often every active site gets an hourly_sync (`30m`, `1h`, `6h`, `1d`...); `off` (default): never.
    SYNC_HOURLY_EVERY: z
      .string()
      .regex(/^(off|0|\d+(ms|s|m|h|d))$/, "expected off or a duration like 30m, 1h, 6h, 1d")
      .default("off")
      .transform((v) => durationMs(v)),
    SYNC_POLL_MS: int(10).default(500),
    SYNC_LEASE_MS: int(1000).default(30_000),
    SYNC_MAX_ATTEMPTS: int(1, 100).default(3),
    SYNC_RETRY_BASE_MS: int(1).default(5_000),
    SYNC_BATCH_SIZE: int(1, 10_000).default(250),
    // Rows per write while the sync worker writes alone (no other writer met lately): fewer, bigger commits.
    SYNC_BULK_BATCH_SIZE: int(1, 100_000).default(5000),
    // A day × type with at most this many query-detail rows is written in one transaction with its totals;
    // a larger day is staged in SYNC_BATCH_SIZE batches, then switched in one transaction (src/sync/staged-day.ts).
    // Readers never see new totals with old or partial detail either way. Default by engine (src/sync/worker.ts):
    // SQLite 50,000 (Google's daily cap: a day is kept in typed columns and written once), PostgreSQL 10,000.
    SYNC_ATOMIC_DAY_ROWS: int(0, 1_000_000).optional(),
    // Pause of a sync task after each of its writes, so writers of other processes (which retry the
    // lock on a timer) find it free instead of losing every race to a back-to-back ingest.
    SYNC_WRITE_GAP_MS: int(0, 1000).default(10),
    // Day × search type fetches a daily_sync starts ahead of the one it writes (their totals and detail pages held in
    // memory until written: up to ~20 MB for a 50,000-row day), so Search Console's answers arrive while the worker
    // writes instead of between days. 0: each day × type fetched when it is written.
    SYNC_FETCH_AHEAD: int(0, 60).default(6),
    // The sync worker processes' CPU priority (nice, 0-19): a backfill takes the CPU the HTTP workers leave, and
    // the kernel hands a core to a worker with requests first (API p99 during a backfill, docs/sync.md). Above 0 a
    // supervised sync worker also starts a session of its own (its own scheduling group under Linux autogroups). 0: as the rest.
    SYNC_NICE: int(0, 19).default(10),
    // The nice of that session's scheduling group (/proc/self/autogroup, 0-19): its weight against the host's other
    // busy groups (each 1,024 at nice 0; nice 10 is 110: beside ~10 busy groups a backfill got ~1 % of the machine,
    // 2,597-6,648 rows/s against 17,620-36,016 at 0, docs/benchmarks/ingest-export.md). The service's own requests are
    // given way to apart from it (SYNC_POLICY, SYNC_GIVE_WAY, SYNC_CPUS).
    SYNC_GROUP_NICE: int(0, 19).default(0),
    // With SYNC_NICE above 0, whether a supervised sync worker starts that session of its own. false: it stays in the
    // supervisor's (one scheduling group with the HTTP workers: on Linux >= 6.11 a waking HTTP thread then takes a
    // SCHED_IDLE sync thread's core at once; the service weighs as one group against the host's). Near quiet it cost a backfill 30-43 % of its rows/s (docs/sync.md).
    SYNC_OWN_SESSION: bool.default(true),
    // With SYNC_NICE above 0, the sync worker threads' scheduling class (Linux): idle (SCHED_IDLE: another thread waking
    // on a sync thread's core takes it at once, on Linux >= 6.11 only one of the same scheduling group (docs/sync.md), and
    // a core running only them counts as free where a waking thread is placed), batch (SCHED_BATCH) or other (the default class).
    SYNC_POLICY: z.enum(["other", "batch", "idle"]).default("idle"),
    // CPUs the sync worker processes run on (every thread; Linux sched_setaffinity), e.g. "1" or "2-3": with a backfill
    // kept off the others, requests never wait behind it for a core (API p99 during a backfill, docs/sync.md). auto: a
    // supervised sync worker keeps to the last SYNC_WORKERS of the CPUs it may use, leaving at least one (none with one
    // CPU); all: every CPU.
    SYNC_CPUS: z
      .string()
      .regex(/^(auto|all|\d+(-\d+)?(,\d+(-\d+)?)*)$/, "auto, all or a CPU list such as 1 or 0,2-3")
      .transform((v) => (v === "auto" || v === "all" ? v : cpuList(v)))
      .default("auto"),
    // Supervised sync workers pause between short pieces of their work while an HTTP worker has a request in flight (and
    // half a millisecond after), told through a small shared memory-mapped file (src/sync/give-way.ts): a backfill
    // leaves the cores to requests and runs at full speed between them; while one kept to CPUs (SYNC_CPUS) works, the HTTP
    // workers keep off those CPUs. false: they never pause, and the HTTP workers use every CPU.
    SYNC_GIVE_WAY: bool.default(true),
    // With SYNC_GIVE_WAY, whether the HTTP workers keep off the CPUs of a working sync worker kept to CPUs (SYNC_CPUS).
    // false: the sync worker marks none, so the HTTP workers use every CPU and a request may take the sync's core (with
    // SYNC_POLICY idle it preempts the sync there at once). For an A/B on a quiet host (docs/benchmarks/ingest-export.md).
    SYNC_KEEP_OFF: bool.default(true),
    // The longest a sync worker thread keeps a core while another task waits for it (µs; Linux >= 6.12's EEVDF custom slice,
    // sched_setattr; the kernel's default ~0.7-3 ms), with SYNC_NICE above 0. 0 (the default): the kernel's. 100 µs cost a
    // near-quiet backfill 8-13% of its rows/s for no p99 gain (docs/benchmarks/ingest-export.md, ninth pass).
    SYNC_SLICE_US: int(0, 100_000)
      .refine((us) => us === 0 || us >= 100, "0 or 100-100000 (the kernel's range)")
      .default(0),
    // mimalloc's MIMALLOC_PURGE_DELAY for the sync worker processes the supervisor starts. -1: freed memory is kept for
    // reuse instead of being handed back to the kernel (each hand-back is an madvise and a TLB flush on every core: a
    // third of a backfill's CPU, docs/benchmarks/ingest-export.md); the RSS stays at its high-water mark instead. Else
    // milliseconds (mimalloc's own default: 10).
    SYNC_MALLOC_PURGE_DELAY: z.coerce.number().int().min(-1).default(-1),
    SYNC_SOURCE: z.enum(["auto", "demo", "gsc"]).default("auto"),
    DEMO_ROWS_PER_DAY: int(0, 1_000_000).default(200),
    GSC_ACCESS_TOKEN: z.string().min(1).optional(),
    // Search Console's client: the service's and the CLI's (`bun run cli auth`).
    ...gscClientSettings(),
    // Key sealing the Google sign-ins stored in the database (AES-256-GCM; 32 bytes, base64: openssl rand -base64 32).
    // The same on every host of one database; unset: stored as plain JSON (docs/security.md).
    GSC_SIGN_IN_KEY: z
      .string()
      .refine((v) => Buffer.from(v, "base64").length === 32, "must be 32 bytes, base64-encoded (openssl rand -base64 32)")
      .optional(),
    // Search Console's usage limits, counted in the database across every process and host (src/sync/gsc/quota.ts).
    // Search analytics per Cloud project and minute (Google allows 40,000; 100 stays clear of the load limits a
    // new project is granted), per project and Pacific day, per property and minute; URL inspection per
    // property and minute / day; sitemaps and sites per minute. A request waits for its window to reopen up to
    // GSC_QUOTA_MAX_WAIT_MS; a longer wait (a spent daily quota) fails the attempt and the task retries later.
    GSC_QUOTA_PER_MINUTE: int(1).default(40_000),
    GSC_QUOTA_PER_DAY: int(1).default(30_000_000),
    GSC_QUOTA_SITE_PER_MINUTE: int(1).default(1200),
    GSC_INSPECT_PER_MINUTE: int(1).default(600),
    GSC_INSPECT_PER_DAY: int(1).default(2000),
    GSC_OTHER_PER_MINUTE: int(1).default(200),
    GSC_QUOTA_MAX_WAIT_MS: int(0).default(120_000),
    // Every active site gets a sitemaps_sync once a day (UTC) from the scheduler; off: only on demand.
    SYNC_SITEMAPS_DAILY: bool.default(false),
    GSC_ROW_LIMIT: int(1, 25_000).default(25_000),
    // Retries of one Search Console request on 5xx, 429 and network errors, with exponential backoff.
    GSC_MAX_RETRIES: int(0, 20).default(5),
    GSC_RETRY_BASE_MS: int(1).default(1000),

    // Security (README, "Security"). AUTH=auto: protected mode until a key exists, then keys only.
    AUTH: z.enum(["auto", "off", "required"]).default("auto"),
    // Client addresses trusted as local in protected mode: IPv4 CIDRs or exact addresses.
    LOCAL_ADDRESSES: addressList.default(["127.0.0.0/8", "::1"]),
    // Host names (besides loopback names) the API may be reached by; empty: any, for keyed requests.
    ALLOWED_HOSTS: hostList.default([]),
    // Reverse proxies (addresses, CIDR) whose X-Forwarded-For/-Proto are believed; off (empty) by default.
    TRUST_PROXY: addressList.default([]),
    // Dashboard sign-ins: how long a session lasts, and failed key entries allowed per client address and minute.
    UI_SESSION_TTL: z
      .string()
      .transform((v, ctx) => {
        const ms = parseDuration(v);
        if (ms === null || ms < 60_000) {
          ctx.addIssue({ code: "custom", message: "must be a duration of at least a minute, like 30m, 12h or 7d" });
          return z.NEVER;
        }
        return ms;
      })
      .default(12 * 3_600_000),
    LOGIN_ATTEMPTS_PER_MINUTE: int(1, 10_000).default(10),
    // last_used_at of keys is written this often (one write for all keys used meanwhile), not per request.
    KEY_LAST_USED_FLUSH_MS: int(10).default(5000),
    RATE_LIMIT_PER_MINUTE: int(0).default(1200),
    RATE_LIMIT_IP_PER_MINUTE: int(0).default(120),
    HTTP_IDLE_TIMEOUT_S: int(1, 255).default(10),
    BACKUP_DIR: z.string().min(1).optional(),
    BACKUP_KEEP: int(1, 10_000).default(7),
    // How often the supervisor makes a backup (`6h`, `1d`...); `off` (default): never.
    BACKUP_INTERVAL: z
      .string()
      .regex(/^(off|0|\d+(ms|s|m|h|d))$/, "expected off or a duration like 30m, 6h, 1d")
      .default("off")
      .transform((v) => durationMs(v)),
    // Cost bounds of analytics, search and export requests (docs/security.md, "Cost bounds"): a time limit
    // per request (its queries are stopped past it: 504 query_timeout), answers of at most this many rows and
    // bytes (413 result_too_large), terms per ranking-data request (400), and heavy requests / downloads
    // one key may have running at once in each HTTP worker (429 rate_limited).
    ANALYTICS_TIMEOUT_MS: int(100, 3_600_000).default(15_000),
    ANALYTICS_MAX_ROWS: int(1, 10_000_000).default(100_000),
    ANALYTICS_MAX_BYTES: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
    ANALYTICS_MAX_TERMS: int(1, 10_000).default(1000),
    ANALYTICS_MAX_PARTIAL_TERMS: int(1, 10_000).default(100),
    // ANALYTICS_CONCURRENCY_PER_KEY and EXPORT_CONCURRENCY_PER_KEY are per instance: each of the WORKERS HTTP
    // workers allows its share (at least 1), counted in its own memory.
    ANALYTICS_CONCURRENCY_PER_KEY: int(1, 1000).default(2),
    // SQLite: query processes per HTTP worker that run the heavy reads (more than the per-key concurrency).
    ANALYTICS_PROCESSES: int(1, 64).default(3),
    // SQLite: the query processes' mmap_size (their reads only: 2 GiB, SQLite's build cap). A report reads 100+ MB of
    // pages, more than the cache holds: mapped, they are not copied in by a pread each; the remap after another
    // connection's commit (see SQLITE_MMAP_SIZE) costs such a read a few ms. 0: pread as every other connection.
    ANALYTICS_MMAP_SIZE: int(0).default(2_147_418_112),
    EXPORT_CONCURRENCY_PER_KEY: int(1, 1000).default(2),
    // The longest one download (export) may run, from request to last byte: past it the stream is cut.
    EXPORT_TIMEOUT_MS: int(1000, 86_400_000).default(600_000),
    // Largest body of a heavy request (ranking-data, page-keyword-performance, MCP, the v3 tool endpoints): refused
    // 413 from its Content-Length before it is read or parsed, and before it takes a concurrency place.
    ANALYTICS_MAX_BODY_BYTES: int(1024, 16 * 1024 * 1024).default(256 * 1024),

    // MCP `query` tool: its child process is killed past the time limit; rows and concurrent runs are capped.
    MCP_QUERY_TIMEOUT_MS: int(100, 600_000).default(5_000),
    MCP_QUERY_MAX_ROWS: int(1, 100_000).default(1_000),
    MCP_QUERY_CONCURRENCY: int(1, 64).default(2),
    // Most query calls one key may have running or waiting at once per HTTP worker (more: a tool error, rate_limited).
    MCP_QUERY_PER_KEY: int(1, 64).default(1),
    // The query tool's child process is killed past this resident memory (SQLite statement + runtime).
    MCP_QUERY_MAX_MEMORY_MB: int(32, 65_536).default(256),

    // Alerts (docs/operations.md#alerts): the supervisor looks for failed syncs, expired sign-ins, quota and
    // click drops every ALERT_POLL_MS and delivers webhooks / e-mails, retrying a failed delivery with
    // exponential backoff from ALERT_RETRY_BASE_MS, at most ALERT_MAX_ATTEMPTS times.
    ALERTS: bool.default(true),
    ALERT_POLL_MS: int(50).default(5_000),
    ALERT_RETRY_BASE_MS: int(1).default(30_000),
    ALERT_MAX_ATTEMPTS: int(1, 50).default(8),
    ALERT_TIMEOUT_MS: int(100, 120_000).default(10_000),
    // E-mail alerts go through this SMTP server (smtp://user:pass@host:587, smtps://…:465); unset: no e-mail.
    SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\//, "expected smtp://host:port or smtps://host:port")
      .optional(),
    ALERT_EMAIL_FROM: z.string().min(3).max(200).default("sitesync <sitesync@localhost>"),

    // Set by the supervisor for the processes it spawns; never by users.
    SITESYNC_ROLE: roleSchema.default("standalone"),
    SITESYNC_DB_IDENTITY: z
      .string()
      .regex(/^\d+:\d+$/)
      .optional(),
    // The shared file of HTTP requests in flight (src/sync/give-way.ts) and an HTTP worker's slot in it.
    SITESYNC_REQUEST_SIGNAL: z.string().min(1).optional(),
    SITESYNC_SLOT: int(0, 255).optional(),
  });
let envSchemaBuilt: ReturnType<typeof buildEnvSchema> | undefined;
const envSchema = () => (envSchemaBuilt ??= buildEnvSchema());

/** The CPU numbers of a list such as "0,2-3". */
export function cpuList(list: string): number[] {
  return list.split(",").flatMap((part) => {
    const [a, b = a] = part.split("-").map(Number) as [number, number?];
    return Array.from({ length: Math.max(0, b! - a + 1) }, (_, i) => a + i);
  });
}

/**
 * The origin a browser sends for a page at `s` (lower-case scheme and host, no default port), or null
 * when `s` is not an http(s) origin: nothing after the host and port but an optional `/`.
 */
function originOf(s: string): string | null {
  try {
    const u = new URL(s);
    if (!/^https?:$/.test(u.protocol) || u.username || u.password || u.search || u.hash || u.pathname !== "/") return null;
    if (!/^https?:\/\/[^/?#]+\/?$/i.test(s)) return null;
    return u.origin;
  } catch {
    return null;
  }
}

export type Env = z.infer<ReturnType<typeof buildEnvSchema>>;

// Settings are parsed once or twice per process: zod's compiled fast path (a `new Function` per object schema, built
// on its first parse) would cost more than it saves. Skipped here, it cut ~20 ms of CPU from every process's start
// (bench/startup.ts).
const once = { jitless: true } as const;

/**
 * The settings a process's environment gives, as the supervisor parsed them for the child it starts (the child's
 * SITESYNC_SETTINGS): the environment they came from (`source`: each setting's value, `keys`: every setting's name),
 * the settings, and the defaults. A child whose own environment (and flags) give the same `source` takes the settings
 * as they are; any other process parses its own.
 */
type HandOff = { version: string; keys: string[]; source: Source; settings: Env; defaults: Env };

// This module's text: a hand-off from a supervisor running other code (upgraded under it) is not taken. Unreadable
// (a compiled binary): no hand-off is made or taken.
const version = (() => {
  try {
    return String(Bun.hash(readFileSync(import.meta.path)));
  } catch {
    return null;
  }
})();

/** The hand-off in `env` (SITESYNC_SETTINGS), or null when there is none, it is unreadable or from other code. */
function handOffIn(env: Source): HandOff | null {
  const raw = env.SITESYNC_SETTINGS;
  if (!raw) return null;
  try {
    const handOff = JSON.parse(raw) as HandOff;
    return version !== null && handOff.version === version ? handOff : null;
  } catch {
    return null;
  }
}

/** SITESYNC_SETTINGS for a child process whose environment is `env`; undefined when `env` does not parse (the child then says why). */
export function settingsHandOff(env: Source): string | undefined {
  if (version === null) return undefined;
  const keys = Object.keys(envSchema().shape);
  const source = settingSource(keys, env);
  const parsed = envSchema().safeParse(source, once);
  return parsed.success ? JSON.stringify({ version, keys, source, settings: parsed.data, defaults } satisfies HandOff) : undefined;
}

/** Each setting's value in `env` (empty values count as unset). */
function settingSource(keys: string[], env: Source): Source {
  const source: Source = {};
  for (const key of keys) {
    const v = env[key];
    if (v !== undefined && v !== "") source[key] = v;
  }
  return source;
}

/** Whether two settings' sources hold the same settings with the same values. */
function sameSource(a: Source, b: Source): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

const handedToUs = handOffIn(process.env);

let defaultsMade: Env | undefined;
const defaultsOf = (): Env =>
  (defaultsMade ??=
    // Defaults depend on the machine alone (its host name and cores), the supervisor's and ours.
    handedToUs && handedToUs.defaults.SITESYNC_HOST_NAME === hostname() && handedToUs.defaults.WORKERS === availableParallelism()
      ? handedToUs.defaults
      : envSchema().parse({}, once));

/**
 * Every setting at its default (no env, no flags): the one source of defaults for code given no Config. Made on first
 * use: a process that reads none (the CLI) never builds the settings' schema.
 */
export const defaults: Env = new Proxy({} as Env, {
  get: (_, key) => Reflect.get(defaultsOf(), key),
  has: (_, key) => Reflect.has(defaultsOf(), key),
  ownKeys: () => Reflect.ownKeys(defaultsOf()),
  getOwnPropertyDescriptor: (_, key) => Reflect.getOwnPropertyDescriptor(defaultsOf(), key),
});

/** Where the database lives, parsed from DATABASE_URL: an SQLite file, or a PostgreSQL server. */
export type DatabaseTarget = { dialect: "sqlite"; path: string } | { dialect: "postgres"; url: string };

/** The SQLite file of a target; throws (one line for the operator) when it is PostgreSQL. */
export function sqlitePathOf(target: DatabaseTarget, what: string): string {
  if (target.dialect === "sqlite") return target.path;
  throw new ConfigError({
    DATABASE_URL: [`${what} works on an SQLite file only; on PostgreSQL use the server's own tools (README, 'PostgreSQL')`],
  });
}

/** A database target for logs and answers: the file path, or the URL without its password. */
export function describeTarget(target: DatabaseTarget): string {
  if (target.dialect === "sqlite") return target.path;
  try {
    const u = new URL(target.url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://(unparsable url)";
  }
}

/**
 * Turns DATABASE_URL into a file path. Accepted: a plain path (`./data/app.db`), an SQLite URI
 * (`file:data/app.db`, `file:///abs/app.db`) and the SQLAlchemy form the original tool used
 * (`sqlite:///relative/app.db`, `sqlite:////abs/app.db`).
 */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  const invalid = (msg: string) => new ConfigError({ DATABASE_URL: [msg] });
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let u: URL | null = null;
    try {
      u = new URL(url);
    } catch {
      // reported below
    }
    // A host, or a socket folder in ?host= (libpq's form for a local server).
    if (!u || (!u.hostname && !u.searchParams.get("host"))) throw invalid("expected postgres://user:password@host:port/database");
    return { dialect: "postgres", url };
  }
  let path = url;
  if (/^sqlite:/i.test(url)) {
    // SQLAlchemy: sqlite:// + empty host + "/" + path, so a fourth slash makes the path absolute.
    const m = /^sqlite:\/\/\/(.*)$/i.exec(url);
    if (!m && !/^sqlite:\/\/$/i.test(url)) throw invalid("expected sqlite:///relative/path.db or sqlite:////absolute/path.db");
    path = m?.[1] ?? "";
  } else if (/^file:/i.test(url)) {
    path = url.slice("file:".length);
    if (path.startsWith("//")) {
      // file://host/path: SQLite only accepts an empty host or localhost.
      const m = /^\/\/(localhost)?(\/.*)$/i.exec(path);
      if (!m) throw invalid("a file: URI must name a local file (file:///abs/path.db or file:rel/path.db)");
      path = m[2]!;
    }
  }
  const [rawPath = "", query = ""] = path.split("?", 2);
  try {
    path = /^(sqlite|file):/i.test(url) ? decodeURIComponent(rawPath) : rawPath;
  } catch {
    throw invalid("malformed percent-encoding in the path");
  }
  if (path === ":memory:" || (path === "" && /^sqlite:/i.test(url)) || /(^|&)mode=memory(&|$)/.test(query)) {
    throw invalid("an in-memory database cannot be shared between processes");
  }
  if (path.length === 0) throw invalid("empty database path");
  return { dialect: "sqlite", path };
}

/** Field errors found while reading the configuration. */
export class ConfigError extends Error {
  readonly fields: Record<string, string[]>;
  constructor(fields: Record<string, string[]>) {
    super(
      "invalid configuration:\n" +
        Object.entries(fields)
          .map(([k, v]) => `  ${k}: ${v.join("; ")}`)
          .join("\n"),
    );
    this.fields = fields;
  }
}

/** Groups zod's issues by setting name. */
function configErrorOf(error: z.ZodError): ConfigError {
  const fields: Record<string, string[]> = {};
  for (const issue of error.issues) (fields[String(issue.path[0] ?? "config")] ??= []).push(issue.message);
  return new ConfigError(fields);
}

type Source = Record<string, string | undefined>;

/**
 * Parses `schema` from env and command-line flags (flags win; empty env values count as unset).
 * `flags` maps each string flag to the setting it sets; `switches` are boolean flags, returned as read.
 * Throws ConfigError.
 */
function readSettings<S extends z.ZodObject>(
  schema: S | (() => S),
  argv: string[],
  env: Source,
  flags: Record<string, keyof z.infer<S> & string>,
  switches: string[] = [],
  handOff: HandOff | null = null,
) {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      options: Object.fromEntries([
        ...Object.keys(flags).map((f) => [f, { type: "string" as const }]),
        ...switches.map((f) => [f, { type: "boolean" as const }]),
      ]),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError({ argv: [(err as Error).message] });
  }
  const read = Object.fromEntries(switches.map((f) => [f, values[f] === true]));
  const merged = settingSource(handOff ? handOff.keys : Object.keys((typeof schema === "function" ? schema() : schema).shape), env);
  for (const [flag, key] of Object.entries(flags)) {
    const v = values[flag];
    if (typeof v === "string") merged[key] = v;
  }
  // The supervisor parsed these very settings for us: taken as they are.
  if (handOff && sameSource(merged, handOff.source)) return { settings: handOff.settings as z.infer<S>, switches: read };
  const parsed = (typeof schema === "function" ? schema() : schema).safeParse(merged, once);
  if (!parsed.success) throw configErrorOf(parsed.error);
  return { settings: parsed.data as z.infer<S>, switches: read };
}

/** Reads the configuration from env and command-line flags; flags win. Throws ConfigError. */
export function loadConfig(argv: string[] = process.argv.slice(2), env: Source = process.env) {
  const { settings, switches } = readSettings(
    envSchema,
    argv,
    env,
    {
      workers: "WORKERS",
      "sync-workers": "SYNC_WORKERS",
      port: "PORT",
      host: "HOST",
      "database-url": "DATABASE_URL",
    },
    ["allow-shared-database"],
    handOffIn(env),
  );
  const { SITESYNC_ROLE, ...e } = settings;
  if (switches["allow-shared-database"]) e.ALLOW_SHARED_DATABASE = true;
  if (e.SYNC_SOURCE === "gsc" && !e.GSC_ACCESS_TOKEN && !e.GSC_SERVICE_ACCOUNT_FILE && !existsSync(e.GSC_CREDENTIALS_FILE)) {
    throw new ConfigError({
      SYNC_SOURCE: [
        `gsc needs GSC_ACCESS_TOKEN, GSC_SERVICE_ACCOUNT_FILE or a sign-in (bun run cli auth login, stored in ${e.GSC_CREDENTIALS_FILE})`,
      ],
    });
  }
  return {
    ...e,
    database: parseDatabaseUrl(e.DATABASE_URL),
    role: SITESYNC_ROLE,
    // Set by the supervisor for the processes it spawns; never by users.
    supervised: env.SITESYNC_SUPERVISED === "1",
    // Started through a package script (`bun run start`): that wrapper process is our parent.
    startedByScript: Boolean(env.npm_lifecycle_event),
  };
}

export type Config = ReturnType<typeof loadConfig>;

/** Loads the configuration or prints the field errors and exits 1. */
export function loadConfigOrExit(argv?: string[], env?: Record<string, string | undefined>): Config {
  return orExit(() => loadConfig(argv, env));
}

/** Runs a configuration loader; on ConfigError prints the field errors and exits 1. */
export function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}

const keysCommandSchema = z.discriminatedUnion("command", [
  z.object({
    command: z.literal("create"),
    name: z.string().trim().min(1, "--name is required").max(100),
    scope: z.enum(["read", "write", "admin", "query"], "--scope must be read, write, admin or query"),
    expires: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return null;
        const ms = parseDuration(v);
        if (ms === null) ctx.issues.push({ code: "custom", message: "--expires expects a duration like 90d, 12h or 30m", input: v });
        return ms;
      }),
  }),
  z.object({ command: z.literal("list") }),
  z.object({ command: z.literal("revoke"), ref: z.string().min(1, "give the key's id or prefix") }),
]);

/**
 * `bun run keys create --name N --scope S [--expires 90d]` | `keys list` | `keys revoke <id|prefix>`,
 * plus the usual configuration (DATABASE_URL). Throws ConfigError.
 */
export function loadKeysCommand(argv: string[] = process.argv.slice(2), env: Source = process.env) {
  const base = loadConfig([], env);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { name: { type: "string" }, scope: { type: "string" }, expires: { type: "string" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new ConfigError({ argv: [(err as Error).message] });
  }
  const [command, ref] = parsed.positionals;
  const cmd = keysCommandSchema.safeParse({ command, ref, ...parsed.values }, once);
  if (!cmd.success) {
    if (!["create", "list", "revoke"].includes(command ?? "")) {
      throw new ConfigError({ command: ["expected create, list or revoke"] });
    }
    throw configErrorOf(cmd.error);
  }
  return { ...base, keys: cmd.data };
}

/** `bun run backup [--to DIR]`: the usual configuration plus where the backup goes. Throws ConfigError. */
export function loadBackupCommand(argv: string[] = process.argv.slice(2), env: Source = process.env) {
  const base = loadConfig([], env);
  const { settings } = readSettings(z.object({ BACKUP_DIR: z.string().min(1).optional() }), argv, env, { to: "BACKUP_DIR" });
  return { ...base, BACKUP_DIR: settings.BACKUP_DIR };
}

/**
 * `bun run restore FILE [--keep-keys | --revoke-keys]`: the usual configuration, the backup file to restore and
 * what to do with the file's active keys (null: list them and ask). Throws ConfigError.
 */
export function loadRestoreCommand(argv: string[] = process.argv.slice(2), env: Source = process.env) {
  const base = loadConfig([], env);
  let parsed: { positionals: string[]; values: { "keep-keys"?: boolean; "revoke-keys"?: boolean } };
  try {
    parsed = parseArgs({
      args: argv,
      options: { "keep-keys": { type: "boolean" }, "revoke-keys": { type: "boolean" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new ConfigError({ argv: [(err as Error).message] });
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 1) throw new ConfigError({ argv: ["expected one argument: the backup file to restore"] });
  if (values["keep-keys"] && values["revoke-keys"]) throw new ConfigError({ argv: ["--keep-keys and --revoke-keys exclude each other"] });
  const keys: "keep" | "revoke" | null = values["keep-keys"] ? "keep" : values["revoke-keys"] ? "revoke" : null;
  return { ...base, restoreFrom: positionals[0]!, keys };
}

const stressSchema = z.object({
  STRESS_PROCESSES: int(1, 256).default(8),
  STRESS_SECONDS: z.coerce.number().positive().max(86_400).default(10),
  STRESS_READ_RATIO: z.coerce.number().min(0).max(1).default(0.8),
  /** Concurrent clients inside each process (their writes share group commits). */
  STRESS_CLIENTS: int(1, 1000).default(8),
  /** Unset: a temp file, removed afterwards. DATABASE_URL is ignored so a stress run never hits real data. */
  STRESS_DATABASE: z.string().min(1).optional(),
});

/**
 * Settings of `bun run stress`: flags --processes --seconds --read-ratio --clients --database
 * (env STRESS_*; flags win), plus the usual configuration for pragmas, write path and checkpointer.
 */
export function loadStressConfig(argv: string[] = process.argv.slice(2), env: Source = process.env) {
  const base = loadConfig([], env);
  const { settings: st, switches } = readSettings(
    stressSchema,
    argv,
    env,
    {
      processes: "STRESS_PROCESSES",
      seconds: "STRESS_SECONDS",
      "read-ratio": "STRESS_READ_RATIO",
      clients: "STRESS_CLIENTS",
      database: "STRESS_DATABASE",
    },
    // Internal: a process spawned by the stress parent.
    ["child"],
  );
  return {
    ...base,
    stress: {
      processes: st.STRESS_PROCESSES,
      seconds: st.STRESS_SECONDS,
      readRatio: st.STRESS_READ_RATIO,
      clients: st.STRESS_CLIENTS,
      database: st.STRESS_DATABASE === undefined ? null : parseDatabaseUrl(st.STRESS_DATABASE),
      child: switches.child === true,
    },
  };
}

export type StressConfig = ReturnType<typeof loadStressConfig>;

// Not a pick of the whole settings' schema: building its ~120 schemas cost every CLI run ~30 ms.
const cliSchema = () =>
  z.object({
    ...gscClientSettings(),
    // The running service the CLI talks to, and its API key when it requires one (sent as a Bearer token).
    SITESYNC_URL: z.url().default("http://localhost:8000"),
    SITESYNC_API_KEY: z.string().min(1).optional(),
    SITESYNC_API_KEY_FILE: z.string().min(1).optional(),
  });

/** Settings of `bun run cli` from the environment (its flags are parsed by the CLI itself and win). Throws ConfigError. */
export function loadCliConfig(env: Source = process.env) {
  return readSettings(cliSchema, [], env, {}).settings;
}

export type CliConfig = ReturnType<typeof loadCliConfig>;

/**
 * The raw environment, for the supervisor to hand on to its children, with the settings it gives parsed once here
 * (SITESYNC_SETTINGS: the child takes them instead of building the settings' schemas again).
 */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  const env: Record<string, string> = { ...out, ...extra };
  delete env.SITESYNC_SETTINGS;
  const handOff = settingsHandOff(env);
  return handOff === undefined ? env : { ...env, SITESYNC_SETTINGS: handOff };
}
