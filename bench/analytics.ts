import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { addDays } from "../src/sync/dates.ts";
import { runLoad, type LoadResult } from "./load.ts";
import { startService, type RunningServer } from "./processes.ts";
import { treeRss } from "./rss.ts";
import { asyncBufferFromFile, parquetMetadataAsync } from "hyparquet";
import pg from "pg";
import { migratePg } from "../src/db/pg/migrate.ts";
import { seedAnalytics, type SeedOrder, type SeedResult } from "./seed-analytics.ts";
import { seedAnalyticsPg } from "./seed-analytics-pg.ts";
import { seedSites } from "./seed.ts";

// `bun run bench:analytics`: one site with N synced rows (demo rows over a year, written by a direct
// seeder), the service started on it, then: each analytics request's latency (one request in flight,
// p50/p99), the whole-site CSV and Parquet exports (rows/s, the server's RSS sampled throughout), and the sites
// API under autocannon alone and beside a light and a heavy analytics load, in the same run. Also the seeding's
// ingest rate (rows/s through upsertRows and the rollup rebuild, one day per transaction) and the bytes per
// stored detail row (SQLite: the file; PostgreSQL: the detail, rollup and dictionary relations with indexes).
//
//   bun run bench:analytics [--rows 5000000] [--days 365] [--workers 2] [--requests 100]
//                           [--slow-requests 10] [--duration 5] [--rounds 3] [--connections 8]
//                           [--db path (kept; reused when it exists)] [--database postgres://… (an EMPTY database)]
//                           [--seed-json path (with --database: the seed's summary, kept; the database is
//                            reused as seeded when the file exists)]
//                           [--data demo|anchors] [--order oldest_first|newest_first] [--seed-minutes N]
//                           [--phases latency,export,load] [--only scenario,scenario]
//                           [--out bench/results/analytics.json]

const flagsSchema = z.object({
  rows: z.coerce.number().int().min(100).max(50_000_000).default(5_000_000),
  days: z.coerce.number().int().min(30).max(480).default(365),
  workers: z.coerce.number().int().min(1).max(64).default(2),
  requests: z.coerce.number().int().min(1).max(100_000).default(100),
  "slow-requests": z.coerce.number().int().min(1).max(10_000).default(10),
  duration: z.coerce.number().positive().max(3600).default(5),
  connections: z.coerce.number().int().min(1).max(1000).default(8),
  rounds: z.coerce.number().int().min(1).max(100).default(3),
  data: z.enum(["demo", "anchors"]).default("demo"),
  // The day the seeder writes first (a new site's backfill: newest_first), and the most minutes it may take:
  // it stops after the day that passes them, and the run measures the rows and days written.
  order: z.enum(["oldest_first", "newest_first"]).default("oldest_first"),
  "seed-minutes": z.coerce.number().positive().optional(),
  // What to run after seeding: the requests' latencies, the exports, the sites API beside analytics loads.
  phases: z
    .string()
    .regex(/^(latency|export|load)(,(latency|export|load))*$/)
    .default("latency,export,load"),
  db: z.string().min(1).optional(),
  database: z
    .string()
    .regex(/^postgres(ql)?:\/\//)
    .optional(),
  "seed-json": z.string().min(1).optional(),
  // Latency phase: only the scenarios named (comma-separated), e.g. mcp_best_pages,page_keyword_90d.
  only: z
    .string()
    .regex(/^[a-z0-9_]+(,[a-z0-9_]+)*$/)
    .optional(),
  out: z
    .string()
    .min(1)
    .default(join(import.meta.dir, "results/analytics.json")),
});
type Flags = z.infer<typeof flagsSchema>;

function readFlags(): Flags {
  let raw;
  try {
    raw = parseArgs({
      options: Object.fromEntries(Object.keys(flagsSchema.shape).map((k) => [k, { type: "string" as const }])),
      strict: true,
    }).values;
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`--${String(i.path[0])}: ${i.message}`);
    process.exit(1);
  }
  return parsed.data;
}

export type Req = { method: "GET" | "POST"; path: string; body?: unknown } | { tool: string; args: Record<string, unknown> };
export type Scenario = { name: string; what: string; slow: boolean; req: Req; targetP99Ms?: number };
type Latency = {
  name: string;
  what: string;
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  targetP99Ms?: number;
  met?: boolean;
};

