// `bun bench/ingest-worker.ts [--days 6] [--web 50000] [--runs 1] [--history N]`: the sync
// worker's CPU per row on the real sync path, measured in this process: the fake Search Console runs in a process of
// its own (its pages serialised once and sent again for every day, FAKE_GSC_REUSE_BODIES), and this process runs what
// the sync worker process runs (the configuration's Search Console source: quota in the database, fetch, JSON parse;
// startWorker; a fresh migrated SQLite file per run) for a `daily_sync` backfill of `--days` final days. `--history
// N`: one file for every run, N earlier days stored in it first (not measured), each run the days before the last
// (a property with history: its day × query rollup holds N days a query). CPU from process.cpuUsage (user + system) over the task, per
// stored row: the machine's load counts less than in wall time. With BUN_OPTIONS="--cpu-prof --cpu-prof-dir DIR" the
// profile is of this process (and the fake's).
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnUntilReady } from "../scripts/spawn-ready.ts";
import { type Config, loadConfig } from "../src/config.ts";
import { type Db, openDbFromConfig } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { sourceFromConfig } from "../src/sync/source.ts";
import { startWorker } from "../src/sync/worker.ts";

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "6" },
    web: { type: "string", default: "50000" },
    // The fake's answer time per search-analytics request (ms): Google's latency.
    latency: { type: "string", default: "0" },
    runs: { type: "string", default: "1" },
    history: { type: "string", default: "0" },
  },
});
setLogLevel("warn");
const root = join(import.meta.dir, "..");
const web = Number(args.web);
const days = Number(args.days);
const fake = await spawnUntilReady([process.execPath, join(root, "test/helpers/fake-gsc.ts")], {
  cwd: root,
  env: {
    ...process.env,
    BUN_OPTIONS: "",
    LOG_LEVEL: "warn",
    FAKE_GSC_ROWS: JSON.stringify({ web }),
    FAKE_GSC_DAILY_ROW_CAP: String(Math.max(50_000, web * 2)),
    FAKE_GSC_REUSE_BODIES: "1",
    FAKE_GSC_DELAY_MS: args.latency,
  },
  ready: "fake gsc listening",
  timeoutMs: 60_000,
  name: "fake gsc",
});
const gscUrl = /fake gsc listening on (\S+)/.exec(fake.output())![1]!;
const dir = mkdtempSync(join(tmpdir(), "sitesync-ingest-worker-"));
const history = Number(args.history);
try {
  let shared: { db: Db; site: number; config: Config } | null = null;
  const open = async (path: string) => {
    migrate(path);
    const config = loadConfig([], {
      ...process.env,
      DATABASE_URL: path,
      LOG_LEVEL: "warn",
      SYNC_SOURCE: "gsc",
      GSC_ACCESS_TOKEN: "test-token",
      GSC_API_BASE_URL: gscUrl,
      SYNC_SCHEDULER: "false",
    });
    const db = openDbFromConfig(config, "sync");
    const site = (
      await db.tx(
        async (tx) => (await tx.insert(db.t.sites).values({ domain: "sc-domain:backfill.bench.example", name: "B" }).returning())[0]!,
      )
    ).id;
    return { db, site, config };
  };
  // The newest day of the next task; each task takes the days before the previous one's.
  let end = addDays(dayOf(new Date()), -10);
  if (history > 0) {
    // --history N: N days stored first (not measured) in one file that every run then writes into, so the runs
    // write into a property with history (its day × query rollup holding N days per query).
    shared = await open(join(dir, "app.db"));
    const h = await backfill(shared, end, history);
    console.log(`history: ${h.rows} rows in ${h.seconds.toFixed(1)} s (${h.cpuPerRow.toFixed(2)} µs/row)`);
    end = addDays(end, -history);
  }
  for (let run = 1; run <= Number(args.runs); run++) {
    const target = shared ?? (await open(join(dir, `app${run}.db`)));
    const r = await backfill(target, end, days);
    if (shared) end = addDays(end, -days);
    console.log(
      `run ${run}: ${r.rows} rows, ${days} days × ${web} web rows; sync CPU ${r.cpuPerRow.toFixed(2)} µs/row (user ${r.userPerRow.toFixed(2)}, sys ${r.sysPerRow.toFixed(2)}), wall ${Math.round(r.rows / r.seconds)} rows/s, RSS peak ${r.rssPeakMiB} MiB, load ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(`  CPU µs/row per day: ${r.perDay.join(" ")}`);
    if (!shared) target.db.close();
  }
  shared?.db.close();
} finally {
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** One daily_sync of `count` final days ending at `last`, run by a worker in this process; its CPU and wall. */
async function backfill(target: { db: Db; site: number; config: Config }, last: string, count: number) {
  const { db, site, config } = target;
  const task = await createTask(db, {
    siteId: site,
    taskType: "daily_sync",
    startDate: addDays(last, -(count - 1)),
    endDate: last,
    params: { sync_mode: "overwrite" },
    runAt: new Date(),
    maxAttempts: 1,
  });
  let rssPeak = 0;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 50);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = startWorker({
    db,
    source: sourceFromConfig(config, db),
    pollMs: 5,
    leaseMs: config.SYNC_LEASE_MS,
    retryBaseMs: 1000,
    batchSize: config.SYNC_BATCH_SIZE,
    bulkBatchSize: config.SYNC_BULK_BATCH_SIZE,
    atomicDayRows: config.SYNC_ATOMIC_DAY_ROWS,
    writeGapMs: config.SYNC_WRITE_GAP_MS,
    fetchAhead: config.SYNC_FETCH_AHEAD,
  });
  let job = await findJob(db, task.id);
  // Per day (each progress checkpoint): CPU µs per row of that day, so growth with the stored days shows.
  const perDay: string[] = [];
  let [doneAt, recordsAt, cpuAt] = [0, 0, process.cpuUsage()];
  while (!job || job.status === "pending" || job.status === "running") {
    await Bun.sleep(5);
    job = await findJob(db, task.id);
    if (job && job.progress_done > doneAt && Number(job.total_records) > recordsAt) {
      const c = process.cpuUsage(cpuAt);
      perDay.push(((c.user + c.system) / (Number(job.total_records) - recordsAt)).toFixed(1));
      [doneAt, recordsAt, cpuAt] = [job.progress_done, Number(job.total_records), process.cpuUsage()];
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  clearInterval(rssTimer);
  await worker.stop();
  if (job.status !== "completed") throw new Error(`task ${job.status}: ${job.error}`);
  const rows = Number(job.total_records);
  return {
    rows,
    seconds,
    cpuPerRow: (c.user + c.system) / rows,
    userPerRow: c.user / rows,
    sysPerRow: c.system / rows,
    rssPeakMiB: Math.round(rssPeak / 2 ** 20),
    perDay,
  };
}
process.exit(0);
