import type { Database, Statement } from "bun:sqlite";
import type { SearchTypeCode } from "../db/enums.ts";
import { dayDate, dayNumber, typeCode } from "../sync/grains.ts";
import { csvField, csvLine } from "./format.ts";
import type { ParquetKind } from "./parquet.ts";
import type { ExportOptions } from "./queries.ts";
import type { DownloadSteps } from "./stream.ts";

// The SQLite export read without SQL text joins or sorts (issue 18 item 5): the detail's integers are read in key
// order (site, day, type, page_id, query_id, device), a day at a time; each page and query id's rank in text order
// (SQLite's BINARY: UTF-8 bytes) is read once per download from the dictionary's (site_id, text) index, its texts
// fetched once per id; each day's rows are put in the export's order (date, page, query, device, search_type, as
// exportQuery's ORDER BY) by counting sorts on those ranks (12 bits a pass). Encoders then write bytes per row from
// values made once per text or day. Same rows, same order and same bytes as exportQuery's text
// (test/export-fast.test.ts compares them).

/**
 * Dictionary entries kept across days before they are dropped and fetched again (bounds memory on big sites: up to
 * ~190 bytes an entry with its cells, from the RSS rise of a 1 M-row and a 5 M-row CSV download). Each day of a big
 * property names tens of thousands of its queries, most of them seen on other days: at 200,000 a 5 M-row site with
 * 290,660 queries dropped its texts every few days and fetched ~0.4 texts per row again (a third of the export's CPU).
 */
export const EXPORT_DICTIONARY_CAP = 1_000_000;
/** Rows read or encoded per step of a download (one step is a few hundred µs). */
const STEP_ROWS = 1024;

/** Order of a search type code among the type names as text (discover, googleNews, image, news, video, web). */
const TYPE_RANK = [6, 6, 3, 5, 4, 1, 2];

/**
 * Each id of a site's dictionary (gsc_pages or gsc_queries) with its rank in text order, read once from the
 * (site_id, text) index (ids only: 4 bytes per entry, by id when the site's ids are dense, else in a map).
 */
class TextOrder {
  readonly size: number;
  private readonly min: number;
  private readonly dense: Int32Array | null = null;
  private readonly sparse: Map<number, number> | null = null;

  constructor(conn: Database, table: "gsc_pages" | "gsc_queries", column: "page" | "query", siteId: number) {
    // Read row by row into a typed array: values() would make an array per entry (tens of MB on a big site).
    let ids = new Float64Array(1024);
    let n = 0;
    const stmt = conn.prepare<{ id: number }, [number]>(`select id from ${table} where site_id = ? order by ${column}`);
    for (const r of stmt.iterate(siteId)) {
      if (n === ids.length) {
        const next = new Float64Array(n * 2);
        next.set(ids);
        ids = next;
      }
      ids[n++] = r.id;
    }
    stmt.finalize();
    ids = ids.subarray(0, n);
    this.size = n;
    let min = Number.POSITIVE_INFINITY;
    let max = -1;
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      if (id < min) min = id;
      if (id > max) max = id;
    }
    this.min = ids.length ? min : 0;
    if (max - this.min < 4 * ids.length + 1024) {
      this.dense = new Int32Array(ids.length ? max - this.min + 1 : 0).fill(-1);
      for (let r = 0; r < ids.length; r++) this.dense[ids[r]! - this.min] = r;
    } else {
      this.sparse = new Map();
      for (let r = 0; r < ids.length; r++) this.sparse.set(ids[r]!, r);
    }
  }

  /** The rank of `id` in text order. */
  rank(id: number): number {
    const r = this.dense ? (this.dense[id - this.min] ?? -1) : (this.sparse!.get(id) ?? -1);
    if (r < 0) throw new Error("export: a dictionary id of the detail has no text");
    return r;
  }
}

/**
 * Texts of one dictionary table (gsc_pages or gsc_queries), each at a slot found by its rank in text order (a typed
 * array, no hashing). Entries stay until more than `cap` are held; then the next day starts afresh (`generation`
 * changes, so encoders drop what they made per slot).
 */
class TextCache {
  readonly texts: string[] = [];
  generation = 0;
  /** The slot of each rank; -1: not held. */
  private readonly slotOfRank: Int32Array;
  private readonly fetch: Statement<unknown, [string]>;

