// The SQLite export without SQL joins or sorts (src/analytics/export.ts): its CSV bytes equal exportQuery's rows
// written by csvLine, for texts whose UTF-8 order differs from JavaScript's (characters past U+FFFF against
// U+E000..U+FFFF), prefixes, quotes, commas, line breaks and formula starts, every device and search type, a zero
// impression row and sums past 2^31, with each filter, raw or neutralised, and with a dictionary cap small enough
// that it starts afresh several times. SQLite only (PostgreSQL exports through exportQuery's text).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { csvDays, EXPORT_PARQUET, exportCsvLine, exportDaySteps, type DayEncoder } from "../src/analytics/export.ts";
import { Bytes, parquetDays, writeHybrid } from "../src/analytics/export-parquet.ts";
import { parquetRows } from "../src/analytics/parquet.ts";
import { csvLine } from "../src/analytics/format.ts";
import { exportQuery, type ExportOptions } from "../src/analytics/queries.ts";
import { exportColumns } from "../src/analytics/schemas.ts";
import { openExportConnection } from "../src/analytics/stream.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { asSqlite, tempSqliteDb, testEngine } from "./helpers/db.ts";
import { addSite, storeRows } from "./helpers/rows.ts";

const TEXTS = [
  "a",
  "ab",
  "a b",
  "A",
  "b",
  "\u{1F600} emoji",
  "\uFFFD replacement",
  "\uE000 private use",
  "\u00E9t\u00E9",
  'say "hi", then',
  "line\nbreak",
  "=1+1",
  "-dash",
  "@at",
  "\ttab",
  "plain query",
  "z\u{10000}",
  "z\uFFFF",
];
const PAGES = [
  "https://x.example/",
  "https://x.example/a",
  "https://x.example/\u{1F600}",
  "https://x.example/\uFFFD",
  "=HYPERLINK()",
  "https://x.example/a,b",
];
const DEVICES = ["DESKTOP", "MOBILE", "TABLET", ""];
const TYPES = ["web", "image", "video", "news", "discover", "googleNews"] as const;

let t: ReturnType<typeof tempSqliteDb>;
let siteId = 0;
let conn: Database;

beforeAll(async () => {
  if (testEngine !== "sqlite") return;
  t = tempSqliteDb();
  siteId = await addSite(t.db, "sc-domain:fast-export.example");
  // Another site's rows in the same tables are never exported.
  const other = await addSite(t.db, "sc-domain:other.example");
  let x = 7;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return Math.floor((x / 2147483648) * n);
  };
  for (let d = 0; d < 5; d++) {
    const day = `2026-03-0${d + 1}`;
    for (const type of TYPES) {
      const rows = new Map<string, SourceRow>();
      for (let k = 0; k < 60; k++) {
        const page = PAGES[rand(PAGES.length)]!;
        const query = TEXTS[rand(TEXTS.length)]! + (d >= 3 ? ` d${rand(4)}` : "");
        const device = DEVICES[rand(DEVICES.length)]!;
        // Past 2^31-1 too (a 64-bit column in Parquet): 2^31 itself and 2^33 + 1.
        const impressions = k % 17 === 0 ? 0 : k % 13 === 0 ? [2_000_000_000, 2 ** 31, 2 ** 33 + 1][k % 3]! : 1 + rand(900);
        const clicks = impressions ? rand(Math.min(impressions, 50)) : 0;
        rows.set(`${page}|${query}|${device}`, { page, query, device, clicks, impressions, ctr: 0, position: 1 + rand(9000) / 100 });
      }
      await storeRows(t.db, siteId, day, type, [...rows.values()]);
    }
    await storeRows(t.db, other, day, "web", [
      { page: "https://o/", query: "a", device: "MOBILE", clicks: 1, impressions: 2, ctr: 0, position: 3 },
    ]);
  }
  conn = openExportConnection(asSqlite(t.db));
});
afterAll(async () => {
  conn?.close();
  await t?.cleanup();
});

/** exportQuery's rows as csvLine writes them (what the export wrote before). */
function reference(o: ExportOptions, raw: boolean): string {
  const { sql, params } = exportQuery("sqlite", o);
  let out = csvLine(exportColumns);
  for (const r of conn.prepare(sql).iterate(params) as IterableIterator<Record<string, string | number>>) out += exportCsvLine(r, raw);
  return out;
}

/** exportQuery's rows as the Parquet file parquetRows wrote before (row groups of `groupRows`). */
function referenceParquet(o: ExportOptions, groupRows: number): Uint8Array {
  const { sql, params } = exportQuery("sqlite", o);
  const out = parquetRows<Record<string, unknown>>(EXPORT_PARQUET, groupRows);
  for (const r of conn.prepare(sql).iterate(params) as IterableIterator<Record<string, unknown>>) out.add(r);
  return out.take(true)!;
}

