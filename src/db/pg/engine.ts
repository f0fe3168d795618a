import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { ApiError, isRetryableDbError, isUnavailableDbError } from "../../errors.ts";
import { log, logOncePer } from "../../log.ts";
import type { EngineHandle, Q } from "../engine.ts";
import { newWriterStats } from "../sqlite/engine.ts";
import * as schema from "./schema.ts";

export type PgOptions = {
  url: string;
  /** Connections in this process's pool (PG_POOL_SIZE). */
  poolSize: number;
  /** statement_timeout of every connection (ms; 0: none). */
  statementTimeoutMs: number;
  /** Give up on a write (503) once its retries have taken this long (ms). */
  retryForMs: number;
  /** Called after each COMMIT (one write per transaction here, no lock wait to report). */
  onCommit: ((groupSize: number, lockWaitMs: number) => void)[];
};

/** The PostgreSQL half of a Db handle: a pool per process, writes as retried transactions. */
export type PgParts = { url: string; pool: pg.Pool };

const RETRY_BASE_MS = 5;
const RETRY_MAX_MS = 500;

/** Opens a pool on the server at `url` (lazily: no connection is made before the first query). */
export function openPgEngine(opts: PgOptions): EngineHandle & { pg: PgParts } {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    statement_timeout: opts.statementTimeoutMs || undefined,
    // A transaction left open by a crashed request must not hold its locks for ever.
    idle_in_transaction_session_timeout: 60_000,
    application_name: `sitesync-${process.pid}`,
  });
  // An idle client that loses its connection (server restart) emits 'error' on the pool; one checked out
  // (a transaction in progress) emits it on itself, where nobody listens: unhandled, either would kill
  // the process. The query in progress fails on its own (and db.tx retries it), so a log line is enough.
  pool.on("error", (err) => log("warn", "postgresql connection lost while idle", { error: err.message }));
  pool.on("connect", (client) => {
    client.on("error", (err) => logOncePer("pg client error", 10_000, "warn", "postgresql connection lost", { error: err.message }));
  });
  const orm = drizzle({ client: pool, schema }) as unknown as Q;
  const stats = newWriterStats();
  let inFlight = 0;
  let drainWaiters: (() => void)[] = [];

  async function tx<T>(fn: (tx: Q) => T | Promise<T>, label?: string): Promise<T> {
    const started = performance.now();
    inFlight++;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const value = await orm.transaction(async (t) => fn(t as unknown as Q));
          stats.commits++;
          stats.writes++;
          for (const f of opts.onCommit) f(1, 0);
          return value;
        } catch (err) {
          const elapsed = performance.now() - started;
          if (!isRetryableDbError(err)) throw err;
          if (elapsed >= opts.retryForMs) {
            stats.timeouts++;
            // The server stayed unreachable: counted as a storage failure (/health degraded, check-locks).
            if (isUnavailableDbError(err)) {
              stats.storageErrors++;
              stats.lastStorageError = { code: codeOf(err), message: messageOf(err), at: Date.now() };
            }
            throw new ApiError("unavailable", "the database stayed unavailable too long; retry the request", undefined, {
              "Retry-After": "5",
            });
          }
          stats.busyRetries++;
          // Full jitter: several processes that collided must not retry in step.
          const wait = Math.random() * Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
          if (attempt === 1 || attempt % 10 === 0) {
            log("debug", "postgresql write retried", { label, attempt, code: codeOf(err) });
          }
          await Bun.sleep(wait);
        }
      }
    } catch (err) {
      if (isUnavailableDbError(err)) {
        stats.storageErrors++;
        stats.lastStorageError = { code: codeOf(err), message: messageOf(err), at: Date.now() };
      }
      throw err;
    } finally {
      inFlight--;
      if (inFlight === 0) settle();
    }
  }

  function settle() {
    const w = drainWaiters;
    drainWaiters = [];
    for (const f of w) f();
  }

  return {
    engine: "pg",
    q: orm,
    t: schema as unknown as EngineHandle["t"],
    tx,
    stats,
    drain: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => drainWaiters.push(r))),
    queueLength: () => inFlight,
    async closeConnections() {
      await pool.end();
    },
    pg: { url: opts.url, pool },
  };
}

function codeOf(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return String(e?.cause?.code ?? e?.code ?? "unknown");
}

function messageOf(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } };
  return String(e?.cause?.message ?? e?.message ?? err);
}
