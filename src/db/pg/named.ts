import type pg from "pg";
import { pgDriver } from "./driver.ts";
import { bounded, budgetStats, checkBudget, currentBudget, queryTimeout, resultTooLarge, type QueryBudget } from "../budget.ts";
import { dbErrorCode } from "../../errors.ts";
import type { Db } from "../index.ts";

// Hand-written SQL texts that both engines share use SQLite's named parameters (`$site_id`); node-postgres
// takes positional ones ($1, $2...). The texts hold no `$` inside string literals.

/**
 * What a failed bounded read throws: the server's own statement_timeout (a backstop just past the deadline) is the
 * request's time limit, unless the budget already stopped the read (then its own reason stands).
 */
function asTimeLimit(err: unknown, b: QueryBudget, stopped: boolean): unknown {
  if (dbErrorCode(err) !== "57014" || stopped) return err;
  budgetStats.stopped.timeout++;
  return queryTimeout(b);
}

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

/**
 * Rows per FETCH while an answer is read against its caps. node-postgres parses a FETCH's rows on the event
 * loop, and the byte count stringifies them: 10,000 rows at a time held a worker's event loop 150-330 ms at
 * load 22 (an answer past the 100,000-row cap: 0.5-0.8 s of CPU); 1,000 with a turn of the event loop between.
 * One more than 1,000: an answer of the API's default 1,000 rows (ranking data, page keywords' pages and their
 * keywords) ends with its first FETCH, not with a second, empty one (a round trip and a turn of the event loop).
 */
const FETCH_ROWS = 1001;

/** Heavy reads of one pool running at once, and the reads waiting for their turn. */
type Gate = { running: number; queue: Set<() => void> };
const gates = new WeakMap<pg.Pool, Gate>();

/**
 * The most bounded reads of a pool at once: half its connections (PG_POOL_SIZE / 2, at least 1), so that
 * other requests (a key check, a site's GET) always find a free connection while heavy reads run.
 */
export function heavyReadsOf(pool: pg.Pool): number {
  return Math.max(1, Math.floor((pool.options.max ?? 10) / 2));
}

/** Waits for a heavy-read turn of `pool`; `cancel` stops the waiting (the promise then rejects). */
function heavyTurn(pool: pg.Pool): { ready: Promise<() => void>; cancel: () => void } {
  let gate = gates.get(pool);
  if (!gate) {
    gate = { running: 0, queue: new Set() };
    gates.set(pool, gate);
  }
  const g = gate;
  const release = () => {
    g.running--;
    const [next] = g.queue;
    if (next) {
      g.queue.delete(next);
      next();
    }
  };
  if (g.running < heavyReadsOf(pool)) {
    g.running++;
    return { ready: Promise.resolve(once(release)), cancel: () => {} };
  }
  const { promise, resolve, reject } = Promise.withResolvers<() => void>();
  const go = () => {
    g.running++;
    resolve(once(release));
  };
  g.queue.add(go);
  return {
    ready: promise,
    cancel: () => {
      if (g.queue.delete(go)) reject(new Error("stopped"));
    },
  };
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}

/**
 * Runs a SELECT with named parameters on the PostgreSQL pool and returns its rows, within the current
 * request's budget (see pgBoundedRead).
 */
export async function pgAll<R>(db: Db, text: string, params: Record<string, unknown>, opts: { small?: boolean } = {}): Promise<R[]> {
  return (await pgBoundedRead<R>(db, { ...toPositional(text, params), ...opts })).rows;
}

/**
 * An answer's size for the byte cap: its JSON text's length, with bytes (bytea, e.g. the packed day rows) counted as their
 * length: JSON would write each byte as a number in a list (~3.5x the bytes, and ~2 s of CPU for a 90-day window of
 * gsc_day_query_sums at load 35).
 */
function answerBytes(rows: unknown[]): number {
  const first = rows[0];
  if (first === undefined || !Object.values(first as object).some((v) => v instanceof Uint8Array)) return JSON.stringify(rows).length;
  let n = 2;
  for (const r of rows)
    for (const v of Object.values(r as object)) n += (v instanceof Uint8Array ? v.byteLength : JSON.stringify(v ?? null).length) + 1;
  return n;
}