  constructor(
    conn: Database,
    table: "gsc_pages" | "gsc_queries",
    column: "page" | "query",
    private readonly order: TextOrder,
    private readonly cap: number,
  ) {
    this.slotOfRank = new Int32Array(order.size).fill(-1);
    this.fetch = conn.prepare<unknown, [string]>(`select id, ${column} from ${table} where id in (select value from json_each(?))`);
  }

  /** The slot of each of the first `n` rows (`ids` and their `ranks`), texts fetched for those not held. */
  resolve(ids: Float64Array, ranks: Int32Array, n: number, slots: Int32Array): void {
    const slotOf = this.slotOfRank;
    let missing = this.missing(ids, ranks, n);
    if (missing.length) {
      if (this.texts.length + missing.length > this.cap && this.texts.length) {
        slotOf.fill(-1);
        this.texts.length = 0;
        this.generation++;
        missing = this.missing(ids, ranks, n);
      }
      let added = 0;
      for (const row of this.fetch.values(JSON.stringify(missing))) {
        slotOf[this.order.rank(row[0] as number)] = this.texts.length;
        this.texts.push(row[1] as string);
        added++;
      }
      if (added !== missing.length) throw new Error("export: a dictionary id of the detail has no text");
    }
    for (let i = 0; i < n; i++) slots[i] = slotOf[ranks[i]!]!;
  }

  /** The ids of the first `n` rows not held, each once (marked -2 until fetched). */
  private missing(ids: Float64Array, ranks: Int32Array, n: number): number[] {
    const slotOf = this.slotOfRank;
    const missing: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      if (slotOf[r] === -1) {
        slotOf[r] = -2;
        missing.push(ids[i]!);
      }
    }
    return missing;
  }
}

/** Growable columns of one day's rows (numbers as doubles: sums past 2^31 stay exact). */
class DayColumns {
  n = 0;
  cap = 0;
  type = new Float64Array(0);
  page = new Float64Array(0);
  query = new Float64Array(0);
  device = new Float64Array(0);
  clicks = new Float64Array(0);
  impressions = new Float64Array(0);
  sumPosition = new Float64Array(0);

  grow(): void {
    const cap = Math.max(4096, this.cap * 2);
    for (const k of ["type", "page", "query", "device", "clicks", "impressions", "sumPosition"] as const) {
      const next = new Float64Array(cap);
      next.set(this[k].subarray(0, this.n));
      this[k] = next;
    }
    this.cap = cap;
  }
}

/**
 * One day of the export, rows in the export's order: row `i` is column index `order[i]`; `pageSlot`/`querySlot`
 * index `pages.texts`/`queries.texts`.
 */
export type ExportDay = {
  day: number;
  /** The day as `YYYY-MM-DD`. */
  date: string;
  n: number;
  order: Int32Array;
  cols: DayColumns;
  pageSlot: Int32Array;
  querySlot: Int32Array;
  pages: { texts: string[]; generation: number };
  queries: { texts: string[]; generation: number };
};

/** A detail row as read (integers). */
type DetailRow = {
  day: number;
  type: number;
  page_id: number;
  query_id: number;
  device: number;
  clicks: number;
  impressions: number;
  sum_position: number;
};

/** Bits of a rank sorted per counting pass. */
const RADIX_BITS = 12;
const RADIX = 1 << RADIX_BITS;

/** Stable counting sort of `from` (row indexes) by `(key[row] >> shift) & mask` in 0..range-1 into `to`. */
function countingSort(
  from: Int32Array,
  to: Int32Array,
  n: number,
  key: Int32Array,
  shift: number,
  mask: number,
  range: number,
  counts: Int32Array,
): void {
  counts.fill(0, 0, range + 1);
  for (let i = 0; i < n; i++) counts[((key[from[i]!]! >> shift) & mask) + 1]!++;
  for (let r = 0; r < range; r++) counts[r + 1]! += counts[r]!;
  for (let i = 0; i < n; i++) {
    const row = from[i]!;
    to[counts[(key[row]! >> shift) & mask]!++] = row;
  }
}

/**
 * Reads the export's rows of `o` from SQLite a day at a time, in small steps: `step()` reads or orders up to
 * STEP_ROWS rows and returns a finished day when one is ready, `done` once every row was read.
 */
