import type { Database } from "bun:sqlite";
import { hostname } from "node:os";
import { defaults, describeTarget, type Config, type ProcessRole } from "../config.ts";
import { log } from "../log.ts";
import type { Q, Tables } from "./engine.ts";
import { guardFile, type FileGuard } from "./sqlite/identity.ts";
import { defaultPragmas, openConnection, pragmasFrom, wrapOrm, type Orm, type Pragmas } from "./sqlite/open.ts";
import { shareReadSnapshots } from "./sqlite/read-snapshot.ts";
import type { PgParts } from "./pg/engine.ts";
import * as sqliteSchema from "./sqlite/schema.ts";
import { describeStartError } from "./start-errors.ts";
import { alwaysUp, type Availability } from "./availability.ts";
import { createWriter, type WriteFn, type WriterStats } from "./sqlite/engine.ts";

export type { Orm } from "./sqlite/open.ts";
export { changedRows, first, type Engine, type Q, type Tables } from "./engine.ts";

/**
 * A process's handle on the database, on either engine. Engine-neutral code uses `q` (reads), `t`
 * (the engine's tables) and `tx` (writes), and awaits every query. SQLite: a reader connection (WAL
 * readers never wait for writers) and a writer connection behind the group-commit queue; PostgreSQL:
 * a pool. Handlers never see it; queries do.
 */
export type Db = SqliteDb | PgDb;

/** What both engines' handles have. */
type DbBase = {
  /** The file path, or the server URL without its password: for logs and answers. */
  target: string;
  role: ProcessRole;
  /** The host name this process registers under (SITESYNC_HOST_NAME; default: the machine's). */
  host: string;
  /** How often this process refreshes its registry row (REGISTRY_HEARTBEAT_MS); liveness is judged by multiples of it. */
  heartbeatMs: number;
  startedAt: string;
  /** Drizzle for reads, typed as the async API both engines share (see engine.ts). */
  q: Q;
  /** The engine's tables. */
  t: Tables;
  /** Runs `fn` (which awaits its queries) in a write transaction; resolves after COMMIT. `label` names it in logs. */
  tx<T>(fn: (tx: Q) => T | Promise<T>, label?: string): Promise<T>;
  stats: WriterStats;
  drain(): Promise<void>;
  /** Writes waiting for the lock right now. */
  queueLength(): number;
  /** Called after each COMMIT with its number of writes and the lock wait of the oldest (ms): metrics. */
  onCommit: ((groupSize: number, lockWaitMs: number) => void)[];
  /** How long closeAllConnections() waits for queued writes before closing anyway (null: no limit). */
  drainTimeoutMs: number | null;
  /** Whether the database can be reached (PostgreSQL: probed in the background once down; SQLite: always up). */
  availability: Availability;
  /**
   * Run by close(), before the connections go (e.g. leaving the registry). SQLite: synchronously, a returned
   * promise (child processes exiting) awaited by whenClosed; PostgreSQL: a returned promise (a last query) is
   * awaited before the pool ends.
   */
  onClose: (() => unknown)[];
  close(): void;
  closed: boolean;
};

/** A handle on a SQLite file: a reader connection and a writer connection behind the group-commit queue. */
export type SqliteDb = DbBase & {
  engine: "sqlite";
  pg: null;
  path: string;
  /** Drizzle over the reader connection (synchronous bun:sqlite API): run SELECTs here. */
  read: Orm;
  /** Runs synchronous `fn` inside the process's next write transaction; resolves after COMMIT. */
  write<T>(fn: WriteFn<T>, label?: string): Promise<T>;
  /** The writer's position (engine.ts Writer.position): consecutive writes of one transaction have consecutive positions. */
  writePosition(): number;
  /** The file opened (device + inode); `guard.problem()` says when the path stopped naming it. */
  guard: FileGuard;
  pragmas: Pragmas;
  raw: { reader: Database; writer: Database };
};

/** A handle on a PostgreSQL server: a pool. */
export type PgDb = DbBase & {
  engine: "pg";
  /** The PostgreSQL pool and URL. */
  pg: PgParts;
};

export type OpenOptions = {
  path: string;
  role: ProcessRole;
  /** The host name to register under (default: os.hostname()). */
  host?: string;
  /** REGISTRY_HEARTBEAT_MS (default 2000). */
  heartbeatMs?: number;
  pragmas?: Partial<Pragmas>;
  lockTimeoutMs?: number;
  maxBatch?: number;
  /**
   * Past this WAL size each write transaction first leaves the write lock free for a moment, so the
   * checkpointer can take it under a steady write load (0 or unset: never).
   */
  walYieldBytes?: number;
  /** Bound on closeAllConnections()'s wait for queued writes (unset: until they are done). */
  drainTimeoutMs?: number;
  /**
   * The identity (`dev:ino`, see identity.ts) the file must have: the supervisor's, handed to its
   * workers, so a worker restarted after the file was replaced refuses it instead of serving it.
   */
  expectedIdentity?: string;
  /** Log write transactions that hold the lock longer than this (ms). */
  holdWarnMs?: number;
  /** The reader's statements share one read transaction per event-loop turn (read-snapshot.ts; default true). */
  sharedReadSnapshots?: boolean;
};

