// The types both sides of db:copy share (split out so index.ts, sqlite.ts and pg.ts import downwards only).
import type { PgTable } from "drizzle-orm/pg-core";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";

/** A copy refused before anything was written (wrong sides, a target that is not empty...). */
export class CopyRefusedError extends Error {}

/**
 * One table in both schemas; `id` is true when its key is an integer `id` column (SQLite: the rowid). `key`: its
 * PostgreSQL key's columns, `sqliteKey` its SQLite key's (the same columns, in another order for gsc_day_query_totals):
 * each source reads in its own key's order.
 */
export type TablePair = { name: string; sqlite: SQLiteTable; pg: PgTable; id: boolean; key: string[]; sqliteKey: string[] };

/** A batch read from the source: rows of driver values in the copy's column order, and which rows they are. */
export type Batch = { rows: unknown[][]; which: string };

/** The database being read. */
export type CopySource = {
  /** Refuses a database that is not at the current schema (its columns would not match the copy's). */
  checkSchema(): Promise<void>;
  /** Starts the snapshot that every later read and count sees. */
  begin(): Promise<void>;
  /** Rows of the table (with id up to `throughId`, if given). */
  count(t: TablePair, throughId?: number): Promise<number>;
  /** The table's rows in key order (after `afterId`, for a table with an id), `size` at a time. */
  read(t: TablePair, columns: string[], afterId: number, size: number): AsyncIterable<Batch>;
  close(): Promise<void>;
};

/** The database being written. */
export type CopyTarget = {
  /** Migrates the database and takes its lock (one copy at a time; no service on an SQLite file). */
  open(): Promise<void>;
  count(t: TablePair): Promise<number>;
  /** The highest id already there (0: none, or the table has no id). */
  maxId(t: TablePair): Promise<number>;
  /** Deletes every row of these tables (children first). */
  clear(tables: TablePair[]): Promise<void>;
  /** Inserts driver values (the target's); `skipExisting` skips rows whose key is there. Returns rows inserted. */
  insert(t: TablePair, columns: string[], rows: unknown[][], skipExisting: boolean): Promise<number>;
  /** After a table's last batch (PostgreSQL: its identity sequence moves past the highest id). */
  tableDone(t: TablePair): Promise<void>;
  /** After every table: the engine's own search index brought up to date with the copied gsc_queries. */
  finish(): Promise<void>;
  close(): Promise<void>;
};
