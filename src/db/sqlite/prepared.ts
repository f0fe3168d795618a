import type { Database, Statement } from "bun:sqlite";
import { Param, Placeholder } from "drizzle-orm";
import type { Orm } from "./open.ts";

/**
 * Memoizes a set of prepared statements per connection: `build` runs once for each Orm it sees,
 * so request handlers reuse compiled statements instead of preparing SQL on every call.
 */
export function perConnection<T>(build: (orm: Orm) => T): (orm: Orm) => T {
  const cache = new WeakMap<Orm, T>();
  return (orm) => {
    let v = cache.get(orm);
    if (v === undefined) {
      v = build(orm);
      cache.set(orm, v);
    }
    return v;
  };
}

type CompilableSelect = { toSQL(): { sql: string; params: unknown[] }; _: { result: unknown } };
type RowOf<Q extends CompilableSelect> = Q["_"]["result"] extends (infer R)[] ? R : never;
type Params = Record<string, string | number | bigint | boolean | null>;

/** The arguments of a compiled statement from named values: its placeholders by name, booleans as 0/1. */
function binder(params: unknown[]): (p?: Params) => unknown[] {
  // Each bound value is either a constant Drizzle already encoded or a named placeholder (an insert's
  // values wrap theirs in a Param).
  const slots = params.map((v) => {
    const inner = v instanceof Param ? v.value : v;
    if (inner instanceof Placeholder) return { name: inner.name };
    if (v instanceof Param) throw new Error("compileSelect: a Param without a placeholder");
    return { value: v };
  });
  return (p: Params = {}) =>
    slots.map((s) => {
      if ("value" in s) return s.value;
      if (!(s.name in p)) throw new Error(`compileSelect: no value for placeholder '${s.name}'`);
      const v = p[s.name];
      return typeof v === "boolean" ? Number(v) : v;
    });
}

/** A Drizzle select compiled once to a bun:sqlite statement returning rows as plain objects. */
export type CompiledSelect<Row> = { get(params?: Params): Row | undefined; all(params?: Params): Row[] };

/**
 * Compiles a Drizzle select ONCE to SQL and prepares it as a bare bun:sqlite statement on the orm's
 * connection, skipping Drizzle's per-row mapping: valid only when the selected property names equal
 * the column names (checked here), with the listed integer columns turned back into booleans.
 */
export function compileSelect<Q extends CompilableSelect>(
  orm: Orm,
  query: Q,
  opts: { booleans?: readonly (keyof RowOf<Q> & string)[] } = {},
): CompiledSelect<RowOf<Q>> {
  const keys = Object.keys((query as unknown as { getSelectedFields(): object }).getSelectedFields());
  return compile(orm, query.toSQL(), keys, opts.booleans ?? []);
}

/**
 * An `insert(table).values(placeholders)` compiled once to a bare bun:sqlite statement: `run` binds the placeholders
 * (booleans as 0/1) and returns the inserted row's rowid. No RETURNING: a caller that knows every value it wrote builds
 * the row itself (a create's statement ~3 µs cheaper than reading its row back, in process).
 */
export function compileInsert(orm: Orm, query: { toSQL(): { sql: string; params: unknown[] } }): { run(params: Params): number } {
  const { sql, params } = query.toSQL();
  const stmt = (orm as Orm & { $client: Database }).$client.prepare<unknown, any[]>(sql);
  if (stmt.columnNames.length > 0) throw new Error(`compileInsert: the statement returns columns (${stmt.columnNames})`);
  const args = binder(params);
  return { run: (p) => Number(stmt.run(...args(p)).lastInsertRowid) };
}

/**
 * The statement with a constant LIMIT (Drizzle's `.limit(1)` binds it, `limit ?`) written as a literal: SQLite prepares
 * a statement whose LIMIT is a bound parameter again at every run (a one-row key check in a transaction 0.35 -> 3.9 µs,
 * a site by id 1.0 -> 7.9 µs, in process). A placeholder's LIMIT (a page's size) is left to `compile`.
 */
export function literalLimit(query: { sql: string; params: unknown[] }): { sql: string; params: unknown[] } {
  const { sql, params } = query;
  const last = params[params.length - 1];
  if (!sql.endsWith(" limit ?") || typeof last !== "number" || !Number.isSafeInteger(last)) return query;
  return { sql: `${sql.slice(0, -1)}${last}`, params: params.slice(0, -1) };
}

/** Most page sizes a statement with a placeholder's LIMIT keeps a statement of its own for (others bind theirs). */
const PAGE_SIZES_MAX = 16;

type Run = { stmt: Statement<Record<string, unknown>, any[]>; args: (p?: Params) => unknown[] };

function compile<Row>(
  orm: Orm,
  query: { sql: string; params: unknown[] },
  keys: string[],
  booleans: readonly string[],
): CompiledSelect<Row> {
  const { sql, params } = literalLimit(query);
  // drizzle() returns the orm with its client; the Orm type just does not say so.
  const client = (orm as Orm & { $client: Database }).$client;
  const stmt = client.prepare<Record<string, unknown>, any[]>(sql);
  if (stmt.columnNames.join() !== keys.join()) {
    throw new Error(`compileSelect: columns (${stmt.columnNames}) differ from the selected properties (${keys})`);
  }
  const bound: Run = { stmt, args: binder(params) };
  // A page's size from a placeholder: a statement of its own per size, its LIMIT a literal (the reason above; a served
  // list's statement 56 -> 39 µs of CPU in process), prepared at the size's first run, for the first PAGE_SIZES_MAX sizes.
  const last = params[params.length - 1];
  const limitName = sql.endsWith(" limit ?") && last instanceof Placeholder ? last.name : null;
  const bySize = new Map<number, Run>();
  const pick = (p?: Params): Run => {
    if (limitName === null || p === undefined) return bound;
    const n = p[limitName];
    if (typeof n !== "number" || !Number.isSafeInteger(n)) return bound;
    let run = bySize.get(n);
    if (run === undefined) {
      if (bySize.size >= PAGE_SIZES_MAX) return bound;
      run = { stmt: client.prepare<Record<string, unknown>, any[]>(`${sql.slice(0, -1)}${n}`), args: binder(params.slice(0, -1)) };
      bySize.set(n, run);
    }
    return run;
  };
  const decode = (r: Record<string, unknown>) => {
    for (const b of booleans) if (r[b] !== null) r[b] = r[b] === 1;
    return r as Row;
  };
  return {
    get: (p) => {
      const run = pick(p);
      const r = run.stmt.get(...run.args(p));
      return r === null ? undefined : decode(r);
    },
    all: (p) => {
      const run = pick(p);
      const rows = run.stmt.all(...run.args(p));
      for (const r of rows) decode(r);
      return rows as Row[];
    },
  };
}
