import { Counter, Gauge, Histogram, Registry } from "./prom.ts";
import type { ProcessRole } from "../config.ts";
import { type CheckpointMode, walSize } from "../db/sqlite/checkpoint.ts";
import type { Db } from "../db/index.ts";
import { serverFacts } from "../db/pg/diagnostics.ts";
import { logOncePer } from "../log.ts";
import { countTasksByStatus } from "../sync/queries.ts";
import { giveWayStats } from "../sync/give-way.ts";
import { httpMetrics } from "./http.ts";
import { type BucketSeries, fillHistogram, newSeries, observeSeries } from "./series.ts";

// This process's metrics. Every process (supervisor, HTTP and sync workers) has one registry; the
// supervisor merges them with AggregatorRegistry.aggregate (see ipc.ts). Each metric says how it merges:
// counters and histograms add up; gauges add up (queue depth, processes up) or take the max (values
// only the supervisor reports, read from the shared file).

/** The metrics of this process. */
export const registry = new Registry();

/** Records an answered HTTP request by route template (`/api/v1/sites/:id`; unmatched paths share `/*`), method and status. */
export const observeHttpRequest = httpMetrics(registry);

let role: ProcessRole = "standalone";
const dbs = new Set<Db>();

/** Sets the role label of this process's metrics. */
export function setMetricsRole(r: ProcessRole) {
  role = r;
}

// Counters mirrored from the write queue's own counters at scrape time (WriterStats stays the one count).
function writerCounter(name: string, help: string, pick: (db: Db) => number) {
  return new Counter({
    name,
    help,
    labelNames: ["role"],
    registers: [registry],
    collect() {
      let n = 0;
      for (const db of dbs) n += pick(db);
      this.reset();
      this.inc({ role }, n);
    },
  });
}

writerCounter("sitesync_write_commits_total", "Write transactions committed (each holds one or more writes)", (db) => db.stats.commits);
writerCounter("sitesync_writes_total", "Writes committed", (db) => db.stats.writes);
writerCounter(
  "sitesync_write_busy_retries_total",
  "Times BEGIN IMMEDIATE found the write lock taken and retried later",
  (db) => db.stats.busyRetries,
);
writerCounter("sitesync_write_timeouts_total", "Writes that gave up (503) after WRITE_LOCK_TIMEOUT_MS", (db) => db.stats.timeouts);

new Gauge({
  name: "sitesync_write_queue_depth",
  help: "Writes queued for the write lock right now",
  labelNames: ["role"],
  aggregator: "sum",
  registers: [registry],
  collect() {
    let n = 0;
    for (const db of dbs) n += db.queueLength();
    this.set({ role }, n);
  },
});

/**
 * A histogram by role observed once per commit: counts kept in arrays (no label object, validation or hashing per
 * observation: ~1 µs a commit for the two below) and handed to prom-client when scraped (series.ts).
 */
function commitHistogram(name: string, help: string, buckets: number[]): (value: number) => void {
  const byRole = new Map<string, BucketSeries>();
  new Histogram({
    name,
    help,
    labelNames: ["role"],
    buckets,
    registers: [registry],
    collect() {
      fillHistogram(
        this,
        buckets,
        [...byRole].map(([r, s]) => [r, { role: r }, s]),
      );
    },
  });
  return (value) => {
    let s = byRole.get(role);
    if (s === undefined) {
      s = newSeries(buckets);
      byRole.set(role, s);
    }
    observeSeries(s, buckets, value);
  };
}

