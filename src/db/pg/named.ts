import pg from "pg";
import { bounded, checkBudget, currentBudget, queryTimeout, resultTooLarge, type QueryBudget } from "../budget.ts";
import { dbErrorCode } from "../../errors.ts";
import type { Db } from "../index.ts";

// Hand-written SQL texts that both engines share use SQLite's named parameters (`$site_id`); node-postgres
// takes positional ones ($1, $2...). The texts hold no `$` inside string literals.

/** `text` with each `$name` replaced by its position, and the values in that order (a name used twice binds once). */
export function toPositional(text: string, params: Record<string, unknown>): { text: string; values: unknown[] } {
  const names: string[] = [];
  const out = text.replace(/\$([A-Za-z_]\w*)/g, (_, name: string) => {
    if (!(name in params)) throw new Error(`SQL parameter $${name} has no value`);
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  return { text: out, values: names.map((n) => params[n]) };
}

/** Rows per FETCH while an answer is read against its caps. */
const FETCH_ROWS = 10_000;

/**
 * Runs a SELECT with named parameters on the PostgreSQL pool and returns its rows, within the current
 * request's budget (see pgBoundedRead).
 */
export async function pgAll<R>(db: Db, text: string, params: Record<string, unknown>): Promise<R[]> {
  return (await pgBoundedRead<R>(db, toPositional(text, params))).rows;
}

/** A SELECT with positional parameters and node-postgres's per-query options (Drizzle's array rows and type parsers). */
export type BoundedQuery = { text: string; values?: unknown[]; rowMode?: "array"; types?: pg.CustomTypesConfig };

/**
 * Runs a SELECT on the PostgreSQL pool within the current request's budget (src/db/budget.ts): a READ
 * ONLY transaction whose statement_timeout is the time left (a backstop), cancelled (pg_cancel_backend)
 * at the deadline or when the client goes away, and read through a cursor so an answer past the row or
 * byte cap is refused (413) without being held whole.
 */
export async function pgBoundedRead<R>(db: Db, q: BoundedQuery): Promise<{ rows: R[]; fields: pg.FieldDef[] }> {
  const b = currentBudget();
  // A budget already spent (the client gone, the deadline past) runs nothing.
  checkBudget(b);
  const { pool, url } = db.pg!;
  let client: pg.PoolClient | null = null;
  let stopped = false;
  const work = (async () => {
    const c = await pool.connect();
    if (stopped) {
      c.release();
      throw new Error("stopped");
    }
    client = c;
    let broken: Error | undefined;
    try {
      const left = Math.max(1, Math.ceil(b.deadline - performance.now()));
      // cursor_tuple_fraction 1: plan for the whole result, as a plain query would (a cursor's default
      // plans for the first 10% of rows and may pick a slower plan for aggregations).
      // No parallel workers: one heavy read takes one core of the server, not all of them (the other clients'
      // requests share that server's CPU; measured with bench/bounds-load.ts, docs/security.md).
      await c.query(
        `begin read only; set local statement_timeout = ${left + 1000}; set local cursor_tuple_fraction = 1; set local max_parallel_workers_per_gather = 0`,
      );
      await c.query({ text: `declare bounded_read no scroll cursor for ${q.text}`, values: q.values });
      const rows: R[] = [];
      let fields: pg.FieldDef[] = [];
      let bytes = 0;
      for (;;) {
        const r = await c.query<R & pg.QueryResultRow>({
          text: `fetch forward ${FETCH_ROWS} from bounded_read`,
          ...(q.rowMode ? { rowMode: q.rowMode } : {}),
          ...(q.types ? { types: q.types } : {}),
        });
        fields = r.fields;
        for (const row of r.rows) rows.push(row);
        bytes += JSON.stringify(r.rows).length;
        if (rows.length > b.maxRows || bytes > b.maxBytes) throw resultTooLarge(b, { rows: rows.length, bytes });
        if (r.rows.length < FETCH_ROWS) break;
      }
      await c.query("commit");
      return { rows, fields };
    } catch (err) {
      await c.query("rollback").catch((e: Error) => {
        broken = e;
      });
      // The server's own statement_timeout (a backstop just past the deadline) is the same limit.
      if (dbErrorCode(err) === "57014" && !stopped) throw queryTimeout(b);
      throw err;
    } finally {
      client = null;
      c.release(broken);
    }
  })();
  return bounded(b, work, () => {
    stopped = true;
    const c = client as (pg.PoolClient & { processID?: number }) | null;
    if (c?.processID) void cancelBackend(url, c.processID);
  });
}

/**
 * Cancels the statement running on backend `pid` from a connection of its own (the pool's may all be
 * busy). The client that runs it is held until its query fails, so `pid` cannot be serving another query.
 */
async function cancelBackend(url: string, pid: number): Promise<void> {
  const c = new pg.Client({ connectionString: url, application_name: `sitesync-${process.pid}-cancel` });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("select pg_cancel_backend($1)", [pid]);
  } catch {
    // The statement ends anyway at its statement_timeout.
  } finally {
    await c.end().catch(() => {});
  }
}

export type { QueryBudget };
