import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdirSync, openSync, statfsSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { findPgBin, startCluster, startServer as startPg, stopCluster, stopServer as stopPg, type Cluster } from "../scripts/pg-cluster.ts";
import { openPgDb } from "../src/db/index.ts";
import { isProcessGone } from "../src/db/process-registry.ts";
import { smallTmpfs } from "./helpers/fs-faults.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

// Database faults under a concurrent create load (issue 23, item 6), Jepsen-style: 16 clients on keep-alive
// connections create sites against a real multi-worker server while its database fails under it, and the
// database is then read to check every answer. PostgreSQL: a cluster of this file's own (fsync on), crashed
// (`pg_ctl stop -m immediate`), stopped (`-m fast`), and every backend terminated; SQLite: the disk filling up
// (a small tmpfs). Checked exactly: every acknowledged create is there, none was answered 409, none applied
// twice (one `ok` audit row per site), no 503 for a create that is there. Durations are recorded and printed
// (asserted only with slack that cannot flake on a loaded machine). Runs once (listed in scripts/test.ts).

setDefaultTimeout(240_000);

const CLIENTS = 16;
const RIDE_THROUGH_MS = 2000;
/** The PostgreSQL server's bound on learning a lost COMMIT's outcome (the default, set explicitly). */
const WRITE_LOCK_TIMEOUT_MS = 30_000;
/** Added to any bound on time: the test machine runs ~9 agents on 2 cores. */
const SLACK_MS = 8000;
/**
 * The load before each fault: at least this long, and until every client has had an answer, so all 16 have creates in
 * flight when it strikes (it was a fixed 1.5 s for the PostgreSQL phases and 1 s for the disk: flat-out creates that no
 * check needs).
 */
const LOAD_BEFORE_FAULT_MS = 500;

/** Waits out the load before a fault (LOAD_BEFORE_FAULT_MS, and every client answered once). */
async function loadBeforeFault(recs: Rec[]) {
  await Bun.sleep(LOAD_BEFORE_FAULT_MS);
  await waitFor(() => new Set(recs.map((r) => r.client)).size === CLIENTS, {
    timeout: 30_000,
    every: 50,
    what: "an answer to every client",
  });
}

type Rec = {
  client: number;
  domain: string;
  keyed: boolean;
  status: number;
  code?: string;
  outcome?: string;
  requestId: string | null;
  replayed: boolean;
  /** A GET of an unkeyed 202's Location (the pending write's final answer), not a create. */
  poll?: boolean;
  /** The Retry-After header of a 503 (seconds), else null. */
  retryAfter: number | null;
  /** performance.now() at send, and the duration. */
  at: number;
  ms: number;
};

/**
 * 16 clients creating sites until stopped; odd clients send an Idempotency-Key and retry a 503 with it; even
 * ones send none, and follow a 202 pending's Location to the write's final answer.
 */
