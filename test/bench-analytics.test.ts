import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers/db.ts";

// `bun run bench:analytics` end to end with tiny sizes: every measurement is reported in the output and
// the JSON, and the export counted every seeded row. No timing is checked.

setDefaultTimeout(120_000);

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-bench-analytics-test-");
afterAll(() => dir.cleanup());

describe("bun run bench:analytics", () => {
  test("a tiny run reports each scenario, the export and the sites API runs", async () => {
    const out = join(dir.dir, "analytics.json");
    const proc = Bun.spawn(
      [
        process.execPath,
        "run",
        "bench:analytics",
        "--rows",
        "3000",
        "--days",
        "30",
        "--requests",
        "3",
        "--slow-requests",
        "1",
        // A quarter second of the sites API per condition and round (8 of them): the figures are only checked to be
        // there. autocannon ran a whole second for it until bench/load.ts ticked sooner for a shorter load (2026-12-07).
        "--duration",
        "0.25",
        "--rounds",
        "2",
        "--out",
        out,
      ],
      { cwd: root, env: { ...process.env, LOG_LEVEL: "warn" }, stdout: "pipe", stderr: "pipe" },
    );
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(code, stdout + stderr).toBe(0);

    const names = [
      "ranking_raw_30d",
      "ranking_raw_30d_query",
      "ranking_daily_30d_query",
      "ranking_daily_30d_all",
      "ranking_daily_30d_partial",
      "page_keyword_90d",
      "trends_30",
      "coverage_30",
      "search_3plus",
      "search_1_2",
      "ranking_raw_90d",
      "ranking_daily_90d_query",
      "ranking_daily_90d_all",
      "ranking_daily_90d_partial",
      "trends_90",
      "search_3plus_90d",
      "search_1_2_90d",
      "mcp_page_queries",
      "mcp_keyword_pages",
      "mcp_search_keywords",
      "mcp_best_pages",
      "mcp_track_pages",
      "mcp_pages_queries",
      "mcp_compare_query",
      "mcp_compare_page",
      "mcp_insight_overview",
      "mcp_insight_top_query",
      "mcp_insight_top_page",
      "mcp_insight_compare_query",
      "mcp_insight_cannibalization",
      "mcp_insight_brand",
      "mcp_insight_decay",
    ];
    for (const n of names) expect(stdout).toMatch(new RegExp(`^${n}\\s+n=\\s*\\d+\\s+p50\\s+[\\d.]+ ms\\s+p99\\s+[\\d.]+ ms`, "m"));
    expect(stdout).toMatch(/target p99 <= 50 ms: (met|NOT MET)/);
    // The seeder spreads --rows evenly over days and the search types with query rows, rounding up per day and type.
    const seeded = Number(/^seeded ([\d,]+) rows/m.exec(stdout)?.[1]?.replaceAll(",", ""));
    expect(seeded).toBeGreaterThanOrEqual(3000);
    expect(seeded).toBeLessThan(3300);
    expect(
      stdout.match(
        /^export_csv \((curl|fetch)\)\s+[\d,]+ rows, .* rows\/s \(target >= 200,000: (met|NOT MET)\); server RSS \d+ -> peak \d+ MiB \(anonymous \d+ -> \d+ MiB\)$/gm,
      ),
    ).toHaveLength(2);
    expect(stdout).toMatch(/^ingest \(sqlite\) [\d,]+ rows\/s$/m);
    expect(stdout).toMatch(/^bytes_per_row \(sqlite\) [\d.]+ \(.*gsc_query_detail [\d.]+/m);
    expect(stdout.match(/^export_parquet \((curl|fetch)\)\s+[\d,]+ rows, .* rows\/s; server RSS \d+ -> peak \d+ MiB/gm)).toHaveLength(1);
    for (const run of ["alone", "\\+light", "\\+heavy", "\\+export"]) {
      expect(stdout.match(new RegExp(`^sites_get ${run}\\s+round [12]\\s+[\\d,]+ req/s`, "gm"))).toHaveLength(2);
    }
    expect(stdout.match(/^sites_get \+\w+\s+median vs alone: p50 [\d.]+x {2}p99 [\d.]+x/gm)).toHaveLength(3);

    const report = JSON.parse(readFileSync(out, "utf8"));
    expect(report.seed).toMatchObject({ rows: seeded, days: 30 });
    expect(report.latencies.map((l: { name: string }) => l.name)).toEqual(names);
    for (const l of report.latencies) expect(l.errors).toBe(0);
    for (const e of report.exports) expect(e.rows).toBe(seeded);
    expect(report.exports.map((e: { format: string }) => e.format)).toEqual(["csv", "csv", "parquet"]);
    expect(report.exports[2].bytes).toBeGreaterThan(1000);
    expect(report.size.perRow).toBeGreaterThan(0);
    expect(report.seed.rowsPerSec).toBeGreaterThan(0);
    expect(report.sites.map((s: { name: string }) => s.name)).toEqual([
      "alone",
      "+light",
      "+heavy",
      "+export",
      "alone",
      "+light",
      "+heavy",
      "+export",
    ]);
    for (const s of report.sites) expect(s.server5xx).toBe(0);
    expect(report.sitesRatios).toHaveLength(3);
  });
});
