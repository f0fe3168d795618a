import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { openDb, type SqliteDb } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { sites } from "../src/db/sqlite/schema.ts";
import { indexAllPendingQueries, searchQueries } from "../src/search/queries.ts";
import { findDataDaysSqlite, rebuildDayQueryTotals, upsertRows } from "../src/sync/data.ts";
import { addDays } from "../src/sync/dates.ts";
import { dayNumber, typeCode } from "../src/sync/grains.ts";
import { refreshDayRollups } from "../src/sync/rollups.ts";
import type { SourceRow } from "../src/sync/source.ts";

// `bun run bench:search`: query search on the trigram index against the plain scan of the rows, on
// one site with `--rows` rows, and the ingest cost of keeping the index (the triggers and the batched
// FTS writes after each day, as the daily sync does) measured by storing the same rows into a second
// database whose index triggers were dropped. Both in one run.
//
//   bun run bench:search [--rows 500000] [--rows-per-day 1500] [--vocabulary 100000] [--iterations 30]

const flags = z
  .object({
    rows: z.coerce.number().int().min(1000).default(500_000),
    "rows-per-day": z.coerce.number().int().min(10).default(1500),
    vocabulary: z.coerce.number().int().min(100).default(100_000),
    iterations: z.coerce.number().int().min(3).default(30),
    batch: z.coerce.number().int().min(1).default(250),
  })
  .parse(
    parseArgs({
      options: Object.fromEntries(
        ["rows", "rows-per-day", "vocabulary", "iterations", "batch"].map((k) => [k, { type: "string" as const }]),
      ),
      strict: true,
    }).values,
  );

const topics = [
  "running shoes",
  "trail running",
  "marathon training",
  "yoga mats",
  "protein powder",
  "hiking boots",
  "cycling helmet",
  "swim goggles",
  "tennis racket",
  "climbing gear",
  "ski jacket",
  "camping tent",
  "fitness tracker",
  "foam roller",
  "kettlebell",
  "resistance bands",
];
const modifiers = [
  "best",
  "cheap",
  "buy",
  "review",
  "how to choose",
  "vs",
  "for beginners",
  "sale",
  "near me",
  "size guide",
  "women",
  "men",
  "kids",
  "lightweight",
  "waterproof",
  "2026",
];
const devices = ["DESKTOP", "MOBILE", "TABLET"];

/** The vocabulary's i-th query: every index its own string. */
function queryOf(i: number): string {
  const t = topics[i % topics.length]!;
  const m = modifiers[Math.floor(i / topics.length) % modifiers.length]!;
  const round = Math.floor(i / (topics.length * modifiers.length));
  return `${m} ${t}${round > 0 ? ` ${round}` : ""}`;
}

/** Deterministic rows: per day, queries drawn from the vocabulary with a skew toward the popular ones. */
function* days(): Generator<[string, SourceRow[]]> {
  let seed = 42;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const dayCount = Math.ceil(flags.rows / flags["rows-per-day"]);
  let left = flags.rows;
  for (let d = 0; d < dayCount; d++) {
    const n = Math.min(left, flags["rows-per-day"]);
    left -= n;
    const seen = new Set<number>();
    const rows: SourceRow[] = [];
    while (rows.length < n) {
      const i = Math.floor(flags.vocabulary * rand() ** 2);
      if (seen.has(i)) continue;
      seen.add(i);
      const impressions = 1 + Math.floor(rand() * 1000);
      const clicks = Math.floor(impressions * rand() * 0.3);
      rows.push({
        page: `https://bench.example/${i % 500}`,
        query: queryOf(i),
        device: devices[i % 3]!,
        clicks,
        impressions,
        ctr: clicks / impressions,
        position: 1 + Math.floor(rand() * 490) / 10,
      });
    }
    yield [addDays("2025-01-01", d), rows];
  }
}

/** Stores every day on both databases in turn (so drift in machine load hits both alike); wall and CPU seconds of each. */
async function ingestBoth(sides: { db: SqliteDb; siteId: number; index: boolean }[]): Promise<{ wall: number; cpu: number }[]> {
  const spent = sides.map(() => ({ wall: 0, cpu: 0 }));
  for (const [day, rows] of days()) {
    for (const [k, side] of sides.entries()) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (let i = 0; i < rows.length; i += flags.batch) {
        const batch = rows.slice(i, i + flags.batch);
        await side.db.write((tx) => upsertRows(tx, side.siteId, day, "web", batch));
      }
      // As the daily sync does after each day it stores: the day x query rollup and its packed day row (query search
      // reads them), then the index.
      await side.db.tx(async (tx) => {
        await rebuildDayQueryTotals(tx, side.siteId, day, "web");
        await refreshDayRollups(tx, side.siteId, dayNumber(day), typeCode("web"));
      });
      if (side.index) await indexAllPendingQueries((fn) => side.db.write(fn));
      const c = process.cpuUsage(c0);
      spent[k]!.wall += (performance.now() - t0) / 1000;
      spent[k]!.cpu += (c.user + c.system) / 1e6;
    }
  }
  return spent;
}