function startLoad(base: string, phase: string) {
  let stopping = false;
  const recs: Rec[] = [];
  const runners = Array.from({ length: CLIENTS }, async (_, client) => {
    const keyed = client % 2 === 1;
    for (let i = 0; !stopping; i++) {
      const domain = `sc-domain:c${client}-${i}.${phase}.example`;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (keyed) headers["idempotency-key"] = `${phase}-${client}-${i}`;
      for (let attempt = 1; attempt <= 100; attempt++) {
        const at = performance.now();
        let status = 0;
        let outcome: string | undefined;
        let code: string | undefined;
        let requestId: string | null = null;
        let replayed = false;
        let retryAfter: number | null = null;
        let location: string | null = null;
        try {
          const r = await fetch(`${base}/api/v1/sites`, { method: "POST", headers, body: JSON.stringify({ domain, name: domain }) });
          status = r.status;
          location = r.headers.get("location");
          requestId = r.headers.get("x-request-id");
          replayed = r.headers.get("idempotent-replayed") === "true";
          if (r.status === 503) retryAfter = Number(r.headers.get("retry-after"));
          const body = (await r.json().catch(() => null)) as { error?: { code?: string; details?: { outcome?: string } } } | null;
          outcome = body?.error?.details?.outcome;
          code = body?.error?.code;
        } catch {
          status = 0;
        }
        recs.push({ client, domain, keyed, status, code, outcome, requestId, replayed, retryAfter, at, ms: performance.now() - at });
        // Unkeyed, 202 pending: the Location gives the final answer once the database told the outcome (202 until
        // then, 503 while it is down); that answer is the create's.
        if (!keyed && status === 202 && location) {
          for (let p = 0; p < 600; p++) {
            await Bun.sleep(200);
            const pollAt = performance.now();
            let st = 0;
            let pollCode: string | undefined;
            let pollOutcome: string | undefined;
            let ra: number | null = null;
            try {
              const r = await fetch(`${base}${location}`);
              st = r.status;
              if (r.status === 503) ra = Number(r.headers.get("retry-after"));
              const body = (await r.json().catch(() => null)) as { error?: { code?: string; details?: { outcome?: string } } } | null;
              pollCode = body?.error?.code;
              pollOutcome = body?.error?.details?.outcome;
              replayed = r.headers.get("idempotent-replayed") === "true";
            } catch {
              st = 0;
            }
            recs.push({
              client,
              domain,
              keyed,
              status: st,
              code: pollCode,
              outcome: pollOutcome,
              requestId,
              replayed,
              retryAfter: ra,
              at: pollAt,
              ms: performance.now() - pollAt,
              poll: true,
            });
            // The final answer is replayed (a 503 among them: its write was not applied); before it, 202 or 503.
            if (replayed || (st !== 202 && st !== 503 && st !== 0)) break;
          }
        }
        // A keyed client sends a 503 (or a duplicate still waiting for its first: 409 idempotency_in_progress;
        // or 202 pending: a lost COMMIT's outcome not known at the ride-through) again, for the final answer.
        if (!keyed || !(status === 503 || status === 0 || status === 202 || code === "idempotency_in_progress")) {
          // An unkeyed client refused goes on with its next create after the same pause: on a full disk a 503 comes in
          // ~5 ms, and its 8 clients sent 2,700-4,300 of them in the 3 s, half to two thirds of the phase's requests.
          if (!keyed && (status === 503 || status === 0)) await Bun.sleep(200);
          break;
        }
        await Bun.sleep(200);
      }
    }
  });
  return {
    recs,
    async stop() {
      stopping = true;
      await Promise.all(runners);
      return recs;
    },
  };
}

/** Every JSON log line of the server (supervisor and workers). */
function logLines(s: RunningServer): Record<string, any>[] {
  return s
    .output()
    .split("\n")
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return [];
      }
    });
}

/**
 * After the database is back (or the disk has room again): the load runs on until every client has had a create
 * answered 201 since and every process that logged the outage has logged its end, for at least 1 s and at most
 * 3 s (it ran a fixed 3 s: 16 clients creating flat out, the file's largest share of CPU).
 */
async function untilRecovered(recs: Rec[], backAt: number, s: RunningServer, linesBefore: number): Promise<number> {
  const t0 = performance.now();
  await Bun.sleep(1000);
  while (performance.now() - t0 < 3000) {
    const clients = new Set(recs.filter((r) => !r.poll && r.status === 201 && r.at >= backAt).map((r) => r.client));
    const lines = logLines(s).slice(linesBefore);
    const up = new Set(lines.filter((l) => l.msg === "database reachable again").map((l) => l.pid));
    if (clients.size === CLIENTS && lines.every((l) => l.msg !== "database unreachable" || up.has(l.pid))) break;
    await Bun.sleep(200);
  }
  return Math.round(performance.now() - t0);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!) : 0;
};