/** A text's positional form and its statement name, per SQL text (named statements: see pgNamedRead). */
const namedReads = new Map<string, { name: string; text: string; names: string[] }>();

/**
 * A small SELECT (index probes with a few rows by construction; named parameters) as a named statement: parsed
 * and planned once per connection, sent alone in one round trip, with no BEGIN, SETs and COMMIT around it (that
 * batch, parsed and planned on every call, answers 7 results where this answers 1). Within the request's budget:
 * cancelled at its deadline or when the client goes away, the caps checked on the whole answer; the pool's
 * statement_timeout (PG_STATEMENT_TIMEOUT_MS) is the server's backstop. `text` must be a constant of the code
 * (one statement per distinct text is kept on each connection): values go in `params`, never into the text.
 */
export async function pgNamedRead<R>(db: Db, text: string, params: Record<string, unknown>): Promise<R[]> {
  let st = namedReads.get(text);
  if (!st) {
    const names: string[] = [];
    const positional = text.replace(/\$([A-Za-z_]\w*)/g, (_, name: string) => {
      let i = names.indexOf(name);
      if (i < 0) i = names.push(name) - 1;
      return `$${i + 1}`;
    });
    st = { name: `sitesync_read_${namedReads.size + 1}`, text: positional, names };
    namedReads.set(text, st);
  }
  const values = st.names.map((n) => {
    if (!(n in params)) throw new Error(`SQL parameter $${n} has no value`);
    return params[n];
  });
  const b = currentBudget();
  checkBudget(b);
  const { pool, url } = db.pg!;
  let client: pg.PoolClient | null = null;
  let stopped = false;
  const { name, text: positional } = st;
  const work = (async () => {
    const c = await pool.connect();
    client = c;
    try {
      const r = await c.query<R & pg.QueryResultRow>({ name, text: positional, values });
      const size = { rows: r.rows.length, bytes: answerBytes(r.rows) };
      if (size.rows > b.maxRows || size.bytes > b.maxBytes) throw resultTooLarge(b, size);
      return r.rows as R[];
    } catch (err) {
      throw asTimeLimit(err, b, stopped);
    } finally {
      client = null;
      c.release();
    }
  })();
  return bounded(b, work, () => {
    stopped = true;
    const c = client as (pg.PoolClient & { processID?: number }) | null;
    if (c?.processID) void cancelBackend(url, c.processID);
  });
}

/** Each combination of texts read together (pgAllMany) as one statement's text, made once per combination. */
const manyTexts = new Map<string, string>();

/** A parameter value that is SQL of the statement itself (pgAllMany's `prelude`): written into the text, never a value. */
export type SqlOfStatement = { sql: string };

/**
 * Several small SELECTs (named parameters, texts constants of the code) in one round trip, as one named statement
 * (pgNamedRead: parsed once per connection, its plan kept): each SELECT's rows as a JSON array in one column, each
 * answer's rows in order (values as JSON gives them: every number a number). One statement per SELECT in a READ ONLY
 * transaction, as before, was parsed and planned on every call: trends' 5 reads of a few rows, ~1 ms of the backend's
 * ~2 planning them. Each SELECT's parameters are its own (`$site_id` of the second is `$r1_site_id`). `prelude`: a WITH
 * list ahead of them (its own parameters, not renamed), whose results the SELECTs' parameters of kind SqlOfStatement
 * read (e.g. a window's first day computed from the site's newest day, in the same round trip).
 */
