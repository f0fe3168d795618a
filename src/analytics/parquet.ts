import type { SchemaElement } from "hyparquet-writer";
import type { RowEncoder } from "./stream.ts";

// Parquet downloads (hyparquet-writer, pure JS): rows are gathered into columns and written as a row group
// every PARQUET_GROUP_ROWS rows, whose bytes go to the client at once, so memory holds one row group
// (plus the footer's metadata, a few hundred bytes per group) at any size.

/**
 * Rows per row group. Encoding one is one turn of the event loop (~30-40 ms at 25,000 rows on this machine, load
 * ~25). The per-group costs (dictionary pages, page headers, statistics) made 10,000-row groups cost 2.1-3.3 µs a
 * row in the SQLite export's encoder against 1.3-1.5 at 25,000 (and 5.6 vs 4.1 MiB a 500,000-row file);
 * 50,000 and 100,000 were no faster (docs/benchmarks/ingest-export.md).
 */
export const PARQUET_GROUP_ROWS = 25_000;

/**
 * A column's kind: text (UTF-8), a `YYYY-MM-DD` date (Parquet DATE), a 64-bit integer (INT64: a day's impressions
 * of one row can pass 2^31-1) or a double.
 * "free-text" is text written without min/max statistics: a row group of page URLs or queries holds
 * thousands of distinct values whose min/max cost the encoder ~10 % of its time and let
 * a reader skip nothing (bench/export.ts, docs/benchmarks/ingest-export.md).
 */
export type ParquetKind = "text" | "free-text" | "date" | "int" | "double";

const element = (name: string, kind: ParquetKind): SchemaElement => {
  const base = { name, repetition_type: "OPTIONAL" as const };
  if (kind === "text" || kind === "free-text") return { ...base, type: "BYTE_ARRAY", converted_type: "UTF8" };
  if (kind === "date") return { ...base, type: "INT32", converted_type: "DATE" };
  if (kind === "int") return { ...base, type: "INT64" };
  return { ...base, type: "DOUBLE" };
};

/** The schema of a file of `columns` (name → kind, in order): a root, then one optional leaf per column. */
export const parquetSchema = (columns: readonly (readonly [string, ParquetKind])[]): SchemaElement[] => [
  { name: "root", num_children: columns.length },
  ...columns.map(([n, k]) => element(n, k)),
];

/** Days since 1970-01-01 of a `YYYY-MM-DD` text. */
function epochDay(s: string): number {
  return Date.UTC(Number(s.slice(0, 4)), Number(s.slice(5, 7)) - 1, Number(s.slice(8, 10))) / 86_400_000;
}

/**
 * hyparquet-writer (51 modules with hyparquet) is loaded by the first Parquet download, not by every HTTP worker's
 * start: most workers never write one.
 */
function loadWriter() {
  const { ByteWriter, ParquetWriter } = require("hyparquet-writer") as typeof import("hyparquet-writer");
  /** The bytes of each finished row group, handed over by the writer's flush. */
  class ChunkWriter extends ByteWriter {
    chunks: Uint8Array[] = [];
    size = 0;
    /** The memory of the chunk drain last handed out whole, and one given back by recycle (written again). */
    private lent: ArrayBufferLike | null = null;
    private spare: Uint8Array | null = null;
    flush() {
      const n = this.index;
      const spare = this.spare;
      this.spare = null;
      // A little room over this part's size, so that a recycled chunk fits the next part (sizes vary a little).
      const bytes = spare && spare.length >= n ? spare.subarray(0, n) : new Uint8Array(n + (n >> 3)).subarray(0, n);
      bytes.set(this.getBytes());
      this.index = 0;
      this.chunks.push(bytes);
      this.size += bytes.length;
    }
    override finish() {
      this.flush();
    }
    /** Everything flushed so far, as one chunk. */
    drain(): Uint8Array | null {
      if (!this.size) return null;
      const out = this.chunks.length === 1 ? this.chunks[0]! : concat(this.chunks, this.size);
      this.lent = out.buffer;
      this.chunks = [];
      this.size = 0;
      return out;
    }
    /** The consumer is done with a chunk drain returned: its memory takes the next part (see DownloadSteps.recycle). */
    recycle(chunk: Uint8Array) {
      if (chunk.buffer !== this.lent) return;
      this.lent = null;
      this.spare = new Uint8Array(chunk.buffer);
    }
  }
  return { ChunkWriter, ParquetWriter };
}
let writerParts: ReturnType<typeof loadWriter> | null = null;

/** A writer that keeps each flushed part's bytes until `drain` hands them over (hyparquet-writer loaded on first use). */
export function chunkWriter(initialSize = 1 << 20) {
  writerParts ??= loadWriter();
  return new writerParts.ChunkWriter(initialSize);
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A Parquet file of `columns` (name → kind, in order) written a row group at a time: `group(data, count)` writes
 * `count` rows of the column arrays `data` (values as the writer takes them: text as strings, dates as days since
 * 1970-01-01, bigints for "int", numbers; null stays null), `ready` is the bytes waiting, `take` hands them over (`end`: the footer too).
 */
export function parquetGroups(columns: readonly (readonly [string, ParquetKind])[]): {
  group(data: readonly ArrayLike<unknown>[], count: number): void;
  ready(): number;
  take(end: boolean): Uint8Array | null;
} {
  const writer = chunkWriter();
  const { ParquetWriter } = writerParts!;
  const parquet = new ParquetWriter({ writer, schema: parquetSchema(columns), statistics: true, createdBy: "sitesync" });
  return {
    group(data, count) {
      if (!count) return;
      parquet.write({
        columnData: columns.map(([name, kind], i) => ({
          name,
          data: data[i] as unknown[],
          statistics: kind !== "free-text",
        })),
        rowGroupSize: count,
      });
    },
    ready: () => writer.size,
    take(end) {
      if (end) parquet.finish();
      return writer.drain();
    },
  };
}

/**
 * A Parquet file of `columns` (name → kind, in order), written as rows arrive: a row group every
 * `groupRows` rows, the footer at the end. Values: text as strings, dates as `YYYY-MM-DD`, numbers
 * (or numeric text, as PostgreSQL gives bigints); null stays null.
 */
export function parquetRows<R extends Record<string, unknown>>(
  columns: readonly (readonly [string, ParquetKind])[],
  groupRows = PARQUET_GROUP_ROWS,
): RowEncoder<R> {
  const file = parquetGroups(columns);
  const data: unknown[][] = columns.map(() => []);
  const convert = columns.map(([, kind]) => {
    if (kind === "text" || kind === "free-text") return (v: unknown) => (v === null || v === undefined ? null : String(v));
    if (kind === "date") {
      // Rows come in date order: one parse per day.
      let last = "";
      let day = 0;
      return (v: unknown) => {
        if (v === null || v === undefined) return null;
        if (v !== last) {
          last = String(v);
          day = epochDay(last);
        }
        return day;
      };
    }
    if (kind === "int") return (v: unknown) => (v === null || v === undefined ? null : BigInt(v as number | string));
    return (v: unknown) => (v === null || v === undefined ? null : Number(v));
  });
  let count = 0;
  const writeGroup = () => {
    file.group(data, count);
    for (const d of data) d.length = 0;
    count = 0;
  };
  return {
    add(row) {
      for (let i = 0; i < columns.length; i++) data[i]!.push(convert[i]!(row[columns[i]![0]]));
      if (++count >= groupRows) writeGroup();
    },
    ready: () => file.ready(),
    take(end) {
      if (end) writeGroup();
      return file.take(end);
    },
  };
}
