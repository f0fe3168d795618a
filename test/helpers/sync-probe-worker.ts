import { appendFileSync } from "node:fs";
import { loadConfigOrExit } from "../../src/config.ts";
import { closeAllConnections, openDbFromConfig } from "../../src/db/index.ts";
import { setLogLevel } from "../../src/log.ts";
import { demoSource } from "../../src/sync/demo.ts";
import { registerHandler } from "../../src/sync/handlers/index.ts";
import { startWorker } from "../../src/sync/worker.ts";
import { exitWithParent } from "./sync.ts";

// A sync worker process for tests: the real loop, plus a `probe` task type registered through the
// registry that appends "start <task> <pid> <ms>" and "end <task> <pid> <ms>" lines to PROBE_LOG, so
// a test can count executions and see whether two ever overlapped.

const log = process.env.PROBE_LOG!;
const holdMs = Number(process.env.PROBE_HOLD_MS ?? 5);
const config = loadConfigOrExit([], process.env);
setLogLevel(config.LOG_LEVEL);
const db = openDbFromConfig(config, "sync");

registerHandler({
  type: "probe",
  async run(ctx) {
    appendFileSync(log, `start ${ctx.task.id} ${process.pid} ${Date.now()}\n`);
    await Bun.sleep(holdMs);
    await ctx.progress({ done: 1, synced: 1, failed: 0, skipped: 0, records: 0 });
    appendFileSync(log, `end ${ctx.task.id} ${process.pid} ${Date.now()}\n`);
  },
});

const worker = startWorker({
  db,
  source: demoSource(0),
  pollMs: config.SYNC_POLL_MS,
  leaseMs: config.SYNC_LEASE_MS,
  retryBaseMs: config.SYNC_RETRY_BASE_MS,
  batchSize: config.SYNC_BATCH_SIZE,
});
console.log("probe worker ready");

async function shutdown() {
  await worker.stop();
  await closeAllConnections();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
// A test runner that died without stopping us must not leave a worker polling its temp file.
exitWithParent(shutdown);
