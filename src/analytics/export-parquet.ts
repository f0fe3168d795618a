import type { ColumnChunk, ColumnMetaData, FileMetaData, RowGroup, Statistics } from "hyparquet";
import { CellArena, DEVICE_TEXT, type DayEncoder, EXPORT_PARQUET, type ExportDay, type TextCache, TYPE_TEXT } from "./export.ts";
import { chunkWriter, PARQUET_GROUP_ROWS, parquetSchema } from "./parquet.ts";

// The SQLite export's Parquet file written column by column for its nine fixed columns (issue 18 item 5), from
// hyparquet-writer's own page header and footer modules (the RLE/bit-packing hybrid written here as its encoding.js
// writes it; Snappy: the snappyjs package's compressor): ParquetWriter's generic path builds a
// dictionary with a Map per value and statistics per value (~2 of the ~3 µs a row it cost). Here the rows arrive
// as the export's dictionary ranks and typed arrays, so a row group's page and query dictionaries come from a
// stamp per rank, the small counts' from a table, min/max from the typed arrays, and the doubles are their own
// bytes. The file reads back as ParquetWriter writes EXPORT_PARQUET (test/export-fast.test.ts): the same schema,
// row groups and values; only the encodings chosen may differ.

/** hyparquet-writer's modules used here, loaded by the first Parquet download (as parquet.ts's writer). */
function loadModules() {
  return {
    ...(require("hyparquet-writer/src/datapage.js") as typeof import("hyparquet-writer/src/datapage.js")),
    ...(require("hyparquet-writer/src/metadata.js") as typeof import("hyparquet-writer/src/metadata.js")),
    // snappyjs's compressor itself: its `compress` allocates an output of the largest size and copies the result
    // out of it (two fresh buffers a page); here each page is compressed into one buffer kept across pages.
    SnappyCompressor: (require("snappyjs/snappy_compressor.js") as { SnappyCompressor: SnappyCompressorClass }).SnappyCompressor,
  };
}
type SnappyCompressorClass = new (input: Uint8Array) => { maxCompressedLength(): number; compressToBuffer(out: Uint8Array): number };
let modules: ReturnType<typeof loadModules> | null = null;

const encoder = new TextEncoder();
/** Whether this machine's typed arrays are little-endian (Parquet's byte order): doubles are then copied as they are. */
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;
/** Counts below this take their dictionary index from a table; larger ones from a Map. */
const SMALL_COUNT = 65_536;

/** Bits per dictionary index of a dictionary of `size` entries. */
const bitWidthOf = (size: number) => (size <= 1 ? 0 : 32 - Math.clz32(size - 1));