/** The fast path's CSV text, run to the end in steps as a download runs them. */
function fast(o: ExportOptions, raw: boolean, cap?: number): string {
  return Buffer.from(fastBytes(o, csvDays(csvLine(exportColumns), raw), cap)).toString("utf8");
}

/** The fast path's bytes with encoder `out`. */
function fastBytes(o: ExportOptions, out: DayEncoder, cap?: number): Uint8Array {
  const steps = exportDaySteps(conn, o, out, cap);
  const parts: Uint8Array[] = [];
  try {
    while (steps.step()) {
      if (steps.ready() >= 4096) parts.push(steps.take(false)!);
    }
    const last = steps.take(true);
    if (last) parts.push(last);
  } finally {
    steps.close();
  }
  return Buffer.concat(parts);
}

/** A Parquet file's rows and schema, read back with hyparquet. */
async function readParquet(bytes: Uint8Array) {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const meta = parquetMetadata(file);
  return {
    rows: await parquetReadObjects({ file }),
    schema: meta.schema,
    groups: meta.row_groups.map((g) => Number(g.num_rows)),
    statistics: meta.row_groups.map((g) => g.columns.map((c) => c.meta_data?.statistics)),
  };
}

describe.skipIf(testEngine !== "sqlite")("fast SQLite export = exportQuery + csvLine", () => {
  const cases: [string, Omit<ExportOptions, "siteId">][] = [
    ["every row", {}],
    ["a date range", { start: "2026-03-02", end: "2026-03-04" }],
    ["from a day on", { start: "2026-03-04" }],
    ["one search type", { searchType: "discover" }],
    ["an unknown search type (no rows)", { searchType: "nope" }],
    ["no day in range", { start: "2027-01-01" }],
  ];
  for (const [name, o] of cases)
    test(`${name}: the same bytes, neutralised and raw, with the dictionary cap hit or not`, () => {
      const opts = { siteId, ...o };
      for (const raw of [false, true]) {
        const want = reference(opts, raw);
        expect(want.split("\r\n").length).toBeGreaterThan(name.includes("no ") ? 1 : 50);
        expect(fast(opts, raw)).toBe(want);
        expect(fast(opts, raw, 3)).toBe(want);
      }
    });
});

describe.skipIf(testEngine !== "sqlite")(
  "fast SQLite Parquet export (its own column writer) = exportQuery + parquetRows (hyparquet-writer's ParquetWriter)",
  () => {
    for (const [name, o] of [
      ["every row", {}],
      ["a date range and one search type", { start: "2026-03-02", end: "2026-03-04", searchType: "web" }],
      ["no rows", { searchType: "nope" }],
    ] as [string, Omit<ExportOptions, "siteId">][])
      test(`${name}: the same rows, schema, row groups and statistics read back`, async () => {
        const opts = { siteId, ...o };
        const want = await readParquet(referenceParquet(opts, 500));
        const bytes = fastBytes(opts, parquetDays(500), 3);
        // Dictionary pages keyed by text rank: the file does not depend on which texts the export's cache held.
        expect(Buffer.from(bytes).equals(Buffer.from(fastBytes(opts, parquetDays(500))))).toBe(true);
        const got = await readParquet(bytes);
        expect(got.schema).toEqual(want.schema);
        expect(got.groups).toEqual(want.groups);
        expect(got.rows).toEqual(want.rows);
        expect(got.statistics).toEqual(want.statistics);
        if (!name.startsWith("no")) expect(got.rows.length).toBeGreaterThan(100);
      });
  },
);

describe("the Parquet RLE/bit-packing hybrid (export-parquet's writeHybrid)", () => {
  test("the same bytes as hyparquet-writer's writeRleBitPackedHybrid, for runs short and long at every width", () => {
    const { ByteWriter } = require("hyparquet-writer/src/bytewriter.js") as typeof import("hyparquet-writer/src/bytewriter.js");
    const { writeRleBitPackedHybrid } = require("hyparquet-writer/src/encoding.js") as typeof import("hyparquet-writer/src/encoding.js");
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let width = 0; width <= 20; width++)
      for (const count of [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099]) {
        const values = new Int32Array(count);
        for (let i = 0; i < count; ) {
          // Runs of 1 to 20 equal values: RLE runs (8 or more) between bit-packed groups.
          const run = 1 + (next() % 20);
          const v = width === 0 ? 0 : next() % 2 ** width;
          values.fill(v, i, i + run);
          i += run;
        }
        const want = new ByteWriter(16);
        writeRleBitPackedHybrid(want, values, width);
        const got = new Bytes();
        got.buf[0] = 99;
        got.at = 1;
        writeHybrid(got, values, count, width);
        expect([width, count, Buffer.from(got.bytes().subarray(1)).toString("hex")]).toEqual([
          width,
          count,
          Buffer.from(want.getBytes()).toString("hex"),
        ]);
      }
  });
});