/** The file at the path is not the one this process (or its supervisor) opened. */
export class FileChangedError extends Error {}

/** Opens this process's two connections on the SQLite file. */
export function openDb(opts: OpenOptions): SqliteDb {
  const pragmas = { ...defaultPragmas, ...opts.pragmas };
  const reader = openConnection(opts.path, pragmas);
  const guard = guardFile(opts.path, opts.expectedIdentity);
  const changed = guard.problem();
  if (changed) {
    // Closing is safe here: this connection opened the new file, which nothing else of ours uses.
    reader.close();
    throw new FileChangedError(changed);
  }
  let writer: Database;
  try {
    writer = openConnection(opts.path, pragmas);
  } catch (err) {
    reader.close();
    throw err;
  }
  const writerOrm = wrapOrm(writer);
  const w = createWriter(writer, writerOrm, {
    lockTimeoutMs: opts.lockTimeoutMs ?? pragmas.busyTimeoutMs,
    maxBatch: opts.maxBatch ?? defaults.WRITE_MAX_BATCH,
    walYield: opts.walYieldBytes ? { dbPath: opts.path, bytes: opts.walYieldBytes } : undefined,
    guard,
    holdWarnMs: opts.holdWarnMs,
  });
  if (opts.sharedReadSnapshots !== false) {
    const snapshots = shareReadSnapshots(reader);
    // After this process's own commit the next read must see it (read your writes).
    w.onCommit.push(() => snapshots.end());
    // And after a failed one: a write refused by what another process committed meanwhile (a unique index) is
    // answered with a read of the winner, which this turn's snapshot, taken before that commit, would not see.
    w.onFailure.push(() => snapshots.end());
  }
  const read = wrapOrm(reader);
  const db: SqliteDb = {
    engine: "sqlite",
    target: opts.path,
    q: read as unknown as Q,
    t: sqliteSchema as unknown as Tables,
    tx: (fn, label) => w.write((tx) => fn(tx as unknown as Q), label),
    pg: null,
    path: opts.path,
    role: opts.role,
    host: opts.host ?? hostname(),
    heartbeatMs: opts.heartbeatMs ?? 2000,
    startedAt: new Date().toISOString(),
    read,
    write: w.write,
    writePosition: w.position,
    guard,
    stats: w.stats,
    pragmas,
    raw: { reader, writer },
    drain: w.drain,
    queueLength: w.queueLength,
    onCommit: w.onCommit,
    drainTimeoutMs: opts.drainTimeoutMs ?? null,
    availability: alwaysUp(defaults.DB_RIDE_THROUGH_MS),
    onClose: [],
    closed: false,
    close() {
      if (db.closed) return;
      const last = db.onClose.splice(0).map((f) => f());
      db.closed = true;
      openHandles.delete(db);
      reader.close();
      writer.close();
      closing.set(
        db,
        Promise.allSettled(last).then(() => {}),
      );
    },
  };
  openHandles.add(db);
  return db;
}

