import { and, eq, or, sql, type SQL } from "drizzle-orm";
import { log } from "../log.ts";
import type { Db } from "./index.ts";
import { isAlive } from "./pid.ts";
import { pgSchema } from "./pg/driver.ts";
import { namedStatement, perPgHandle } from "./pg/prepared.ts";
import { dbConnections as sqliteConnections } from "./sqlite/schema.ts";
import { perConnection } from "./sqlite/prepared.ts";

export type ConnectionRow = typeof sqliteConnections.$inferSelect;

// Each process upserts its row every db.heartbeatMs (REGISTRY_HEARTBEAT_MS, default 2 s).
// SQLite (one machine): a process is live while its pid exists; a row not refreshed for this long
// belongs to a process that is gone even if its pid is in use again (pids repeat after a restart).
const staleMs = (db: Db) => 15 * db.heartbeatMs;
// PostgreSQL (several machines): a pid means nothing on another host, so the heartbeat's age is the
// only sign of life; five missed heartbeats and the process counts as gone.
const pgLiveMs = (db: Db) => 5 * db.heartbeatMs;

// PostgreSQL: heartbeats are stamped and judged by the server's clock, so hosts whose clocks differ
// agree on which processes are live.
const pgNow = sql`to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const pgAgo = (ms: number) =>
  sql`to_char((clock_timestamp() - make_interval(secs => ${ms / 1000})) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * PostgreSQL: the SQL truth of "this row's process is gone": its heartbeat is over 5 heartbeats old, and the
 * server has run that long since it (re)started. While the server is down nobody can heartbeat: right after a
 * restart every row is old, and a live process only gets that long to be seen again.
 */
function pgStale(db: Db, c: Db["t"]["dbConnections"]) {
  const live = pgLiveMs(db);
  return sql<boolean>`(${c.last_seen_at} < ${pgAgo(live)} and pg_postmaster_start_time() < clock_timestamp() - make_interval(secs => ${live / 1000}))`;
}

/**
 * PostgreSQL: false while this process has been able to reach the server for less than 5 heartbeats (an outage
 * without a restart, a network cut, stops every heartbeat just the same): nobody is judged gone yet.
 */
function pgCanJudge(db: Db): boolean {
  return db.availability.downSince === null && Date.now() - db.availability.upSince >= pgLiveMs(db);
}

// SQLite: the heartbeat's upsert (the same row, every column set again) compiled once per writer connection.
// Built by Drizzle at each heartbeat, in every process every 2 s, it cost an idle 4-worker tree ~6 ms of CPU a
// second on the workers' main threads and kept their JIT compiling the builder (~8 ms/s).
const p = sql.placeholder;
const sqliteHeartbeat = perConnection((orm) =>
  orm
    .insert(sqliteConnections)
    .values({
      host: p("host"),
      pid: p("pid"),
      role: p("role"),
      started_at: p("started_at"),
      last_seen_at: p("last_seen_at"),
      busy_retries: p("busy_retries"),
    })
    .onConflictDoUpdate({
      target: [sqliteConnections.host, sqliteConnections.pid],
      set: {
        host: sql`excluded.host`,
        pid: sql`excluded.pid`,
        role: sql`excluded.role`,
        started_at: sql`excluded.started_at`,
        last_seen_at: sql`excluded.last_seen_at`,
        busy_retries: sql`excluded.busy_retries`,
      },
    })
    .prepare(),
);

// PostgreSQL: the same upsert as one named statement, compiled once per handle and autocommitted through the pool
// (one round trip). As a db.tx (BEGIN with its commit token, the Drizzle-built upsert, COMMIT: four round trips) it
// cost ~1 ms of client CPU warm in process, and an idle tree's processes 4-5 ms of CPU a second each. A heartbeat is
// idempotent: one lost with its connection is sent again by the pool's read path, or by the next beat.
const pgHeartbeat = perPgHandle((q) => {
  const { dbConnections: c } = pgSchema();
  const row = { host: p("host"), pid: p("pid"), role: p("role"), started_at: p("started_at"), busy_retries: p("busy_retries") };
  return namedStatement(
    "registry_heartbeat",
    q
      .insert(c)
      .values({ ...row, last_seen_at: pgNow })
      .onConflictDoUpdate({
        target: [c.host, c.pid],
        set: {
          role: sql`excluded.role`,
          started_at: sql`excluded.started_at`,
          last_seen_at: sql`excluded.last_seen_at`,
          busy_retries: sql`excluded.busy_retries`,
        },
      }),
  );
});

/**
 * Records this process (host, pid) in `db_connections` and keeps its row fresh (busy-retry count
 * included), so any process of any host can list every live process holding a connection. Returns
 * the stop function, which removes the row.
 */
export async function registerProcess(db: Db): Promise<() => Promise<void>> {
  const { pid } = process;
  const { host } = db;
  const { dbConnections } = db.t;
  // An upsert, also for the heartbeat: a row pruned while this process was stalled comes back.
  const upsert = async () => {
    const row = { host, pid, role: db.role, started_at: db.startedAt, busy_retries: db.stats.busyRetries };
    if (db.engine === "sqlite")
      return db.write((tx) => sqliteHeartbeat(tx).run({ ...row, last_seen_at: new Date().toISOString() }), "registry heartbeat");
    await pgHeartbeat(db).run(db.pg.pool, row);
  };
  if (db.engine === "pg") {
    // A server that is away for a moment must not stop a process from starting (the supervisor would
    // give up on workers that keep failing): it serves /health 503 and registers at its next heartbeat.
    await upsert().catch((err) =>
      log("warn", `cannot register in db_connections yet; retrying every ${db.heartbeatMs} ms`, { error: (err as Error).message }),
    );
  } else {
    await upsert();
  }
  // One heartbeat at a time: while the database is away a write keeps retrying (up to
  // WRITE_LOCK_TIMEOUT_MS), and new ones would only pile up behind it.
  let beating = false;
  const timer = setInterval(() => {
    if (beating) return;
    beating = true;
    upsert()
      .catch(() => {})
      .finally(() => (beating = false));
  }, db.heartbeatMs);
  timer.unref();
  const stop = async () => {
    clearInterval(timer);
    if (db.closed) return;
    if (db.engine === "pg") {
      // Known unreachable: nothing to wait for (the row ages out: liveness is judged by its heartbeat).
      if (db.availability.downSince !== null) return;
      // close() awaits this before it ends the pool.
      await db.q
        .delete(dbConnections)
        .where(and(eq(dbConnections.host, host), eq(dbConnections.pid, pid)))
        .catch(() => {});
      return;
    }
    try {
      // At shutdown a short blocking wait is fine; the queue is drained already.
      db.raw.writer.run("PRAGMA busy_timeout = 2000");
      db.raw.writer.run("DELETE FROM db_connections WHERE host = ? AND pid = ?", [host, pid]);
    } catch {
      // Left behind: readers drop it once the pid is gone.
    }
  };
  db.onClose.push(stop);
  return stop;
}

/**
 * Lists the live processes of every host holding a connection, ordered by host and pid (this
 * process's counters are live), and prunes the rows of processes that are gone. PostgreSQL: live means
 * a heartbeat within the last 5 heartbeats (10 s by default; server clock), or an outage as recent. SQLite: this host's processes must also still
 * exist (pid check); another host's (a shared file) are judged by heartbeat age.
 */
export async function listConnections(db: Db): Promise<ConnectionRow[]> {
  const { dbConnections: c } = db.t;
  const self = (r: ConnectionRow) => r.host === db.host && r.pid === process.pid;
  const withOwnCounters = (r: ConnectionRow) => (self(r) ? { ...r, busy_retries: db.stats.busyRetries } : r);
  if (db.engine === "pg") {
    const rows = await db.q
      .select({ r: c, stale: pgStale(db, c) })
      .from(c)
      .orderBy(c.host, c.pid);
    const judge = pgCanJudge(db);
    const live = (x: (typeof rows)[number]) => !judge || !x.stale || self(x.r);
    // Pruned only when there is something to prune: a listing is no write.
    if (!rows.every(live)) prune(db, pgStale(db, c));
    return rows.filter(live).map((x) => withOwnCounters(x.r));
  }
  const rows = await db.q.select().from(c).orderBy(c.host, c.pid);
  const live: ConnectionRow[] = [];
  const dead: SQL[] = [];
  const staleBefore = new Date(Date.now() - staleMs(db)).toISOString();
  for (const r of rows) {
    const alive = self(r) || (r.last_seen_at >= staleBefore && (r.host !== db.host || isAlive(r.pid)));
    if (alive) live.push(withOwnCounters(r));
    else dead.push(and(eq(c.host, r.host), eq(c.pid, r.pid))!);
  }
  if (dead.length > 0) prune(db, or(...dead)!);
  return live;
}

/**
 * True when the process `host`/`pid` is known to be gone, read through `q` (a transaction's handle, or
 * db.q). False when it may be live, including when nothing is known (no registry row): callers fall back
 * to their own lease. SQLite (one machine): this host's process is gone when its pid no longer exists;
 * another host's, when its heartbeat is stale. PostgreSQL (a pid means nothing across hosts or
 * containers): when its registry row's heartbeat is older than 5 heartbeats (10 s by default) by the server's
 * clock, and both the server and this process's view of it have been up that long (an outage stops every heartbeat).
 */
export async function isProcessGone(db: Db, q: Db["q"], host: string, pid: number): Promise<boolean> {
  if (host === db.host && pid === process.pid) return false;
  if (db.engine === "sqlite" && host === db.host) return !isAlive(pid);
  const { dbConnections: c } = db.t;
  if (db.engine === "pg" && !pgCanJudge(db)) return false;
  const stale = db.engine === "pg" ? pgStale(db, c) : sql<number>`${c.last_seen_at} < ${new Date(Date.now() - staleMs(db)).toISOString()}`;
  const rows = await q
    .select({ stale })
    .from(c)
    .where(and(eq(c.host, host), eq(c.pid, pid)));
  return rows.length > 0 && Boolean(rows[0]!.stale);
}

/** Deletes the registry rows `where` selects, in the background (a listing never waits for it). */
function prune(db: Db, where: SQL) {
  const { dbConnections: c } = db.t;
  db.tx((tx) => tx.delete(c).where(where), "registry prune").catch(() => {});
}
