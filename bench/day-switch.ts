// `bun bench/day-switch.ts [--rows 50000] [--database postgres://…]`: what a big day's switch costs other
// writers (issue 17). One site, one day of `rows` detail rows per search type (demo source, 4 types), synced
// twice (first fetch, then `overwrite` with the same rows: the switch finds them equal), once straight in one
// transaction (SYNC_ATOMIC_DAY_ROWS ≥ rows) and once staged then switched (SYNC_ATOMIC_DAY_ROWS 0). Prints
// each run's wall time and its longest write transaction (from the callback's start to COMMIT resolved:
// how long other writers could wait behind it). Single runs on a shared machine: compare within one run.
import { parseArgs } from "node:util";
import { openBenchDb } from "./bench-db.ts";
import type { Db } from "../src/db/index.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { demoSource } from "../src/sync/demo.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { startWorker } from "../src/sync/worker.ts";

const { values: args } = parseArgs({ options: { rows: { type: "string", default: "50000" }, database: { type: "string" } } });
const rowsPerDay = Number(args.rows);
setLogLevel("warn");

/** Syncs one day (overwrite) with the given threshold; returns wall seconds and the longest write transaction in ms. */
async function syncOnce(db: Db, site: number, day: string, atomicDayRows: number) {
  const writes: number[] = [];
  const tx = db.tx.bind(db);
  db.tx = ((fn: (q: never) => unknown, label?: string) => {
    let t0 = 0;
    return tx((q) => {
      t0 = performance.now();
      return fn(q as never);
    }, label).then((v) => {
      if (label?.endsWith(": rows")) writes.push(performance.now() - t0);
      return v;
    });
  }) as typeof db.tx;
  const task = await createTask(db, {
    siteId: site,
    taskType: "daily_sync",
    startDate: day,
    endDate: day,
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
    batchSize: 250,
    bulkBatchSize: 5000,
    atomicDayRows,
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
  db.tx = tx;
  const inOrder = [...writes];
  writes.sort((a, b) => b - a);
  return { seconds, longest: writes[0] ?? 0, second: writes[1] ?? 0, writes: writes.length, last: inOrder.slice(-4).map(Math.round) };
}

const { db, cleanup } = await openBenchDb(args.database, "sitesync-switch-");
const day = addDays(dayOf(new Date()), -10);
console.log(`${db.engine}: one day × ${rowsPerDay} rows × 4 search types`);
for (const [mode, atomic] of [
  ["straight", rowsPerDay],
  ["staged", 0],
] as const) {
  const domain = `sc-domain:switch-${mode}-${Date.now()}.bench.example`;
  const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
  for (const pass of ["first fetch", "fetched again"]) {
    const r = await syncOnce(db, site, day, atomic);
    console.log(
      `${mode.padEnd(8)} ${pass.padEnd(13)}: ${r.seconds.toFixed(2)} s (${Math.round((rowsPerDay * 4) / r.seconds)} rows/s), ${r.writes} writes, longest ${Math.round(r.longest)} ms, next ${Math.round(r.second)} ms; the last 4 writes (web's switch among them) ${r.last.join(", ")} ms`,
    );
  }
}
await cleanup();
process.exit(0);
