// `bun bench/sync-ingest.ts [--days 30] [--rows 2000] [--runs 3] [--batch 250] [--bulk 5000] [--atomic 10000] [--database postgres://…]`: the ingest
// speed of the sync engine. One site, one daily_sync of `days` days from the demo source (`rows` rows per
// day and search type, so days × rows × 4 rows in all), run by one worker in this process; prints rows/s
// per run and the median. Default: a fresh SQLite file in a temp dir; with --database, an EMPTY
// PostgreSQL database (migrated here, its tables truncated before each run).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { demoSource } from "../src/sync/demo.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { startWorker } from "../src/sync/worker.ts";

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "30" },
    rows: { type: "string", default: "2000" },
    runs: { type: "string", default: "3" },
    batch: { type: "string", default: "250" },
    // SYNC_BULK_BATCH_SIZE: rows per write while the worker writes alone (0: always --batch).
    bulk: { type: "string", default: "5000" },
    // SYNC_ATOMIC_DAY_ROWS: days with at most this many detail rows go in one transaction with their totals (0: all staged, then switched).
    atomic: { type: "string", default: "10000" },
    database: { type: "string" },
  },
});
const days = Number(args.days);
const rowsPerDay = Number(args.rows);
const runs = Number(args.runs);
setLogLevel("warn");

async function oneRun(db: Db, run: number): Promise<number> {
  const domain = `sc-domain:ingest-${run}-${Date.now()}.bench.example`;
  const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
  // Old enough to be final (marked), like a backfill.
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
  const started = performance.now();
  const worker = startWorker({
    db,
    source: demoSource(rowsPerDay),
    pollMs: 5,
    leaseMs: 60_000,
    retryBaseMs: 1000,
    batchSize: Number(args.batch),
    bulkBatchSize: Number(args.bulk),
    atomicDayRows: Number(args.atomic),
  });
  for (;;) {
    const job = await findJob(db, task.id);
    if (job && job.status !== "pending" && job.status !== "running") {
      if (job.status !== "completed") throw new Error(`task ${job.status}: ${job.error}`);
      break;
    }
    await Bun.sleep(5);
  }
  const seconds = (performance.now() - started) / 1000;
  await worker.stop();
  const rows = days * rowsPerDay * 4;
  const rate = rows / seconds;
  console.log(`run ${run}: ${rows} rows in ${seconds.toFixed(2)} s = ${Math.round(rate)} rows/s`);
  return rate;
}

let db: Db;
let cleanup: () => Promise<void> | void;
if (args.database) {
  await migratePg(args.database);
  db = openPgDb({ url: args.database, role: "test" });
  await db.tx((tx) =>
    tx.execute(
      sql`truncate sites, sync_tasks, gsc_query_detail, gsc_day_query_totals, gsc_pages, gsc_synced_days, gsc_queries restart identity cascade`,
    ),
  );
  cleanup = () => db.close();
} else {
  const dir = mkdtempSync(join(tmpdir(), "sitesync-ingest-"));
  const path = join(dir, "app.db");
  migrate(path);
  db = openDb({ path, role: "test" });
  cleanup = () => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  };
}
console.log(
  `${db.engine}: daily_sync of ${days} days × ${rowsPerDay} rows × 4 search types, batches of ${args.batch} (${args.bulk} while alone)`,
);
const rates: number[] = [];
for (let i = 1; i <= runs; i++) rates.push(await oneRun(db, i));
rates.sort((a, b) => a - b);
console.log(`median: ${Math.round(rates[Math.floor(rates.length / 2)]!)} rows/s`);
await cleanup();
process.exit(0);
