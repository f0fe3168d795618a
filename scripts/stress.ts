import { count, eq, like, sql, sum } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeTarget, loadStressConfig, orExit, type DatabaseTarget, type StressConfig } from "../src/config.ts";
import { startCheckpointer, walSize } from "../src/db/sqlite/checkpoint.ts";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { pragmasFrom } from "../src/db/sqlite/open.ts";
import { serverFacts } from "../src/db/pg/diagnostics.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { ApiError, isBusyError } from "../src/errors.ts";
import { createSite, findSiteById, listSites, type SiteCursor } from "../src/sites/queries.ts";

// `bun run stress`: P processes share one database through the project's database layer, mixing
// reads and writes for S seconds; then the parent checks that every write a process reports as
// committed is in the database and that no caller ever saw a lock error. Exits 1 on any loss or failure.
// The database: a temporary SQLite file by default, an SQLite path, or a PostgreSQL URL (its rows
// are added to what the database holds; the counts compare before and after).
//
//   bun run stress [--processes 8] [--seconds 10] [--read-ratio 0.8] [--clients 8] [--database path|postgres://…]

const DOMAIN_SUFFIX = ".stress.example";

/** What a child reports on its last stdout line. */
type ChildResult = {
  type: "result";
  pid: number;
  reads: number;
  writes: number;
  siteIds: number[];
  taskIds: number[];
  /** Committed `progress_done + 1` updates, per task id. */
  taskUpdates: Record<string, number>;
  readErrors: number;
  writeErrors: number;
  lockErrors: number;
  /** A read of a site this process created (after its commit) found nothing. */
  staleReads: number;
  errorSamples: string[];
  busyRetries: number;
  commits: number;
  /** Write latencies in microseconds, as observed by the callers. */
  writeLatencyUs: number[];
  readLatencyUs: number[];
};

type ChildProgress = { type: "progress"; pid: number; reads: number; writes: number; errors: number; busyRetries: number };

const config = orExit(() => loadStressConfig());
if (config.stress.child) await runChild(config);
else process.exit(await runParent(config));

// ---------------------------------------------------------------------------------------------
// Child: one process of the load.

/** Opens a handle of this stress run on either engine (children: the configured write path). */
function openStressDb(c: StressConfig, target: DatabaseTarget): Db {
  if (target.dialect === "postgres") {
    return openPgDb({
      url: target.url,
      role: "stress",
      poolSize: c.PG_POOL_SIZE,
      statementTimeoutMs: c.PG_STATEMENT_TIMEOUT_MS,
      retryForMs: c.WRITE_LOCK_TIMEOUT_MS,
    });
  }
  return openDb({
    path: target.path,
    role: "stress",
    // The parent runs the checkpointer, as the supervisor does for the workers.
    pragmas: { ...pragmasFrom(c), walAutocheckpoint: 0 },
    lockTimeoutMs: c.WRITE_LOCK_TIMEOUT_MS,
    maxBatch: c.WRITE_MAX_BATCH,
    walYieldBytes: 2 * c.CHECKPOINT_TRUNCATE_BYTES,
  });
}