/** The requests measured, for one seeded site. */
export function scenarios(seed: SeedResult): Scenario[] {
  const end = seed.end;
  const start30 = addDays(end, -29);
  const start90 = addDays(end, -89);
  const { query, page, partial, short } = seed.terms;
  const id = seed.siteId;
  const ranking = (start: string, extra: Record<string, unknown>): Req => ({
    method: "POST",
    path: "/api/v1/analytics/ranking-data",
    body: { site_id: id, start_date: start, end_date: end, ...extra },
  });
  const search = (term: string, start: string) =>
    `/api/v1/sites/${id}/queries/search?search_term=${encodeURIComponent(term)}&start_date=${start}&end_date=${end}`;
  // The MCP tools over the same 90 days (the tools' `days` count back from today; the seed ends today minus 2).
  const days = 92;
  const mid = addDays(end, -44);
  const tool = (name: string, tool: string, args: Record<string, unknown>): Scenario => ({
    name,
    what: `MCP ${tool}, 90 days`,
    slow: true,
    req: { tool, args: { site_id: id, ...args } },
    targetP99Ms: 1000,
  });
  const periods = { period1: { start: start90, end: addDays(mid, -1) }, period2: { start: mid, end } };
  return [
    { name: "ranking_raw_30d", what: "raw, no filter, 30 days (first 1000 rows)", slow: false, req: ranking(start30, {}) },
    { name: "ranking_raw_30d_query", what: `raw, one query, 30 days`, slow: false, req: ranking(start30, { queries: [query] }) },
    {
      name: "ranking_daily_30d_query",
      what: `daily, one query, 30 days`,
      slow: false,
      req: ranking(start30, { queries: [query], aggregation_mode: "daily" }),
      targetP99Ms: 50,
    },
    {
      name: "ranking_daily_30d_all",
      what: "daily, every query, 30 days (first 1000 groups)",
      slow: true,
      req: ranking(start30, { aggregation_mode: "daily" }),
    },
    {
      name: "ranking_daily_30d_partial",
      what: `daily, partial match '${partial}', 30 days`,
      slow: true,
      req: ranking(start30, { queries: [partial], matching_mode: "partial", aggregation_mode: "daily" }),
    },
    {
      name: "page_keyword_90d",
      what: "page-keyword-performance, 90 days",
      slow: true,
      req: { method: "POST", path: "/api/v1/page-keyword-performance/", body: { site_id: id, days: 90 } },
      targetP99Ms: 1000,
    },
    {
      name: "trends_30",
      what: "performance-trends, 30 days with data",
      slow: true,
      req: { method: "GET", path: `/api/v1/analytics/performance-trends?site_id=${id}&days=30` },
      targetP99Ms: 100,
    },
    {
      name: "coverage_30",
      what: "sync/status?site_id=&days=30",
      slow: false,
      req: { method: "GET", path: `/api/v1/sync/status?site_id=${id}&days=30` },
    },
    {
      name: "search_3plus",
      what: `queries/search '${partial}', 30 days`,
      slow: true,
      req: { method: "GET", path: search(partial, start30) },
      targetP99Ms: 20,
    },
    { name: "search_1_2", what: `queries/search '${short}', 30 days`, slow: true, req: { method: "GET", path: search(short, start30) } },
    // Issue 18: every endpoint over a 90-day window (p99 <= 1 s; totals and trends <= 100 ms).
    {
      name: "ranking_raw_90d",
      what: "raw, no filter, 90 days (first 1000 rows)",
      slow: true,
      req: ranking(start90, {}),
      targetP99Ms: 1000,
    },
    {
      name: "ranking_daily_90d_query",
      what: "daily, one query, 90 days",
      slow: true,
      req: ranking(start90, { queries: [query], aggregation_mode: "daily" }),
      targetP99Ms: 1000,
    },
    {
      name: "ranking_daily_90d_all",
      what: "daily, every query, 90 days (first 1000 groups)",
      slow: true,
      req: ranking(start90, { aggregation_mode: "daily" }),
      targetP99Ms: 1000,
    },
    {
      name: "ranking_daily_90d_partial",
      what: `daily, partial match '${partial}', 90 days`,
      slow: true,
      req: ranking(start90, { queries: [partial], matching_mode: "partial", aggregation_mode: "daily" }),
      targetP99Ms: 1000,
    },
    {
      name: "trends_90",
      what: "performance-trends, 90 days with data",
      slow: true,
      req: { method: "GET", path: `/api/v1/analytics/performance-trends?site_id=${id}&days=90` },
      targetP99Ms: 100,
    },
    {
      name: "search_3plus_90d",
      what: `queries/search '${partial}', 90 days`,
      slow: true,
      req: { method: "GET", path: search(partial, start90) },
      targetP99Ms: 1000,
    },
    {
      name: "search_1_2_90d",
      what: `queries/search '${short}', 90 days`,
      slow: true,
      req: { method: "GET", path: search(short, start90) },
      targetP99Ms: 1000,
    },
    tool("mcp_page_queries", "show_page_queries", { page, days }),
    tool("mcp_keyword_pages", "show_keyword_pages", { keyword: query, days }),
    tool("mcp_search_keywords", "search_keywords", { pattern: `%${partial}%`, days }),
    tool("mcp_best_pages", "best_pages", { days }),
    tool("mcp_track_pages", "track_pages", { pages: [page], days }),
    tool("mcp_pages_queries", "pages_queries", { pages: [page] }),
    tool("mcp_compare_query", "compare_periods", { period_type: "custom", custom_periods: periods, breakdown: "query" }),
    tool("mcp_compare_page", "compare_periods", { period_type: "custom", custom_periods: periods, breakdown: "page" }),
    { ...tool("mcp_insight_overview", "insight_overview", { days: 90 }), targetP99Ms: 100 },
    tool("mcp_insight_top_query", "insight_top", { days: 90, by: "query" }),
    tool("mcp_insight_top_page", "insight_top", { days: 90, by: "page" }),
    tool("mcp_insight_compare_query", "insight_compare", { days: 45, by: "query" }),
    tool("mcp_insight_cannibalization", "insight_cannibalization", { days: 90 }),
    tool("mcp_insight_brand", "insight_brand", { days: 90 }),
    tool("mcp_insight_decay", "insight_decay", { weeks: 13 }),
  ];
}

