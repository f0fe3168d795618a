import type { Database } from "bun:sqlite";
import type { Config, ProcessRole } from "../config.ts";
import { defaultPragmas, openConnection, pragmasFrom, wrapOrm, type Orm, type Pragmas } from "./open.ts";
import { createWriter, type WriteFn, type WriterStats } from "./write.ts";

export type { Orm } from "./open.ts";

/**
 * A process's handle on the database: a reader connection (WAL readers never wait for writers)
 * and a writer connection behind the group-commit queue. Handlers never see it; queries do.
 */
export type Db = {
  path: string;
  role: ProcessRole;
  startedAt: string;
  /** Drizzle over the reader connection: run SELECTs here. */
  read: Orm;
  /** Runs `fn` inside the process's next write transaction; resolves after COMMIT. */
  write<T>(fn: WriteFn<T>): Promise<T>;
  stats: WriterStats;
  pragmas: Pragmas;
  raw: { reader: Database; writer: Database };
  drain(): Promise<void>;
  /** Run synchronously by close(), before the connections go (e.g. leaving the registry). */
  onClose: (() => void)[];
  close(): void;
  closed: boolean;
};

export type OpenOptions = {
  path: string;
  role: ProcessRole;
  pragmas?: Partial<Pragmas>;
  lockTimeoutMs?: number;
  maxBatch?: number;
  /**
   * Past this WAL size each write transaction first leaves the write lock free for a moment, so the
   * checkpointer can take it under a steady write load (0 or unset: never).
   */
  walYieldBytes?: number;
};

/** Opens this process's two connections on the SQLite file. */
export function openDb(opts: OpenOptions): Db {
  const pragmas = { ...defaultPragmas, ...opts.pragmas };
  const reader = openConnection(opts.path, pragmas);
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
    maxBatch: opts.maxBatch ?? 256,
    walYield: opts.walYieldBytes ? { dbPath: opts.path, bytes: opts.walYieldBytes } : undefined,
  });
  const db: Db = {
    path: opts.path,
    role: opts.role,
    startedAt: new Date().toISOString(),
    read: wrapOrm(reader),
    write: w.write,
    stats: w.stats,
    pragmas,
    raw: { reader, writer },
    drain: w.drain,
    onClose: [],
    closed: false,
    close() {
      if (db.closed) return;
      for (const f of db.onClose.splice(0)) f();
      db.closed = true;
      openHandles.delete(db);
      reader.close();
      writer.close();
    },
  };
  openHandles.add(db);
  return db;
}

/** Opens the database the configuration names, for a process of the given role. */
export function openDbFromConfig(config: Config, role: ProcessRole = config.role): Db {
  return openDb({
    path: config.database.path,
    role,
    pragmas: pragmasFrom(config),
    lockTimeoutMs: config.WRITE_LOCK_TIMEOUT_MS,
    maxBatch: config.WRITE_MAX_BATCH,
    // The checkpointer truncates past CHECKPOINT_TRUNCATE_BYTES; twice that means it is starved.
    walYieldBytes: 2 * config.CHECKPOINT_TRUNCATE_BYTES,
  });
}

const openHandles = new Set<Db>();

/** Closes every handle this process opened (the original `close_all_connections()`). */
export async function closeAllConnections(): Promise<number> {
  const handles = [...openHandles];
  for (const db of handles) {
    await db.drain();
    db.close();
  }
  return handles.length;
}
