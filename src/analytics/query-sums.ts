import type { Db } from "../db/index.ts";
import { checkBudget, currentBudget, resultTooLarge } from "../db/budget.ts";
import { searchTypeCodes } from "../db/enums.ts";
import { dayNumber } from "../sync/grains.ts";
import { allRows } from "./totals.ts";

// The day × query rollup packed one row per (site, day, type) (gsc_day_query_sums, issue 18): a report over
// every query of a window reads the window's rows (~170 KB a day of 32,500 queries) and sums them per query in
// JS, instead of walking the rollup's (site_id, query_id, day, type) key over the site's whole history (its
// cost grew with the days stored) or sorting the window's rows per query. Measured at 5 M rows (100 days,
// 90-day window, in process): ~0.2 s for the rows read and summed vs 0.45-0.85 s for the walk's 3 sums.
// The format of `data` and its encoder: src/sync/day-sums.ts (the sync writes it; this module reads it).

/** Every query's sums in each period of a read (period k: clicks[k][i] ... of query id[i]); `rows[k][i]` days with rows. */
export type PeriodQuerySums = {
  n: number;
  id: Int32Array;
  clicks: Float64Array[];
  impressions: Float64Array[];
  sumPosition: Float64Array[];
  days: Int32Array[];
};

/** The two periods of a read's sums by query position j: clicks c, impressions i and Σ position s (1: period 0, 2: period 1). */
export function twoPeriods(sums: PeriodQuerySums) {
  const [c, i, s] = [sums.clicks, sums.impressions, sums.sumPosition];
  return { c1: c[0]!, c2: c[1]!, i1: i[0]!, i2: i[1]!, s1: s[0]!, s2: s[1]! };
}

/** Ids spanned by a site's dictionary up to which sums are kept in arrays indexed by id (else a hash of ids). */
const DENSE_SPAN = 1 << 21;

/** Sums per query id over packed days: dense arrays by id when the site's ids span little, else an open-addressing hash. */
class Accumulator {
  #periods: number;
  #dense: boolean;
  #lo: number;
  #cap: number;
  #keys: Int32Array;
  #size = 0;
  /** Entries whose id fell outside the dense range given (left out: the read is to be done again with the exact range). */
  outside = 0;
  #c: Float64Array[];
  #i: Float64Array[];
  #s: Float64Array[];
  #d: Int32Array[];

  constructor(periods: number, lo: number, hi: number) {
    this.#periods = periods;
    this.#dense = hi - lo + 1 <= DENSE_SPAN;
    this.#lo = lo;
    this.#cap = this.#dense ? Math.max(1, hi - lo + 1) : 1 << 16;
    this.#keys = new Int32Array(this.#dense ? 0 : this.#cap);
    this.#c = this.#arrays(Float64Array);
    this.#i = this.#arrays(Float64Array);
    this.#s = this.#arrays(Float64Array);
    this.#d = this.#arrays(Int32Array);
  }

