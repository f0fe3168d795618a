import type pg from "pg";
import { pgDriver } from "./driver.ts";
import type { Db } from "../index.ts";

// A server-side cursor on a connection of its own, for reads whose result must never be held in memory
// whole (streamed exports, the MCP `query` tool's capped rows). Its own connection, not the pool's: a
// download may last minutes and must not take a pooled connection from the API's requests, and a
// cursor lives in a transaction, which a pooled connection must not be left in.

export type PgCursor = {
  /** The next `n` rows (fewer at the end, none after it) and the result's column names. */
  fetch<R = Record<string, unknown>>(n: number): Promise<{ rows: R[]; columns: string[] }>;
  /** Ends the transaction and the connection (safe to call twice, never throws). */
  close(): Promise<void>;
  /** Drops the connection at once, without waiting for a running statement (a deadline passed). */
  abort(): void;
};

export type CursorOptions = {
  /** statement_timeout of the connection (ms): each FETCH is one statement. 0: none. */
  statementTimeoutMs?: number;
  /**
   * How long the transaction may wait between two fetches (a client that stopped reading) before the
   * server ends it: an open transaction holds back vacuum. Default 10 minutes.
   */
  idleMs?: number;
  /** application_name, as pg_stat_activity shows it. */
  name?: string;
  /** bigint and numeric as JS numbers (default: strings, node-postgres's lossless choice). */
  numbers?: boolean;
  /** Runs inside the transaction before the cursor is declared (e.g. to EXPLAIN the query); throwing ends it. */
  check?: (client: pg.Client) => Promise<void>;
};

const INT8 = 20;
const NUMERIC = 1700;
/** int8 as a number while exact (else the string), numeric as a float: what SQLite would answer. */
const numberTypes = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8) return (v: string) => (Number.isSafeInteger(Number(v)) ? Number(v) : v);
    if (oid === NUMERIC) return (v: string) => Number(v);
    return pgDriver().types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * Opens a READ ONLY transaction on a new connection to the handle's server and declares a cursor for
 * the query (positional parameters; see toPositional in named.ts); nothing is read until the first fetch.
 */
export async function openPgCursor(db: Db, q: { text: string; values?: unknown[] }, opts: CursorOptions = {}): Promise<PgCursor> {
  const client = new (pgDriver().Client)({
    connectionString: db.pg!.url,
    statement_timeout: opts.statementTimeoutMs || undefined,
    idle_in_transaction_session_timeout: opts.idleMs ?? 600_000,
    application_name: `sitesync-${process.pid}-${opts.name ?? "cursor"}`,
    ...(opts.numbers ? { types: numberTypes } : {}),
  });
  // A connection lost between fetches emits 'error' here; the next fetch then fails with it.
  client.on("error", () => {});
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await client.query("rollback").catch(() => {});
    await client.end().catch(() => {});
  };
  try {
    await client.connect();
    await client.query("begin read only");
    await opts.check?.(client);
    await client.query({ text: `declare c no scroll cursor for ${q.text}`, values: q.values });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    async fetch<R>(n: number) {
      // Rows as arrays, made into objects by a function compiled for the columns: ~1.5x the rows per
      // second of node-postgres's own objects (measured on the export), which decide a download's speed.
      const r = await client.query<unknown[]>({ text: `fetch forward ${Math.max(0, Math.floor(n))} from c`, rowMode: "array" });
      const columns = r.fields.map((f) => f.name);
      const make = rowMaker(columns);
      return { rows: r.rows.map(make) as R[], columns };
    },
    close,
    abort() {
      closed = true;
      // The server notices the closed socket and cancels the backend's statement at its next check.
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      client.end().catch(() => {});
    },
  };
}

const makers = new Map<string, (values: unknown[]) => Record<string, unknown>>();

/** A function turning a row's values into an object keyed by `columns` (a later duplicate name wins, as in node-postgres). */
function rowMaker(columns: string[]): (values: unknown[]) => Record<string, unknown> {
  const key = JSON.stringify(columns);
  let make = makers.get(key);
  if (!make && columns.includes("__proto__")) {
    // A literal's "__proto__" key would set the prototype instead of a property.
    return (v) => {
      const o: Record<string, unknown> = {};
      columns.forEach((c, i) => Object.defineProperty(o, c, { value: v[i], enumerable: true, writable: true, configurable: true }));
      return o;
    };
  }
  if (!make) {
    // Keys are JSON string literals, so any column name is safe in the compiled source.
    const body = `return {${columns.map((c, i) => `${JSON.stringify(c)}: v[${i}]`).join(", ")}};`;
    make = new Function("v", body) as (values: unknown[]) => Record<string, unknown>;
    if (makers.size < 1000) makers.set(key, make);
  }
  return make;
}
