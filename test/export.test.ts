import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { csvField, neutralizeFormula } from "../src/analytics/format.ts";
import { parquetRows } from "../src/analytics/parquet.ts";
import { createApp } from "../src/app.ts";
import type { Api } from "../src/cli/api.ts";
import { exportSite } from "../src/cli/export.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { storeRows } from "./helpers/rows.ts";

// Safe CSV exports (issue 21.3): query strings come from strangers' searches; a cell a spreadsheet would run as a
// formula gets a leading ' (OWASP's rule) unless ?raw=1 (CLI --raw); ?bom=1 starts the file with a UTF-8 BOM for
// Excel; JSON lines stay untouched.

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let site = 0;
const P = "https://evil.example/";
// Each formula-leading character OWASP lists, and harmless text beside them.
const hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "plain 理髮"];

async function get(path: string) {
  const res = await app.request(path);
  return { status: res.status, bytes: new Uint8Array(await res.clone().arrayBuffer()), text: await res.text() };
}

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  const res = await app.request("/api/v1/sites", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ domain: "sc-domain:evil.example", name: "evil" }),
  });
  site = ((await res.json()) as { id: number }).id;
  await storeRows(
    t.db,
    site,
    "2026-02-01",
    "web",
    hostile.map((query, i) => ({ page: P, query, device: "DESKTOP", clicks: i + 1, impressions: 10, ctr: 0.1, position: 2 })),
  );
});
afterAll(() => t.cleanup());

