import type { Subprocess } from "bun";
import { join } from "node:path";
import { backupDirOf } from "./backup/backup.ts";
import { startBackupSchedule } from "./backup/schedule.ts";
import { childEnv, loadConfigOrExit, type ProcessRole } from "./config.ts";
import { startCheckpointer } from "./db/checkpoint.ts";
import { closeAllConnections, openDbFromConfig } from "./db/index.ts";
import { migrate } from "./db/migrate.ts";
import { pragmasFrom, WalUnavailableError } from "./db/open.ts";
import { registerProcess } from "./db/registry.ts";
import { log, setLogFormat, setLogLevel } from "./log.ts";
import { createMetricsAggregator } from "./metrics/aggregate.ts";
import { isMetricsMessage } from "./metrics/ipc.ts";
import { instrumentDb, observeCheckpoint, processRestarts, refreshDatabaseGauges, setMetricsRole } from "./metrics/registry.ts";
import { freePort } from "./net.ts";

// The supervisor: read config, migrate once, spawn the workers, restart the dead, drain on signal.
const config = loadConfigOrExit();
setLogLevel(config.LOG_LEVEL);
setLogFormat(config.LOG_FORMAT);
const pragmas = pragmasFrom(config);

const applied = orExitOnWal(() => migrate(config.database.path, pragmas));
log("info", "database ready", { path: config.database.path, migrations_applied: applied });

// This process runs the checkpointer: TRUNCATE past a size (which SQLite's own auto-checkpoint never
// does), and PASSIVE when the writers are idle.
const checkpointer = startCheckpointer(config.database.path, pragmas, {
  intervalMs: config.CHECKPOINT_INTERVAL_MS,
  truncateBytes: config.CHECKPOINT_TRUNCATE_BYTES,
  optimizeIntervalMs: config.OPTIMIZE_INTERVAL_MS,
  onRun: observeCheckpoint,
});
// Backups every BACKUP_INTERVAL (off by default), each in a child process.
const stopBackups = config.BACKUP_INTERVAL
  ? startBackupSchedule({
      databaseUrl: config.DATABASE_URL,
      dir: backupDirOf(config.database.path, config.BACKUP_DIR),
      keep: config.BACKUP_KEEP,
      intervalMs: config.BACKUP_INTERVAL,
    })
  : () => {};
const db = openDbFromConfig(config, "primary");
setMetricsRole("primary");
instrumentDb(db);
await registerProcess(db);

const port = config.PORT === 0 ? freePort(config.HOST) : config.PORT;

type Slot = { role: ProcessRole; script: string; index: number; proc?: Subprocess; startedAt: number; crashes: number };
const slots: Slot[] = [
  ...Array.from({ length: config.WORKERS }, (_, index) => ({ role: "http" as const, script: "server.ts", index, startedAt: 0, crashes: 0 })),
  ...Array.from({ length: config.SYNC_WORKERS }, (_, index) => ({ role: "sync" as const, script: "sync/worker-main.ts", index, startedAt: 0, crashes: 0 })),
];
let stopping = false;
// A scrape of /metrics on any HTTP worker comes here over IPC and is answered with every process's metrics.
const metrics = createMetricsAggregator(
  () => slots.flatMap((s) => (s.proc && s.proc.exitCode === null && !s.proc.killed ? [{ role: s.role, proc: s.proc }] : [])),
  config.METRICS_TIMEOUT_MS,
  () => refreshDatabaseGauges(db),
);
const readySlots = new Set<Slot>();
let announced = false;
// HTTP workers that keep dying before they ever listen (port taken, bad file…) will not recover.
const MAX_START_FAILURES = 6;

function spawn(slot: Slot) {
  slot.startedAt = performance.now();
  slot.proc = Bun.spawn([process.execPath, join(import.meta.dir, slot.script)], {
    // Settings that may have come from flags are handed on as env, so workers see what we see.
    env: childEnv({
      SITESYNC_ROLE: slot.role,
      SITESYNC_SUPERVISED: "1",
      PORT: String(port),
      HOST: config.HOST,
      DATABASE_URL: config.DATABASE_URL,
      WORKERS: String(config.WORKERS),
      SYNC_WORKERS: String(config.SYNC_WORKERS),
    }),
    stdio: ["ignore", "inherit", "inherit"],
    ipc(message, proc) {
      if (isMetricsMessage(message)) return metrics.handle({ role: slot.role, proc }, message);
      if ((message as { type?: string })?.type !== "ready") return;
      readySlots.add(slot);
      const httpReady = slots.filter((s) => s.role === "http" && readySlots.has(s)).length;
      if (!announced && httpReady === config.WORKERS) {
        announced = true;
        console.log(`sitesync listening on http://${config.HOST}:${port} (${config.WORKERS} http workers, ${config.SYNC_WORKERS} sync workers, database ${config.database.path})`);
      }
    },
    onExit(proc, exitCode, signalCode) {
      if (stopping) return;
      // A worker that lived a while resets its backoff; one that dies at once backs off up to 30 s.
      const lived = performance.now() - slot.startedAt;
      slot.crashes = lived > 10_000 ? 0 : slot.crashes + 1;
      if (!readySlots.has(slot) && slot.crashes >= MAX_START_FAILURES) {
        log("error", "worker keeps failing before it is ready; giving up", { role: slot.role, exitCode, attempts: slot.crashes });
        void shutdown("start failures", 1);
        return;
      }
      const delay = slot.crashes === 0 ? 0 : Math.min(30_000, 100 * 2 ** (slot.crashes - 1));
      processRestarts.inc({ role: slot.role });
      log("warn", "worker exited; restarting", { role: slot.role, pid: proc.pid, exitCode, signalCode, restart_in_ms: delay });
      setTimeout(() => !stopping && spawn(slot), delay);
    },
  });
  log("info", "worker started", { role: slot.role, index: slot.index, worker_pid: slot.proc.pid });
}

for (const slot of slots) spawn(slot);

async function shutdown(signal: string, exitCode = 0) {
  if (stopping) return;
  stopping = true;
  log("info", "shutting down", { signal });
  // One budget for the whole drain: workers, then our own queued writes.
  const deadline = performance.now() + config.SHUTDOWN_TIMEOUT_MS + 2000;
  const running = slots.flatMap((s) => (s.proc && s.proc.exitCode === null && !s.proc.killed ? [s.proc] : []));
  for (const p of running) p.kill("SIGTERM");
  const all = Promise.all(running.map((p) => p.exited));
  const timeout = Bun.sleep(deadline - performance.now()).then(() => "timeout" as const);
  if ((await Promise.race([all, timeout])) === "timeout") {
    log("warn", "workers did not stop in time; killing them");
    for (const p of running) p.kill("SIGKILL");
    await all;
  }
  checkpointer.stop();
  stopBackups();
  await closeAllConnections(Math.max(0, deadline - performance.now()));
  log("info", "stopped");
  process.exit(exitCode);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

/** Runs `f`; a database that cannot be put in WAL mode is fatal: print why (no stack) and exit 1. */
function orExitOnWal<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof WalUnavailableError) {
      console.error(`fatal: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}