/** Checks the answers of one phase against the database; returns the figures to print. */
async function verify(
  phase: string,
  recs: Rec[],
  read: (domains: string[]) => Promise<{ domain: string; okAudit: number }[]>,
  s: RunningServer,
) {
  const byDomain = new Map<string, Rec[]>();
  for (const r of recs) byDomain.set(r.domain, [...(byDomain.get(r.domain) ?? []), r]);
  const stored = new Map((await read([...byDomain.keys()])).map((r) => [r.domain, r.okAudit]));
  const acknowledged = [...byDomain].filter(([, rs]) => rs.some((r) => r.status === 201)).map(([d]) => d);
  // Every acknowledged create is there.
  expect(acknowledged.filter((d) => !stored.has(d))).toEqual([]);
  // None answered 409 (each domain is sent by one client only: a 409 could only be its own earlier commit).
  expect(recs.filter((r) => r.status === 409 && r.code !== "idempotency_in_progress")).toEqual([]);
  // None applied twice: one `ok` audit row per stored site.
  expect([...stored].filter(([, n]) => n !== 1)).toEqual([]);
  // No 503 for a create that is there (the client was told it failed), unless its outcome was said to be unknown.
  const refusedButStored = [...byDomain].filter(
    ([d, rs]) => stored.has(d) && !rs.some((r) => r.status === 201) && !rs.some((r) => r.outcome === "unknown"),
  );
  // When one fails: its answers and the server's log lines of its requests, for the diagnosis.
  for (const [d, rs] of refusedButStored) {
    console.log(`db-faults: ${d} stored but not acknowledged: ${JSON.stringify(rs)}`);
    const ids = new Set(rs.map((r) => r.requestId).filter((id) => id !== null));
    for (const line of s.output().split("\n")) if ([...ids].some((id) => line.includes(id!))) console.log(`  ${line.slice(0, 600)}`);
  }
  expect(refusedButStored.map(([d]) => d)).toEqual([]);
  // Keyed clients retried until answered: every one of their creates is acknowledged.
  const keyedOpen = [...byDomain].filter(([, rs]) => rs[0]!.keyed && !rs.some((r) => r.status === 201));
  expect(keyedOpen.map(([d]) => d)).toEqual([]);
  // 202 pending: a keyed write's (its retry gets the final answer), an unkeyed one's and its Location's before the outcome is known.
  expect(recs.filter((r) => r.status !== 201 && r.status !== 503 && r.status !== 202 && r.code !== "idempotency_in_progress")).toEqual([]);
  // Every unkeyed 202 was followed to its final answer.
  const unkeyedOpen = [...byDomain].filter(
    ([, rs]) =>
      rs.some((r) => !r.keyed && r.status === 202) &&
      !rs.some((r) => r.poll && (r.replayed || (r.status !== 202 && r.status !== 503 && r.status !== 0))),
  );
  expect(unkeyedOpen.map(([d]) => d)).toEqual([]);
  // Every 503 says when to retry, from what is known of the outage (2 s for a restart, else half the outage so far, ≤ 30 s).
  const retryAfters = recs.filter((r) => r.status === 503).map((r) => r.retryAfter);
  // (The requests themselves on failure: a replayed 503 at a pending write's Location once lacked the header.)
  expect(recs.filter((r) => r.status === 503 && (r.retryAfter === null || !(r.retryAfter >= 1 && r.retryAfter <= 30)))).toEqual([]);
  // Requests whose COMMIT lost its connection wait for the server to tell the outcome (docs/operations.md).
  const checked = logLines(s).filter((l) => l.msg === "write outcome checked after its COMMIT lost the connection");
  const ambiguous = new Set(checked.map((l) => l.request_id as string));
  const mine = checked.filter((l) => recs.some((r) => r.requestId === l.request_id));
  const outcomes = Object.fromEntries(["committed", "aborted", "unknown"].map((o) => [o, mine.filter((l) => l.outcome === o).length]));
  // A lost COMMIT whose outcome is not known at the end of the ride-through is answered then: 202 pending (a
  // keyed write's retry, an unkeyed one's Location, gets the final answer), or 503 not_applied for the lost
  // COMMIT of a key's own claim (nothing ran). No request is exempt from the bound.
  const creates = recs.filter((r) => !r.poll);
  const isAmbiguous = (r: Rec) => r.requestId !== null && ambiguous.has(r.requestId);
  const figures = {
    phase,
    requests: creates.length,
    acknowledged: acknowledged.length,
    answered_503: creates.filter((r) => r.status === 503).length,
    answered_503_not_applied: creates.filter((r) => r.outcome === "not_applied").length,
    answered_202_pending: {
      keyed: creates.filter((r) => r.status === 202 && r.keyed).length,
      unkeyed: creates.filter((r) => r.status === 202 && !r.keyed).length,
    },
    pending_polls: recs.filter((r) => r.poll).length,
    retry_after_s: [...new Set(retryAfters)].sort((a, b) => a! - b!),
    replayed: recs.filter((r) => r.replayed).length,
    ambiguous_commits_checked: new Set(creates.filter(isAmbiguous).map((r) => r.requestId)).size,
    ambiguous_outcomes: outcomes,
    ms_p50: pct(
      creates.map((r) => r.ms),
      50,
    ),
    ms_p99: pct(
      creates.map((r) => r.ms),
      99,
    ),
    ms_max: pct(
      recs.map((r) => r.ms),
      100,
    ),
    ms_max_503: pct(
      creates.filter((r) => r.status === 503).map((r) => r.ms),
      100,
    ),
    ms_max_ambiguous_keyed: pct(
      creates.filter((r) => r.keyed && isAmbiguous(r)).map((r) => r.ms),
      100,
    ),
    ms_max_ambiguous_unkeyed: pct(
      creates.filter((r) => !r.keyed && isAmbiguous(r)).map((r) => r.ms),
      100,
    ),
  };
  // No request held much past the ride-through + 1 s (slack: the machine), lost COMMITs included.
  expect(figures.ms_max).toBeLessThan(RIDE_THROUGH_MS + 1000 + SLACK_MS);
  return figures;
}

