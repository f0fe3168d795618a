import { deviceCode, sumPosition } from "./grains.ts";
import type { SourceRow } from "./source.ts";
import type { TextIds } from "./text-ids.ts";
import { giveWay } from "./give-way.ts";

// A batch of query-detail rows as both engines write them (src/sync/data.ts, src/db/pg/synced-rows.ts):
// dictionary ids in place of texts, one row per key, in the primary key's order, and the day × query
// rollup summed from them in JS (no read back of the detail).

/** Rows of one site, day and type with their dictionary ids, one per key, in key order: what the writers read. */
export type KeyedColumns = {
  n: number;
  page: ArrayLike<number>;
  query: ArrayLike<number>;
  device: ArrayLike<number>;
  clicks: ArrayLike<number>;
  impressions: ArrayLike<number>;
  sumPosition: ArrayLike<number>;
};

/** Rows of one site, day and type with their dictionary ids, one per key (the last row of a key wins, as an upsert would), in key order. */
export type KeyedRows = {
  n: number;
  page: number[];
  query: number[];
  device: number[];
  clicks: number[];
  impressions: number[];
  sumPosition: number[];
};

/**
 * The rows as KeyedRows: ids from the dictionaries' maps, sorted by (page_id, query_id, device) — the
 * primary key's order within a day, so the B-tree is written like an append (fuller pages, fewer touched)
 * — and one row per key (the last given).
 */
export function keyRows(rows: SourceRow[], pages: TextIds, queries: TextIds): KeyedRows {
  const n = rows.length;
  const p = new Array<number>(n);
  const q = new Array<number>(n);
  const d = new Array<number>(n);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    p[i] = pages.get(r.page)!;
    q[i] = queries.get(r.query)!;
    d[i] = deviceCode(r.device);
    order[i] = i;
  }
  // Stable on ties: the input order decides, so the last of a key's rows comes last.
  order.sort((a, b) => p[a]! - p[b]! || q[a]! - q[b]! || d[a]! - d[b]! || a - b);
  const out: KeyedRows = { n: 0, page: [], query: [], device: [], clicks: [], impressions: [], sumPosition: [] };
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const next = order[k + 1];
    if (next !== undefined && p[next] === p[i] && q[next] === q[i] && d[next] === d[i]) continue;
    const r = rows[i]!;
    out.page.push(p[i]!);
    out.query.push(q[i]!);
    out.device.push(d[i]!);
    out.clicks.push(r.clicks);
    out.impressions.push(r.impressions);
    out.sumPosition.push(sumPosition(r.position, r.impressions));
  }
  out.n = out.page.length;
  return out;
}

/** A day × query rollup: per query id (ascending) the sums of its rows. */
export type Rollup = {
  query: ArrayLike<number>;
  clicks: ArrayLike<number>;
  impressions: ArrayLike<number>;
  sumPosition: ArrayLike<number>;
};

/** The day × query rollup of keyed rows (what rebuildDayQueryTotals computes in SQL), in query id order. */
export function rollupOf(k: KeyedColumns): { query: number[]; clicks: number[]; impressions: number[]; sumPosition: number[] } {
  const sums = new Map<number, [number, number, number]>();
  for (let i = 0; i < k.n; i++) {
    const s = sums.get(k.query[i]!);
    if (s) {
      s[0] += k.clicks[i]!;
      s[1] += k.impressions[i]!;
      s[2] += k.sumPosition[i]!;
    } else sums.set(k.query[i]!, [k.clicks[i]!, k.impressions[i]!, k.sumPosition[i]!]);
  }
  const ids = [...sums.keys()].sort((a, b) => a - b);
  const out = {
    query: ids,
    clicks: new Array<number>(ids.length),
    impressions: new Array<number>(ids.length),
    sumPosition: new Array<number>(ids.length),
  };
  for (let i = 0; i < ids.length; i++) {
    const s = sums.get(ids[i]!)!;
    out.clicks[i] = s[0];
    out.impressions[i] = s[1];
    out.sumPosition[i] = s[2];
  }
  return out;
}

/**
 * A whole day × type's rows as they are fetched, their texts already dictionary ids, in typed columns (~40
 * bytes a row: a 50,000-row day is 2 MB, where the fetched row objects were ~10 times that). keyed() sorts
 * and dedupes them once for the day (what keyRows does per batch).
 */
export class DayRows {
  n = 0;
  #page: Int32Array;
  #query: Int32Array;
  #device: Uint8Array;
  #clicks: Float64Array;
  #impressions: Float64Array;
  #sumPosition: Float64Array;

  /** `capacity`: rows expected (e.g. the task's previous day's), so the columns do not grow by copies meanwhile. */
  constructor(capacity = 1024) {
    const size = Math.max(16, capacity);
    this.#page = new Int32Array(size);
    this.#query = new Int32Array(size);
    this.#device = new Uint8Array(size);
    this.#clicks = new Float64Array(size);
    this.#impressions = new Float64Array(size);
    this.#sumPosition = new Float64Array(size);
  }

  /** Adds one row (ids and measures as stored: sum_position already scaled). */
  push(page: number, query: number, device: number, clicks: number, impressions: number, sumPosition: number): void {
    if (this.n === this.#page.length) this.#grow();
    const i = this.n++;
    this.#page[i] = page;
    this.#query[i] = query;
    this.#device[i] = device;
    this.#clicks[i] = clicks;
    this.#impressions[i] = impressions;
    this.#sumPosition[i] = sumPosition;
  }

  #grow(): void {
    const size = this.#page.length * 2;
    const grown = <T extends Int32Array | Uint8Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.#page = grown(this.#page);
    this.#query = grown(this.#query);
    this.#device = grown(this.#device);
    this.#clicks = grown(this.#clicks);
    this.#impressions = grown(this.#impressions);
    this.#sumPosition = grown(this.#sumPosition);
  }

