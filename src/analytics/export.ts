import type { Database, Statement } from "bun:sqlite";
import type { SearchTypeCode } from "../db/enums.ts";
import { dayDate, dayNumber, typeCode } from "../sync/grains.ts";
import { csvField, csvLine } from "./format.ts";
import type { ParquetKind } from "./parquet.ts";
import type { ExportOptions } from "./queries.ts";
import type { DownloadSteps } from "./stream.ts";

// The SQLite export read without SQL text joins or sorts (issue 18 item 5): the detail's integers are read in key
// order (site, day, type, page_id, query_id, device), a day at a time; each page and query id's rank in text order
// (SQLite's BINARY: UTF-8 bytes) is read once per download from the dictionary's (site_id, text) index, a text
// fetched when a day names it and it is not held (TextCache); each day's rows are put in the export's order (date, page, query, device, search_type, as
// exportQuery's ORDER BY) by counting sorts on those ranks (12 bits a pass). Encoders then write bytes per row from
// values made once per text or day. Same rows, same order and same bytes as exportQuery's text
// (test/export-fast.test.ts compares them).

/**
 * Dictionary texts held across days per dictionary (pages, queries): past it, the texts named least recently are
 * dropped (see TextCache). Held texts live as the encoder's cells (UTF-8 bytes, ~50-110 bytes an entry); besides
 * them 16-24 bytes per dictionary entry (rank order, last use, cell offsets) whether held or not. The 5 M-row bench
 * property (290,660 queries, ~32,000 a day) fits without a drop.
 */
export const EXPORT_DICTIONARY_CAP = 400_000;
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

  /** The ranks of the first `n` of `ids` into `out` (one loop over the dense table: no call per id). */
  ranks(ids: Float64Array, out: Int32Array, n: number): void {
    const dense = this.dense;
    if (!dense) {
      for (let i = 0; i < n; i++) out[i] = this.rank(ids[i]!);
      return;
    }
    const min = this.min;
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const r = dense[ids[i]! - min] ?? -1;
      out[i] = r;
      bad |= r;
    }
    if (bad < 0) throw new Error("export: a dictionary id of the detail has no text");
  }
}

/**
 * Which texts of one dictionary table (gsc_pages or gsc_queries) are held, by rank in text order: each day's texts
 * not held are fetched in one statement and given to the encoder once (`fresh`, that day only), which keeps what it
 * needs of them (its cells) while they are held (`lastUse[rank]` not 0). Past `cap` held, the texts not named since
 * the oldest days are dropped, the newest days' kept up to half the cap (a day's own texts always): a big property's
 * recurring texts stay held, and a text is fetched again only after going unnamed longer than the rest. After a
 * drop (`drops` changes) encoders let go of the cells of ranks no longer held.
 */
export class TextCache {
  /** The texts fetched for the current day, by rank. */
  readonly fresh = new Map<number, string>();
  /** The day (resolve count) each rank was last named in; 0: not held. */
  readonly lastUse: Int32Array;
  /** Ranks in all. */
  readonly size: number;
  /** Times texts were dropped. */
  drops = 0;
  private use = 0;
  private held = 0;
  private readonly fetch: Statement<unknown, [string]>;

  constructor(
    conn: Database,
    table: "gsc_pages" | "gsc_queries",
    column: "page" | "query",
    private readonly order: TextOrder,
    private readonly cap: number,
  ) {
    this.size = order.size;
    this.lastUse = new Int32Array(order.size);
    this.fetch = conn.prepare<unknown, [string]>(`select id, ${column} from ${table} where id in (select value from json_each(?))`);
  }

  /** The text of `rank`, fetched for the current day. */
  text(rank: number): string {
    const t = this.fresh.get(rank);
    if (t === undefined) throw new Error("export: a dictionary text was asked for after the day it was fetched for");
    return t;
  }