export async function pgAllMany(
  db: Db,
  list: { text: string; params: Record<string, unknown> }[],
  prelude?: { with: string; params: Record<string, unknown> },
): Promise<unknown[][]> {
  if (list.length === 1 && !prelude) return [await pgAll(db, list[0]!.text, list[0]!.params, { small: true })];
  const inline = (v: unknown): v is SqlOfStatement => typeof v === "object" && v !== null && "sql" in v;
  // The SQL written into the text is part of the statement's key (the values are not).
  const key = `${prelude?.with ?? ""}\u0000${list
    .map((q) => `${q.text}\u0000${Object.entries(q.params).flatMap(([k, v]) => (inline(v) ? [k, v.sql] : []))}`)
    .join("\u0000")}`;
  let text = manyTexts.get(key);
  if (text === undefined) {
    const own = (q: (typeof list)[number], i: number) =>
      q.text.replace(/\$([A-Za-z_]\w*)/g, (_, name: string) => {
        const v = q.params[name];
        return inline(v) ? `(${v.sql})` : `$r${i}_${name}`;
      });
    // A sorted subquery's rows reach json_agg in its order.
    text = `${prelude ? `with ${prelude.with}\n` : ""}select ${list
      .map((q, i) => `(select coalesce(json_agg(r), '[]') from (${own(q, i)}) r) as r${i}`)
      .join(",\n       ")}`;
    manyTexts.set(key, text);
  }
  const params: Record<string, unknown> = { ...prelude?.params };
  list.forEach((q, i) => {
    for (const [k, v] of Object.entries(q.params)) if (!inline(v)) params[`r${i}_${k}`] = v;
  });
  const row = (await pgNamedRead<Record<string, unknown[]>>(db, text, params))[0]!;
  return list.map((_, i) => row[`r${i}`]!);
}

/**
 * A SELECT with positional parameters and node-postgres's per-query options (Drizzle's array rows and type parsers).
 * `small`: the answer is a few rows by construction (index probes, a handful of keys): read whole, without a cursor.
 */
export type BoundedQuery = {
  text: string;
  values?: unknown[];
  rowMode?: "array";
  types?: pg.CustomTypesConfig;
  small?: boolean;
  /** With `small`: the text holds this many statements (pgAllMany); every one's rows are returned in `all`. */
  statements?: number;
};

/**
 * Runs a SELECT on the PostgreSQL pool within the current request's budget (src/db/budget.ts): a READ
 * ONLY transaction whose statement_timeout is the time left (a backstop), cancelled (pg_cancel_backend)
 * at the deadline or when the client goes away, and read through a cursor so an answer past the row or
 * byte cap is refused (413) without being held whole.
 */