export type OpenPgOptions = {
  url: string;
  role: ProcessRole;
  /** The host name to register under (default: os.hostname()). */
  host?: string;
  /** REGISTRY_HEARTBEAT_MS (default 2000). */
  heartbeatMs?: number;
  poolSize?: number;
  statementTimeoutMs?: number;
  /** Give up on a write (503) once its retries took this long (ms). */
  retryForMs?: number;
  /** How long a request waits for an unreachable server (DB_RIDE_THROUGH_MS). */
  rideThroughMs?: number;
  /** How long a new connection may take before the server counts as not answering (PG_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  drainTimeoutMs?: number;
};

/** Opens this process's pool on a PostgreSQL server (connections are made on first use). */
export function openPgDb(opts: OpenPgOptions): PgDb {
  // Loaded here, on first use, so a SQLite process never loads node-postgres (driver.ts).
  const { openPgEngine } = require("./pg/engine.ts") as typeof import("./pg/engine.ts");
  const onCommit: Db["onCommit"] = [];
  const e = openPgEngine({
    url: opts.url,
    poolSize: opts.poolSize ?? defaults.PG_POOL_SIZE,
    statementTimeoutMs: opts.statementTimeoutMs ?? defaults.PG_STATEMENT_TIMEOUT_MS,
    retryForMs: opts.retryForMs ?? defaults.WRITE_LOCK_TIMEOUT_MS,
    rideThroughMs: opts.rideThroughMs ?? defaults.DB_RIDE_THROUGH_MS,
    connectTimeoutMs: opts.connectTimeoutMs ?? defaults.PG_CONNECT_TIMEOUT_MS,
    target: describeTarget({ dialect: "postgres", url: opts.url }),
    onCommit,
  });
  const db: PgDb = {
    engine: "pg",
    target: describeTarget({ dialect: "postgres", url: opts.url }),
    q: e.q,
    t: e.t,
    tx: e.tx,
    pg: e.pg,
    role: opts.role,
    host: opts.host ?? hostname(),
    heartbeatMs: opts.heartbeatMs ?? 2000,
    startedAt: new Date().toISOString(),
    stats: e.stats,
    drain: e.drain,
    queueLength: e.queueLength,
    onCommit,
    drainTimeoutMs: opts.drainTimeoutMs ?? null,
    availability: e.availability,
    onClose: [],
    closed: false,
    close() {
      if (db.closed) return;
      const last = db.onClose.splice(0).map((f) => f());
      db.closed = true;
      openHandles.delete(db);
      closing.set(
        db,
        Promise.allSettled(last).then(() => e.closeConnections().catch(() => {})),
      );
    },
  };
  openHandles.add(db);
  return db;
}

/** Opens the database the configuration names, for a process of the given role. */
export function openDbFromConfig(config: Config, role: ProcessRole = config.role): Db {
  if (config.database.dialect === "postgres") {
    return openPgDb({
      url: config.database.url,
      role,
      host: config.SITESYNC_HOST_NAME,
      heartbeatMs: config.REGISTRY_HEARTBEAT_MS,
      poolSize: config.PG_POOL_SIZE,
      statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
      retryForMs: config.WRITE_LOCK_TIMEOUT_MS,
      rideThroughMs: config.DB_RIDE_THROUGH_MS,
      connectTimeoutMs: config.PG_CONNECT_TIMEOUT_MS,
      drainTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    });
  }
  return openDb({
    path: config.database.path,
    role,
    host: config.SITESYNC_HOST_NAME,
    heartbeatMs: config.REGISTRY_HEARTBEAT_MS,
    pragmas: role === "sync" ? { ...pragmasFrom(config), cacheSize: config.SYNC_SQLITE_CACHE_SIZE } : pragmasFrom(config),
    lockTimeoutMs: config.WRITE_LOCK_TIMEOUT_MS,
    maxBatch: config.WRITE_MAX_BATCH,
    // The checkpointer truncates past CHECKPOINT_TRUNCATE_BYTES; twice that means it is starved.
    walYieldBytes: 2 * config.CHECKPOINT_TRUNCATE_BYTES,
    drainTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    expectedIdentity: config.SITESYNC_DB_IDENTITY,
    sharedReadSnapshots: config.SQLITE_READ_SNAPSHOT_PER_TURN,
    holdWarnMs: config.WRITE_LOCK_WARN_MS,
  });
}

/** Opens the configured database for a worker; a failure prints one line and exits 1 (the supervisor decides what next). */
export function openDbOrExit(config: Config, role: ProcessRole = config.role): Db {
  try {
    return openDbFromConfig(config, role);
  } catch (err) {
    console.error(`fatal: ${role} worker: ${describeStartError(err, describeTarget(config.database))}`);
    process.exit(1);
  }
}

const openHandles = new Set<Db>();
/** What close() started and did not wait for: PostgreSQL pools being ended, SQLite's query processes exiting. */
const closing = new WeakMap<Db, Promise<void>>();

/** Resolves once a closed handle's asynchronous part is done (its pool ended, its child processes collected). */
export function whenClosed(db: Db): Promise<void> {
  return closing.get(db) ?? Promise.resolve();
}

/**
 * Closes every handle this process opened (the original `close_all_connections()`), each after its
 * queued writes are done or its drainTimeoutMs (or maxWaitMs, if shorter) is up.
 */
export async function closeAllConnections(maxWaitMs?: number): Promise<number> {
  const handles = [...openHandles];
  for (const db of handles) {
    // A lock held elsewhere would keep writes (and each new registry heartbeat) queued forever.
    if (!(await drainWithin(db, maxWaitMs))) {
      log("warn", "closing with writes still queued: the write lock stayed busy", { target: db.target, waited_ms: db.drainTimeoutMs });
    }
    db.close();
    await whenClosed(db);
  }
  return handles.length;
}

/** Waits for the handle's queued writes; false when its drainTimeoutMs ran out first. */
async function drainWithin(db: Db, maxWaitMs?: number): Promise<boolean> {
  const limit = Math.min(db.drainTimeoutMs ?? Infinity, maxWaitMs ?? Infinity);
  if (limit === Infinity) {
    await db.drain();
    return true;
  }
  let timer: Timer | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), limit)));
  try {
    return await Promise.race([db.drain().then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
