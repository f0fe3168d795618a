import type { Subprocess } from "bun";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { backupDirOf } from "./backup/backup.ts";
import { entryFile } from "./bundle/entry.ts";
import { startBackupSchedule } from "./backup/schedule.ts";
import { childEnv, describeTarget, loadConfigOrExit, type ProcessRole } from "./config.ts";
import { emptyCheckpointStats, startCheckpointer } from "./db/sqlite/checkpoint.ts";
import { fileIdentity } from "./db/sqlite/identity.ts";
import { closeAllConnections, openDbFromConfig } from "./db/index.ts";
import { startAlerts } from "./alerts/loop.ts";
import { acquireLock, databaseLockPath, portLockPath, portProblem, type InstanceLock } from "./db/instance-lock.ts";
import { migrate } from "./db/sqlite/migrate.ts";
import { migratePg } from "./db/pg/migrate.ts";
import { pragmasFrom } from "./db/sqlite/open.ts";
import { registerProcess } from "./db/process-registry.ts";
import { describeStartError } from "./db/start-errors.ts";
import { log, setLogFormat, setLogLevel } from "./log.ts";
import { createMetricsAggregator } from "./metrics/aggregate.ts";
import { isMetricsMessage } from "./metrics/ipc.ts";
import { instrumentDb, observeCheckpoint, processRestarts, refreshDatabaseGauges, setMetricsRole } from "./metrics/registry.ts";
import { freePort } from "./free-port.ts";
import { createRequestSignal } from "./sync/give-way.ts";
import { cpuTicks, watchdogVerdict, type InstanceStorage, type Ping, type Pong } from "./supervision.ts";

/** How often the supervisor checks that the database path still names the file it opened and that it still holds its locks. */
const FILE_WATCH_MS = 1000;

