import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { exportQuery, findRankingData } from "../src/analytics/queries.ts";
import { csvLine } from "../src/analytics/format.ts";
import { streamQuery } from "../src/analytics/stream.ts";
import { closeAllConnections, openDb, openPgDb, type Db } from "../src/db/index.ts";
import { searchQueries } from "../src/search/queries.ts";
import { addDays } from "../src/sync/dates.ts";
import { demoRows } from "../src/sync/demo.ts";
import { seedAnalytics, type SeedResult } from "./seed-analytics.ts";
import { seedAnalyticsPg } from "./seed-analytics-pg.ts";

// `bun bench/read-engines.ts --postgres postgres://…`: the read side on both engines, same machine,
// same data (the analytics seeder's demo rows, `--rows` over `--days` days, loaded into an SQLite file
// and into a fresh PostgreSQL database of the given server): query search for a selective term,
// ranking-data daily over 30 days, and the whole-site CSV export, each through the module's own
// functions (no HTTP), one call in flight. The two engines alternate rounds, so drifting machine load
// hits both alike. The PostgreSQL database is dropped at the end.
//
//   bun bench/read-engines.ts --postgres postgres://postgres@127.0.0.1:5432/postgres [--rows 500000] [--days 30]
//                             [--iterations 200] [--rounds 3]

const flags = z
  .object({
    postgres: z.string().regex(/^postgres(ql)?:\/\//, "a postgres:// URL of a server where a database may be created"),
    rows: z.coerce.number().int().min(1000).default(500_000),
    days: z.coerce.number().int().min(30).default(30),
    iterations: z.coerce.number().int().min(5).default(200),
    rounds: z.coerce.number().int().min(1).default(3),
  })
  .parse(
    parseArgs({
      options: Object.fromEntries(["postgres", "rows", "days", "iterations", "rounds"].map((k) => [k, { type: "string" as const }])),
      strict: true,
    }).values,
  );

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function timeCalls(n: number, f: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return ms;
}

/** Reads the CSV export of the site to the end; rows per second. */
async function exportRate(db: Db, seed: SeedResult): Promise<{ rows: number; seconds: number }> {
  type Row = Record<string, string | number>;
  const t0 = performance.now();
  const q = exportQuery(db.engine, { siteId: seed.siteId });
  const body = await streamQuery<Row>(db, q.sql, q.params, "", (r) =>
    csvLine([r.date!, r.page!, r.query!, r.device!, r.search_type!, r.clicks!, r.impressions!, r.ctr!, r.position!]),
  );
  let lines = 0;
  const decoder = new TextDecoder();
  for await (const chunk of body) lines += decoder.decode(chunk).split("\r\n").length - 1;
  return { rows: lines, seconds: (performance.now() - t0) / 1000 };
}

const dir = mkdtempSync(join(tmpdir(), "sitesync-bench-read-"));
const admin = new URL(flags.postgres);
const pgName = `sitesync_bench_read_${process.pid}`;
const pgUrl = Object.assign(new URL(admin), { pathname: `/${pgName}` }).toString();
const psql = (sql: string) => {
  const r = Bun.spawnSync(["psql", admin.toString(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`psql: ${r.stderr.toString()}`);
};
try {
  console.log(`seeding ${flags.rows} rows over ${flags.days} days into SQLite and PostgreSQL...`);
  const path = join(dir, "app.db");
  const sqliteSeed = await seedAnalytics(path, { rows: flags.rows, days: flags.days });
  psql(`create database "${pgName}"`);
  const migrated = Bun.spawnSync([process.execPath, join(import.meta.dir, "../src/db/sqlite/migrate-cli.ts")], {
    env: { ...process.env, DATABASE_URL: pgUrl, LOG_LEVEL: "warn" },
    stderr: "pipe",
  });
  if (migrated.exitCode !== 0) throw new Error(`migrate: ${migrated.stderr.toString()}`);
  const pgSeed = await seedAnalyticsPg(pgUrl, { rows: flags.rows, days: flags.days });
  const engines = [
    { name: "sqlite", db: openDb({ path, role: "stress" }), seed: sqliteSeed },
    { name: "postgres", db: openPgDb({ url: pgUrl, role: "stress" }), seed: pgSeed },
  ];
  // A selective term: the demo vocabulary's last query (its highest round number), found in a few queries.
  const term = demoRows(sqliteSeed.domain, sqliteSeed.end, "web", sqliteSeed.rowsPerDayType).at(-1)!.query;
  const results: Record<string, { search: number[]; ranking: number[]; exports: number[]; matches: number; rankingRows: number }> = {};
  for (const e of engines) results[e.name] = { search: [], ranking: [], exports: [], matches: 0, rankingRows: 0 };
  for (let round = 1; round <= flags.rounds; round++) {
    for (const e of engines) {
      const r = results[e.name]!;
      const search = () => searchQueries(e.db, { siteId: e.seed.siteId, term, startDate: null, endDate: null, limit: 100 });
      r.matches = (await search()).total;
      r.search.push(...(await timeCalls(flags.iterations, search)));
      const start = addDays(e.seed.end, -29);
      const ranking = () =>
        findRankingData(e.db, {
          siteId: e.seed.siteId,
          start,
          end: e.seed.end,
          groupBy: "query",
          exact: null,
          partial: null,
          daily: true,
          limit: null,
        });
      r.rankingRows = (await ranking()).length;
      r.ranking.push(...(await timeCalls(Math.max(5, Math.floor(flags.iterations / 10)), ranking)));
      const x = await exportRate(e.db, e.seed);
      if (x.rows !== e.seed.rows) throw new Error(`${e.name} export wrote ${x.rows} rows, expected ${e.seed.rows}`);
      r.exports.push(x.rows / x.seconds);
      console.log(`round ${round} ${e.name}: export ${Math.round(x.rows / x.seconds)} rows/s`);
    }
  }
  console.log(`\n${flags.rows} rows (${sqliteSeed.rows} seeded), ${flags.days} days, search term "${term}", ${flags.rounds} rounds`);
  for (const [name, r] of Object.entries(results)) {
    const s = [...r.search].sort((a, b) => a - b);
    const k = [...r.ranking].sort((a, b) => a - b);
    const x = [...r.exports].sort((a, b) => a - b);
    console.log(
      `${name.padEnd(8)} search (${r.matches} matches): p50 ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms (n=${s.length}) | ` +
        `ranking daily 30 days (${r.rankingRows} rows): p50 ${percentile(k, 50).toFixed(1)} ms, p99 ${percentile(k, 99).toFixed(1)} ms (n=${k.length}) | ` +
        `CSV export: median ${Math.round(percentile(x, 50))} rows/s (${x.map((v) => Math.round(v)).join(", ")})`,
    );
  }
  await closeAllConnections();
} finally {
  try {
    psql(`drop database if exists "${pgName}" with (force)`);
  } catch {
    // never created
  }
  rmSync(dir, { recursive: true, force: true });
}
