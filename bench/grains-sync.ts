// `bun bench/grains-sync.ts [--days 3] [--web 2000] [--types web,image,...]`: what storing Search Console's grains costs per site
// and day (issue 17): Search Console requests by kind (from the fake Search Console's request log; the
// real client over real HTTP) and bytes per day on SQLite per table (dbstat), for one property with data
// in every search type. Before the grains, a day cost one query-detail request per search type with data
// among web/image/video/news (plus pages of 25,000 rows).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openDb } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { startWorker } from "../src/sync/worker.ts";
import { isDetailRequest, startFakeGsc } from "../test/helpers/fake-gsc.ts";

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "3" },
    web: { type: "string", default: "2000" },
    // Search types with data (the others answer no rows).
    types: { type: "string", default: "web,image,video,news,discover,googleNews" },
  },
});
const days = Number(args.days);
const web = Number(args.web);
// Query rows per day and type (the fake adds a tenth more as anonymized queries).
const sizes: Record<string, number> = {
  web,
  image: Math.round(web / 10),
  video: Math.round(web / 50),
  news: Math.round(web / 100),
  discover: Math.round(web / 20),
  googleNews: Math.round(web / 100),
};
const perType = Object.fromEntries(args.types.split(",").map((t) => [t, sizes[t] ?? 0]));
setLogLevel("warn");

const dir = mkdtempSync(join(tmpdir(), "sitesync-grains-bench-"));
const path = join(dir, "bench.db");
migrate(path);
const db = openDb({ path, role: "test" });
const fake = startFakeGsc({ rows: (_s, _d, type) => perType[type] ?? 0 });
try {
  const domain = "sc-domain:grains.bench.example";
  const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
  const end = addDays(dayOf(new Date()), -10);
  const task = await createTask(db, {
    siteId: site,
    taskType: "daily_sync",
    startDate: addDays(end, -(days - 1)),
    endDate: end,
    params: { sync_mode: "overwrite" },
    runAt: new Date(),
    maxAttempts: 1,
  });
  const source = gscSource({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 1_000_000 }),
    rowLimit: 25_000,
    maxRetries: 0,
    retryBaseMs: 10,
    timeoutMs: 60_000,
  });
  const worker = startWorker({ db, source, pollMs: 5, leaseMs: 60_000, retryBaseMs: 1000, batchSize: 1000 });
  for (;;) {
    const job = await findJob(db, task.id);
    if (job && job.status !== "pending" && job.status !== "running") {
      if (job.status !== "completed") throw new Error(`task ${job.status}: ${job.error}`);
      break;
    }
    await Bun.sleep(20);
  }
  await worker.stop();

  const kind = (r: (typeof fake.requests)[number]) =>
    isDetailRequest(r)
      ? "detail"
      : r.dimensions.includes("searchAppearance")
        ? "appearance"
        : r.aggregationType === "byProperty"
          ? "property"
          : "page";
  const byKind: Record<string, number> = {};
  for (const r of fake.requests) byKind[kind(r)] = (byKind[kind(r)] ?? 0) + 1;
  // Before the grains: the same detail requests, plus one (empty) detail request per old type without data.
  const emptyOld = ["web", "image", "video", "news"].filter((t) => !perType[t]).length;
  const before = fake.requests.filter((r) => isDetailRequest(r)).length + emptyOld * days;
  console.log(`property rows per day and type: ${JSON.stringify(perType)} (+10% anonymized)`);
  console.log(
    `Search Console requests per site and day: ${(fake.requests.length / days).toFixed(1)} (before the grains: ${(before / days).toFixed(1)})`,
  );
  for (const [k, n] of Object.entries(byKind)) console.log(`  ${k}: ${(n / days).toFixed(1)}`);

  // One `recheck` of these days: a property-totals request per search type with data, nothing else unchanged.
  fake.requests.length = 0;
  const recheck = await createTask(db, {
    siteId: site,
    taskType: "recheck",
    startDate: addDays(end, -(days - 1)),
    endDate: end,
    params: {},
    runAt: new Date(),
    maxAttempts: 1,
  });
  const w2 = startWorker({ db, source, pollMs: 5, leaseMs: 60_000, retryBaseMs: 1000, batchSize: 1000 });
  for (;;) {
    const job = await findJob(db, recheck.id);
    if (job && job.status !== "pending" && job.status !== "running") break;
    await Bun.sleep(20);
  }
  await w2.stop();
  console.log(`recheck (no change) requests per site and day: ${(fake.requests.length / days).toFixed(1)}`);

  const tables = [
    "gsc_property_totals",
    "gsc_page_totals",
    "gsc_pages",
    "gsc_appearance_totals",
    "gsc_day_completeness",
    "gsc_query_detail",
    "gsc_day_query_totals",
    "gsc_queries",
  ];
  const rows = (t: string) => db.raw.reader.query<{ n: number }, []>(`select count(*) n from ${t}`).get()!.n;
  const bytes = (t: string) =>
    db.raw.reader.query<{ b: number }, [string]>("select coalesce(sum(pgsize), 0) b from dbstat where name = ?").get(t)?.b ?? 0;
  // dbstat: pages of each table and of its indexes (tbl_name of an index is its table).
  const idx = (t: string) =>
    db.raw.reader
      .query<{ b: number }, [string]>(
        "select coalesce(sum(s.pgsize), 0) b from dbstat s join sqlite_schema m on m.name = s.name where m.type = 'index' and m.tbl_name = ?",
      )
      .get(t)?.b ?? 0;
  console.log("table | rows per day | KiB per day (table + indexes) | bytes per row");
  for (const t of tables) {
    const total = bytes(t) + idx(t);
    console.log(
      `${t} | ${(rows(t) / days).toFixed(0)} | ${(total / 1024 / days).toFixed(1)} | ${(total / Math.max(1, rows(t))).toFixed(0)}`,
    );
  }
} finally {
  fake.stop();
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