export class ExportDays {
  private readonly rows: IterableIterator<DetailRow>;
  private readonly stmt: Statement;
  private readonly pages: TextCache;
  private readonly queries: TextCache;
  private readonly pageOrder: TextOrder;
  private readonly queryOrder: TextOrder;
  private readonly cols = new DayColumns();
  private pending: DetailRow | null = null;
  private day = -1;
  done = false;
  private pageSlot = new Int32Array(0);
  private querySlot = new Int32Array(0);
  private keyA = new Int32Array(0);
  private keyB = new Int32Array(0);
  private keyC = new Int32Array(0);
  private orderA = new Int32Array(0);
  private orderB = new Int32Array(0);
  private counts = new Int32Array(0);

  constructor(conn: Database, o: ExportOptions, cap = EXPORT_DICTIONARY_CAP) {
    const where = ["site_id = ?"];
    const params: number[] = [o.siteId];
    if (o.start) {
      where.push("day >= ?");
      params.push(dayNumber(o.start));
    }
    if (o.end) {
      where.push("day <= ?");
      params.push(dayNumber(o.end));
    }
    if (o.searchType) {
      // An unknown search type is code 0, which no row has: an empty export (as exportQuery).
      where.push("type = ?");
      params.push(typeCode(o.searchType as SearchTypeCode));
    }
    this.stmt = conn.prepare(
      `select day, type, page_id, query_id, device, clicks, impressions, sum_position from gsc_query_detail
 where ${where.join(" and ")} order by site_id, day, type, page_id, query_id, device`,
    );
    this.rows = this.stmt.iterate(...params) as IterableIterator<DetailRow>;
    this.pageOrder = new TextOrder(conn, "gsc_pages", "page", o.siteId);
    this.queryOrder = new TextOrder(conn, "gsc_queries", "query", o.siteId);
    this.pages = new TextCache(conn, "gsc_pages", "page", this.pageOrder, cap);
    this.queries = new TextCache(conn, "gsc_queries", "query", this.queryOrder, cap);
  }

  /** Up to STEP_ROWS rows read; a day once all its rows are read and ordered. */
  step(): ExportDay | null {
    if (this.done) return null;
    const c = this.cols;
    for (let k = 0; k < STEP_ROWS; k++) {
      let r = this.pending;
      this.pending = null;
      if (!r) {
        const next = this.rows.next();
        if (next.done) {
          this.done = true;
          return c.n ? this.finishDay() : null;
        }
        r = next.value;
      }
      if (r.day !== this.day) {
        if (c.n) {
          this.pending = r;
          return this.finishDay();
        }
        this.day = r.day;
      }
      if (c.n === c.cap) c.grow();
      const i = c.n++;
      c.type[i] = r.type;
      c.page[i] = r.page_id;
      c.query[i] = r.query_id;
      c.device[i] = r.device;
      c.clicks[i] = r.clicks;
      c.impressions[i] = r.impressions;
      c.sumPosition[i] = r.sum_position;
    }
    return null;
  }

  private finishDay(): ExportDay {
    const c = this.cols;
    const n = c.n;
    if (this.pageSlot.length < n) {
      const cap = c.cap;
      this.pageSlot = new Int32Array(cap);
      this.querySlot = new Int32Array(cap);
      this.keyA = new Int32Array(cap);
      this.keyB = new Int32Array(cap);
      this.keyC = new Int32Array(cap);
      this.orderA = new Int32Array(cap);
      this.orderB = new Int32Array(cap);
    }
    // Keys: device and type name order (least significant), query text rank, page text rank (most significant);
    // the ranks sorted 12 bits at a time (low, then high), each pass stable.
    let devices = 1;
    const pageOrder = this.pageOrder;
    const queryOrder = this.queryOrder;
    for (let i = 0; i < n; i++) {
      const d = c.device[i]!;
      if (d + 1 > devices) devices = d + 1;
      this.keyA[i] = d * 8 + (TYPE_RANK[c.type[i]!] ?? 6);
      this.keyB[i] = queryOrder.rank(c.query[i]!);
      this.keyC[i] = pageOrder.rank(c.page[i]!);
    }
    this.pages.resolve(c.page, this.keyC, n, this.pageSlot);
    this.queries.resolve(c.query, this.keyB, n, this.querySlot);
    const high = Math.max(queryOrder.size, pageOrder.size) >> RADIX_BITS;
    const range = Math.max(devices * 8, RADIX, high + 1);
    if (this.counts.length < range + 1) this.counts = new Int32Array(range + 1);
    for (let i = 0; i < n; i++) this.orderB[i] = i;
    let from = this.orderB;
    let to = this.orderA;
    const pass = (key: Int32Array, shift: number, mask: number, size: number) => {
      countingSort(from, to, n, key, shift, mask, size, this.counts);
      [from, to] = [to, from];
    };
    pass(this.keyA, 0, -1, devices * 8);
    pass(this.keyB, 0, RADIX - 1, RADIX);
    if (queryOrder.size > RADIX) pass(this.keyB, RADIX_BITS, -1, (queryOrder.size >> RADIX_BITS) + 1);
    pass(this.keyC, 0, RADIX - 1, RADIX);
    if (pageOrder.size > RADIX) pass(this.keyC, RADIX_BITS, -1, (pageOrder.size >> RADIX_BITS) + 1);
    if (from !== this.orderA) {
      this.orderB = this.orderA;
      this.orderA = from;
    }
    const day: ExportDay = {
      day: this.day,
      date: dayDate(this.day),
      n,
      order: this.orderA,
      cols: c,
      pageSlot: this.pageSlot,
      querySlot: this.querySlot,
      pages: this.pages,
      queries: this.queries,
    };
    return day;
  }