  /**
   * The rows in the primary key's order (page_id, query_id, device), one per key (the last pushed): ids are
   * replaced by their ranks among the day's distinct ids, so (page, query, device, position) fits one
   * number and a native numeric sort orders the day (a comparator sort in JS cost ~1 µs a row).
   */
  keyed(): KeyedColumns & { rollup: Rollup } {
    const n = this.n;
    // Between its sorts (~20 ms of a core for a 50,000-row day in all) a supervised sync worker gives way to requests.
    const pageRank = ranks(this.#page, n);
    giveWay();
    const queryRank = ranks(this.#query, n);
    giveWay();
    const order = this.#order(n, pageRank, queryRank);
    giveWay();
    const keyed = this.#take(order, order.length);
    const rank = new Int32Array(order.length);
    for (let k = 0; k < order.length; k++) rank[k] = queryRank.of[order[k]!]!;
    giveWay();
    return { ...keyed, rollup: rollupByRank(keyed, queryRank.ids, rank) };
  }

  /** The positions of the rows kept (the last of each key), in key order. */
  #order(n: number, pageRank: Ranks, queryRank: Ranks): Uint32Array {
    const keys = new Float64Array(n);
    // (pageRank × queries + queryRank) × 4 + device, then × n + the row's position (ties keep their order).
    const span = queryRank.ids.length * 4 * n;
    if (pageRank.ids.length * span >= Number.MAX_SAFE_INTEGER) return this.#orderByComparison();
    const pr = pageRank.of;
    const qr = queryRank.of;
    for (let i = 0; i < n; i++) keys[i] = pr[i]! * span + (qr[i]! * 4 + this.#device[i]!) * n + i;
    keys.sort();
    const order = new Uint32Array(n);
    let m = 0;
    for (let k = 0; k < n; k++) {
      const key = keys[k]!;
      // The next key of the same (page, query, device) replaces this one: the last row wins.
      // (% is exact on these integers below 2^53, where a division by n could round.)
      if (k + 1 < n && keys[k + 1]! - (keys[k + 1]! % n) === key - (key % n)) continue;
      order[m++] = key % n;
    }
    return order.subarray(0, m);
  }

  /** #order for days whose ranks do not fit one number (never at Google's 50,000 rows a day). */
  #orderByComparison(): Uint32Array {
    const p = this.#page;
    const q = this.#query;
    const d = this.#device;
    const all = Array.from({ length: this.n }, (_, i) => i);
    all.sort((a, b) => p[a]! - p[b]! || q[a]! - q[b]! || d[a]! - d[b]! || a - b);
    const order = new Uint32Array(this.n);
    let m = 0;
    for (let k = 0; k < all.length; k++) {
      const i = all[k]!;
      const next = all[k + 1];
      if (next !== undefined && p[next] === p[i] && q[next] === q[i] && d[next] === d[i]) continue;
      order[m++] = i;
    }
    return order.subarray(0, m);
  }

  #take(order: Uint32Array, m: number): KeyedColumns {
    const pick = <T extends Int32Array | Uint8Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(m);
      for (let k = 0; k < m; k++) b[k] = a[order[k]!]!;
      return b;
    };
    return {
      n: m,
      page: pick(this.#page),
      query: pick(this.#query),
      device: pick(this.#device),
      clicks: pick(this.#clicks),
      impressions: pick(this.#impressions),
      sumPosition: pick(this.#sumPosition),
    };
  }
}

/** The distinct ids of a column (ascending) and each row's rank among them. */
type Ranks = { ids: Int32Array; of: Int32Array };

/**
 * Ranks of the first n values of ids: one native sort of (id, row) packed in a number, no Map (a Map's
 * look-ups per row cost more than the sort).
 */
function ranks(ids: Int32Array, n: number): Ranks {
  const keys = new Float64Array(n);
  // Dictionary ids are positive 32-bit integers: id × n + row stays below 2^53 for any day.
  for (let i = 0; i < n; i++) keys[i] = ids[i]! * n + i;
  keys.sort();
  const distinct = new Int32Array(n);
  const of = new Int32Array(n);
  let size = 0;
  let last = Number.NaN;
  for (let k = 0; k < n; k++) {
    const key = keys[k]!;
    const row = key % n;
    const id = (key - row) / n;
    if (id !== last) distinct[size++] = last = id;
    of[row] = size - 1;
  }
  return { ids: distinct.subarray(0, size), of };
}

/** rollupOf for a day's keyed rows, summed by their query ids' ranks (`rank`, per keyed row) into typed arrays (every ranked id has rows). */
function rollupByRank(k: KeyedColumns, ids: Int32Array, rank: Int32Array): Rollup {
  const clicks = new Float64Array(ids.length);
  const impressions = new Float64Array(ids.length);
  const sumPosition = new Float64Array(ids.length);
  for (let i = 0; i < k.n; i++) {
    const r = rank[i]!;
    clicks[r] = clicks[r]! + k.clicks[i]!;
    impressions[r] = impressions[r]! + k.impressions[i]!;
    sumPosition[r] = sumPosition[r]! + k.sumPosition[i]!;
  }
  return { query: ids, clicks, impressions, sumPosition };
}