const pgBin = findPgBin();

describe.skipIf(!pgBin)("PostgreSQL failing under 16 clients creating sites (a cluster of this test's own)", () => {
  let cluster: Cluster;
  let s: RunningServer;
  let admin: () => Promise<pg.Client>;
  let dbUrl: string;
  const figures: Record<string, unknown>[] = [];

  beforeAll(async () => {
    cluster = startCluster({ settings: { fsync: "on", synchronous_commit: "on", full_page_writes: "on" } });
    admin = async () => {
      const c = new pg.Client({ connectionString: cluster.url });
      c.on("error", () => {});
      await c.connect();
      return c;
    };
    const c = await admin();
    await c.query("create database faults");
    await c.end();
    dbUrl = cluster.url.replace(/\/postgres$/, "/faults");
    s = await startServer({
      workers: 2,
      syncWorkers: 1,
      dbPath: dbUrl,
      timeoutMs: 90_000,
      env: {
        LOG_LEVEL: "info",
        PG_POOL_SIZE: "4",
        DB_RIDE_THROUGH_MS: String(RIDE_THROUGH_MS),
        WRITE_LOCK_TIMEOUT_MS: String(WRITE_LOCK_TIMEOUT_MS),
        SHUTDOWN_TIMEOUT_MS: "5000",
        SYNC_SCHEDULER: "false",
        SYNC_POLL_MS: "200",
      },
    });
    // Warm up (connections, JIT) so the first phase does not measure a cold start: 1 s (2 s before 2026-12-07) of the
    // 16 clients flat out, ~2 s of CPU less; each phase loads 0.5 s more before its fault anyway.
    const warm = startLoad(s.url, "warmup");
    await Bun.sleep(1000);
    await warm.stop();
  });

  afterAll(async () => {
    if (figures.length) console.log(`db-faults figures:\n${figures.map((f) => JSON.stringify(f)).join("\n")}`);
    await s?.cleanup();
    if (cluster) stopCluster(cluster.dir);
  });

  /** The phase's sites and their `ok` audit rows, read straight from the server. */
  const read = async (domains: string[]) => {
    const c = await faultsDb();
    try {
      const { rows } = await c.query({
        text: `select s.domain, (select count(*)::int from audit_log a where a.site_id = s.id and a.outcome = 'ok' and a.action = 'POST /api/v1/sites') as ok_audit
               from sites s where s.domain = any($1)`,
        values: [domains],
      });
      return rows.map((r) => ({ domain: r.domain as string, okAudit: r.ok_audit as number }));
    } finally {
      await c.end();
    }
  };
  const faultsDb = async () => {
    const c = new pg.Client({ connectionString: dbUrl });
    c.on("error", () => {});
    await c.connect();
    return c;
  };

  /** Runs the load around `fault` (which resolves when the database is back); checks and records the phase. */
  async function phase(name: string, fault: () => Promise<number | null>) {
    const linesBefore = logLines(s).length;
    const load = startLoad(s.url, name);
    await loadBeforeFault(load.recs);
    const t0 = performance.now();
    const backAt = await fault();
    const loadAfterMs = backAt === null ? await Bun.sleep(3000).then(() => 3000) : await untilRecovered(load.recs, backAt, s, linesBefore);
    const recs = await load.stop();
    // Requests past the ride-through + 1 s, always printed: a failed bound must say which request it was.
    for (const r of recs.filter((x) => x.ms > RIDE_THROUGH_MS + 1000))
      console.log("slow", JSON.stringify({ ...r, at: Math.round(r.at - t0) }));
    if (process.env.FAULTS_DEBUG) {
      for (const l of logLines(s).filter((x) => /outcome|unreachable|reachable|error/.test(x.msg))) console.log("log", JSON.stringify(l));
      console.log("back at", backAt === null ? null : Math.round(backAt - t0));
    }
    const f = await verify(name, recs, read, s);
    const during = recs.filter((r) => r.at >= t0);
    // 2xx again soon after the database is back: the first create sent after its return that succeeded.
    const firstOk =
      backAt === null ? null : during.filter((r) => !r.poll && r.at >= backAt && r.status === 201).sort((a, b) => a.at - b.at)[0];
    const backMs = firstOk && backAt !== null ? Math.round(firstOk.at + firstOk.ms - backAt) : null;
    // The first 201 answered after the return, whenever sent (a request that waited through the outage counts).
    const answeredMs =
      backAt === null
        ? null
        : Math.min(
            ...during.filter((r) => !r.poll && r.status === 201 && r.at + r.ms >= backAt).map((r) => Math.round(r.at + r.ms - backAt)),
          );
    // One log line per process and state change: down once, back up once (still down: once a minute).
    const lines = logLines(s).slice(linesBefore);
    const perPid = (msg: string) => {
      const m = new Map<number, number>();
      for (const l of lines) if (l.msg === msg) m.set(l.pid, (m.get(l.pid) ?? 0) + 1);
      return m;
    };
    const downs = perPid("database unreachable");
    const ups = perPid("database reachable again");
    const logs = {
      processes_down: downs.size,
      down_lines_per_process: Math.max(0, ...downs.values()),
      up_lines_per_process: Math.max(0, ...ups.values()),
      still_down_lines: lines.filter((l) => l.msg === "database still unreachable").length,
      sync_loop_errors: lines.filter((l) => l.msg === "sync loop error").length,
    };
    expect([...downs.values()].every((n) => n === 1)).toBe(true);
    expect([...ups.keys()].sort()).toEqual([...downs.keys()].sort());
    expect([...ups.values()].every((n) => n === 1)).toBe(true);
    const row = {
      ...f,
      first_2xx_after_return_ms: backMs,
      first_2xx_answered_after_return_ms: answeredMs,
      fault_ms: backAt === null ? null : Math.round(backAt - t0),
      load_after_return_ms: loadAfterMs,
      logs,
    };
    figures.push(row);
    console.log(JSON.stringify(row));

    if (backAt !== null) {
      expect(firstOk).toBeDefined();
      expect(backMs!).toBeLessThan(1000 + SLACK_MS);
    }
    return row;
  }

  test("every backend terminated three times: nothing lost or doubled, no 409", async () => {
    await phase("terminate", async () => {
      const c = await faultsDb();
      try {
        for (let i = 0; i < 3; i++) {
          await c.query(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
          );
          await Bun.sleep(700);
        }
      } finally {
        await c.end();
      }
      return performance.now();
    });
  });

  test("a fast stop (`pg_ctl stop -m fast`) for 10 s: 503 within the ride-through, nothing lost or doubled, 2xx again once back", async () => {
    const before = logLines(s).length;
    // A handle opened before the stop and idle through it (it sees no outage): right after the return every
    // live process's heartbeat is over 10 s old, and none may be judged gone (a pending write's lookup would
    // answer 410 outcome_lost for a write its holder then commits: CI saw it once).
    const judge = openPgDb({ url: dbUrl, role: "test", poolSize: 1 });
    let judged: { host: string; pid: number; gone: boolean }[] = [];
    try {
      await phase("fast", async () => {
        await stopPg(cluster, "fast");
        // 10 s as issue 23 says (5 s until every lost COMMIT was answered at the ride-through: a create held the
        // whole stop, 11.5 s, in two quiet CI runs).
        await Bun.sleep(10_000);
        await startPg(cluster);
        const back = performance.now();
        const c = await faultsDb();
        const { rows } = await c
          .query(
            "select host, pid from db_connections where last_seen_at < to_char((clock_timestamp() - interval '10 s') at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
          )
          .finally(() => c.end());
        judged = await Promise.all(
          rows.map(async (r) => ({ host: r.host, pid: r.pid, gone: await isProcessGone(judge, judge.q, r.host, r.pid) })),
        );
        return back;
      });
    } finally {
      await judge.close();
    }
    console.log(`db-faults: fast stop: ${judged.length} live processes with a heartbeat over 10 s old judged right after the return`);
    expect(judged.filter((j) => j.gone)).toEqual([]);
    const lines = logLines(s).slice(before);
    // One line per process per change: down once, back once (the still-down line comes once a minute).
    const downs = lines.filter((l) => l.msg === "database unreachable");
    const perPid = new Map<number, number>();
    for (const l of downs) perPid.set(l.pid, (perPid.get(l.pid) ?? 0) + 1);
    expect([...perPid.values()].every((n) => n === 1)).toBe(true);
    expect(perPid.size).toBeGreaterThanOrEqual(2); // both HTTP workers noticed it
    expect(lines.filter((l) => l.msg === "database reachable again").length).toBe(perPid.size);
    expect(lines.filter((l) => l.msg === "sync loop error").length).toBeLessThanOrEqual(2);
  });

  test("a crash (`pg_ctl stop -m immediate`) for 5 s: nothing lost or doubled, no 409, 2xx again once recovered", async () => {
    await phase("crash", async () => {
      await stopPg(cluster, "immediate");
      await Bun.sleep(5000);
      await startPg(cluster);
      return performance.now();
    });
  });

  test("/health says since when the database is unreachable; SIGTERM during the outage exits 0 within SHUTDOWN_TIMEOUT_MS", async () => {
    await stopPg(cluster, "immediate");
    try {
      let health: { status: number; body: any } | null = null;
      for (let i = 0; i < 40; i++) {
        const r = await fetch(`${s.url}/health`);
        health = { status: r.status, body: await r.json() };
        if (/database unreachable since/.test(JSON.stringify(health.body))) break;
        await Bun.sleep(250);
      }
      expect(health!.status).toBe(503);
      expect(health!.body.reasons[0]).toMatch(/^the PostgreSQL server cannot be reached: database unreachable since \d{4}-\d\d-\d\dT/);
      const t0 = performance.now();
      const code = await s.stop();
      const ms = Math.round(performance.now() - t0);
      figures.push({ phase: "shutdown while down", exit_code: code, ms });
      expect(code).toBe(0);
      expect(ms).toBeLessThan(5000 + SLACK_MS);
      expect(s.output()).not.toMatch(/did not stop in time/);
    } finally {
      await startPg(cluster);
    }
  });
});