  /** Starts the next day's columns (after the encoder is done with the day returned). */
  nextDay(): void {
    this.cols.n = 0;
  }

  /** Lets the statement go (its read snapshot with it). */
  close(): void {
    this.rows.return?.();
    this.stmt.finalize();
  }
}

/** Device texts by code. */
export const DEVICE_TEXT = ["", "DESKTOP", "MOBILE", "TABLET"];
/** Search type texts by code (0: none). */
export const TYPE_TEXT = [undefined, "web", "image", "video", "news", "discover", "googleNews"];

/** A day's encoder: writes rows `from`..`to` (export order) of a day. */
export type DayEncoder = {
  write(day: ExportDay, from: number, to: number): void;
  ready(): number;
  take(end: boolean): Uint8Array | null;
};

/** ctr cells kept per encoder beyond the small pairs' table (a few MB at most). */
const NUMBER_CELLS = 131_072;
/** Bytes of output gathered per chunk. */
const CHUNK_BYTES = 256 * 1024;
/** ctr cells of (clicks, impressions) pairs below these bounds are found in a table (no hashing). */
const SMALL_CLICKS = 32;
const SMALL_IMPRESSIONS = 8192;
/** Position cells of one-impression rows with a sum below this are found in a table. */
const SMALL_SUMS = 32_768;
const encoder = new TextEncoder();

/** UTF-8 bytes of a text. */
const utf8 = (s: string) => encoder.encode(s);

/**
 * Cells (UTF-8 bytes, usually with their trailing comma) kept end to end in one byte array, each found by a key
 * (a dictionary slot, a number): its offset and length. Copying from one array costs less per row than from an
 * object per cell scattered over the heap.
 */
class CellArena {
  bytes = Buffer.allocUnsafeSlow(1 << 16);
  used = 0;
  /** Offset of each key's cell (-1: not made yet) and its length. */
  at = new Int32Array(0);
  len = new Int32Array(0);
  generation = -1;

  /** Room for keys below `size`. */
  keys(size: number): void {
    if (this.at.length >= size) return;
    const cap = Math.max(size, this.at.length * 2, 1024);
    const at = new Int32Array(cap).fill(-1);
    at.set(this.at);
    const len = new Int32Array(cap);
    len.set(this.len);
    this.at = at;
    this.len = len;
  }

  /** Forgets every cell. */
  clear(): void {
    this.at.fill(-1);
    this.used = 0;
  }

  /** Stores `text`'s UTF-8 bytes as the cell of `key`; returns its offset. */
  add(key: number, text: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.used + text.length * 3 > this.bytes.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + text.length * 3));
      next.set(this.bytes.subarray(0, this.used));
      this.bytes = next;
    }
    const at = this.used;
    const n = encoder.encodeInto(text, this.bytes.subarray(at)).written;
    this.at[key] = at;
    this.len[key] = n;
    this.used += n;
    return at;
  }
}

/** Writes the digits of a non-negative integer below 1e15 at `p` of `b`; returns the position after them. */
function writeDigits(b: Uint8Array, p: number, v: number): number {
  if (v < 10) {
    b[p] = 48 + v;
    return p + 1;
  }
  let len = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) len++;
  let at = p + len;
  let x = v;
  while (x >= 1) {
    const q = Math.floor(x / 10);
    b[--at] = 48 + (x - q * 10);
    x = q;
  }
  return p + len;
}

