import { dlopen, ptr } from "bun:ffi";
import { existsSync, writeFileSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { loadConfigOrExit } from "../config.ts";
import { closeAllConnections, openDbOrExit } from "../db/index.ts";
import { registerProcess } from "../db/process-registry.ts";
import { log, setLogFormat, setLogLevel } from "../log.ts";
import { serveMetricsOverIpc } from "../metrics/ipc.ts";
import { instrumentDb, setMetricsRole } from "../metrics/registry.ts";
import { answerPings } from "../supervision.ts";
import { taskTypes } from "./handlers/index.ts";
import { startScheduler } from "./scheduler.ts";
import { sourceFromConfig } from "./source.ts";
import { startWorker } from "./worker.ts";
import { watchRequests } from "./give-way.ts";
import { allowedCpus, keepThreadsTo, threadIds } from "./cpus.ts";

// One sync worker process: spawned by the supervisor (`--sync-workers N`) or run alone with
// `bun run sync-worker`. Runs the task loop and the daily scheduler.
// In a function, not at the top level: the start bundle is CommonJS bytecode, which has no top-level await
// (src/bundle/build.ts). Called at the end of the file.
async function main() {
  const config = loadConfigOrExit();
  setLogLevel(config.LOG_LEVEL);
  setLogFormat(config.LOG_FORMAT);
  // Run alone, nobody migrated the file for us (the supervisor does it once for its children).
  // (Imported here: a supervised worker never loads the migrator.)
  if (!config.supervised) await (await import("../db/sqlite/migrate.ts")).migrateOrExit(config);
  // Supervised and niced: a session of its own first, so the kernel schedules it apart from the HTTP workers.
  if (config.supervised && config.SYNC_NICE > 0 && config.SYNC_OWN_SESSION) ownSession(config.SYNC_GROUP_NICE);
  if (config.SYNC_NICE > 0) lowerPriority(config.SYNC_NICE, config.SYNC_SLICE_US, config.SYNC_POLICY);
  else lowerPriority(0, 0, "other");
  const cpus = config.SYNC_CPUS === "auto" ? (config.supervised ? lastCpus(config.SYNC_WORKERS) : null) : config.SYNC_CPUS;
  const pinned = Array.isArray(cpus) && cpus.length > 0 && pinToCpus(cpus) ? cpus : null;
  // Pauses while the HTTP workers have requests in flight, and has them keep off its CPUs while it works (SYNC_GIVE_WAY,
  // SYNC_KEEP_OFF; the supervisor made the file).
  if (config.SITESYNC_REQUEST_SIGNAL && !watchRequests(config.SITESYNC_REQUEST_SIGNAL, config.SYNC_KEEP_OFF ? pinned : null))
    log("warn", "the sync worker cannot read the HTTP workers' requests in flight; it will not give way to them");
  const db = openDbOrExit(config, "sync");
  await registerProcess(db);
  setMetricsRole("sync");
  instrumentDb(db);
  answerPings(db);
  if (config.supervised) serveMetricsOverIpc();

  const source = sourceFromConfig(config, db);
  const worker = startWorker({
    db,
    source,
    pollMs: config.SYNC_POLL_MS,
    leaseMs: config.SYNC_LEASE_MS,
    retryBaseMs: config.SYNC_RETRY_BASE_MS,
    batchSize: config.SYNC_BATCH_SIZE,
    bulkBatchSize: config.SYNC_BULK_BATCH_SIZE,
    atomicDayRows: config.SYNC_ATOMIC_DAY_ROWS,
    writeGapMs: config.SYNC_WRITE_GAP_MS,
    fetchAhead: config.SYNC_FETCH_AHEAD,
  });
  const scheduler = config.SYNC_SCHEDULER
    ? startScheduler(db, {
        dailyAt: config.SYNC_DAILY_AT,
        catchupDays: config.SYNC_CATCHUP_DAYS,
        recheckDays: config.SYNC_RECHECK_DAYS,
        maxAttempts: config.SYNC_MAX_ATTEMPTS,
        intervalMs: config.SYNC_SCHEDULER_INTERVAL_MS,
        hourlyEveryMs: config.SYNC_HOURLY_EVERY,
        sitemapsDaily: config.SYNC_SITEMAPS_DAILY,
      })
    : null;
  log("info", "sync worker started", { source: source.name, task_types: taskTypes(), scheduler: scheduler !== null });
  process.send?.({ type: "ready", pid: process.pid });

  let stopping = false;
  async function shutdown(signal: string) {
    if (stopping) return;
    stopping = true;
    log("info", "sync worker stopping", { signal });
    scheduler?.stop();
    // The running task stops at its next await (after the batch being written commits) and goes back
    // to the queue; if that takes too long, its lease expiring does the same.
    const stopped = worker.stop().then(() => true);
    if (!(await Promise.race([stopped, Bun.sleep(config.SHUTDOWN_TIMEOUT_MS).then(() => false)]))) {
      log("warn", "sync worker did not stop in time; its task's lease will expire");
    }
    await closeAllConnections();
    process.exit(0);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // The supervisor's IPC channel closes when it dies: do not live on as an orphan.
  if (config.supervised) process.on("disconnect", () => void shutdown("supervisor gone"));
}

/** sched_setattr's policy numbers (Linux). */
const POLICIES = { other: 0, batch: 3, idle: 5 } as const;

/**
 * Lowers the CPU priority of every thread of this process to `nice` (SYNC_NICE): the ingest is background work, so on
 * a busy host the kernel runs the HTTP workers first when they have requests, and the sync gets every cycle they
 * leave. Linux keeps a nice per thread and setpriority() of the pid changes the main thread alone: Bun's pool, JIT
 * and allocator threads, started before this runs, kept nice 0 and competed with the HTTP workers (API p99 during a
 * backfill, docs/benchmarks/ingest-export.md). `policy` (SYNC_POLICY) other than "other" puts each thread in that
 * scheduling class: SCHED_IDLE's threads give their core at once to any other thread waking on it (Linux >= 6.11: of their group),
 * and a core running only them counts as free where a waking thread is placed. With `sliceUs` (SYNC_SLICE_US) each
 * thread also asks for that scheduling slice: under Linux's EEVDF a running thread keeps its core for its slice (~1.4 ms
 * by default on 2 cores) before a waking thread of another group may take it. Threads started later inherit their
 * creator's nice and class (not its slice); a look every few seconds catches them. Never raises a priority (a process
 * started with a higher nice keeps it; raising needs privileges).
 */
function lowerPriority(nice: number, sliceUs: number, policy: keyof typeof POLICIES) {
  const setSched = sliceUs > 0 || policy !== "other" ? schedSetter() : null;
  const set = new Set<number>();
  const lower = () => {
    for (const tid of threadIds()) {
      try {
        if (getPriority(tid) < nice) setPriority(tid, nice);
        if (setSched && !set.has(tid)) {
          set.add(tid);
          if (!setSched(tid, POLICIES[policy], getPriority(tid), sliceUs))
            log("warn", "the kernel refused the sync worker's scheduling class or slice", { policy, slice_us: sliceUs });
        }
      } catch {
        // A thread that ended meanwhile.
      }
    }
  };
  try {
    if (getPriority() < nice) setPriority(nice);
    lower();
    setInterval(lower, 5000).unref();
  } catch (err) {
    log("warn", "could not lower the sync worker's CPU priority", { nice, error: String(err) });
  }
}

/**
 * A function that sets one thread's scheduling class, nice and EEVDF slice (sched_setattr: sched_runtime = the slice;
 * Linux >= 6.12, older kernels ignore the runtime) and returns whether the kernel took it; null off Linux.
 */
function schedSetter(): ((tid: number, policy: number, nice: number, us: number) => boolean) | null {
  // sched_setattr's number per Linux architecture.
  const nr = ({ x64: 314, arm64: 274 } as Partial<Record<string, number>>)[process.arch];
  if (process.platform !== "linux" || nr === undefined) return null;
  try {
    const libc = dlopen("libc.so.6", { syscall: { args: ["i64", "i64", "ptr", "i64"], returns: "i64" } });
    return (tid, policy, nice, us) => {
      // struct sched_attr, its first version (48 bytes): size, policy, flags, nice, priority, runtime, deadline, period.
      const attr = new DataView(new ArrayBuffer(48));
      attr.setUint32(0, 48, true);
      attr.setUint32(4, policy, true);
      attr.setInt32(16, nice, true);
      attr.setBigUint64(24, BigInt(us) * 1000n, true);
      return libc.symbols.syscall(nr, tid, ptr(attr), 0) === 0n;
    };
  } catch {
    return null;
  }
}

/**
 * Moves this process (every thread) into a new session whose scheduling group weighs as `nice`: with Linux autogroups
 * (the default outside a cgroup that sets CPU weights) each session is one scheduling group, the groups share the
 * cores first and nice only orders the threads inside a group. In the supervisor's session a backfill kept the HTTP
 * workers' group busy, so a GET waited for the group's turn among the host's other busy groups (5.6-9.5 ms a GET
 * against 1.4-2.3 idle at load 11-35, docs/benchmarks/ingest-export.md). The group weighs as `nice` (SYNC_GROUP_NICE,
 * /proc/self/autogroup): niced 10 it got ~1 % of a host with ~10 other busy groups; at 0 it takes one group's share,
 * and the HTTP workers still come first through the threads' class (SYNC_POLICY idle: a waking thread takes a
 * SCHED_IDLE thread's core at once; on Linux 6.11 and later only a thread of the same group, one of another group
 * waits out the group's slice or a tick: docs/sync.md). The supervisor still stops it by its pid, and it exits when
 * the supervisor's IPC channel closes. Nothing to do where setsid() is refused or libc is not found (the threads'
 * nice and class still apply).
 */
function ownSession(nice: number) {
  try {
    const libc = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", { setsid: { args: [], returns: "int" } });
    const sid = libc.symbols.setsid();
    libc.close();
    if (sid < 0) return log("warn", "the sync worker could not start a session of its own");
  } catch (err) {
    return log("warn", "the sync worker could not start a session of its own", { error: String(err) });
  }
  try {
    if (existsSync("/proc/self/autogroup")) writeFileSync("/proc/self/autogroup", String(nice));
  } catch (err) {
    log("warn", "could not lower the sync worker's scheduling group's priority", { nice, error: String(err) });
  }
}

/**
 * Keeps every thread of this process on `cpus` (SYNC_CPUS; sched_setaffinity of each thread: threads started later
 * inherit their creator's). On a 2-core host a backfill's threads then share one core and the HTTP workers (and
 * whatever else the host runs) have the other to themselves: a request never waits behind the sync for a core. Logs
 * and goes on where the kernel refuses (a CPU not in the process's cpuset) or off Linux; returns whether it keeps to them.
 */
function pinToCpus(cpus: number[]): boolean {
  const refused = keepThreadsTo(cpus);
  if (refused) log("warn", "the sync worker could not keep to SYNC_CPUS", { cpus, error: refused });
  return refused === null;
}

/**
 * SYNC_CPUS=auto: the last `workers` of the CPUs this process may use (its affinity, /proc/self/status), leaving at
 * least one to the HTTP workers; null with fewer than two or off Linux. Measured on the shared 2-core machine (load
 * 9-22, sync and HTTP workers in one scheduling group, bench/sync-ingest.ts --ab, 5 runs): the sync worker on CPU 1
 * ingested 1.3-1.9x the rows a second and the API's busy GET p99 was lower in 4 of 5 runs (docs/benchmarks/ingest-export.md).
 */
function lastCpus(workers: number): number[] | null {
  const allowed = allowedCpus();
  return allowed.length < 2 ? null : allowed.slice(-Math.min(Math.max(1, workers), allowed.length - 1));
}

void main();