/** A growable byte buffer for one page's values. */
export class Bytes {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  at = 0;
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  /** A PLAIN BYTE_ARRAY value: its length (4 bytes) then its bytes. */
  byteArray(b: Uint8Array): void {
    this.room(4 + b.length);
    this.view.setUint32(this.at, b.length, true);
    this.buf.set(b, this.at + 4);
    this.at += 4 + b.length;
  }
  /** A PLAIN BYTE_ARRAY value of `n` bytes of `from` at `at`. */
  byteArrayOf(from: Buffer, at: number, n: number): void {
    this.room(4 + n);
    this.view.setUint32(this.at, n, true);
    from.copy(this.buf, this.at + 4, at, at + n);
    this.at += 4 + n;
  }
  /** A PLAIN INT64 value (an integer in a double, as read from SQLite). */
  int64(v: number): void {
    this.room(8);
    if (v >= 0 && v < 2 ** 53) {
      this.view.setUint32(this.at, v % 2 ** 32, true);
      this.view.setUint32(this.at + 4, Math.floor(v / 2 ** 32), true);
    } else this.view.setBigInt64(this.at, BigInt(v), true);
    this.at += 8;
  }
  int32(v: number): void {
    this.room(4);
    this.view.setInt32(this.at, v, true);
    this.at += 4;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * A text dictionary column (page, query): each row's index into the group's dictionary, whose PLAIN values are
 * written as each text first appears in the group. Keyed by the export dictionary's rank, so the file does not
 * depend on what the export's dictionary holds.
 */
class TextColumn {
  /** Group dictionary index of each rank, valid where `stamp[rank] === epoch`. */
  local = new Int32Array(0);
  stamp = new Int32Array(0);
  epoch = 1;
  /** UTF-8 bytes per rank, kept across groups while the export's dictionary holds the text. */
  readonly cells = new CellArena();
  /** The group dictionary's values and size. */
  readonly dict = new Bytes();
  size = 0;
  index: Int32Array;
  constructor(rows: number) {
    this.index = new Int32Array(rows);
  }
  /** Before a day's rows of `texts`: room for its ranks, the cells of dropped texts let go. */
  prepare(texts: TextCache): void {
    this.cells.sync(texts);
    if (this.stamp.length < texts.size) {
      this.stamp = new Int32Array(texts.size);
      this.local = new Int32Array(texts.size);
      this.epoch++;
    }
  }
  /** Row `k` of the group is the text of rank `rank` (of `texts`). */
  put(k: number, rank: number, texts: TextCache): void {
    if (this.stamp[rank] !== this.epoch) {
      this.stamp[rank] = this.epoch;
      this.local[rank] = this.size++;
      const cells = this.cells;
      let at = cells.cell[2 * rank]!;
      if (at < 0) at = cells.add(rank, texts.text(rank));
      this.dict.byteArrayOf(cells.bytes, at, cells.cell[2 * rank + 1]!);
    }
    this.index[k] = this.local[rank]!;
  }
  /** A new row group: an empty dictionary. */
  reset(): void {
    this.dict.at = 0;
    this.size = 0;
    this.epoch++;
  }
}

/** Appends `value` as an unsigned LEB128 varint (as hyparquet-writer's ByteWriter.appendVarInt). */
function varInt(b: Bytes, value: number): void {
  while ((value & ~0x7f) !== 0) {
    b.buf[b.at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  b.buf[b.at++] = value;
}

/**
 * The first `count` of `values` in Parquet's RLE/bit-packing hybrid at `bitWidth`, appended to `b`: the runs
 * hyparquet-writer's writeRleBitPackedHybrid chooses (an RLE run for 8 or more equal values, else groups of 8
 * bit-packed), so the same bytes, written into one array instead of a byte at a time through a DataView.
 */
export function writeHybrid(b: Bytes, values: Int32Array | Uint8Array, count: number, bitWidth: number): void {
  // At most a varint header (5 bytes) and bitWidth bytes (or an RLE run's value) per 8 values.
  b.room((Math.ceil(count / 8) + 1) * (bitWidth + 10));
  const buf = b.buf;
  const mask = (1 << bitWidth) - 1;
  const width = (bitWidth + 7) >> 3;
  let groups = 0;
  let packedStart = 0;
  const pack = () => {
    varInt(b, (groups << 1) | 1);
    if (bitWidth === 0) return;
    let at = b.at;
    let bits = 0;
    let used = 0;
    const end = packedStart + groups * 8;
    for (let i = packedStart; i < end; i++) {
      bits |= (i < count ? values[i]! & mask : 0) << used;
      used += bitWidth;
      while (used >= 8) {
        buf[at++] = bits & 0xff;
        bits >>>= 8;
        used -= 8;
      }
    }
    if (used > 0) buf[at++] = bits & 0xff;
    b.at = at;
  };
  let i = 0;
  while (i < count) {
    const first = values[i]!;
    let run = 1;
    while (i + run < count && values[i + run] === first) run++;
    if (run >= 8) {
      if (groups) {
        pack();
        groups = 0;
      }
      varInt(b, run << 1);
      for (let j = 0; j < width; j++) buf[b.at++] = (first >> (j << 3)) & 0xff;
      i += run;
    } else {
      if (groups === 0) packedStart = i;
      groups++;
      i += 8;
    }
  }
  if (groups) pack();
}

/** Min/max of a group's counts or doubles (null when `n` is 0), NaNs counted apart (Parquet leaves them out). */
function range(values: Float64Array, n: number): { min: number; max: number; nan: number } {
  let min = Infinity;
  let max = -Infinity;
  let nan = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    if (Number.isNaN(v)) nan++;
  }
  return { min, max, nan };
}

/** Statistics as hyparquet-writer's footer writer takes them (a zero minimum as -0, a zero maximum as +0). */
function stats(min: number | string | undefined, max: number | string | undefined, nulls: number, nan?: number): Statistics {
  const s: Statistics & { nan_count?: bigint } = {
    min_value: min === 0 ? -0 : min,
    max_value: max === 0 ? 0 : max,
    null_count: BigInt(nulls),
  };
  if (nan !== undefined) s.nan_count = BigInt(nan);
  return s;
}

/**
 * The export as Parquet (EXPORT_PARQUET's columns and schema), a row group every `groupRows` rows: page, query,
 * date, device, search type, clicks and impressions dictionary-encoded, ctr and position PLAIN; each page snappy.
 */
export function parquetDays(groupRows = PARQUET_GROUP_ROWS): DayEncoder {
  const m = (modules ??= loadModules());
  const out = chunkWriter();
  const schema = parquetSchema(EXPORT_PARQUET);
  const rowGroups: RowGroup[] = [];
  let totalRows = 0n;
  out.appendUint32(0x31524150); // PAR1
  const page = new TextColumn(groupRows);
  const query = new TextColumn(groupRows);
  const day = new Int32Array(groupRows);
  const dt = new Uint8Array(groupRows); // device * 8 + type
  const clicks = new Float64Array(groupRows);
  const impressions = new Float64Array(groupRows);
  const ctr = new Float64Array(groupRows);
  const position = new Float64Array(groupRows);
  let count = 0;
  // Scratch reused by every group.
  const index = new Int32Array(groupRows);
  const levels = new Uint8Array(groupRows);
  const smallLocal = new Int32Array(SMALL_COUNT);
  const smallStamp = new Int32Array(SMALL_COUNT);
  let smallEpoch = 0;
  const dictValues = new Bytes();
  const levelBytes = new Bytes();
  const pageBytes = new Bytes();
  let compressed = new Uint8Array(1 << 16);
  /** `payload` snappy-compressed (a view of `compressed`, valid until the next page). */
  const compress = (payload: Uint8Array): Uint8Array => {
    const c = new m.SnappyCompressor(payload);
    const max = c.maxCompressedLength();
    if (compressed.length < max) compressed = new Uint8Array(Math.max(max, compressed.length * 2));
    return compressed.subarray(0, c.compressToBuffer(compressed));
  };

  /** Writes one page (its header, the levels as they are, the values snappy-compressed); its uncompressed size. */
  const writePage = (
    header: "dictionary" | "data",
    payload: Uint8Array,
    n: number,
    dictOrEncoding: number | "PLAIN" | "RLE_DICTIONARY",
    nulls: number,
  ) => {
    const packed = compress(payload);
    const start = out.offset;
    if (header === "dictionary") {
      m.writePageHeader(out, {
        type: "DICTIONARY_PAGE",
        uncompressed_page_size: payload.length,
        compressed_page_size: packed.length,
        dictionary_page_header: { num_values: dictOrEncoding as number, encoding: "PLAIN" },
      });
      out.appendBytes(packed);
      return out.offset - start - packed.length + payload.length;
    }
    // Definition levels (every column is OPTIONAL): one RLE run of 1s when nothing is null.
    levelBytes.at = 0;
    if (nulls) writeHybrid(levelBytes, levels, n, 1);
    else {
      levelBytes.room(8);
      varInt(levelBytes, n << 1);
      levelBytes.buf[levelBytes.at++] = 1;
    }
    const levelLength = levelBytes.at;
    m.writePageHeader(out, {
      type: "DATA_PAGE_V2",
      uncompressed_page_size: levelLength + payload.length,
      compressed_page_size: levelLength + packed.length,
      data_page_header_v2: {
        num_values: n,
        num_nulls: nulls,
        num_rows: n,
        encoding: dictOrEncoding as "PLAIN" | "RLE_DICTIONARY",
        definition_levels_byte_length: levelLength,
        repetition_levels_byte_length: 0,
        is_compressed: true,
      },
    });
    const headerSize = out.offset - start;
    out.appendBytes(levelBytes.bytes());
    out.appendBytes(packed);
    return headerSize + levelLength + payload.length;
  };

  /** Writes a column chunk: a dictionary page then indexes, or PLAIN values; returns its footer entry. */
  const writeChunk = (
    column: number,
    n: number,
    body: { dict: Uint8Array; size: number; index: Int32Array; valued: number } | { plain: Uint8Array },
    nulls: number,
    statistics?: Statistics,
  ): ColumnChunk => {
    const [name] = EXPORT_PARQUET[column]!;
    const element = schema[column + 1]!;
    const fileOffset = out.offset;
    let uncompressed = 0;
    let dictionaryOffset: bigint | undefined;
    let encoding: "PLAIN" | "RLE_DICTIONARY" = "PLAIN";
    if ("dict" in body) {
      dictionaryOffset = BigInt(out.offset);
      uncompressed += writePage("dictionary", body.dict, n, body.size, 0);
      encoding = "RLE_DICTIONARY";
    }
    const dataOffset = BigInt(out.offset);
    if ("dict" in body) {
      const width = bitWidthOf(body.size);
      pageBytes.at = 0;
      pageBytes.room(1);
      pageBytes.buf[pageBytes.at++] = width;
      writeHybrid(pageBytes, body.index, body.valued, width);
      uncompressed += writePage("data", pageBytes.bytes(), n, encoding, nulls);
    } else uncompressed += writePage("data", body.plain, n, encoding, nulls);
    const meta: ColumnMetaData = {
      type: element.type!,
      encodings: "dict" in body ? ["PLAIN", "RLE_DICTIONARY"] : ["PLAIN"],
      path_in_schema: [name],
      codec: "SNAPPY",
      num_values: BigInt(n),
      total_uncompressed_size: BigInt(uncompressed),
      total_compressed_size: BigInt(out.offset - fileOffset),
      data_page_offset: dataOffset,
      dictionary_page_offset: dictionaryOffset,
      statistics,
      encoding_stats: statistics
        ? [
            ...("dict" in body ? [{ page_type: "DICTIONARY_PAGE" as const, encoding: "PLAIN" as const, count: 1 }] : []),
            { page_type: "DATA_PAGE_V2" as const, encoding, count: 1 },
          ]
        : undefined,
    };
    return { meta_data: meta, file_offset: BigInt(fileOffset) };
  };

  /** A text column's chunk from its group dictionary. */
  const textChunk = (column: number, t: TextColumn, n: number) => {
    return writeChunk(column, n, { dict: t.dict.bytes(), size: t.size, index: t.index, valued: n }, 0);
  };

  /** A small-text column (device, search type) of codes `codeOf(dt)`: the codes present, in text order. */
  const codeChunk = (column: number, n: number, texts: readonly (string | undefined)[], codeOf: (v: number) => number) => {
    let present = 0;
    for (let i = 0; i < n; i++) present |= 1 << codeOf(dt[i]!);
    const codes: number[] = [];
    for (let c = 0; c < texts.length; c++) if (present & (1 << c) && texts[c] !== undefined) codes.push(c);
    codes.sort((a, b) => (texts[a]! < texts[b]! ? -1 : texts[a]! > texts[b]! ? 1 : 0));
    const slot = new Int32Array(texts.length).fill(-1);
    dictValues.at = 0;
    codes.forEach((c, i) => {
      slot[c] = i;
      dictValues.byteArray(encoder.encode(texts[c]));
    });
    let valued = 0;
    let nulls = 0;
    for (let i = 0; i < n; i++) {
      const s = slot[codeOf(dt[i]!)]!;
      if (s < 0) {
        levels[i] = 0;
        nulls++;
      } else {
        levels[i] = 1;
        index[valued++] = s;
      }
    }
    const body = codes.length ? { dict: dictValues.bytes(), size: codes.length, index, valued } : { plain: new Uint8Array(0) };
    return writeChunk(column, n, body, nulls, stats(texts[codes[0]!], texts[codes.at(-1)!], nulls));
  };

  /** A count column (clicks, impressions) as an INT64 dictionary. */
  const countChunk = (column: number, values: Float64Array, n: number) => {
    smallEpoch++;
    const large = new Map<number, number>();
    dictValues.at = 0;
    let size = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      let at: number;
      if (v >= 0 && v < SMALL_COUNT && v === Math.floor(v)) {
        if (smallStamp[v] !== smallEpoch) {
          smallStamp[v] = smallEpoch;
          smallLocal[v] = size++;
          dictValues.int64(v);
        }
        at = smallLocal[v]!;
      } else {
        const known = large.get(v);
        if (known === undefined) {
          large.set(v, (at = size++));
          dictValues.int64(v);
        } else at = known;
      }
      index[i] = at;
    }
    const r = range(values, n);
    return writeChunk(column, n, { dict: dictValues.bytes(), size, index, valued: n }, 0, stats(r.min, r.max, 0));
  };

  /** A double column (ctr, position), PLAIN: the typed array's own bytes. */
  const doubleChunk = (column: number, values: Float64Array, n: number) => {
    let plain = new Uint8Array(values.buffer, 0, n * 8);
    if (!LITTLE_ENDIAN) {
      const b = new Bytes();
      b.room(n * 8);
      for (let i = 0; i < n; i++) b.view.setFloat64(i * 8, values[i]!, true);
      plain = b.buf.subarray(0, n * 8);
    }
    const r = range(values, n);
    return writeChunk(column, n, { plain }, 0, stats(r.nan === n ? undefined : r.min, r.nan === n ? undefined : r.max, 0, r.nan));
  };

  /** The date column: a dictionary of the group's days (rows come in date order). */
  const dateChunk = (n: number) => {
    dictValues.at = 0;
    let size = 0;
    let last = Number.NaN;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const d = day[i]!;
      if (d !== last) {
        // A day seen before in this group (not possible in date order, but kept exact) is a new entry.
        last = d;
        size++;
        dictValues.int32(d);
        if (d < min) min = d;
        if (d > max) max = d;
      }
      index[i] = size - 1;
    }
    return writeChunk(0, n, { dict: dictValues.bytes(), size, index, valued: n }, 0, stats(min, max, 0));
  };

  const writeGroup = () => {
    const n = count;
    if (!n) return;
    const start = out.offset;
    const columns = [
      dateChunk(n),
      textChunk(1, page, n),
      textChunk(2, query, n),
      codeChunk(3, n, DEVICE_TEXT, (v) => v >> 3),
      codeChunk(4, n, TYPE_TEXT, (v) => v & 7),
      countChunk(5, clicks, n),
      countChunk(6, impressions, n),
      doubleChunk(7, ctr, n),
      doubleChunk(8, position, n),
    ];
    let bytes = 0n;
    for (const c of columns) bytes += c.meta_data!.total_uncompressed_size;
    rowGroups.push({ columns, total_byte_size: bytes, num_rows: BigInt(n), total_compressed_size: BigInt(out.offset - start) });
    totalRows += BigInt(n);
    out.flush();
    page.reset();
    query.reset();
    count = 0;
  };

  return {
    write(d: ExportDay, from: number, to: number) {
      page.prepare(d.pages);
      query.prepare(d.queries);
      const c = d.cols;
      for (let i = from; i < to; i++) {
        const row = d.order[i]!;
        const k = count;
        day[k] = d.day;
        page.put(k, d.pageRank[row]!, d.pages);
        query.put(k, d.queryRank[row]!, d.queries);
        dt[k] = c.device[row]! * 8 + c.type[row]!;
        const n = c.impressions[row]!;
        const cl = c.clicks[row]!;
        clicks[k] = cl;
        impressions[k] = n;
        ctr[k] = n > 0 ? cl / n : 0;
        position[k] = n > 0 ? c.sumPosition[row]! / 100 / n : 0;
        if (++count === groupRows) writeGroup();
      }
    },
    ready: () => out.size,
    take(end) {
      if (end) {
        writeGroup();
        const meta: FileMetaData = {
          version: 2,
          created_by: "sitesync",
          schema,
          num_rows: totalRows,
          row_groups: rowGroups,
          metadata_length: 0,
        };
        delete (meta as Partial<FileMetaData>).metadata_length;
        m.writeMetadata(out, meta);
        out.appendUint32(0x31524150);
        out.flush();
      }
      return out.drain();
    },
    recycle: (chunk) => out.recycle(chunk),
  };
}