/** Writes an ASCII text at `p` of `b`; returns the position after it. */
function writeAscii(b: Uint8Array, p: number, s: string): number {
  for (let k = 0; k < s.length; k++) b[p++] = s.charCodeAt(k);
  return p;
}

/** Copies `n` bytes of `from` at `at` to `p` of `b`; returns the position after them. */
function copyBytes(b: Uint8Array, p: number, from: Uint8Array, at: number, n: number): number {
  for (let k = 0; k < n; k++) b[p + k] = from[at + k]!;
  return p + n;
}

/**
 * The export as CSV bytes, exactly as csvLine writes each row (`header` first): text cells made once per text
 * (per page, query, day, device and type) and per small ctr or one-impression position, kept in cell arenas; other
 * numbers written digit by digit.
 */
export function csvDays(header: string, raw: boolean): DayEncoder {
  let buf = Buffer.allocUnsafeSlow(CHUNK_BYTES + 4096);
  let pos = 0;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const flush = (room: number) => {
    if (pos) {
      chunks.push(buf.subarray(0, pos));
      size += pos;
    }
    // Not zeroed: every byte handed out is written first.
    buf = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES + 4096, room * 2));
    pos = 0;
  };
  const head = utf8(header);
  if (head.length > buf.length) flush(head.length);
  buf.set(head, pos);
  pos += head.length;
  // Page and query cells with their trailing comma, by dictionary slot (dropped when the dictionary starts afresh).
  const pageCells = new CellArena();
  const queryCells = new CellArena();
  // Device and type cells by device * 8 + type; the day's date cell.
  const dtCells = new CellArena();
  dtCells.keys(64);
  let lastDay = -1;
  let dateCell = new Uint8Array(0);
  // ctr cells (with the comma) by (clicks, impressions): small pairs in a table, others in a map dropped when full.
  const ratioCells = new CellArena();
  ratioCells.keys(SMALL_CLICKS * SMALL_IMPRESSIONS);
  const ratioMap = new Map<number, Uint8Array>();
  // Position cells of one-impression rows by sum.
  const positionCells = new CellArena();
  positionCells.keys(SMALL_SUMS);
  const cellsOf = (a: CellArena, texts: { texts: string[]; generation: number }) => {
    if (texts.generation !== a.generation) {
      a.generation = texts.generation;
      a.clear();
    }
    a.keys(texts.texts.length);
  };
  return {
    write(d, from, to) {
      cellsOf(pageCells, d.pages);
      cellsOf(queryCells, d.queries);
      if (d.day !== lastDay) {
        lastDay = d.day;
        dateCell = utf8(`${csvField(d.date, raw)},`);
      }
      const pageTexts = d.pages.texts;
      const queryTexts = d.queries.texts;
      const { order, pageSlot, querySlot, cols } = d;
      const { device: devices, type: types, clicks: clickCol, impressions: impressionCol, sumPosition } = cols;
      const pageAt = pageCells.at;
      const pageLen = pageCells.len;
      const queryAt = queryCells.at;
      const queryLen = queryCells.len;
      const dtAt = dtCells.at;
      const dtLen = dtCells.len;
      const ratioAt = ratioCells.at;
      const ratioLen = ratioCells.len;
      const positionAt = positionCells.at;
      const positionLen = positionCells.len;
      const date = dateCell;
      const dateLen = date.length;
      let b = buf;
      let p = pos;
      for (let i = from; i < to; i++) {
        const row = order[i]!;
        const ps = pageSlot[row]!;
        const qs = querySlot[row]!;
        let pa = pageAt[ps]!;
        if (pa < 0) pa = pageCells.add(ps, `${csvField(pageTexts[ps]!, raw)},`);
        let qa = queryAt[qs]!;
        if (qa < 0) qa = queryCells.add(qs, `${csvField(queryTexts[qs]!, raw)},`);
        const device = devices[row]!;
        const type = types[row]!;
        const dtKey = device * 8 + type;
        let dta = dtAt[dtKey]!;
        if (dta < 0) dta = dtCells.add(dtKey, `${csvField(DEVICE_TEXT[device] ?? "", raw)},${csvField(TYPE_TEXT[type], raw)},`);
        const pl = pageLen[ps]!;
        const ql = queryLen[qs]!;
        if (p + pl + ql + 200 > b.length) {
          pos = p;
          flush(pl + ql + 200);
          b = buf;
          p = pos;
        }
        p = copyBytes(b, p, date, 0, dateLen);
        // Buffer's copy (a native memcpy) costs less than a byte loop for a page or query cell.
        p += pageCells.bytes.copy(b, p, pa, pa + pl);
        p += queryCells.bytes.copy(b, p, qa, qa + ql);
        p = copyBytes(b, p, dtCells.bytes, dta, dtLen[dtKey]!);
        const clicks = clickCol[row]!;
        const impressions = impressionCol[row]!;
        const whole = clicks >= 0 && clicks < 1e15 && impressions >= 0 && impressions < 1e15;
        if (whole && Number.isInteger(clicks) && Number.isInteger(impressions)) {
          p = writeDigits(b, p, clicks);
          b[p++] = 44;
          p = writeDigits(b, p, impressions);
        } else {
          p = writeAscii(b, p, `${csvField(clicks)},${csvField(impressions)}`);
        }
        b[p++] = 44;
        if (impressions > 0) {
          // ctr and position as String(number) writes them.
          if (clicks < SMALL_CLICKS && impressions < SMALL_IMPRESSIONS && Number.isInteger(clicks) && Number.isInteger(impressions)) {
            const key = clicks * SMALL_IMPRESSIONS + impressions;
            let ra = ratioAt[key]!;
            if (ra < 0) ra = ratioCells.add(key, `${String(clicks / impressions)},`);
            p = copyBytes(b, p, ratioCells.bytes, ra, ratioLen[key]!);
          } else {
            const small = impressions < 0x1000000;
            const ctrKey = small && clicks < 0x20000000 ? clicks * 0x1000000 + impressions : -1;
            let ctr = ctrKey >= 0 ? ratioMap.get(ctrKey) : undefined;
            if (!ctr) {
              ctr = utf8(`${String(clicks / impressions)},`);
              if (ctrKey >= 0) {
                if (ratioMap.size >= NUMBER_CELLS) ratioMap.clear();
                ratioMap.set(ctrKey, ctr);
              }
            }
            p = copyBytes(b, p, ctr, 0, ctr.length);
          }
          const sum = sumPosition[row]!;
          if (impressions === 1 && sum >= 0 && sum < SMALL_SUMS && Number.isInteger(sum)) {
            let sa = positionAt[sum]!;
            if (sa < 0) sa = positionCells.add(sum, String(sum / 100 / 1));
            p = copyBytes(b, p, positionCells.bytes, sa, positionLen[sum]!);
          } else p = writeAscii(b, p, String(sum / 100 / impressions));
        } else {
          b[p++] = 48;
          b[p++] = 44;
          b[p++] = 48;
        }
        b[p++] = 13;
        b[p++] = 10;
        if (p >= CHUNK_BYTES) {
          pos = p;
          flush(0);
          b = buf;
          p = pos;
        }
      }
      pos = p;
    },
    ready: () => size,
    take(end) {
      if (end && pos) flush(0);
      if (!size) return null;
      const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      chunks.length = 0;
      size = 0;
      return out;
    },
  };
}

