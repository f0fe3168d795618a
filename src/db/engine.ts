import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import type * as pgSchema from "./pg/schema.ts";
import type { WriterStats } from "./sqlite/engine.ts";

export type { WriterStats } from "./sqlite/engine.ts";

/** The two engines a Db handle runs on. */
export type Engine = "sqlite" | "pg";

/**
 * Drizzle over either engine, typed as the PostgreSQL (async-only) API: code written against it awaits
 * every builder (`await q.select()…`, `.returning()`), which runs the same on bun:sqlite, where the
 * builders are awaitable too. Engine-only methods (`.get()`/`.all()`/`.run()` of SQLite, `.execute()`,
 * `.for()` of PostgreSQL) belong in engine-specific code that checks `db.engine` first.
 */
export type Q = NodePgDatabase<typeof pgSchema>;

/** The tables of the engine's schema (src/db/sqlite/schema.ts or src/db/pg/schema.ts: same names and columns). */
export type Tables = typeof pgSchema;

/** What each engine provides to the Db handle. */
export type EngineHandle = {
  engine: Engine;
  /** Reads (SQLite: the reader connection, which never waits for writers; PostgreSQL: the pool). */
  q: Q;
  t: Tables;
  /**
   * Runs `fn` in a write transaction; resolves after COMMIT with its value. SQLite: in the process's
   * group commit (each write in its own savepoint); PostgreSQL: its own transaction, retried on
   * serialization failures, deadlocks and lost connections — so `fn` must only touch the database.
   */
  tx<T>(fn: (tx: Q) => T | Promise<T>, label?: string): Promise<T>;
  stats: WriterStats;
  drain(): Promise<void>;
  queueLength(): number;
  closeConnections(): Promise<void>;
};

/** The first row of a result, or undefined. */
export function first<T>(rows: T[]): T | undefined {
  return rows[0];
}

/** How many rows an UPDATE/DELETE/INSERT without RETURNING changed, on either engine. */
export function changedRows(result: unknown): number {
  const r = result as { changes?: number; rowCount?: number | null };
  return Number(r.changes ?? r.rowCount ?? 0);
}