function percentile(sorted: number[], p: number) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const dir = mkdtempSync(join(tmpdir(), "sitesync-bench-search-"));
try {
  const open = (name: string, dropTriggers: boolean) => {
    const path = join(dir, name);
    migrate(path);
    const db = openDb({ path, role: "stress" });
    // (the old per-row triggers that kept gsc_queries are gone: the sync writes the dictionary itself)
    void dropTriggers;
    return db;
  };
  const indexed = open("indexed.db", false);
  const plain = open("plain.db", true);
  const site = async (db: SqliteDb) =>
    db.write((tx) => tx.insert(sites).values({ domain: "sc-domain:bench.example", name: "Bench" }).returning({ id: sites.id }).get()!.id);
  const [a, b] = [await site(indexed), await site(plain)];

  console.log(`ingest ${flags.rows} rows (${flags["rows-per-day"]}/day, vocabulary ${flags.vocabulary}, batches of ${flags.batch})...`);
  const [plainS, indexedS] = (await ingestBoth([
    { db: plain, siteId: b, index: false },
    { db: indexed, siteId: a, index: true },
  ])) as [{ wall: number; cpu: number }, { wall: number; cpu: number }];
  const distinct = indexed.raw.reader.query<{ n: number }, []>("select count(*) n from gsc_queries").get()!.n;
  const pct = (x: number, y: number) => `${((x / y - 1) * 100).toFixed(0)}%`;
  console.log(`${distinct} distinct queries in ${flags.rows} rows`);
  console.log(
    `ingest without the index: ${plainS.wall.toFixed(1)} s wall, ${plainS.cpu.toFixed(1)} s cpu (${Math.round(flags.rows / plainS.cpu)} rows per cpu-second)`,
  );
  console.log(
    `ingest with the index:    ${indexedS.wall.toFixed(1)} s wall, ${indexedS.cpu.toFixed(1)} s cpu (${Math.round(flags.rows / indexedS.cpu)} rows per cpu-second): +${pct(indexedS.cpu, plainS.cpu)} cpu, +${pct(indexedS.wall, plainS.wall)} wall`,
  );
  plain.close();

  const terms = ["running shoes", "ski jacket 12", "waterproof", "kettle", "zzz no match", "ab", "12", "s"];
  // Scan and index runs alternate, so both see the same machine load. Wall time per request (what a
  // client waits) and this process's CPU time per request (steadier on a shared machine).
  const measure = async (term: string) => {
    const sides = { scan: { wall: [] as number[], cpu: 0, total: 0 }, index: { wall: [] as number[], cpu: 0, total: 0 } };
    for (let i = 0; i < flags.iterations; i++) {
      for (const using of ["scan", "index"] as const) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const found = await searchQueries(indexed, { siteId: a, term, startDate: null, endDate: null, limit: 100, using });
        sides[using].wall.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        sides[using].cpu += (c.user + c.system) / 1000;
        sides[using].total = found.total;
      }
    }
    for (const side of Object.values(sides)) side.wall.sort((x, y) => x - y);
    if (sides.scan.total !== sides.index.total) throw new Error(`${term}: index found ${sides.index.total}, scan ${sides.scan.total}`);
    return sides;
  };
  console.log(`\nsearch over ${flags.rows} rows, all dates, limit 100, ${flags.iterations} runs each, alternating (ms):`);
  console.log("term            | matches | scan p50 | scan p99 | scan cpu | index p50 | index p99 | index cpu | cpu ratio");
  const f = (n: number, w: number) => n.toFixed(n < 10 ? 2 : 1).padStart(w);
  for (const term of terms) {
    const { scan, index } = await measure(term);
    const [sc, ic] = [scan.cpu / flags.iterations, index.cpu / flags.iterations];
    console.log(
      `${JSON.stringify(term).padEnd(15)} | ${String(index.total).padStart(7)} | ${f(percentile(scan.wall, 50), 8)} | ${f(percentile(scan.wall, 99), 8)} | ${f(sc, 8)} | ${f(percentile(index.wall, 50), 9)} | ${f(percentile(index.wall, 99), 9)} | ${f(ic, 9)} | ${(sc / ic).toFixed(1)}x`,
    );
  }

  // /sync/status/{site_id}: the days with rows by one index seek per day, against count(distinct date).
  const timeIt = (f: () => unknown) => {
    const times: number[] = [];
    for (let i = 0; i < flags.iterations; i++) {
      const t0 = performance.now();
      f();
      times.push(performance.now() - t0);
    }
    return percentile(
      times.sort((x, y) => x - y),
      50,
    );
  };
  const seek = timeIt(() => findDataDaysSqlite(indexed, a));
  const countDistinct = timeIt(() => indexed.raw.reader.query("select count(distinct day) from gsc_query_detail where site_id = ?").get(a));
  console.log(
    `\nsync status days (${findDataDaysSqlite(indexed, a).length} days): skip scan p50 ${seek.toFixed(2)} ms, count(distinct date) p50 ${countDistinct.toFixed(1)} ms`,
  );
  indexed.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