const observeGroupSize = commitHistogram(
  "sitesync_write_group_size",
  "Writes per committed transaction (group commit)",
  [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
);

const observeLockWait = commitHistogram(
  "sitesync_write_lock_wait_seconds",
  "Time the oldest write of a transaction waited before it held the write lock",
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
);

/** Reports this database handle's write queue in the metrics. */
export function instrumentDb(db: Db) {
  dbs.add(db);
  db.onCommit.push((size, waitMs) => {
    observeGroupSize(size);
    observeLockWait(waitMs / 1000);
  });
  db.onClose.push(() => dbs.delete(db));
}

new Gauge({
  name: "sitesync_process_up",
  help: "Processes that answered this scrape, by role",
  labelNames: ["role"],
  aggregator: "sum",
  registers: [registry],
  collect() {
    this.reset();
    this.set({ role }, 1);
  },
});

/** Supervisor: workers restarted after they exited. */
export const processRestarts = new Counter({
  name: "sitesync_process_restarts_total",
  help: "Workers restarted by the supervisor after they exited",
  labelNames: ["role"],
  registers: [registry],
});

/** Supervisor: workers that did not answer a scrape in time (left out of that scrape). */
export const scrapeMissing = new Counter({
  name: "sitesync_metrics_scrape_missing_total",
  help: "Workers left out of a scrape because they did not answer in time",
  labelNames: ["role"],
  registers: [registry],
});

const walBytes = new Gauge({
  name: "sitesync_wal_bytes",
  help: "Size of the SQLite WAL file (SQLite only)",
  aggregator: "max",
  registers: [registry],
});

// PostgreSQL: each process's pool, and the server's facts about the database (set by the supervisor).
new Gauge({
  name: "sitesync_pg_pool_connections",
  help: "Connections of the processes' PostgreSQL pools by state (total, idle) and queries waiting for one (waiting); PostgreSQL only",
  labelNames: ["role", "state"],
  aggregator: "sum",
  registers: [registry],
  collect() {
    this.reset();
    for (const db of dbs) {
      if (!db.pg) continue;
      const { totalCount, idleCount, waitingCount } = db.pg.pool;
      this.inc({ role, state: "total" }, totalCount);
      this.inc({ role, state: "idle" }, idleCount);
      this.inc({ role, state: "waiting" }, waitingCount);
    }
  },
});

const pgDatabaseBytes = new Gauge({
  name: "sitesync_pg_database_bytes",
  help: "Size of the PostgreSQL database (pg_database_size); PostgreSQL only",
  aggregator: "max",
  registers: [registry],
});

const pgLocksWaiting = new Gauge({
  name: "sitesync_pg_locks_waiting",
  help: "Lock requests not granted on the PostgreSQL database right now (pg_locks); PostgreSQL only",
  aggregator: "max",
  registers: [registry],
});

const pgServerConnections = new Gauge({
  name: "sitesync_pg_server_connections",
  help: "Server connections to the PostgreSQL database, from every host (pg_stat_activity); PostgreSQL only",
  aggregator: "max",
  registers: [registry],
});

const pgMaxConnections = new Gauge({
  name: "sitesync_pg_max_connections",
  help: "The PostgreSQL server's max_connections; PostgreSQL only",
  aggregator: "max",
  registers: [registry],
});

const checkpointRuns = new Counter({
  name: "sitesync_checkpoint_runs_total",
  help: "Checkpoints run by the checkpointer, by mode and outcome",
  labelNames: ["mode", "outcome"],
  registers: [registry],
});

const checkpointDuration = new Histogram({
  name: "sitesync_checkpoint_duration_seconds",
  help: "Duration of a checkpoint (a truncate includes its wait for a free write lock)",
  labelNames: ["mode"],
  buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

const tasksByStatus = new Gauge({
  name: "sitesync_tasks",
  help: "Sync tasks in the database by status and type",
  labelNames: ["status", "type"],
  aggregator: "max",
  registers: [registry],
});

/** Sync workers: how long tasks ran, by type and outcome. */
export const taskDuration = new Histogram({
  name: "sitesync_task_duration_seconds",
  help: "Run time of sync tasks by type and outcome (completed, retry, failed, cancelled, released, lost)",
  labelNames: ["type", "outcome"],
  buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
  registers: [registry],
});

/** Sync workers: pauses taken while HTTP requests were in flight (SYNC_GIVE_WAY, src/sync/give-way.ts), and their time. */
new Counter({
  name: "sitesync_sync_give_way_pauses_total",
  help: "Pauses of sync workers while HTTP requests were in flight (SYNC_GIVE_WAY)",
  registers: [registry],
  collect() {
    this.reset();
    this.inc(giveWayStats.pauses);
  },
});
new Counter({
  name: "sitesync_sync_give_way_seconds_total",
  help: "Time sync workers paused while HTTP requests were in flight (SYNC_GIVE_WAY)",
  registers: [registry],
  collect() {
    this.reset();
    this.inc(giveWayStats.ms / 1000);
  },
});

/** Sync workers: Search Console rows stored. */
export const rowsIngested = new Counter({
  name: "sitesync_rows_ingested_total",
  help: "Search Console rows stored (inserted or updated) by sync tasks",
  labelNames: ["source"],
  registers: [registry],
});

/** Sync workers: Search Console API requests by result (ok, rate_limited, server_error, client_error, network_error, auth_error). */
export const gscRequests = new Counter({
  name: "sitesync_gsc_requests_total",
  help: "Search Console API requests (each attempt) by result; rate_limited is a 429",
  labelNames: ["result"],
  registers: [registry],
});

/**
 * Supervisor: sets the gauges read from the database before a scrape: tasks by status, and the WAL
 * size (SQLite) or the server's facts (PostgreSQL). A database that does not answer leaves them as
 * they were: the scrape still gets every process's own metrics.
 */
export async function refreshDatabaseGauges(db: Db) {
  try {
    if (db.engine === "pg") {
      const f = await serverFacts(db);
      pgDatabaseBytes.set(f.database_size_bytes);
      pgLocksWaiting.set(f.locks_waiting);
      pgServerConnections.set(f.connections);
      pgMaxConnections.set(f.max_connections);
    } else {
      walBytes.set(walSize(db.path));
    }
    const tasks = await countTasksByStatus(db);
    tasksByStatus.reset();
    for (const r of tasks) tasksByStatus.set({ status: r.status, type: r.type }, r.n);
  } catch (err) {
    logOncePer("metrics database gauges", 60_000, "warn", "database gauges not refreshed", { error: (err as Error).message });
  }
}

/** Supervisor: records one checkpoint run (the checkpointer's onRun). */
export function observeCheckpoint(mode: CheckpointMode, ms: number, ok: boolean) {
  checkpointRuns.inc({ mode, outcome: ok ? "done" : "missed" });
  checkpointDuration.observe({ mode }, ms / 1000);
}