export async function pgBoundedRead<R>(db: Db, q: BoundedQuery): Promise<{ rows: R[]; fields: pg.FieldDef[]; all?: R[][] }> {
  const b = currentBudget();
  // A budget already spent (the client gone, the deadline past) runs nothing.
  checkBudget(b);
  const { pool, url } = db.pg!;
  let client: pg.PoolClient | null = null;
  let stopped = false;
  const turn = heavyTurn(pool);
  const work = (async () => {
    // A turn among the pool's heavy reads first (its wait counts in the time limit), then a connection.
    const done = await turn.ready;
    let c: pg.PoolClient;
    try {
      c = await pool.connect();
    } catch (err) {
      done();
      throw err;
    }
    if (stopped) {
      c.release();
      done();
      throw new Error("stopped");
    }
    client = c;
    let broken: Error | undefined;
    // The COMMIT of a read whose rows are all in: sent, not awaited (see below).
    let ending: Promise<unknown> | null = null;
    try {
      const left = Math.max(1, Math.ceil(b.deadline - performance.now()));
      // cursor_tuple_fraction 1: plan for the whole result, as a plain query would (a cursor's default
      // plans for the first 10% of rows and may pick a slower plan for aggregations).
      // No parallel workers: one heavy read takes one core of the server, not all of them (the other clients'
      // requests share that server's CPU; measured with bench/bounds-load.ts, docs/security.md).
      const setup = `begin read only; set local statement_timeout = ${left + 1000}; set local cursor_tuple_fraction = 1; set local max_parallel_workers_per_gather = 0`;
      const declare = "declare bounded_read no scroll cursor for ";
      const fetch = `fetch forward ${FETCH_ROWS} from bounded_read`;
      const asRows = { ...(q.rowMode ? { rowMode: q.rowMode } : {}), ...(q.types ? { types: q.types } : {}) };
      const inlined = withLiterals(q.text, q.values);
      // One round trip for the settings, the cursor and its first rows when the values can be written as literals
      // (a short read was 4 round trips, 5x its statement's time on an idle server); else one for each.
      let first: pg.QueryResult<R & pg.QueryResultRow> | null = null;
      if (inlined !== null && q.small) {
        // A small answer: the settings, the statement and COMMIT in one round trip (an error stops the batch
        // inside the transaction, which the catch below rolls back). The caps are checked on the whole answer.
        const results = (await c.query<R & pg.QueryResultRow>({
          text: `${setup}; ${inlined}; commit`,
          ...asRows,
        })) as unknown as pg.QueryResult<R & pg.QueryResultRow>[];
        const answers = results.slice(-1 - (q.statements ?? 1), -1);
        const r = answers.at(-1)!;
        const size = { rows: 0, bytes: 0 };
        for (const a of answers) {
          size.rows += a.rows.length;
          size.bytes += answerBytes(a.rows);
        }
        if (size.rows > b.maxRows || size.bytes > b.maxBytes) throw resultTooLarge(b, size);
        return { rows: r.rows, fields: r.fields, all: answers.map((a) => a.rows) };
      }
      if (inlined !== null) {
        const results = (await c.query<R & pg.QueryResultRow>({
          text: `${setup}; ${declare}${inlined}; ${fetch}`,
          ...asRows,
        })) as unknown as pg.QueryResult<R & pg.QueryResultRow>[];
        first = results[results.length - 1]!;
      } else {
        await c.query(setup);
        await c.query({ text: declare + q.text, values: q.values });
      }
      const rows: R[] = [];
      let fields: pg.FieldDef[] = [];
      let bytes = 0;
      for (;;) {
        const r = first ?? (await c.query<R & pg.QueryResultRow>({ text: fetch, ...asRows }));
        first = null;
        fields = r.fields;
        for (const row of r.rows) rows.push(row);
        bytes += answerBytes(r.rows);
        if (rows.length > b.maxRows || bytes > b.maxBytes) throw resultTooLarge(b, { rows: rows.length, bytes });
        if (r.rows.length < FETCH_ROWS) break;
        // Other requests' turn between two FETCHes (each one's rows were parsed on this event loop).
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      // The answer goes to the caller now, the COMMIT's round trip after it: a READ ONLY transaction's COMMIT changes
      // nothing; the connection (and the heavy-read turn) go back once it is done, or with its error if it failed.
      ending = c.query("commit");
      return { rows, fields };
    } catch (err) {
      await c.query("rollback").catch((e: Error) => {
        broken = e;
      });
      throw asTimeLimit(err, b, stopped);
    } finally {
      client = null;
      if (ending)
        void ending.then(
          () => {
            c.release();
            done();
          },
          (e: Error) => {
            c.release(e);
            done();
          },
        );
      else {
        c.release(broken);
        done();
      }
    }
  })();
  return bounded(b, work, () => {
    stopped = true;
    turn.cancel();
    const c = client as (pg.PoolClient & { processID?: number }) | null;
    if (c?.processID) void cancelBackend(url, c.processID);
  });
}

/**
 * `text` with each positional parameter ($1, $2...) replaced by its value as a quoted literal: the text
 * node-postgres would have sent as an untyped parameter, so the server resolves its type from the context the
 * same way. Null when a value is of a kind not written here (bytes, dates, arrays): the caller binds them.
 */
export function withLiterals(text: string, values: unknown[] | undefined): string | null {
  if (!values?.length) return text;
  const literals: string[] = [];
  for (const v of values) {
    const str =
      typeof v === "string"
        ? v
        : typeof v === "number" || typeof v === "bigint" || typeof v === "boolean"
          ? String(v)
          : typeof v === "object" && v !== null && v.constructor === Object
            ? JSON.stringify(v)
            : null;
    if (v === null || v === undefined) literals.push("NULL");
    // A line break or a comment's end could leave a comment the parameter stood in: bound, not written.
    else if (str === null || /[\r\n]|\*\//.test(str)) return null;
    else literals.push(pgDriver().escapeLiteral(str));
  }
  let missing = false;
  const out = text.replace(/\$(\d+)(?!\d)/g, (_, n: string) => {
    const lit = literals[Number(n) - 1];
    if (lit === undefined) missing = true;
    return lit ?? "";
  });
  return missing ? null : out;
}

/**
 * Cancels the statement running on backend `pid` from a connection of its own (the pool's may all be
 * busy). The client that runs it is held until its query fails, so `pid` cannot be serving another query.
 */
async function cancelBackend(url: string, pid: number): Promise<void> {
  const c = new (pgDriver().Client)({ connectionString: url, application_name: `sitesync-${process.pid}-cancel` });
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