/** One MCP client per service (the SDK's Streamable HTTP client: each tool call is a POST to /mcp). */
const mcpClients = new Map<string, Client>();

/** Sends one request; its status, or 0 when the connection failed (counted as an error, the run goes on). */
export async function send(url: string, r: Req): Promise<number> {
  try {
    return await sendOnce(url, r);
  } catch (err) {
    console.log(`  (${"tool" in r ? r.tool : r.path}: ${(err as Error).message})`);
    return 0;
  }
}

async function sendOnce(url: string, r: Req): Promise<number> {
  if ("tool" in r) {
    let mcp = mcpClients.get(url);
    if (!mcp) {
      mcp = new Client({ name: "sitesync-bench", version: "1.0.0" });
      await mcp.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
      mcpClients.set(url, mcp);
    }
    const res = await mcp.callTool({ name: r.tool, arguments: r.args });
    return res.isError ? 500 : 200;
  }
  const res = await fetch(url + r.path, {
    method: r.method,
    ...(r.body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(r.body) }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** The answer's body (an MCP tool's: its result as JSON), for comparing two services' answers; null on an error. */
export async function answer(url: string, r: Req): Promise<string | null> {
  if ("tool" in r) {
    await send(url, r);
    const res = await mcpClients.get(url)?.callTool({ name: r.tool, arguments: r.args });
    return res && !res.isError ? JSON.stringify(res.content) : null;
  }
  const res = await fetch(url + r.path, {
    method: r.method,
    ...(r.body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(r.body) }),
  });
  const body = await res.text();
  return res.status === 200 ? body : null;
}

export const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

/** Closes the MCP clients of the run. */
export async function closeMcpClients(): Promise<void> {
  for (const c of mcpClients.values()) await c.close();
  mcpClients.clear();
}

/** Sends the request `n` times one after the other (after 2 warm-ups) and returns the latency percentiles. */
async function measure(url: string, s: Scenario, n: number): Promise<Latency> {
  for (let i = 0; i < 2; i++) await send(url, s.req);
  const times: number[] = [];
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const status = await send(url, s.req);
    times.push(performance.now() - t);
    if (status !== 200) errors++;
  }
  times.sort((a, b) => a - b);
  const r: Latency = {
    name: s.name,
    what: s.what,
    n,
    p50Ms: pct(times, 50),
    p99Ms: pct(times, 99),
    maxMs: times[times.length - 1]!,
    errors,
  };
  if (s.targetP99Ms !== undefined) Object.assign(r, { targetP99Ms: s.targetP99Ms, met: r.p99Ms <= s.targetP99Ms });
  return r;
}