async function runChild(c: StressConfig) {
  if (!c.stress.database) throw new Error("--child needs --database");
  const db = openStressDb(c, c.stress.database);
  const { syncTasks } = db.t;
  const r: ChildResult = {
    type: "result",
    pid: process.pid,
    reads: 0,
    writes: 0,
    siteIds: [],
    taskIds: [],
    taskUpdates: {},
    readErrors: 0,
    writeErrors: 0,
    lockErrors: 0,
    staleReads: 0,
    errorSamples: [],
    busyRetries: 0,
    commits: 0,
    writeLatencyUs: [],
    readLatencyUs: [],
  };
  let seq = 0;
  let nextPage: SiteCursor | null = null;
  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

  function failed(kind: "read" | "write", err: unknown) {
    if (kind === "read") r.readErrors++;
    else r.writeErrors++;
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (isBusyError(err) || (err instanceof ApiError && err.code === "unavailable") || /locked|busy/i.test(message)) r.lockErrors++;
    if (r.errorSamples.length < 5) r.errorSamples.push(`${kind}: ${message}`);
  }

  async function write(op: () => Promise<void>) {
    const t0 = performance.now();
    try {
      await op();
      r.writeLatencyUs.push(Math.round((performance.now() - t0) * 1000));
      r.writes++;
    } catch (err) {
      failed("write", err);
    }
  }

  async function read(op: () => Promise<void>) {
    const t0 = performance.now();
    try {
      await op();
      r.readLatencyUs.push(Math.round((performance.now() - t0) * 1000));
      r.reads++;
    } catch (err) {
      failed("read", err);
    }
  }

  const ops = {
    createSite: () =>
      write(async () => {
        const n = ++seq;
        const site = await createSite(db, { domain: `sc-domain:p${process.pid}-${n}${DOMAIN_SUFFIX}`, name: `Stress ${n % 97}` });
        r.siteIds.push(site.id);
      }),
    insertTask: (siteId: number) =>
      write(async () => {
        const n = ++seq;
        const [row] = await db.tx((tx) =>
          tx
            .insert(syncTasks)
            .values({ site_id: siteId, task_type: `stress-${process.pid}-${n}` })
            .returning({ id: syncTasks.id }),
        );
        r.taskIds.push(row!.id);
      }),
    updateTask: (taskId: number) =>
      write(async () => {
        const now = new Date().toISOString();
        const changed = (
          await db.tx((tx) =>
            tx
              .update(syncTasks)
              .set({ progress_done: sql`${syncTasks.progress_done} + 1`, status: "running", heartbeat_at: now, worker_pid: process.pid })
              .where(eq(syncTasks.id, taskId))
              .returning({ id: syncTasks.id }),
          )
        ).length;
        if (changed !== 1) throw new Error(`task ${taskId} vanished (update changed ${changed} rows)`);
        r.taskUpdates[taskId] = (r.taskUpdates[taskId] ?? 0) + 1;
      }),
    readOwnSite: (id: number) =>
      read(async () => {
        // Committed before we heard back, so this process's next read must see it.
        if (!(await findSiteById(db, id))) r.staleReads++;
      }),
    readList: () =>
      read(async () => {
        // Page through the list as a client would: follow the cursor, start over at the end.
        const page = await listSites(db, { activeOnly: true, limit: 20, cursor: nextPage ?? undefined });
        nextPage = page.next;
      }),
  };

  async function client(until: number) {
    while (performance.now() < until) {
      const site = pick(r.siteIds);
      const task = pick(r.taskIds);
      if (site !== undefined && Math.random() < c.stress.readRatio) {
        await (Math.random() < 0.5 ? ops.readOwnSite(site) : ops.readList());
      } else {
        const w = Math.random();
        if (site === undefined || w < 0.4) await ops.createSite();
        else if (task === undefined || w < 0.7) await ops.insertTask(site);
        else await ops.updateTask(task);
      }
      // Reads are synchronous underneath: yield a macrotask so timers (the write queue's flush) run,
      // as they would between HTTP requests.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  const emit = (o: object) => console.log(JSON.stringify(o));
  const progress = setInterval(() => {
    const p: ChildProgress = {
      type: "progress",
      pid: process.pid,
      reads: r.reads,
      writes: r.writes,
      errors: r.readErrors + r.writeErrors + r.staleReads,
      busyRetries: db.stats.busyRetries,
    };
    emit(p);
  }, 1000);
  const until = performance.now() + c.stress.seconds * 1000;
  await Promise.all(Array.from({ length: c.stress.clients }, () => client(until)));
  clearInterval(progress);
  await db.drain();
  r.busyRetries = db.stats.busyRetries;
  r.commits = db.stats.commits;
  db.close();
  emit(r);
  // PostgreSQL: close() ends the pool in the background; the result is out, nothing is left to wait for.
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Parent: migrate, checkpoint, spawn, watch, verify, report.

async function runParent(c: StressConfig): Promise<number> {
  const tmp = c.stress.database ? null : mkdtempSync(join(tmpdir(), "sitesync-stress-"));
  const target: DatabaseTarget = c.stress.database ?? { dialect: "sqlite", path: join(tmp!, "stress.db") };
  // What the children get as --database: the path, or the URL (with its password).
  const database = target.dialect === "sqlite" ? target.path : target.url;
  const path = target.dialect === "sqlite" ? target.path : null;
  const removeTemp = () => tmp && rmSync(tmp, { recursive: true, force: true });
  const pragmas = pragmasFrom(c);
  const s = c.stress;
  console.log(
    `stress: ${s.processes} processes x ${s.clients} clients for ${s.seconds} s, read ratio ${s.readRatio}, ` +
      `database ${describeTarget(target)}${tmp ? " (temporary)" : ""}`,
  );
  if (path) migrate(path, pragmas);
  else await migratePg(database);
  const db = openStressDb(c, target);
  const before = await countRows(db);
  // SQLite: this process runs the checkpointer, as the supervisor does (PostgreSQL checkpoints its own WAL).
  const checkpointer = path
    ? startCheckpointer(path, pragmas, {
        intervalMs: c.CHECKPOINT_INTERVAL_MS,
        truncateBytes: c.CHECKPOINT_TRUNCATE_BYTES,
        optimizeIntervalMs: c.OPTIMIZE_INTERVAL_MS,
      })
    : null;

  const progress = new Map<number, ChildProgress>();
  const results = new Map<number, ChildResult>();
  const started = performance.now();
  const children = Array.from({ length: s.processes }, () =>
    Bun.spawn(
      [
        process.execPath,
        import.meta.path,
        "--child",
        "--database",
        database,
        "--seconds",
        String(s.seconds),
        "--read-ratio",
        String(s.readRatio),
        "--clients",
        String(s.clients),
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "inherit" },
    ),
  );
  const stopChildren = () => children.forEach((p) => p.exitCode === null && p.kill("SIGKILL"));
  process.on("SIGINT", () => {
    stopChildren();
    checkpointer?.stop();
    removeTemp();
    process.exit(130);
  });

  const readers = children.map(async (proc) => {
    let buf = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as ChildProgress | ChildResult;
        if (msg.type === "progress") progress.set(msg.pid, msg);
        else results.set(msg.pid, msg);
      }
    }
  });

  let maxWal = 0;
  let maxServerConnections = 0;
  let maxLocksWaiting = 0;
  let last = { ops: 0, writes: 0, t: started };
  const ticker = setInterval(async () => {
    const now = performance.now();
    const all = [...progress.values()];
    const ops = all.reduce((n, p) => n + p.reads + p.writes, 0);
    const writes = all.reduce((n, p) => n + p.writes, 0);
    let storage: string;
    if (path) {
      const wal = walSize(path);
      maxWal = Math.max(maxWal, wal);
      storage = `WAL ${mib(wal)}`;
    } else {
      const f = await serverFacts(db).catch(() => null);
      maxServerConnections = Math.max(maxServerConnections, f?.connections ?? 0);
      maxLocksWaiting = Math.max(maxLocksWaiting, f?.locks_waiting ?? 0);
      storage = f ? `server connections ${f.connections}, locks waiting ${f.locks_waiting}` : "server facts unavailable";
    }
    const dt = (now - last.t) / 1000;
    console.log(
      `[${((now - started) / 1000).toFixed(0).padStart(3)} s] ${fmt((ops - last.ops) / dt)} ops/s, ` +
        `${fmt((writes - last.writes) / dt)} writes/s, busy retries ${all.reduce((n, p) => n + p.busyRetries, 0)}, ` +
        `errors ${all.reduce((n, p) => n + p.errors, 0)}, ${storage}`,
    );
    last = { ops, writes, t: now };
  }, 1000);

  const deadline = Bun.sleep((s.seconds + 60) * 1000).then(() => "timeout" as const);
  const exits = Promise.all(children.map((p) => p.exited));
  const finished = await Promise.race([exits, deadline]);
  clearInterval(ticker);
  if (finished === "timeout") stopChildren();
  const exitCodes = await exits;
  await Promise.all(readers);
  const elapsed = (performance.now() - started) / 1000;
  checkpointer?.stop();
  maxWal = Math.max(maxWal, checkpointer?.stats.maxWalBytes ?? 0);

  const after = await countRows(db);
  const failures: string[] = [];
  if (finished === "timeout") failures.push(`children did not finish within ${s.seconds + 60} s`);
  exitCodes.forEach((code, i) => code !== 0 && failures.push(`child ${children[i]!.pid} exited with ${code}`));
  const rs = [...results.values()];
  if (rs.length !== s.processes) failures.push(`${s.processes - rs.length} children did not report`);

  const total = <K extends keyof ChildResult>(k: K) => rs.reduce((n, r) => n + (r[k] as number), 0);
  const reported = {
    sites: rs.reduce((n, r) => n + r.siteIds.length, 0),
    tasks: rs.reduce((n, r) => n + r.taskIds.length, 0),
    updates: rs.reduce((n, r) => n + Object.values(r.taskUpdates).reduce((a, b) => a + b, 0), 0),
  };
  const found = {
    sites: after.sites - before.sites,
    tasks: after.tasks - before.tasks,
    updates: after.progress - before.progress,
  };
  const missing = await findMissing(db, rs);
  const facts = path ? null : await serverFacts(db).catch(() => null);
  db.close();
  const lost = missing.sites + missing.tasks + missing.updates;
  for (const k of ["sites", "tasks", "updates"] as const) {
    if (reported[k] !== found[k]) failures.push(`${k}: processes reported ${reported[k]} committed, the database has ${found[k]}`);
  }
  if (missing.sites + missing.tasks + missing.updates > 0)
    failures.push(`rows reported committed but missing or wrong: ${JSON.stringify(missing)}`);
  const errors = total("readErrors") + total("writeErrors");
  const lockErrors = total("lockErrors");
  if (errors > 0)
    failures.push(
      `${errors} operations failed (${lockErrors} lock errors): ${rs
        .flatMap((r) => r.errorSamples)
        .slice(0, 5)
        .join(" | ")}`,
    );
  if (total("staleReads") > 0) failures.push(`${total("staleReads")} reads missed a row their own process had committed`);
  if (reported.sites === 0 || (total("reads") === 0 && s.readRatio > 0)) failures.push("the load did nothing");

  const writeLat = rs.flatMap((r) => r.writeLatencyUs).sort((a, b) => a - b);
  const readLat = rs.flatMap((r) => r.readLatencyUs).sort((a, b) => a - b);
  const reads = total("reads");
  const writes = total("writes");
  const commits = total("commits");
  console.log(
    [
      "",
      "summary",
      `  elapsed          ${elapsed.toFixed(1)} s`,
      `  operations       ${reads + writes} (${fmt((reads + writes) / elapsed)} ops/s): ${reads} reads, ${writes} writes (${fmt(writes / elapsed)} writes/s)`,
      `  write latency    p50 ${ms(pct(writeLat, 0.5))}, p99 ${ms(pct(writeLat, 0.99))}, max ${ms(writeLat.at(-1))}`,
      `  read latency     p50 ${ms(pct(readLat, 0.5))}, p99 ${ms(pct(readLat, 0.99))}, max ${ms(readLat.at(-1))}`,
      `  commits          ${commits} (${commits ? (writes / commits).toFixed(1) : "0"} writes per commit)`,
      `  busy retries     ${total("busyRetries")}`,
      checkpointer
        ? `  max WAL          ${mib(maxWal)} (checkpoints ${checkpointer.stats.runs}, truncates ${checkpointer.stats.truncates})`
        : `  server           PostgreSQL ${facts?.version ?? "?"}, database ${mib(facts?.database_size_bytes ?? 0)}, peak ${maxServerConnections} connections, peak ${maxLocksWaiting} locks waiting`,
      `  verified         sites ${found.sites}/${reported.sites}, sync_tasks ${found.tasks}/${reported.tasks}, task updates ${found.updates}/${reported.updates}`,
      `  lost writes:     ${lost}`,
      `  lock errors:     ${lockErrors}`,
      `  failed ops:      ${errors}`,
      failures.length ? `FAIL\n${failures.map((f) => `  - ${f}`).join("\n")}` : "PASS",
    ].join("\n"),
  );
  removeTemp();
  return failures.length ? 1 : 0;
}

/** Totals the parent compares before and after the run. */
async function countRows(db: Db) {
  const { sites, syncTasks } = db.t;
  const [s] = await db.q.select({ n: count() }).from(sites);
  const [t] = await db.q
    .select({ n: count(), progress: sql<number>`coalesce(${sum(syncTasks.progress_done)}, 0)`.mapWith(Number) })
    .from(syncTasks);
  return { sites: s!.n, tasks: t!.n, progress: t!.progress };
}

/** Checks row by row that every reported site, task and task update is in the database. */
async function findMissing(db: Db, rs: ChildResult[]) {
  const { sites, syncTasks } = db.t;
  const siteIds = new Set(
    (
      await db.q
        .select({ id: sites.id })
        .from(sites)
        .where(like(sites.domain, `%${DOMAIN_SUFFIX}`))
    ).map((r) => r.id),
  );
  const progress = new Map((await db.q.select({ id: syncTasks.id, p: syncTasks.progress_done }).from(syncTasks)).map((r) => [r.id, r.p]));
  let missingSites = 0;
  let missingTasks = 0;
  let wrongUpdates = 0;
  for (const r of rs) {
    for (const id of r.siteIds) if (!siteIds.has(id)) missingSites++;
    for (const id of r.taskIds) if (!progress.has(id)) missingTasks++;
    for (const [id, n] of Object.entries(r.taskUpdates)) {
      const stored = progress.get(Number(id));
      // Each task is updated by the one process that created it, starting from 0.
      if (stored !== undefined && stored !== n) wrongUpdates += Math.abs(n - stored);
    }
  }
  return { sites: missingSites, tasks: missingTasks, updates: wrongUpdates };
}

function pct(sorted: number[], p: number): number | undefined {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : undefined;
}

function ms(us: number | undefined): string {
  return us === undefined ? "-" : `${(us / 1000).toFixed(2)} ms`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}