  #arrays<T extends Float64Array | Int32Array>(of: new (n: number) => T): T[] {
    return Array.from({ length: this.#periods }, () => new of(this.#cap));
  }

  /** Adds one packed day to period `k`. */
  add(k: number, data: Uint8Array, queries: number): void {
    const c = this.#c[k]!;
    const im = this.#i[k]!;
    const s = this.#s[k]!;
    const d = this.#d[k]!;
    let p = 0;
    let q = 0;
    for (let r = 0; r < queries; r++) {
      // Four varints, the common one-byte case first.
      let x = data[p++]!;
      let v = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) v += ((x = data[p++]!) & 127) * m;
      q += v;
      x = data[p++]!;
      let vc = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vc += ((x = data[p++]!) & 127) * m;
      x = data[p++]!;
      let vi = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vi += ((x = data[p++]!) & 127) * m;
      x = data[p++]!;
      let vs = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vs += ((x = data[p++]!) & 127) * m;
      let at: number;
      if (!this.#dense) at = this.#slot(q);
      else if ((at = q - this.#lo) < 0 || at >= this.#cap) {
        this.outside++;
        continue;
      }
      c[at]! += vc;
      im[at]! += vi;
      s[at]! += vs;
      d[at]!++;
    }
  }

  /** The hash slot of query id q (taken for it when new; the table doubles past half full). */
  #slot(q: number): number {
    if (this.#size * 2 >= this.#cap) this.#grow();
    const mask = this.#cap - 1;
    let h = (Math.imul(q, 0x9e3779b1) >>> 8) & mask;
    for (let key = this.#keys[h]!; key !== q; key = this.#keys[h]!) {
      if (key === 0) {
        this.#keys[h] = q;
        this.#size++;
        return h;
      }
      h = (h + 1) & mask;
    }
    return h;
  }

  #grow(): void {
    const old = { keys: this.#keys, c: this.#c, i: this.#i, s: this.#s, d: this.#d, cap: this.#cap };
    this.#cap *= 2;
    this.#keys = new Int32Array(this.#cap);
    this.#size = 0;
    this.#c = this.#arrays(Float64Array);
    this.#i = this.#arrays(Float64Array);
    this.#s = this.#arrays(Float64Array);
    this.#d = this.#arrays(Int32Array);
    for (let h = 0; h < old.cap; h++) {
      const q = old.keys[h]!;
      if (q === 0) continue;
      const at = this.#slot(q);
      for (let k = 0; k < this.#periods; k++) {
        this.#c[k]![at] = old.c[k]![h]!;
        this.#i[k]![at] = old.i[k]![h]!;
        this.#s[k]![at] = old.s[k]![h]!;
        this.#d[k]![at] = old.d[k]![h]!;
      }
    }
  }

  /** The queries with rows in any period, in ascending id order. */
  result(): PeriodQuerySums {
    const slots: number[] = [];
    for (let h = 0; h < this.#cap; h++) {
      let any = false;
      for (let k = 0; k < this.#periods && !any; k++) any = this.#d[k]![h]! > 0;
      if (any) slots.push(h);
    }
    const idOf = (h: number) => (this.#dense ? h + this.#lo : this.#keys[h]!);
    if (!this.#dense) slots.sort((a, b) => idOf(a) - idOf(b));
    const n = slots.length;
    const out: PeriodQuerySums = { n, id: new Int32Array(n), clicks: [], impressions: [], sumPosition: [], days: [] };
    for (let j = 0; j < n; j++) out.id[j] = idOf(slots[j]!);
    for (let k = 0; k < this.#periods; k++) {
      const [c, i, s, d] = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Int32Array(n)];
      for (let j = 0; j < n; j++) {
        const h = slots[j]!;
        c[j] = this.#c[k]![h]!;
        i[j] = this.#i[k]![h]!;
        s[j] = this.#s[k]![h]!;
        d[j] = this.#d[k]![h]!;
      }
      out.clicks.push(c);
      out.impressions.push(i);
      out.sumPosition.push(s);
      out.days.push(d);
    }
    return out;
  }
}

/** Days per statement of a SQLite read: each slice is read and summed in one event-loop turn (~5-10 ms at 32,500 queries a day). */
const DAYS_PER_SLICE = 4;
/** Days of packed rows per statement on PostgreSQL (~0.2 MB a day and type at 5 M rows). */
const PG_DAYS_PER_READ = 16;

/**
 * Every query's sums in each period (day numbers, both included; periods need not touch) of one site and type
 * (null: every type), from gsc_day_query_sums. On SQLite the days are read a few at a time on the reader, the
 * event loop free between slices (each slice sees its own snapshot: a day switched meanwhile is read whole,
 * old or new); on PostgreSQL in one statement.
 */
export async function readQuerySums(db: Db, siteId: number, type: number | null, periods: [number, number][]): Promise<PeriodQuerySums> {
  // The span of the ids read, from each query's newest-day rows (gsc_query_last_days: every query of the rollup,
  // per type; its key's first and last id, a seek each), not from the dictionary (the min and max id of a site read
  // its whole (site_id, query) index: 35-45 ms at 290,000 queries). Ids outside it (none while the newest days are
  // kept with the rollup) make the read run again with the dictionary's span.
  const sums = await readQuerySumsIn(db, siteId, type, periods, await idSpan(db, siteId, type));
  if (sums) return sums;
  const range = await allRows<{ lo: number | null; hi: number | null }>(
    db,
    "select min(id) as lo, max(id) as hi from gsc_queries where site_id = $site_id",
    { site_id: siteId },
  );
  const lo = Number(range[0]?.lo ?? 1);
  return (await readQuerySumsIn(db, siteId, type, periods, [lo, Number(range[0]?.hi ?? lo)]))!;
}

/** The lowest and highest query id of a site's newest-day rows of one type (null: every type); [1, 1] without any. */
async function idSpan(db: Db, siteId: number, type: number | null): Promise<[number, number]> {
  const ends = (type === null ? searchTypeCodes.map((_, i) => i + 1) : [type]).map(
    (t) => `select (select min(query_id) from gsc_query_last_days where site_id = $site_id and type = ${Number(t)}) as lo,
       (select max(query_id) from gsc_query_last_days where site_id = $site_id and type = ${Number(t)}) as hi`,
  );
  const [row] = await allRows<{ lo: number | null; hi: number | null }>(
    db,
    `select min(lo) as lo, max(hi) as hi from (${ends.join(" union all ")}) e`,
    { site_id: siteId },
  );
  const lo = Number(row?.lo ?? 1);
  return [lo, Number(row?.hi ?? lo)];
}

/** readQuerySums with the ids summed in arrays over `span` (when it is small enough); null when an id fell outside it. */
async function readQuerySumsIn(
  db: Db,
  siteId: number,
  type: number | null,
  periods: [number, number][],
  span: [number, number],
): Promise<PeriodQuerySums | null> {
  const from = Math.min(...periods.map((p) => p[0]));
  const to = Math.max(...periods.map((p) => p[1]));
  const typeFilter = type === null ? "" : " and type = $type";
  const acc = new Accumulator(periods.length, span[0], span[1]);
  const addRow = (day: number, queries: number, data: Uint8Array) => {
    for (let k = 0; k < periods.length; k++) if (day >= periods[k]![0] && day <= periods[k]![1]) acc.add(k, data, queries);
  };
  const sql = `select day, queries, data from gsc_day_query_sums where site_id = $site_id and day >= $from and day <= $to${typeFilter}`;
  const params = (a: number, b: number) => ({ site_id: siteId, from: a, to: b, ...(type === null ? {} : { type }) });
  if (db.engine === "pg") {
    for (const r of await allRows<{ day: number; queries: number; data: Uint8Array }>(db, sql, params(from, to), true))
      addRow(Number(r.day), Number(r.queries), r.data);
    return acc.outside ? null : acc.result();
  }
  // These reads run in this process, not in a query process the time limit could kill: the request's budget
  // (deadline, client gone) is checked before each slice instead.
  const budget = currentBudget();
  const st = db.raw.reader.query<[number, number, Uint8Array], [Record<string, number>]>(sql);
  for (let a = from; a <= to; a += DAYS_PER_SLICE) {
    if (a > from) await new Promise((r) => setImmediate(r));
    checkBudget(budget);
    for (const r of st.values(params(a, Math.min(to, a + DAYS_PER_SLICE - 1))) as [number, number, Uint8Array][]) addRow(r[0], r[1], r[2]);
  }
  return acc.outside ? null : acc.result();
}

/** Sums of some queries (`ids`, ascending) over days `from`..`to` of every search type; `days`: distinct days with a row. */
export type MatchedSums = { clicks: Float64Array; impressions: Float64Array; sumPosition: Float64Array; days: Int32Array };

/**
 * MatchedSums of `ids` (ascending, distinct) from the packed day rows of every type (SQLite: the reader, a few days a
 * slice, the event loop free between them and the request's budget checked before each, as readQuerySums; PostgreSQL:
 * one statement). A day's rows of two types count that day once. Cost: every entry of the window's days is decoded
 * (~20 ns each at load 10-20), however few ids are asked: query search takes it for 1-2 character terms, which match
 * most queries.
 */
export async function readMatchedSums(db: Db, siteId: number, ids: Int32Array, from: number, to: number): Promise<MatchedSums> {
  const n = ids.length;
  const out: MatchedSums = {
    clicks: new Float64Array(n),
    impressions: new Float64Array(n),
    sumPosition: new Float64Array(n),
    days: new Int32Array(n),
  };
  // The window clipped to the site's packed days (a search without dates asks for days 0 to 9999-12-31).
  const clip = `select (select min(day) from gsc_day_query_sums where site_id = $site_id and day >= $from) as a,
              (select max(day) from gsc_day_query_sums where site_id = $site_id and day <= $to) as b`;
  const ends =
    db.engine === "pg"
      ? (await allRows<{ a: number | null; b: number | null }>(db, clip, { site_id: siteId, from, to }))[0]
      : db.raw.reader.query<{ a: number | null; b: number | null }, [Record<string, number>]>(clip).get({ site_id: siteId, from, to });
  if (n === 0 || ends?.a == null || ends.b == null || ends.a > ends.b) return out;
  [from, to] = [Number(ends.a), Number(ends.b)];
  const lo = ids[0]!;
  const hi = ids[n - 1]!;
  // The position of each id among `ids` (+1; 0: not asked), by id - lo.
  const at = new Int32Array(hi - lo + 1);
  for (let j = 0; j < n; j++) at[ids[j]! - lo] = j + 1;
  const last = new Int32Array(n).fill(-1);
  const { clicks: c, impressions: im, sumPosition: sp, days } = out;
  const add = (day: number, queries: number, data: Uint8Array) => {
    let p = 0;
    let q = 0;
    for (let r = 0; r < queries; r++) {
      // The format of src/sync/day-sums.ts (as Accumulator.add): four varints, the common one-byte case first.
      let x = data[p++]!;
      let v = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) v += ((x = data[p++]!) & 127) * m;
      q += v;
      if (q > hi) return;
      x = data[p++]!;
      let vc = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vc += ((x = data[p++]!) & 127) * m;
      x = data[p++]!;
      let vi = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vi += ((x = data[p++]!) & 127) * m;
      x = data[p++]!;
      let vs = x & 127;
      if (x & 128) for (let m = 128; x & 128; m *= 128) vs += ((x = data[p++]!) & 127) * m;
      if (q < lo) continue;
      const j = at[q - lo]! - 1;
      if (j < 0) continue;
      c[j]! += vc;
      im[j]! += vi;
      sp[j]! += vs;
      if (last[j] !== day) {
        last[j] = day;
        days[j]!++;
      }
    }
  };
  // Key order (day, type): a day's types come together, so `last` counts each day once.
  const sql =
    "select day, queries, data from gsc_day_query_sums where site_id = $site_id and day >= $from and day <= $to order by day, type";
  if (db.engine === "pg") {
    // PG_DAYS_PER_READ days a statement: a 90-day window's rows of every type pass the answer's byte cap in one.
    for (let a = from; a <= to; a += PG_DAYS_PER_READ) {
      const params = { site_id: siteId, from: a, to: Math.min(to, a + PG_DAYS_PER_READ - 1) };
      for (const r of await allRows<{ day: number; queries: number; data: Uint8Array }>(db, sql, params, true))
        add(Number(r.day), Number(r.queries), r.data);
    }
    return out;
  }
  const budget = currentBudget();
  const st = db.raw.reader.query<[number, number, Uint8Array], [Record<string, number>]>(sql);
  for (let a = from; a <= to; a += DAYS_PER_SLICE) {
    if (a > from) await new Promise((r) => setImmediate(r));
    checkBudget(budget);
    for (const r of st.values({ site_id: siteId, from: a, to: Math.min(to, a + DAYS_PER_SLICE - 1) }) as [number, number, Uint8Array][])
      add(r[0], r[1], r[2]);
  }
  return out;
}

/**
 * The queries of one search type with a day in the rollup from `start` on, from each query's newest day
 * (gsc_query_last_days, kept by triggers: migrations sqlite 0029 / pg 0023): one row a query, not one a query and
 * day (5 M rows, 90 days: 290,000 rows instead of the window's 2.9 M rollup rows). The same as the distinct queries
 * of `start`..`end` when no query has a day after `end` (the window ends on or after the type's newest day, as the
 * insights' default windows do); null otherwise.
 */
export async function countQueriesSince(db: Db, siteId: number, type: number, start: string, end: string): Promise<number | null> {
  const [row] = await allRows<{ newest: number | null; n: number | string | null }>(
    db,
    `select max(day) as newest, sum(case when day >= $from then 1 else 0 end) as n
       from gsc_query_last_days where site_id = $site_id and type = $type`,
    { site_id: siteId, type, from: dayNumber(start) },
    // SQLite: in a query process (290,000 rows at 50 M, ~20 ms CPU): beside the report's other reads, not before them
    // on the event loop. PostgreSQL: one row, the small read's single round trip.
    db.engine === "sqlite",
  );
  if (row?.newest != null && Number(row.newest) > dayNumber(end)) return null;
  return Number(row?.n ?? 0);
}

/**
 * Refuses (413 result_too_large) an answer of more than ANALYTICS_MAX_ROWS rows: these reports sum in JS what
 * a bounded statement used to return row by row (its row cap refused the same answer).
 */
export function checkAnswerRows(rows: number): void {
  const budget = currentBudget();
  if (rows > budget.maxRows) throw resultTooLarge(budget, { rows, bytes: 0 });
}

/** The texts of query ids (one read, the ids bound as one JSON list). */
export async function queryTexts(db: Db, ids: ArrayLike<number>): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const list =
    db.engine === "pg" ? "select cast(jsonb_array_elements_text(cast($ids as jsonb)) as integer)" : "select value from json_each($ids)";
  const rows = await allRows<{ id: number; query: string }>(db, `select id, query from gsc_queries where id in (${list})`, {
    ids: JSON.stringify(Array.from(ids)),
  });
  return new Map(rows.map((r) => [Number(r.id), r.query]));
}

/** The ids of a site's queries whose text matches a SQL condition on `q.query` (its parameters named; e.g. a LIKE per brand term). */
export async function matchingQueryIds(
  db: Db,
  siteId: number,
  condition: string,
  params: Record<string, string | number>,
): Promise<Set<number>> {
  const rows = await allRows<{ id: number }>(db, `select q.id as id from gsc_queries q where q.site_id = $site_id and (${condition})`, {
    site_id: siteId,
    ...params,
  });
  return new Set(rows.map((r) => Number(r.id)));
}

/**
 * The positions j (ascending) among `n` whose `value(j)` can be among the first `limit` by value, highest first,
 * of those `keep(j)`: value at least the limit-th highest kept value (ties included), every kept one when fewer.
 * Only these then need their texts for the ties' order (ascending texts).
 */
export function amongHighest(n: number, value: (j: number) => number, limit: number, keep: (j: number) => boolean = () => true): number[] {
  const kept: number[] = [];
  for (let j = 0; j < n; j++) if (keep(j)) kept.push(j);
  if (kept.length <= limit) return kept;
  if (limit <= 0) return [];
  const values = new Float64Array(kept.length);
  for (let k = 0; k < kept.length; k++) values[k] = value(kept[k]!);
  values.sort();
  const cut = values[values.length - limit]!;
  return kept.filter((j) => value(j) >= cut);
}

/**
 * Texts in ascending code point order: UTF-8's byte order, SQLite's BINARY collation. UTF-16 code units order the
 * same except that characters past U+FFFF (surrogate pairs) come before U+E000-U+FFFF: those units are mapped back.
 */
export function byText(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    let x = a.charCodeAt(k);
    let y = b.charCodeAt(k);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : 1;
}