  /** A new day of the first `n` rows (`ids` and their `ranks`): the texts not held fetched into `fresh`. */
  resolve(ids: Float64Array, ranks: Int32Array, n: number): void {
    const use = ++this.use;
    const lastUse = this.lastUse;
    this.fresh.clear();
    const missing: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      const u = lastUse[r]!;
      if (u !== use) {
        if (u === 0) missing.push(ids[i]!);
        lastUse[r] = use;
      }
    }
    if (!missing.length) return;
    if (this.held + missing.length > this.cap) this.drop(use);
    for (const row of this.fetch.values(JSON.stringify(missing))) this.fresh.set(this.order.rank(row[0] as number), row[1] as string);
    if (this.fresh.size !== missing.length) throw new Error("export: a dictionary id of the detail has no text");
    this.held += missing.length;
  }

  /** Drops the texts named least recently: kept are day `use`'s and the newest days' while within half the cap. */
  private drop(use: number): void {
    const lastUse = this.lastUse;
    const count = new Float64Array(use + 1);
    for (let r = 0; r < lastUse.length; r++) count[lastUse[r]!]!++;
    let kept = count[use]!;
    let from = use;
    while (from > 1 && kept + count[from - 1]! <= this.cap / 2) kept += count[--from]!;
    for (let r = 0; r < lastUse.length; r++) {
      const u = lastUse[r]!;
      if (u === 0 || u >= from) continue;
      lastUse[r] = 0;
      this.held--;
    }
    this.drops++;
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
 * One day of the export, rows in the export's order: row `i` is column index `order[i]`; `pageRank`/`queryRank`
 * (by column index) index `pages.texts`/`queries.texts`, each of the day's texts held.
 */
export type ExportDay = {
  day: number;
  /** The day as `YYYY-MM-DD`. */
  date: string;
  n: number;
  order: Int32Array;
  cols: DayColumns;
  pageRank: Int32Array;
  queryRank: Int32Array;
  pages: TextCache;
  queries: TextCache;
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
    if (this.keyA.length < n) {
      const cap = c.cap;
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
    }
    queryOrder.ranks(c.query, this.keyB, n);
    pageOrder.ranks(c.page, this.keyC, n);
    this.pages.resolve(c.page, this.keyC, n);
    this.queries.resolve(c.query, this.keyB, n);
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
      pageRank: this.keyC,
      queryRank: this.keyB,
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

/**
 * A day's encoder: writes rows `from`..`to` (export order) of a day; all of a day's rows before the next day's. A
 * text is given once (TextCache's `fresh`, on the day it is fetched): the encoder keeps what it needs of it while
 * the dictionary holds it.
 */
export type DayEncoder = {
  write(day: ExportDay, from: number, to: number): void;
  ready(): number;
  take(end: boolean): Uint8Array | null;
  /** The consumer is done with a chunk `take` returned (see DownloadSteps.recycle): its memory may be written again. */
  recycle?(chunk: Uint8Array): void;
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
 * (a dictionary rank, a number): its offset and length side by side (one cache line per cell found). Copying from
 * one array costs less per row than from an object per cell scattered over the heap.
 */
export class CellArena {
  bytes = Buffer.allocUnsafeSlow(1 << 16);
  used = 0;
  /** Offset of key k's cell at 2k (-1: not made yet), its length at 2k + 1. */
  cell = new Int32Array(0);
  /** The `drops` of the dictionary last synced with. */
  private drops = 0;

  /** Room for keys below `size`. */
  keys(size: number): void {
    if (this.cell.length >= 2 * size) return;
    const cap = Math.max(size, this.cell.length, 1024);
    const cell = new Int32Array(2 * cap).fill(-1);
    cell.set(this.cell);
    this.cell = cell;
  }

  /** Before a day of dictionary `t`: room for its ranks; after a drop, only the cells of texts still held kept. */
  sync(t: TextCache): void {
    this.keys(t.size);
    if (t.drops === this.drops) return;
    this.drops = t.drops;
    const cell = this.cell;
    const lastUse = t.lastUse;
    let live = 0;
    for (let k = 0; k < t.size; k++) {
      if (cell[2 * k]! < 0) continue;
      if (lastUse[k] === 0) cell[2 * k] = -1;
      else live += cell[2 * k + 1]!;
    }
    const next = Buffer.allocUnsafeSlow(Math.max(1 << 16, Math.ceil(live * 1.25)));
    let used = 0;
    for (let k = 0; k < t.size; k++) {
      const at = cell[2 * k]!;
      if (at < 0) continue;
      const n = cell[2 * k + 1]!;
      this.bytes.copy(next, used, at, at + n);
      cell[2 * k] = used;
      used += n;
    }
    this.bytes = next;
    this.used = used;
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
    this.cell[2 * key] = at;
    this.cell[2 * key + 1] = n;
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
  // The chunk last handed out whole by take, and one given back by recycle (written again instead of new memory:
  // fresh memory faults its pages in as it is written, ~0.2 µs a row of system time).
  let lent: ArrayBufferLike | null = null;
  let spare: Buffer<ArrayBuffer> | null = null;
  const flush = (room: number) => {
    if (pos) {
      chunks.push(buf.subarray(0, pos));
      size += pos;
    }
    const want = Math.max(CHUNK_BYTES + 4096, room * 2);
    // Not zeroed: every byte handed out is written first.
    buf = spare && spare.length >= want ? spare : Buffer.allocUnsafeSlow(want);
    spare = null;
    pos = 0;
  };
  const head = utf8(header);
  if (head.length > buf.length) flush(head.length);
  buf.set(head, pos);
  pos += head.length;
  // Page and query cells with their trailing comma, by dictionary rank (kept while the dictionary holds the text).
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
  return {
    write(d, from, to) {
      pageCells.sync(d.pages);
      queryCells.sync(d.queries);
      if (d.day !== lastDay) {
        lastDay = d.day;
        dateCell = utf8(`${csvField(d.date, raw)},`);
      }
      const { pages, queries } = d;
      const { order, pageRank, queryRank, cols } = d;
      const { device: devices, type: types, clicks: clickCol, impressions: impressionCol, sumPosition } = cols;
      const pageCell = pageCells.cell;
      const queryCell = queryCells.cell;
      const dtCell = dtCells.cell;
      const ratioCell = ratioCells.cell;
      const positionCell = positionCells.cell;
      const date = dateCell;
      const dateLen = date.length;
      let b = buf;
      let p = pos;
      for (let i = from; i < to; i++) {
        const row = order[i]!;
        const ps = 2 * pageRank[row]!;
        const qs = 2 * queryRank[row]!;
        let pa = pageCell[ps]!;
        if (pa < 0) pa = pageCells.add(ps >> 1, `${csvField(pages.text(ps >> 1), raw)},`);
        let qa = queryCell[qs]!;
        if (qa < 0) qa = queryCells.add(qs >> 1, `${csvField(queries.text(qs >> 1), raw)},`);
        const device = devices[row]!;
        const type = types[row]!;
        const dtKey = device * 8 + type;
        let dta = dtCell[2 * dtKey]!;
        if (dta < 0) dta = dtCells.add(dtKey, `${csvField(DEVICE_TEXT[device] ?? "", raw)},${csvField(TYPE_TEXT[type], raw)},`);
        const pl = pageCell[ps + 1]!;
        const ql = queryCell[qs + 1]!;
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
        p = copyBytes(b, p, dtCells.bytes, dta, dtCell[2 * dtKey + 1]!);
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
            let ra = ratioCell[2 * key]!;
            if (ra < 0) ra = ratioCells.add(key, `${String(clicks / impressions)},`);
            p = copyBytes(b, p, ratioCells.bytes, ra, ratioCell[2 * key + 1]!);
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
            let sa = positionCell[2 * sum]!;
            if (sa < 0) sa = positionCells.add(sum, String(sum / 100 / 1));
            p = copyBytes(b, p, positionCells.bytes, sa, positionCell[2 * sum + 1]!);
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
      lent = chunks.length === 1 ? out.buffer : null;
      chunks.length = 0;
      size = 0;
      return out;
    },
    recycle(chunk) {
      // Only a chunk of this encoder's own memory (Buffer.concat's may be a shared pool's).
      if (chunk.buffer !== lent) return;
      lent = null;
      spare = Buffer.from(chunk.buffer as ArrayBuffer);
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
    recycle: (chunk) => out.recycle?.(chunk),
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