describe("formula neutralisation", () => {
  test("the rule: = + - @ tab CR get a leading quote; other text and numbers do not", () => {
    expect(hostile.map(neutralizeFormula)).toEqual([
      '\'=HYPERLINK("http://x","y")',
      "'+1+1",
      "'-2+3",
      "'@SUM(A1)",
      "'\tcmd",
      "'\rcmd",
      "plain 理髮",
    ]);
    expect(csvField(-5)).toBe("-5");
    expect(csvField("-5")).toBe("'-5");
    expect(csvField("-5", true)).toBe("-5");
  });

  test("export CSV: every hostile query neutralised (quoted where RFC 4180 needs it); ?raw=1 gives them as stored", async () => {
    const safe = await get(`/api/v1/sites/${site}/export`);
    expect(safe.status).toBe(200);
    const queries = (text: string) =>
      text
        .split("\r\n")
        .slice(1, -1)
        .map((l) => l.slice(`2026-02-01,${P},`.length, l.lastIndexOf(",DESKTOP,web")));
    // Index order: by query text (tab 0x09 and CR 0x0d first).
    expect(queries(safe.text).sort()).toEqual(
      ['"\'=HYPERLINK(""http://x"",""y"")"', "'+1+1", "'-2+3", "'@SUM(A1)", "'\tcmd", '"\'\rcmd"', "plain 理髮"].sort(),
    );
    for (const q of queries(safe.text)) expect(q.replace(/^"/, "")).toMatch(/^('|plain)/);
    const raw = await get(`/api/v1/sites/${site}/export?raw=1`);
    expect(queries(raw.text).map((q) => q.replace(/^"/, ""))).toContainEqual("+1+1");
    expect(raw.text).toContain(`,"=HYPERLINK(`);
    expect(safe.text).not.toContain(`,"=HYPERLINK(`);
    expect(safe.text).toContain(`,"'=HYPERLINK(`);
  });

  test("page-keyword CSV: the keywords cell is neutralised too", async () => {
    const safe = await get(`/api/v1/page-keyword-performance/csv?site_id=${site}`);
    expect(safe.status).toBe(200);
    const line = safe.text.split("\r\n")[1]!;
    // The keywords joined by | start with the first sorted one ("\tcmd"): a formula-leading cell.
    expect(line).toMatch(new RegExp(`^${P.replaceAll(".", "\\.")},28,70,40\\.0000,2\\.0,"'\\t`));
    const raw = await get(`/api/v1/page-keyword-performance/csv?site_id=${site}&raw=true`);
    expect(raw.text.split("\r\n")[1]).toMatch(/,"\tcmd\|/);
  });

  test("JSON lines are untouched", async () => {
    const r = await get(`/api/v1/sites/${site}/export?format=jsonl`);
    const got = r.text
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { query: string }).query);
    expect(got.sort()).toEqual([...hostile].sort());
  });
});

describe("Parquet", () => {
  test("the same rows as JSON lines, filters applied; hostile text as stored; an empty result is a valid file", async () => {
    const other = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:plain.example", name: "plain" }),
    });
    const id = ((await other.json()) as { id: number }).id;
    for (const [day, type] of [
      ["2026-01-30", "web"],
      ["2026-01-31", "image"],
      ["2026-02-01", "web"],
    ] as const) {
      await storeRows(
        t.db,
        id,
        day,
        type,
        Array.from({ length: 25 }, (_, i) => ({
          page: `https://plain.example/p${i % 4}`,
          query: `q ${i}`,
          device: i % 2 ? "MOBILE" : "DESKTOP",
          clicks: i,
          impressions: 100 + i,
          ctr: i / (100 + i),
          position: 1 + i / 3,
        })),
      );
    }
    const parquetOf = async (query: string) => {
      const res = await app.request(`/api/v1/sites/${id}/export?format=parquet${query}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/vnd.apache.parquet");
      const rows = await parquetReadObjects({ file: await res.arrayBuffer() });
      // Counts are INT64 columns: hyparquet reads them as bigints.
      return rows.map((r) => ({
        ...r,
        date: (r.date as Date).toISOString().slice(0, 10),
        clicks: Number(r.clicks as bigint),
        impressions: Number(r.impressions as bigint),
      }));
    };
    const jsonOf = async (query: string) =>
      (await (await app.request(`/api/v1/sites/${id}/export?format=jsonl${query}`)).text())
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    for (const query of ["", "&search_type=web", "&start_date=2026-01-31", "&end_date=2026-01-31&search_type=image"]) {
      const got = await parquetOf(query);
      const want = await jsonOf(query);
      expect(got.length).toBe(want.length);
      expect(got).toEqual(want);
    }
    expect((await parquetOf("")).length).toBe(75);
    expect(await parquetOf("&start_date=2027-01-01")).toEqual([]);
    const hostileRows = await parquetReadObjects({
      file: await (await app.request(`/api/v1/sites/${site}/export?format=parquet`)).arrayBuffer(),
    });
    expect(hostileRows.map((r) => r.query).sort()).toEqual([...hostile].sort());
  });

  test("min/max statistics on every column but the free text (page, query: costly, they filter nothing)", async () => {
    const file = await (await app.request(`/api/v1/sites/${site}/export?format=parquet`)).arrayBuffer();
    const group = parquetMetadata(file).row_groups[0]!;
    const withStats = group.columns
      .filter((c) => c.meta_data?.statistics?.min_value !== undefined)
      .map((c) => c.meta_data!.path_in_schema[0]);
    expect(withStats).toEqual(["date", "device", "search_type", "clicks", "impressions", "ctr", "position"]);
  });

  test("counts past 2^31-1 (a big property's day, SQLite): clicks and impressions are INT64, read back exact", async () => {
    const res = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:huge.example", name: "huge" }),
    });
    const id = ((await res.json()) as { id: number }).id;
    // SQLite keeps 64-bit integers; PostgreSQL's detail columns are int4, so there the file's INT64 columns hold
    // its largest values.
    const counts =
      testEngine === "sqlite"
        ? [
            [2 ** 31 + 5, 2 ** 31],
            [7, 3_000_000_000],
            [2 ** 40, 2 ** 41 + 1],
            [1, 2],
          ]
        : [
            [2 ** 31 - 1, 2 ** 31 - 1],
            [7, 2_000_000_000],
            [1, 2],
          ];
    await storeRows(
      t.db,
      id,
      "2026-02-01",
      "web",
      counts.map(([clicks, impressions], i) => ({
        page: "https://huge.example/",
        query: `q${i}`,
        device: "MOBILE",
        clicks: clicks!,
        impressions: impressions!,
        ctr: 0,
        position: 1.5,
      })),
    );
    const file = await (await app.request(`/api/v1/sites/${id}/export?format=parquet`)).arrayBuffer();
    const types = Object.fromEntries(parquetMetadata(file).schema.map((e) => [e.name, e.type]));
    expect([types.clicks, types.impressions]).toEqual(["INT64", "INT64"]);
    const rows = await parquetReadObjects({ file });
    expect(rows.map((r) => [r.query, r.clicks, r.impressions])).toEqual(counts.map(([c, n], i) => [`q${i}`, BigInt(c!), BigInt(n!)]));
    expect(rows.map((r) => r.position)).toEqual(counts.map(() => 1.5));
  });

  test("rows become row groups as they stream: one group per PARQUET_GROUP_ROWS rows", async () => {
    const enc = parquetRows<{ d: string; n: number }>(
      [
        ["d", "date"],
        ["n", "int"],
      ],
      3,
    );
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 7; i++) {
      enc.add({ d: "2026-02-01", n: i });
      const c = enc.ready() > 0 ? enc.take(false) : null;
      if (c) chunks.push(c);
    }
    // Two full groups went out while rows arrived; the third with the footer at the end.
    expect(chunks.length).toBe(2);
    chunks.push(enc.take(true)!);
    const file = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      file.set(c, at);
      at += c.length;
    }
    expect(parquetMetadata(file.buffer).row_groups.map((g) => Number(g.num_rows))).toEqual([3, 3, 1]);
    expect((await parquetReadObjects({ file: file.buffer })).map((r) => r.n)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
  });
});

describe("UTF-8 BOM for Excel", () => {
  test("?bom=1 starts the CSV with EF BB BF, then the header; absent: no BOM", async () => {
    const withBom = await get(`/api/v1/sites/${site}/export?bom=1`);
    expect([...withBom.bytes.slice(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(new TextDecoder("utf-8", { ignoreBOM: true }).decode(withBom.bytes).slice(1)).toStartWith("date,page,query,");
    const without = await get(`/api/v1/sites/${site}/export`);
    expect(without.bytes[0]).toBe("d".charCodeAt(0));
    const pk = await get(`/api/v1/page-keyword-performance/csv?site_id=${site}&bom=1`);
    expect([...pk.bytes.slice(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
  });

  test("a flag that is not one: 400", async () => {
    expect((await get(`/api/v1/sites/${site}/export?bom=yes`)).status).toBe(400);
    expect((await get(`/api/v1/sites/${site}/export?raw=2`)).status).toBe(400);
  });
});

describe("CLI export", () => {
  // The CLI's exportSite over the real app: --raw asks for raw cells, the default does not.
  const api = { send: (_m: string, path: string) => app.request(path) } as unknown as Api;
  const capture = async (raw: boolean) => {
    const file = `${t.dir}/out-${raw}.csv`;
    await exportSite(api, site, { format: "csv", output: file, raw });
    return Bun.file(file).text();
  };
  test("neutralised by default, as stored with --raw", async () => {
    expect(await capture(false)).toContain(",'+1+1,");
    expect(await capture(true)).toContain(",+1+1,");
  });
});