/** The CSV line of one export row as csvLine writes it (the reference the fast encoder is tested against). */
export const exportCsvLine = (r: Record<string, string | number>, raw: boolean) =>
  csvLine([r.date, r.page, r.query, r.device, r.search_type, r.clicks, r.impressions, r.ctr, r.position], raw);

/** A download's steps over ExportDays (see streamSteps): a step reads or encodes up to STEP_ROWS rows. */
export function exportDaySteps(conn: Database, o: ExportOptions, out: DayEncoder, cap = EXPORT_DICTIONARY_CAP): DownloadSteps {
  const days = new ExportDays(conn, o, cap);
  let day: ExportDay | null = null;
  let at = 0;
  return {
    step() {
      if (day) {
        const to = Math.min(day.n, at + STEP_ROWS);
        out.write(day, at, to);
        at = to;
        if (at >= day.n) {
          day = null;
          days.nextDay();
        }
        return true;
      }
      if (days.done) return false;
      day = days.step();
      at = 0;
      return true;
    },
    ready: () => out.ready(),
    take: (end) => out.take(end),
    close: () => days.close(),
  };
}

/** The export's columns as Parquet types (the CSV's columns, in its order). */
export const EXPORT_PARQUET: readonly (readonly [string, ParquetKind])[] = [
  ["date", "date"],
  ["page", "free-text"],
  ["query", "free-text"],
  ["device", "text"],
  ["search_type", "text"],
  ["clicks", "int"],
  ["impressions", "int"],
  ["ctr", "double"],
  ["position", "double"],
];
