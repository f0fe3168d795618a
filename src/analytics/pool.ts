import type { SQLQueryBindings } from "bun:sqlite";
import type { Subprocess } from "bun";
import { defaults } from "../config.ts";
import type { SqliteDb } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { bounded, checkBudget, currentBudget, resultTooLarge, type QueryBudget } from "../db/budget.ts";
import type { QueryReply, QueryRequest } from "./query-process.ts";

// Aggregations over hundreds of thousands of rows take from 0.1 to several seconds of SQLite time.
// Run on the reader connection they would block the HTTP worker's event loop for as long, stalling
// every other request of that process (sites, health, the supervisor's ping). They run in query
// processes instead (query-process.ts): each has its own read-only connection (a fresh snapshot per
// query), and the event loop only waits. A query past its request's deadline, or whose client went
// away, is stopped by killing its process (SQLite offers JavaScript no interrupt); the next query
// starts a fresh one (~0.1 s).

/**
 * Query processes per HTTP process (ANALYTICS_PROCESSES): slow queries at once before they queue. More
 * than one key's concurrency (ANALYTICS_CONCURRENCY_PER_KEY), so one key cannot hold them all.
 */
let PROCESSES = defaults.ANALYTICS_PROCESSES;
/** The query processes' mmap_size (ANALYTICS_MMAP_SIZE): their reads map the file instead of a pread per page. */
let MMAP_SIZE = defaults.ANALYTICS_MMAP_SIZE;

/** Sets how many query processes each pool may run and their mmap_size (server start: ANALYTICS_PROCESSES, ANALYTICS_MMAP_SIZE). */
export function setQueryProcesses(n: number, mmapSize = MMAP_SIZE) {
  PROCESSES = n;
  MMAP_SIZE = mmapSize;
}
/** Queries waiting for a process, per HTTP process, before new ones are refused 503. */
const MAX_WAITING = 64;

type Job = {
  id: number;
  sql: string;
  params: SQLQueryBindings | unknown[];
  values: boolean;
  budget: QueryBudget;
  resolve: (rows: unknown[]) => void;
  reject: (err: Error) => void;
};
type Proc = { proc: Subprocess<"ignore", "inherit", "inherit">; job: Job | null };

/** Runs read-only SELECTs in this process's query processes. */
export type QueryPool = {
  /** The rows of `sql`, within the current request's budget (time limit, client, row and byte caps). */
  all<R>(sql: string, params: SQLQueryBindings): Promise<R[]>;
  /** The rows of `sql` as arrays in column order (positional parameters: Drizzle's statements), within the same budget. */
  values(sql: string, params: unknown[]): Promise<unknown[][]>;
  /** Process ids of the query processes running now (tests: a killed one is gone). */
  pids(): number[];
  /** Queries running or waiting now. */
  load(): number;
};

const pools = new WeakMap<object, QueryPool>();

/** The query processes of this database handle (started on first use, stopped when the handle closes). */
export function queryPool(db: SqliteDb): QueryPool {
  // Keyed by the reader connection: wrapped handles (e.g. the audited one) share the pool.
  let pool = pools.get(db.raw.reader);
  if (!pool) {
    pool = createPool(db);
    pools.set(db.raw.reader, pool);
  }
  return pool;
}

/** How long closing waits for its killed query processes to exit (SIGKILL: a few ms unless one is stuck in the kernel). */
const CLOSE_WAIT_MS = 2000;

/** Resolves once every process exited (their parent has collected them), or after `ms`. */
async function exitedWithin(procs: Subprocess[], ms: number): Promise<void> {
  let timer: Timer | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  await Promise.race([Promise.all(procs.map((p) => p.exited)), late]);
  clearTimeout(timer);
}

const script = new URL("./query-process.ts", import.meta.url).pathname;