type ExportResult = {
  rows: number;
  bytes: number;
  seconds: number;
  rowsPerSec: number;
  /** The server's process tree, summed: before the export and the highest sample during it (MiB). */
  rssBeforeMiB: number;
  rssPeakMiB: number;
  /** The same for anonymous memory only (heap, stacks; not file pages). */
  anonBeforeMiB: number;
  anonPeakMiB: number;
  client: "curl" | "fetch";
  format: "csv" | "parquet";
};

const MiB = 1024 * 1024;

/**
 * Downloads the whole site as CSV (counting rows) or Parquet (to a temp file: its rows read from the footer),
 * while sampling the server tree's RSS every 50 ms.
 */
async function exportSite(server: RunningServer, siteId: number, format: "csv" | "parquet" = "csv"): Promise<ExportResult> {
  const file = format === "parquet" ? join(mkdtempSync(join(tmpdir(), "sitesync-bench-parquet-")), "export.parquet") : null;
  const sample = () => {
    const all = [...(treeRss(server.pid)?.values() ?? [])];
    return { rss: all.reduce((a, b) => a + b.rss, 0), anon: all.reduce((a, b) => a + b.anon, 0) };
  };
  const before = sample();
  let peak = { ...before };
  const timer = setInterval(() => {
    const s = sample();
    peak = { rss: Math.max(peak.rss, s.rss), anon: Math.max(peak.anon, s.anon) };
  }, 50);
  const t = performance.now();
  let bytes = 0;
  let lines = 0;
  const curl = Bun.which("curl");
  const url = `${server.url}/api/v1/sites/${siteId}/export?format=${format}`;
  try {
    if (curl) {
      // curl and wc cost the client far less CPU than a JavaScript reader: on a 2-core machine the
      // client would otherwise take a good share of the CPU the server is measured with.
      // curl's own exit status goes to stderr (sh has no pipefail).
      const to = file ? `-o "${file}"` : "";
      const p = Bun.spawn(["sh", "-c", `{ "${curl}" -sS --fail ${to} "${url}"; echo "curl exit $?" >&2; } | wc -lc`], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      if (!err.includes("curl exit 0")) throw new Error(`curl export failed: ${err.trim()}`);
      const [l, c] = out.trim().split(/\s+/).map(Number);
      lines = l!;
      bytes = c!;
    } else {
      const res = await fetch(url);
      if (res.status !== 200 || !res.body) throw new Error(`export answered ${res.status}`);
      if (file) await Bun.write(file, res);
      else
        for await (const chunk of res.body) {
          bytes += chunk.length;
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
        }
    }
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - t) / 1000;
  let rows = lines - 1;
  if (file) {
    bytes = statSync(file).size;
    rows = Number((await parquetMetadataAsync(await asyncBufferFromFile(file))).num_rows);
    rmSync(dirname(file), { recursive: true, force: true });
  }
  return {
    rows,
    bytes,
    seconds,
    rowsPerSec: rows / seconds,
    rssBeforeMiB: before.rss / MiB,
    rssPeakMiB: peak.rss / MiB,
    anonBeforeMiB: before.anon / MiB,
    anonPeakMiB: peak.anon / MiB,
    client: curl ? "curl" : "fetch",
    format,
  };
}

/** Bytes on disk per stored detail row: the SQLite file (after a checkpoint), or PostgreSQL's analytics tables (gsc_*) with their indexes. */
export async function bytesPerRow(
  dbPath: string,
  rows: number,
): Promise<{ bytes: number; perRow: number; tables: Record<string, number> }> {
  const tables: Record<string, number> = {};
  let bytes: number;
  if (dbPath.startsWith("postgres")) {
    const c = new pg.Client({ connectionString: dbPath });
    await c.connect();
    try {
      // Every analytics table (detail, rollups, grains, dictionaries), each with its indexes and TOAST.
      const rs = await c.query<{ name: string; n: string }>(
        `select c.relname as name, pg_total_relation_size(c.oid) as n from pg_class c
          where c.relkind = 'r' and c.relnamespace = 'public'::regnamespace and c.relname like 'gsc\\_%'
          order by 2 desc`,
      );
      for (const r of rs.rows) tables[r.name] = Number(r.n);
    } finally {
      await c.end();
    }
    bytes = Object.values(tables).reduce((a, b) => a + b, 0);
  } else {
    const db = new Database(dbPath);
    try {
      db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      // dbstat: each table's and index's pages (when SQLite is built with it).
      try {
        for (const r of db
          .query<{ name: string; n: number }, []>("select name, sum(pgsize) as n from dbstat group by name order by n desc limit 8")
          .all())
          tables[r.name] = r.n;
      } catch {}
    } finally {
      db.close();
    }
    bytes = statSync(dbPath).size;
  }
  return { bytes, perRow: bytes / rows, tables };
}

/** Runs `loop` over and over on `clients` concurrent clients until the returned stop() is awaited. */
function background(clients: number, loop: () => Promise<unknown>) {
  let running = true;
  let rounds = 0;
  const all = Array.from({ length: clients }, async () => {
    while (running) {
      await loop();
      rounds++;
    }
  });
  return async () => {
    running = false;
    await Promise.all(all);
    return rounds;
  };
}

/**
 * The seeded site of `dbPath`: reused when `seedFile` (its summary) exists (and, on SQLite, the file), else
 * seeded now (SQLite: the file migrated first; PostgreSQL: an empty database, migrated here).
 */
export async function seedOrReuse(o: {
  engine: "sqlite" | "pg";
  dbPath: string;
  seedFile: string | undefined;
  rows: number;
  days: number;
  data: Flags["data"];
  order?: SeedOrder;
  seedMinutes?: number;
}): Promise<{ seed: SeedResult; seedSeconds: number | null }> {
  if (o.seedFile && (o.engine === "pg" || existsSync(o.dbPath)) && existsSync(o.seedFile)) {
    const seed = JSON.parse(await Bun.file(o.seedFile).text()) as SeedResult;
    console.log(`reusing ${o.engine === "pg" ? "the PostgreSQL database" : o.dbPath}: ${seed.rows.toLocaleString("en-US")} rows`);
    return { seed, seedSeconds: null };
  }
  console.log(`seeding ${o.rows.toLocaleString("en-US")} rows over ${o.days} days (${o.engine})...`);
  let seed: SeedResult;
  let t = performance.now();
  if (o.engine === "pg") {
    await migratePg(o.dbPath);
    t = performance.now();
    seed = await seedAnalyticsPg(o.dbPath, { rows: o.rows, days: o.days, data: o.data });
  } else {
    const until = o.seedMinutes ? Date.now() + o.seedMinutes * 60_000 : undefined;
    seed = await seedAnalytics(o.dbPath, { rows: o.rows, days: o.days, data: o.data, order: o.order, until });
  }
  const seedSeconds = (performance.now() - t) / 1000;
  if (o.seedFile) writeFileSync(o.seedFile, JSON.stringify(seed));
  console.log(
    `seeded ${seed.rows.toLocaleString("en-US")} rows over ${seed.days} days, ${seed.start} to ${seed.end} (${seed.rowsPerDayType} per day and search type) in ${seedSeconds.toFixed(1)} s`,
  );
  console.log(`ingest (${o.engine}) ${Math.round(seed.rows / seedSeconds).toLocaleString("en-US")} rows/s`);
  return { seed, seedSeconds };
}

async function main() {
  const flags = readFlags();
  const tmp = flags.db || flags.database ? null : mkdtempSync(join(tmpdir(), "sitesync-bench-analytics-"));
  const dbPath = flags.database ?? flags.db ?? join(tmp!, "analytics.db");
  const engine = flags.database ? "pg" : "sqlite";
  let server: RunningServer | undefined;
  try {
    const seedFile = flags["seed-json"] ?? (flags.db ? `${dbPath}.seed.json` : undefined);
    const { seed, seedSeconds } = await seedOrReuse({
      engine,
      dbPath,
      seedFile,
      rows: flags.rows,
      days: flags.days,
      data: flags.data,
      order: flags.order,
      seedMinutes: flags["seed-minutes"],
    });
    const size = await bytesPerRow(dbPath, seed.rows);
    console.log(
      `bytes_per_row (${engine}) ${size.perRow.toFixed(1)} (${(size.bytes / MiB).toFixed(1)} MiB: ${Object.entries(size.tables)
        .filter(([, v]) => v / seed.rows >= 0.1)
        .map(([k, v]) => `${k} ${(v / seed.rows).toFixed(1)}`)
        .join(", ")})`,
    );

    server = await startService({ dbPath, workers: flags.workers, syncWorkers: 0 });
    // A reused file already has the sites of its first run.
    const existing = (await (await fetch(`${server.url}/api/v1/sites?active_only=false&limit=500`)).json()) as { id: number }[];
    const others = existing.map((x) => x.id).filter((id) => id !== seed.siteId);
    const siteIds = others.length >= 200 ? others : await seedSites(server.url, 200);
    const list = scenarios(seed);

    const phases = new Set(flags.phases.split(","));
    const latencies: Latency[] = [];
    const only = flags.only ? new Set(flags.only.split(",")) : null;
    for (const s of phases.has("latency") ? list.filter((x) => !only || only.has(x.name)) : []) {
      const r = await measure(server.url, s, s.slow ? flags["slow-requests"] : flags.requests);
      latencies.push(r);
      console.log(
        `${s.name.padEnd(26)} n=${String(r.n).padStart(4)}  p50 ${r.p50Ms.toFixed(1).padStart(8)} ms  p99 ${r.p99Ms.toFixed(1).padStart(8)} ms${r.errors ? `  ${r.errors} errors` : ""}${r.met === undefined ? "" : `  target p99 <= ${r.targetP99Ms} ms: ${r.met ? "met" : "NOT MET"}`}`,
      );
    }

    // Twice: the first also warms the file cache, and this machine is shared.
    const exports: ExportResult[] = [];
    for (let i = 0; i < (phases.has("export") ? 2 : 0); i++) {
      const exp = await exportSite(server, seed.siteId);
      exports.push(exp);
      console.log(
        `export_csv (${exp.client})          ${exp.rows.toLocaleString("en-US")} rows, ${(exp.bytes / MiB).toFixed(0)} MiB in ${exp.seconds.toFixed(1)} s: ` +
          `${Math.round(exp.rowsPerSec).toLocaleString("en-US")} rows/s (target >= 200,000: ${exp.rowsPerSec >= 200_000 ? "met" : "NOT MET"}); ` +
          `server RSS ${exp.rssBeforeMiB.toFixed(0)} -> peak ${exp.rssPeakMiB.toFixed(0)} MiB (anonymous ${exp.anonBeforeMiB.toFixed(0)} -> ${exp.anonPeakMiB.toFixed(0)} MiB)`,
      );
      if (exp.rows !== seed.rows) console.log(`  (the export has ${exp.rows} rows, the seed ${seed.rows}: the file holds other rows too)`);
    }
    const parquet = phases.has("export") ? await exportSite(server, seed.siteId, "parquet") : null;
    if (parquet) exports.push(parquet);
    if (parquet)
      console.log(
        `export_parquet (${parquet.client})      ${parquet.rows.toLocaleString("en-US")} rows, ${(parquet.bytes / MiB).toFixed(1)} MiB in ${parquet.seconds.toFixed(1)} s: ` +
          `${Math.round(parquet.rowsPerSec).toLocaleString("en-US")} rows/s; ` +
          `server RSS ${parquet.rssBeforeMiB.toFixed(0)} -> peak ${parquet.rssPeakMiB.toFixed(0)} MiB (anonymous ${parquet.anonBeforeMiB.toFixed(0)} -> ${parquet.anonPeakMiB.toFixed(0)} MiB)`,
      );

    // The sites API alone and beside each analytics load, in rounds that alternate the conditions, so
    // the machine's own drift (other work on a shared machine) falls on all of them alike; each
    // condition is judged by its median over the rounds, against the median alone.
    const sitesLoad = () =>
      runLoad({
        url: server!.url,
        connections: flags.connections,
        durationSec: flags.duration,
        next: () => ({ method: "GET", path: `/api/v1/sites/${siteIds[Math.floor(Math.random() * siteIds.length)]}` }),
      });
    const byName = new Map(list.map((s) => [s.name, s]));
    const mix = (names: string[]) => async () => {
      for (const n of names) await send(server!.url, byName.get(n)!.req);
    };
    const light = ["ranking_daily_30d_query", "ranking_raw_30d_query", "ranking_raw_30d", "coverage_30"];
    const heavy = ["page_keyword_90d", "ranking_daily_30d_all", "trends_30"];
    const conditions: [string, (() => () => Promise<number>) | null][] = [
      ["alone", null],
      ["+light", () => background(1, mix(light))],
      ["+heavy", () => background(1, mix(heavy))],
      ["+export", () => background(1, () => exportSite(server!, seed.siteId))],
    ];
    const runs: { name: string; round: number; load: LoadResult; analyticsRounds: number }[] = [];
    for (let round = 1; round <= (phases.has("load") ? flags.rounds : 0); round++) {
      for (const [name, start] of conditions) {
        const stop = start?.();
        const load = await sitesLoad();
        const analyticsRounds = stop ? await stop() : 0;
        runs.push({ name, round, load, analyticsRounds });
        console.log(
          `sites_get ${name.padEnd(8)} round ${round}  ${Math.round(load.rps).toLocaleString("en-US").padStart(7)} req/s  p50 ${load.p50Ms.toFixed(2)} ms  p99 ${load.p99Ms.toFixed(2)} ms  max ${load.maxMs.toFixed(0)} ms  5xx ${load.server5xx}${stop ? `  (analytics rounds meanwhile: ${analyticsRounds})` : ""}`,
        );
      }
    }
    const median = (xs: number[]) => {
      const v = [...xs].sort((x, y) => x - y);
      const m = v.length >> 1;
      return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
    };
    const medians = conditions.map(([name]) => {
      const rs = runs.filter((r) => r.name === name).map((r) => r.load);
      return { name, p50Ms: median(rs.map((r) => r.p50Ms)), p99Ms: median(rs.map((r) => r.p99Ms)), rps: median(rs.map((r) => r.rps)) };
    });
    const base = medians[0]!;
    const ratios = runs.length
      ? medians.slice(1).map((m) => ({ name: m.name, p50: m.p50Ms / base.p50Ms, p99: m.p99Ms / base.p99Ms, rps: m.rps / base.rps }))
      : [];
    if (runs.length)
      console.log(
        `sites_get alone    median of ${flags.rounds}: ${Math.round(base.rps).toLocaleString("en-US")} req/s  p50 ${base.p50Ms.toFixed(2)} ms  p99 ${base.p99Ms.toFixed(2)} ms`,
      );
    for (const r of ratios) {
      console.log(
        `sites_get ${r.name.padEnd(8)} median vs alone: p50 ${r.p50.toFixed(2)}x  p99 ${r.p99.toFixed(2)}x  req/s ${r.rps.toFixed(2)}x (target: p99 within 1.10x: ${r.p99 <= 1.1 ? "met" : "NOT MET"})`,
      );
    }

    const report = {
      at: new Date().toISOString(),
      machine: {
        cores: availableParallelism(),
        cpu: cpus()[0]?.model ?? "?",
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        bun: Bun.version,
      },
      options: flags,
      engine,
      seed: { ...seed, seconds: seedSeconds, rowsPerSec: seedSeconds ? seed.rows / seedSeconds : null },
      size,
      latencies,
      exports,
      sitesMedians: medians,
      sites: runs.map((r) => ({
        name: r.name,
        round: r.round,
        rps: r.load.rps,
        p50Ms: r.load.p50Ms,
        p99Ms: r.load.p99Ms,
        maxMs: r.load.maxMs,
        server5xx: r.load.server5xx,
        analyticsRounds: r.analyticsRounds,
      })),
      sitesRatios: ratios,
    };
    mkdirSync(dirname(flags.out), { recursive: true });
    writeFileSync(flags.out, JSON.stringify(report, null, 2));
    console.log(`wrote ${flags.out}`);
  } finally {
    await closeMcpClients();
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
