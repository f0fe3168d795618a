import { AsyncLocalStorage } from "node:async_hooks";
import { defaults } from "../config.ts";
import { ApiError } from "../errors.ts";

// The cost bound of one request's queries (docs/security.md, "Cost bounds"): a deadline, the client's
// abort signal (it went away), and caps on the rows and bytes of an answer. The route's middleware
// (bounds.ts) sets it for the request; the query pool, PostgreSQL reads and downloads read it here, so
// the functions that build SQL (queries.ts) need no extra parameter.

export type QueryBudget = {
  /** The time limit (ms), for messages. */
  timeoutMs: number;
  /** performance.now() past which the request's queries are stopped. */
  deadline: number;
  /** Aborts when the client closes its connection. */
  signal: AbortSignal | null;
  /** Most rows one answer may hold. */
  maxRows: number;
  /** Most bytes (as JSON) one answer may hold. */
  maxBytes: number;
};

const current = new AsyncLocalStorage<QueryBudget>();

/** Bounded queries of this process: running now, and stopped so far by reason (metrics in analytics/bounds.ts). */
export const budgetStats = { running: 0, stopped: { timeout: 0, client_closed: 0 } };

/** Runs `fn` with `budget` as the bound of every query it makes. */
export function withBudget<T>(budget: QueryBudget, fn: () => T): T {
  return current.run(budget, fn);
}

/** The bound of the current request's queries; outside a request (CLI, tests in-process), the defaults without a signal. */
export function currentBudget(): QueryBudget {
  return (
    current.getStore() ?? {
      timeoutMs: defaults.ANALYTICS_TIMEOUT_MS,
      deadline: performance.now() + defaults.ANALYTICS_TIMEOUT_MS,
      signal: null,
      maxRows: defaults.ANALYTICS_MAX_ROWS,
      maxBytes: defaults.ANALYTICS_MAX_BYTES,
    }
  );
}

/** A budget of `timeoutMs` from now. */
export function budgetOf(o: { timeoutMs: number; maxRows: number; maxBytes: number; signal?: AbortSignal | null }): QueryBudget {
  return {
    timeoutMs: o.timeoutMs,
    deadline: performance.now() + o.timeoutMs,
    signal: o.signal ?? null,
    maxRows: o.maxRows,
    maxBytes: o.maxBytes,
  };
}

/** 504 `query_timeout`: the request's queries ran past the limit. */
export function queryTimeout(b: Pick<QueryBudget, "timeoutMs">): ApiError {
  return new ApiError(
    "query_timeout",
    `the query was stopped after ${b.timeoutMs} ms, the limit ANALYTICS_TIMEOUT_MS sets; ask for fewer days, terms or rows`,
    { timeout_ms: b.timeoutMs },
  );
}

/** 499 `client_closed`: the client went away, so its query was stopped (nobody reads this answer; logs and metrics do). */
export function clientClosed(): ApiError {
  return new ApiError("client_closed", "the client closed the connection; its query was stopped");
}

/** 413 `result_too_large`: the answer would pass ANALYTICS_MAX_ROWS or ANALYTICS_MAX_BYTES. */
export function resultTooLarge(b: Pick<QueryBudget, "maxRows" | "maxBytes">, seen: { rows: number; bytes: number }): ApiError {
  const what =
    seen.rows > b.maxRows ? `more than ${b.maxRows} rows (ANALYTICS_MAX_ROWS)` : `more than ${b.maxBytes} bytes (ANALYTICS_MAX_BYTES)`;
  return new ApiError(
    "result_too_large",
    `the answer has ${what}; set max_results, narrow the dates or terms, or download every row with GET /api/v1/sites/{site_id}/export`,
    { max_rows: b.maxRows, max_bytes: b.maxBytes },
  );
}

/** Throws when the budget is spent: the client left (499) or the deadline passed (504); counted as a stop. */
export function checkBudget(b: QueryBudget): void {
  // Counted like a query stopped mid-run: a request whose earlier reads used up its time ends here, with the
  // same 504 (a loaded host's late timer let the last read finish just past the deadline).
  if (b.signal?.aborted) {
    budgetStats.stopped.client_closed++;
    throw clientClosed();
  }
  if (performance.now() >= b.deadline) {
    budgetStats.stopped.timeout++;
    throw queryTimeout(b);
  }
}

/**
 * Calls `stop` once when the budget runs out while `work` runs (deadline or client gone) and rejects
 * with why; otherwise `work`'s outcome. `stop` must make `work` settle (kill, cancel).
 */
export async function bounded<T>(b: QueryBudget, work: Promise<T>, stop: (why: ApiError) => void): Promise<T> {
  checkBudget(b);
  let why: ApiError | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fire = (e: ApiError) => {
    if (why) return;
    why = e;
    budgetStats.stopped[e.code === "query_timeout" ? "timeout" : "client_closed"]++;
    stop(e);
  };
  budgetStats.running++;
  const onAbort = () => fire(clientClosed());
  timer = setTimeout(() => fire(queryTimeout(b)), Math.max(0, b.deadline - performance.now()));
  b.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const r = await work;
    if (why) throw why;
    return r;
  } catch (err) {
    throw why ?? err;
  } finally {
    budgetStats.running--;
    clearTimeout(timer);
    b.signal?.removeEventListener("abort", onAbort);
  }
}
