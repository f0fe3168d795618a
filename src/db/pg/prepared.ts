import { fillPlaceholders } from "drizzle-orm";
import type pg from "pg";
import type { Q } from "../engine.ts";
import type { Db } from "../index.ts";

// The request path's hot statements on PostgreSQL, as node-postgres NAMED statements: the server parses
// and plans each one once per connection instead of on every call (an unnamed statement is parsed,
// planned and described each time), and the SQL is compiled from the Drizzle query once per process
// instead of being built per call (measured in-process: a Drizzle builder select ~165 µs of client CPU,
// a named statement ~50 µs). Rows come back as node-postgres gives them: valid only where the selected
// property names equal the column names and every column parses to what Drizzle would map it to (text,
// integer and boolean columns do; a bigint or timestamp column would not).

type Params = Record<string, string | number | boolean | null>;
type CompilableQuery = { toSQL(): { sql: string; params: unknown[] } };

/** Something node-postgres can run a query on: the pool, or a transaction's client. */
export type Queryable = Pick<pg.Pool, "query"> | Pick<pg.PoolClient, "query">;

/** A statement compiled once; `run` executes it as a named statement on a pool or a transaction's client. */
export type NamedStatement<Row> = { name: string; text: string; run(on: Queryable, params?: Params): Promise<Row[]> };

/**
 * Compiles a Drizzle query to SQL once and returns it as the named statement `name` (unique per SQL
 * text in the process: node-postgres refuses one name for two texts on a connection).
 */
export function namedStatement<Row>(name: string, query: CompilableQuery): NamedStatement<Row> {
  const { sql, params } = query.toSQL();
  // Constants as Drizzle encoded them; placeholders (bare, or in an insert's column Param) filled and
  // encoded by Drizzle's own function.
  return {
    name,
    text: sql,
    run: async (on, p = {}) => (await on.query({ name, text: sql, values: fillPlaceholders(params, p) })).rows as Row[],
  };
}

/**
 * Memoizes statements per PostgreSQL handle (compiled with its Drizzle instance), like perConnection
 * does per SQLite connection.
 */
export function perPgHandle<T>(build: (q: Q) => T): (db: Db) => T {
  const cache = new WeakMap<object, T>();
  return (db) => {
    let v = cache.get(db.pg!.pool);
    if (v === undefined) {
      v = build(db.q);
      cache.set(db.pg!.pool, v);
    }
    return v;
  };
}

/**
 * The node-postgres client a Drizzle transaction runs on (its session's client), so a named statement
 * runs inside that transaction. drizzle-orm 0.45's NodePgTransaction keeps it at `session.client`.
 */
export function clientOf(tx: Q): Queryable {
  const client = (tx as unknown as { session?: { client?: Queryable } }).session?.client;
  if (!client || typeof client.query !== "function") throw new Error("clientOf: not a node-postgres Drizzle transaction");
  return client;
}