/** The disk-full case's file system: what the load writes in the 3 s after space is freed must fit in it with room to spare. */
const TMPFS_KIB = 64 * 1024;
/** Free space the disk-full case must still have when the load stops (else it measured a second outage). */
const TMPFS_HEADROOM = 16 * 1024 * 1024;

const tmpfsProbe = smallTmpfs(64);
const tmpfsWhy = typeof tmpfsProbe === "string" ? tmpfsProbe : null;
if (typeof tmpfsProbe !== "string") tmpfsProbe.unmount();
if (tmpfsWhy) console.log(`db-faults: SQLite disk-full test skipped: ${tmpfsWhy}`);

describe.skipIf(tmpfsWhy !== null)("SQLite: the disk fills up under 16 clients creating sites", () => {
  test("503 (never 500), nothing acknowledged lost, no 503 for a create that is there, 2xx again once space is freed", async () => {
    const fs = smallTmpfs(TMPFS_KIB) as { dir: string; unmount: () => void };
    const dbPath = join(fs.dir, "app.db");
    const s = await startServer({
      workers: 2,
      dbPath,
      timeoutMs: 60_000,
      env: { LOG_LEVEL: "info", DB_RIDE_THROUGH_MS: String(RIDE_THROUGH_MS) },
    });
    try {
      const load = startLoad(s.url, "diskfull");
      await loadBeforeFault(load.recs);
      // Fill what is left (a file of zeros), hold it 3 s, free it.
      const filler = join(fs.dir, "filler");
      mkdirSync(fs.dir, { recursive: true });
      const fd = openSync(filler, "w");
      const chunk = new Uint8Array(64 * 1024);
      try {
        for (;;) writeSync(fd, chunk);
      } catch {
        // ENOSPC: full
      } finally {
        closeSync(fd);
      }
      await Bun.sleep(3000);
      unlinkSync(filler);
      const backAt = performance.now();
      const loadAfterMs = await untilRecovered(load.recs, backAt, s, 0);
      const recs = await load.stop();
      const read = async (domains: string[]) => {
        const { withDb } = await import("./helpers/observe.ts");
        return withDb(dbPath, async (db) => {
          const { sites, auditLog } = db.t;
          const rows = await db.q.select({ id: sites.id, domain: sites.domain }).from(sites);
          const audit = await db.q.select({ site_id: auditLog.site_id, outcome: auditLog.outcome, action: auditLog.action }).from(auditLog);
          const want = new Set(domains);
          return rows
            .filter((r) => want.has(r.domain))
            .map((r) => ({
              domain: r.domain,
              okAudit: audit.filter((a) => a.site_id === r.id && a.outcome === "ok" && a.action === "POST /api/v1/sites").length,
            }));
        });
      };
      // The freed space must outlast the load: on a 6 MiB tmpfs the 16 clients filled it again within the 3 s
      // (the WAL grew by 2-5 MiB), and the keyed clients, still retrying their key after the unkeyed ones had
      // stopped, were refused for ever, which read as a bug of keyed writes.
      expect(statfsSync(fs.dir).bavail * statfsSync(fs.dir).bsize).toBeGreaterThan(TMPFS_HEADROOM);
      const f = await verify("sqlite disk full", recs, read, s);
      const firstOk = recs.filter((r) => r.at >= backAt && r.status === 201).sort((a, b) => a.at - b.at)[0];
      const row = {
        ...f,
        first_2xx_after_space_ms: firstOk ? Math.round(firstOk.at + firstOk.ms - backAt) : null,
        load_after_space_ms: loadAfterMs,
      };
      console.log(`db-faults figures: ${JSON.stringify(row)}`);
      expect(f.answered_503).toBeGreaterThan(0);
      expect(firstOk).toBeDefined();
      expect(await s.stop()).toBe(0);
    } finally {
      await s.cleanup();
      fs.unmount();
    }
  });
});