// The supervisor: read config, take the instance locks, migrate once, spawn the workers, restart the
// dead, watch the file and the workers, drain on signal.
// In a function, not at the top level: the start bundle is CommonJS bytecode, which has no top-level await
// (src/bundle/build.ts). Called at the end of the file.
async function main() {
  const config = loadConfigOrExit();
  setLogLevel(config.LOG_LEVEL);
  setLogFormat(config.LOG_FORMAT);
  const pragmas = pragmasFrom(config);
  // On PostgreSQL there is no file to lock, check or checkpoint: the server owns the storage.
  const sqlitePath = config.database.dialect === "sqlite" ? config.database.path : null;
  const dbPath = describeTarget(config.database);
  const port = config.PORT === 0 ? freePort(config.HOST) : config.PORT;

  /** A start that cannot succeed prints one line (never a stack) and exits 1. */
  function fatal(line: string, err?: unknown): never {
    console.error(`fatal: ${line}`);
    if (err) log("debug", "start failure", { stack: (err as Error).stack });
    for (const l of locks) l?.release();
    process.exit(1);
  }

  const locks: (InstanceLock | null)[] = [];
  const { identity, checkpointer, stopBackups, db } = await start();
  // The HTTP workers' requests in flight, read by the sync workers to give way to them (SYNC_GIVE_WAY).
  const requestSignal = config.SYNC_WORKERS > 0 && config.SYNC_GIVE_WAY ? createRequestSignal(String(process.pid)) : null;
  // Alerts (src/alerts): failed syncs, expired sign-ins, quota, click drops; webhooks and e-mail from here.
  const alerts = config.ALERTS
    ? startAlerts(db, {
        pollMs: config.ALERT_POLL_MS,
        retryBaseMs: config.ALERT_RETRY_BASE_MS,
        maxAttempts: config.ALERT_MAX_ATTEMPTS,
        timeoutMs: config.ALERT_TIMEOUT_MS,
        smtpUrl: config.SMTP_URL ?? null,
        from: config.ALERT_EMAIL_FROM,
      })
    : null;

  /** Takes the locks, migrates, and opens our connections; any failure is fatal with one line. */
  async function start() {
    try {
      const info = { port, host: config.HOST, database: dbPath, shared: config.ALLOW_SHARED_DATABASE };
      if (sqlitePath) {
        // The lock file lives next to the database, so its folder comes first (the migrator would make it).
        mkdirSync(dirname(sqlitePath), { recursive: true });
        locks.push(acquireLock(databaseLockPath(sqlitePath), `the database ${sqlitePath}`, info));
      } else {
        // Several instances (machines) serving one PostgreSQL database is the point of it: no database lock.
        locks.push(null);
      }
      locks.push(
        acquireLock(portLockPath(config.HOST, port), `port ${port} on ${config.HOST}`, { ...info, shared: false }, { sharable: false }),
      );
      // The port lock only knows sitesync instances that lock; any listener (an older sitesync, another
      // program) would make our reusePort workers join it or fail: check before they bind.
      const taken = portProblem(config.HOST, port);
      if (taken) fatal(taken);
      if (!sqlitePath) return await startPg();
      const applied = migrate(sqlitePath, pragmas);
      const identity: string | undefined = fileIdentity(sqlitePath)!;
      log("info", "database ready", { path: sqlitePath, migrations_applied: applied, identity });
      // This process runs the checkpointer: PASSIVE every interval, TRUNCATE past a size (which SQLite's
      // own auto-checkpoint, kept on in every writer at 1000 pages, never does).
      const checkpointer: Checkpointer = startCheckpointer(sqlitePath, pragmas, {
        intervalMs: config.CHECKPOINT_INTERVAL_MS,
        truncateBytes: config.CHECKPOINT_TRUNCATE_BYTES,
        optimizeIntervalMs: config.OPTIMIZE_INTERVAL_MS,
        onRun: observeCheckpoint,
      });
      // Backups every BACKUP_INTERVAL (off by default), each in a child process.
      const stopBackups = config.BACKUP_INTERVAL
        ? startBackupSchedule({
            databaseUrl: config.DATABASE_URL,
            dir: backupDirOf(sqlitePath, config.BACKUP_DIR),
            keep: config.BACKUP_KEEP,
            intervalMs: config.BACKUP_INTERVAL,
          })
        : () => {};
      const db = openDbFromConfig({ ...config, SITESYNC_DB_IDENTITY: identity }, "primary");
      setMetricsRole("primary");
      instrumentDb(db);
      await registerProcess(db);
      return { identity, checkpointer, stopBackups, db };
    } catch (err) {
      fatal(describeStartError(err, dbPath), err);
    }
  }

  type Checkpointer = Pick<ReturnType<typeof startCheckpointer>, "stats" | "stop">;

  /** PostgreSQL: migrate under the advisory lock (other machines may be starting too), open the pool. */
  async function startPg() {
    const url = (config.database as { url: string }).url;
    const applied = await migratePg(url);
    log("info", "database ready", { database: dbPath, engine: "postgresql", migrations_applied: applied });
    if (config.BACKUP_INTERVAL)
      log("warn", "BACKUP_INTERVAL ignored on PostgreSQL: back the server up with its own tools (pg_dump, base backups)");
    // No checkpointer: the server checkpoints its own WAL.
    const checkpointer: Checkpointer = {
      stats: emptyCheckpointStats(),
      stop() {},
    };
    const db = openDbFromConfig(config, "primary");
    setMetricsRole("primary");
    instrumentDb(db);
    await registerProcess(db);
    return { identity: undefined as string | undefined, checkpointer, stopBackups: () => {}, db };
  }

  type Slot = {
    role: ProcessRole;
    script: string;
    index: number;
    proc?: Subprocess;
    startedAt: number;
    crashes: number;
    /** When the worker last proved its event loop runs (ready or pong); null before ready. */
    lastSign: number | null;
    /** Its CPU ticks at the watchdog's last check (null: unknown), and whether "busy" was logged for this silence. */
    lastCpu: number | null;
    busyLogged: boolean;
    storageErrors: number;
    lastStorageError: Pong["last_storage_error"];
  };
  const slots: Slot[] = [
    ...Array.from({ length: config.WORKERS }, (_, index) => ({ role: "http" as const, script: "server.ts", index })),
    ...Array.from({ length: config.SYNC_WORKERS }, (_, index) => ({ role: "sync" as const, script: "sync/worker-main.ts", index })),
  ].map((s) => ({
    ...s,
    startedAt: 0,
    crashes: 0,
    lastSign: null,
    lastCpu: null,
    busyLogged: false,
    storageErrors: 0,
    lastStorageError: null,
  }));
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
    slot.lastSign = null;
    slot.lastCpu = null;
    slot.busyLogged = false;
    slot.proc = Bun.spawn([process.execPath, entryFile(slot.script)], {
      // Settings that may have come from flags are handed on as env, so workers see what we see.
      env: childEnv({
        SITESYNC_ROLE: slot.role,
        SITESYNC_SUPERVISED: "1",
        ...(identity ? { SITESYNC_DB_IDENTITY: identity } : {}),
        PORT: String(port),
        HOST: config.HOST,
        DATABASE_URL: config.DATABASE_URL,
        WORKERS: String(config.WORKERS),
        SYNC_WORKERS: String(config.SYNC_WORKERS),
        ...(requestSignal ? { SITESYNC_REQUEST_SIGNAL: requestSignal.path } : {}),
        ...(requestSignal && slot.role === "http" ? { SITESYNC_SLOT: String(slot.index) } : {}),
        // Read by the allocator at the process's start: a backfill frees and reuses memory all the time (SYNC_MALLOC_PURGE_DELAY).
        ...(slot.role === "sync" ? { MIMALLOC_PURGE_DELAY: String(config.SYNC_MALLOC_PURGE_DELAY) } : {}),
        // HTTP workers: freed memory kept for HTTP_MALLOC_PURGE_DELAY, holes inside used pages not purged (reqpath, issue 19).
        ...(slot.role === "http" ? { MIMALLOC_PURGE_DELAY: String(config.HTTP_MALLOC_PURGE_DELAY), MIMALLOC_PURGE_HOLES: "0" } : {}),
        // Read by JSC at the process's start (HTTP_JIT_TOP_TIER).
        ...(slot.role === "http" && config.HTTP_JIT_TOP_TIER === "off" ? { BUN_JSC_useFTLJIT: "0" } : {}),
      }),
      stdio: ["ignore", "inherit", "inherit"],
      ipc(message, proc) {
        if (isMetricsMessage(message)) return metrics.handle({ role: slot.role, proc }, message);
        const m = message as { type?: string } & Partial<Pong>;
        if (m?.type === "pong") {
          slot.lastSign = performance.now();
          slot.storageErrors = m.storage_errors ?? 0;
          slot.lastStorageError = m.last_storage_error ?? null;
          return;
        }
        if (m?.type !== "ready") return;
        slot.lastSign = performance.now();
        readySlots.add(slot);
        const httpReady = slots.filter((s) => s.role === "http" && readySlots.has(s)).length;
        if (!announced && httpReady === config.WORKERS) {
          announced = true;
          console.log(
            `sitesync listening on http://${config.HOST}:${port} (${config.WORKERS} http workers, ${config.SYNC_WORKERS} sync workers, database ${dbPath})`,
          );
        }
      },
      onExit(proc, exitCode, signalCode) {
        if (stopping) return;
        // A worker that lived a while resets its backoff; one that dies at once backs off up to 30 s.
        const lived = performance.now() - slot.startedAt;
        slot.crashes = lived > config.BACKOFF_RESET_MS ? 0 : slot.crashes + 1;
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

  // The file is the file: if the path stops naming the database we opened (deleted, replaced, moved),
  // workers answer writes with 503 on their own; restarting them would open the other file, so the
  // whole instance stops instead, without touching either file. Once a second: the workers refuse the writes
  // meanwhile, so this only bounds how long the instance lingers (a 100 ms timer cost an idle supervisor ~2 ms/s).
  const fileWatch = setInterval(() => {
    const problem = db.engine === "sqlite" ? db.guard.problem(0) : null;
    if (problem) void shutdown("database file changed", 2, problem);
    for (const l of locks) {
      const lost = l?.verify();
      if (lost) void shutdown("instance lock lost", 1, lost);
    }
    // A shared instance that found the database lock taken by another shared one takes it over once
    // that one is gone, so a later start without --allow-shared-database is still refused.
    if (sqlitePath && locks[0] === null) {
      try {
        locks[0] = acquireLock(databaseLockPath(sqlitePath), `the database ${sqlitePath}`, {
          port,
          host: config.HOST,
          database: sqlitePath,
          shared: true,
        });
      } catch {
        // Another instance took it first: it guards the file now.
      }
    }
  }, FILE_WATCH_MS);

  // Watchdog: ping every worker; one that stays silent past WATCHDOG_TIMEOUT_MS (stopped, hung in a
  // syscall, a debugger) is killed; the kernel frees any SQLite lock it held and onExit restarts it.
  let pingSeq = 0;
  const watchdog =
    config.WATCHDOG_TIMEOUT_MS > 0
      ? setInterval(
          () => {
            const storage = instanceStorage();
            const now = performance.now();
            for (const slot of slots) {
              const proc = slot.proc;
              if (!proc || slot.lastSign === null || proc.exitCode !== null || proc.signalCode !== null) continue;
              const silentMs = now - slot.lastSign;
              // CPU used since the last check tells a worker busy with synchronous work from a stopped or hung one.
              const cpu = cpuTicks(proc.pid);
              const cpuAdvanced = cpu === null || slot.lastCpu === null ? null : cpu > slot.lastCpu;
              slot.lastCpu = cpu;
              const verdict = watchdogVerdict({
                silentMs,
                timeoutMs: config.WATCHDOG_TIMEOUT_MS,
                busyTimeoutMs: config.WATCHDOG_BUSY_TIMEOUT_MS,
                cpuAdvanced,
              });
              if (verdict === "kill") {
                log("error", "worker not answering; killing it", {
                  role: slot.role,
                  worker_pid: proc.pid,
                  silent_ms: Math.round(silentMs),
                });
                slot.lastSign = null;
                proc.kill("SIGKILL");
                continue;
              }
              if (verdict === "busy" && !slot.busyLogged) {
                slot.busyLogged = true;
                log("warn", "worker busy: not answering pings but using CPU; not killed before WATCHDOG_BUSY_TIMEOUT_MS", {
                  role: slot.role,
                  worker_pid: proc.pid,
                  silent_ms: Math.round(silentMs),
                });
              }
              if (verdict === "ok") slot.busyLogged = false;
              try {
                proc.send({ type: "ping", seq: ++pingSeq, storage } satisfies Ping);
              } catch {
                // Its channel is gone: it is exiting, onExit deals with it.
              }
            }
          },
          Math.min(2000, Math.max(50, config.WATCHDOG_TIMEOUT_MS / 5)),
        )
      : null;

  /** What the supervisor knows of the instance's storage: its checkpointer and the workers' reports. */
  function instanceStorage(): InstanceStorage {
    const cp = checkpointer.stats;
    let last: Pong["last_storage_error"] = db.stats.lastStorageError;
    let writeErrors = db.stats.storageErrors;
    for (const s of slots) {
      writeErrors += s.storageErrors;
      if (s.lastStorageError && (!last || s.lastStorageError.at > last.at)) last = s.lastStorageError;
    }
    return {
      checkpoint_failures: cp.failures,
      checkpoint_error: cp.lastError && cp.lastErrorAt ? { message: cp.lastError, at: cp.lastErrorAt } : null,
      wal_bytes: cp.lastWalBytes,
      write_storage_errors: writeErrors,
      last_write_storage_error: last && { code: last.code, message: last.message, at: new Date(last.at).toISOString() },
      at: new Date().toISOString(),
    };
  }

  // `bun run start` runs us under a wrapper process; if that wrapper is SIGKILLed we are reparented
  // and nobody would stop us: treat it like SIGTERM. (Started directly, the parent may exit on purpose.)
  const parentAtStart = process.ppid;
  const parentWatch = config.startedByScript
    ? setInterval(() => {
        if (process.ppid !== parentAtStart) void shutdown("the `bun run` wrapper exited");
      }, 500)
    : null;

  async function shutdown(signal: string, exitCode = 0, reason?: string) {
    if (stopping) return;
    stopping = true;
    clearInterval(fileWatch);
    if (watchdog) clearInterval(watchdog);
    if (parentWatch) clearInterval(parentWatch);
    // Our connections and checkpointer must not touch the path when it names another file.
    const fileChanged = db.engine === "sqlite" && db.guard.problem(0) !== null;
    log(exitCode === 0 ? "info" : "error", "shutting down", { signal, ...(reason ? { reason } : {}) });
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
    await alerts?.stop();
    checkpointer.stop(!fileChanged);
    stopBackups();
    await closeAllConnections(Math.max(0, deadline - performance.now()));
    for (const l of locks) l?.release();
    requestSignal?.remove();
    log(exitCode === 0 ? "info" : "error", "stopped", { exit_code: exitCode });
    process.exit(exitCode);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

void main();