function createPool(db: SqliteDb): QueryPool {
  const procs: Proc[] = [];
  // Every process started and not yet exited (killed ones too, until their exit is seen): closing waits for them.
  const live = new Set<Subprocess>();
  const waiting: Job[] = [];
  let nextId = 1;
  let closed = false;

  const start = (): Proc => {
    const p: Proc = {
      proc: Bun.spawn([process.execPath, script], {
        stdio: ["ignore", "inherit", "inherit"],
        serialization: "advanced",
        ipc(m: QueryReply) {
          const job = p.job;
          if (!job || job.id !== m.id) return;
          p.job = null;
          if ("rows" in m) job.resolve(m.rows);
          else if ("tooLarge" in m) job.reject(resultTooLarge(job.budget, m.tooLarge));
          else job.reject(Object.assign(new Error(m.error.message), { name: m.error.name, code: m.error.code }));
          dispatch();
        },
        onExit(proc) {
          live.delete(proc);
          // Died on its own (a kill below took it out of the pool already): fail what it held.
          const i = procs.indexOf(p);
          if (i >= 0) procs.splice(i, 1);
          const job = p.job;
          p.job = null;
          job?.reject(new Error("the query process exited"));
          dispatch();
        },
      }),
      job: null,
    };
    // Never what keeps a process alive: the HTTP server or the test runner decides that.
    p.proc.unref();
    live.add(p.proc);
    p.proc.send({ type: "open", path: db.path, pragmas: { ...db.pragmas, mmapSize: MMAP_SIZE } } satisfies QueryRequest);
    procs.push(p);
    return p;
  };

  const dispatch = () => {
    while (waiting.length > 0 && !closed) {
      let p = procs.find((x) => x.job === null);
      if (!p && procs.length < PROCESSES) p = start();
      if (!p) return;
      // A spare started ahead, so a second query at once does not wait for a process to start.
      if (procs.length < PROCESSES && procs.every((x) => x === p || x.job !== null)) start();
      const job = waiting.shift()!;
      p.job = job;
      p.proc.send({
        type: "all",
        id: job.id,
        sql: job.sql,
        params: job.params,
        maxRows: job.budget.maxRows,
        maxBytes: job.budget.maxBytes,
        values: job.values,
      } satisfies QueryRequest);
    }
  };

  db.onClose.push(() => {
    closed = true;
    for (const j of waiting.splice(0)) j.reject(new Error("the database was closed"));
    for (const p of procs.splice(0)) {
      p.job?.reject(new Error("the database was closed"));
      p.job = null;
    }
    // Killed and waited for (closeAllConnections and the tests' cleanup await it): a child this process exits
    // before collecting is handed to pid 1, which in a container may never reap it (it stays <defunct>).
    const dying = [...live];
    for (const proc of dying) {
      proc.ref();
      proc.kill("SIGKILL");
    }
    return exitedWithin(dying, CLOSE_WAIT_MS);
  });

  const run = (sql: string, params: SQLQueryBindings | unknown[], values: boolean): Promise<unknown[]> => {
    const budget = currentBudget();
    // A budget already spent (the client gone, the deadline past) runs nothing.
    try {
      checkBudget(budget);
    } catch (err) {
      return Promise.reject(err);
    }
    if (waiting.length >= MAX_WAITING) {
      return Promise.reject(new ApiError("unavailable", "too many analytics queries are waiting in this process; retry in a moment"));
    }
    let job: Job;
    const work = new Promise<unknown[]>((resolve, reject) => {
      job = { id: nextId++, sql, params, values, budget, resolve, reject };
      waiting.push(job);
    });
    dispatch();
    return bounded(budget, work, (why) => {
      // Waiting: drop it. Running: kill its process, which is the only way to stop the statement.
      const w = waiting.indexOf(job);
      if (w >= 0) {
        waiting.splice(w, 1);
        job.reject(why);
        return;
      }
      const p = procs.find((x) => x.job === job);
      if (p) {
        // Out of the pool at once: no other query may be handed to a process being killed. Its
        // replacement starts now, so the next query does not wait for a process to start (~0.3 s).
        procs.splice(procs.indexOf(p), 1);
        p.job = null;
        job.reject(why);
        p.proc.kill("SIGKILL");
        if (!closed && procs.length < PROCESSES) start();
        dispatch();
      }
    });
  };

  return {
    all: <R>(sql: string, params: SQLQueryBindings) => run(sql, params, false) as Promise<R[]>,
    values: (sql: string, params: unknown[]) => run(sql, params, true) as Promise<unknown[][]>,
    pids: () => procs.map((p) => p.proc.pid),
    load: () => waiting.length + procs.filter((p) => p.job).length,
  };
}
