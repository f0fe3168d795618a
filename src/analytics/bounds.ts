import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { principalOf, clientIpOf } from "../auth/middleware.ts";
import { defaults } from "../config.ts";
import { Counter, Gauge } from "../metrics/prom.ts";
import { budgetOf, budgetStats, withBudget } from "../db/budget.ts";
import { ApiError } from "../errors.ts";
import { registry } from "../metrics/registry.ts";
import { onDownloadEnd } from "./download-end.ts";
import { defaultSocketTimeoutS, heavyRequests, setIdleTimeout, socketTimeoutOf } from "./idle-timeout.ts";

// The cost bounds of heavy requests (analytics, search, downloads): how many one caller may have running
// at once in this process (429 past it), and the budget of each (src/db/budget.ts). docs/security.md
// ("Cost bounds") lists the settings.

export type Bounds = {
  /** ANALYTICS_TIMEOUT_MS: each request's queries are stopped past this. */
  timeoutMs: number;
  /** ANALYTICS_MAX_ROWS / ANALYTICS_MAX_BYTES: the largest answer. */
  maxRows: number;
  maxBytes: number;
  /** ANALYTICS_MAX_TERMS / ANALYTICS_MAX_PARTIAL_TERMS: terms of one ranking-data request. */
  maxTerms: number;
  maxPartialTerms: number;
  /** ANALYTICS_CONCURRENCY_PER_KEY / EXPORT_CONCURRENCY_PER_KEY: running at once per caller and HTTP process. */
  perKey: number;
  exportsPerKey: number;
  /** EXPORT_TIMEOUT_MS: the longest one download may run (its stream is cut past it). */
  exportTimeoutMs: number;
  /** ANALYTICS_MAX_BODY_BYTES: the largest body of a heavy request (413 before it is read). */
  maxBodyBytes: number;
  /**
   * Seconds a heavy request's connection may stay silent (0: no limit), or null when HTTP_IDLE_TIMEOUT_S
   * already outlasts the time limits: Bun closes a connection silent past its idle timeout even while a request on
   * it waits for its answer, so a query allowed 15 s would end in a reset, not its answer or a 504.
   */
  socketTimeoutS: number | null;
};

/** The bounds of the settings' defaults. */
export const defaultBounds: Bounds = {
  timeoutMs: defaults.ANALYTICS_TIMEOUT_MS,
  maxRows: defaults.ANALYTICS_MAX_ROWS,
  maxBytes: defaults.ANALYTICS_MAX_BYTES,
  maxTerms: defaults.ANALYTICS_MAX_TERMS,
  maxPartialTerms: defaults.ANALYTICS_MAX_PARTIAL_TERMS,
  perKey: defaults.ANALYTICS_CONCURRENCY_PER_KEY,
  exportsPerKey: defaults.EXPORT_CONCURRENCY_PER_KEY,
  exportTimeoutMs: defaults.EXPORT_TIMEOUT_MS,
  maxBodyBytes: defaults.ANALYTICS_MAX_BODY_BYTES,
  socketTimeoutS: defaultSocketTimeoutS,
};

/**
 * Bounds from a Config's settings. The per-key concurrency settings are per instance: each of `workers`
 * HTTP workers (counting in its own memory) allows its share, at least 1.
 */
export function boundsFrom(c: Omit<typeof defaults, "SITESYNC_ROLE">, workers = 1): Bounds {
  const share = (total: number) => Math.max(1, Math.floor(total / Math.max(1, workers)));
  return {
    timeoutMs: c.ANALYTICS_TIMEOUT_MS,
    maxRows: c.ANALYTICS_MAX_ROWS,
    maxBytes: c.ANALYTICS_MAX_BYTES,
    maxTerms: c.ANALYTICS_MAX_TERMS,
    maxPartialTerms: c.ANALYTICS_MAX_PARTIAL_TERMS,
    perKey: share(c.ANALYTICS_CONCURRENCY_PER_KEY),
    exportsPerKey: share(c.EXPORT_CONCURRENCY_PER_KEY),
    exportTimeoutMs: c.EXPORT_TIMEOUT_MS,
    maxBodyBytes: c.ANALYTICS_MAX_BODY_BYTES,
    socketTimeoutS: socketTimeoutOf(c.HTTP_IDLE_TIMEOUT_S, c.ANALYTICS_TIMEOUT_MS, c.MCP_QUERY_TIMEOUT_MS),
  };
}

new Gauge({
  name: "sitesync_bounded_queries_running",
  help: "Analytics and search queries running (or waiting for a query process) under a request's time limit",
  aggregator: "sum",
  registers: [registry],
  collect() {
    this.set(budgetStats.running);
  },
});
new Counter({
  name: "sitesync_bounded_queries_stopped_total",
  help: "Queries stopped before their end: past ANALYTICS_TIMEOUT_MS (timeout) or because the client went away (client_closed)",
  labelNames: ["reason"],
  aggregator: "sum",
  registers: [registry],
  collect() {
    this.reset();
    this.inc({ reason: "timeout" }, budgetStats.stopped.timeout);
    this.inc({ reason: "client_closed" }, budgetStats.stopped.client_closed);
  },
});

// Requests running now per caller and kind, in this process.
const running = new Map<string, number>();
// Requests holding a place already: a heavy route reached through another's middleware (the v2 body
// of ranking-data, answered by compat before analytics) is counted and budgeted once.
// Keyed by the request's context (one per request across mounted apps; the app's body limit may replace c.req.raw):
// `heavyRequests` of src/analytics/idle-timeout.ts, which reads it too.

/** Who is counted: the key, else the client address (keyless loopback clients share one count). */
function callerOf(c: Parameters<MiddlewareHandler>[0]): string {
  const p = principalOf(c);
  return p?.kind === "key" ? `key:${p.key.id}` : `ip:${clientIpOf(c) ?? "local"}`;
}

/** Takes one of `limit` places of `caller` for `kind`, or throws 429; returns the function giving it back. */
function take(kind: "query" | "export" | "live", caller: string, limit: number, setting: string): () => void {
  const name = `${kind}:${caller}`;
  const n = running.get(name) ?? 0;
  if (n >= limit) {
    const what = kind === "export" ? "downloads" : "analytics or search requests";
    throw new ApiError(
      "rate_limited",
      `${n} ${what} of this caller are running already, the most ${setting} allows per worker process (${limit}: the setting divided by WORKERS); retry when one finishes`,
      { limit, setting },
      { "Retry-After": "1" },
    );
  }
  running.set(name, n + 1);
  let given = false;
  return () => {
    if (given) return;
    given = true;
    const left = (running.get(name) ?? 1) - 1;
    if (left > 0) running.set(name, left);
    else running.delete(name);
  };
}

/**
 * Middleware of a heavy route: one place of the caller's concurrency (429 with Retry-After when none is
 * free), and the request's query budget (deadline, the client's abort signal, answer caps) for every
 * query the handler makes. A download (`export`) keeps its place until its body ends or its client leaves.
 * `keysOnly`: keyless callers (this machine's, who could read the file anyway) take no place, only the budget.
 * `unplaced`: nobody takes a place, only the budget (reads bounded in size, e.g. the dashboard's sites list).
 */
export function heavyRequest(
  bounds: Bounds,
  kind: "query" | "export" = "query",
  o: { keysOnly?: boolean; unplaced?: boolean } = {},
): MiddlewareHandler {
  return async (c, next) => {
    if (heavyRequests.has(c)) return next();
    heavyRequests.add(c);
    // A body past the limit is refused before anything parses it or a place is taken: from its Content-Length
    // (unread), or as a chunked body's bytes arrive (Hono's bodyLimit counts them). A body a middleware before this
    // one read already (compat's v2 spellings) was counted by the app's 1 MiB limit; only its Content-Length is checked.
    if (c.req.raw.bodyUsed && !c.req.header("content-length")) return placeAndBudget(c, next);
    return limitBody(bounds.maxBodyBytes)(c, () => placeAndBudget(c, next));
  };

  async function placeAndBudget(c: Parameters<MiddlewareHandler>[0], next: () => Promise<void>): Promise<void> {
    const caller = callerOf(c);
    const release =
      o.unplaced || (o.keysOnly && !caller.startsWith("key:"))
        ? () => {}
        : kind === "export"
          ? take("export", caller, bounds.exportsPerKey, "EXPORT_CONCURRENCY_PER_KEY")
          : take("query", caller, bounds.perKey, "ANALYTICS_CONCURRENCY_PER_KEY");
    const budget = budgetOf({ ...bounds, signal: c.req.raw.signal });
    // A download's bytes keep its connection busy once they flow; before its first byte it is bound like a query.
    // (A GET's was raised already, before the auth: idleTimeoutFirst.)
    if (bounds.socketTimeoutS !== null) setIdleTimeout(c, bounds.socketTimeoutS);
    let handedOver = false;
    try {
      await withBudget(budget, next);
      const body = c.res.body;
      if (kind === "export" && c.res.status === 200 && body) {
        if (!onDownloadEnd(body, release)) c.res = new Response(releasedAtEnd(body, release), c.res);
        handedOver = true;
      }
    } finally {
      if (!handedOver) release();
    }
  }
}

const bodyLimits = new Map<number, MiddlewareHandler>();

/** Hono's bodyLimit at `maxBytes`, answering 413 `payload_too_large` naming ANALYTICS_MAX_BODY_BYTES. */
function limitBody(maxBytes: number): MiddlewareHandler {
  let m = bodyLimits.get(maxBytes);
  if (!m) {
    m = bodyLimit({
      maxSize: maxBytes,
      onError: () => {
        throw new ApiError(
          "payload_too_large",
          `request body is larger than ${maxBytes} bytes, the most ANALYTICS_MAX_BODY_BYTES allows for this route`,
        );
      },
    });
    bodyLimits.set(maxBytes, m);
  }
  return m;
}

/**
 * The term caps of ranking-data (ANALYTICS_MAX_TERMS, ANALYTICS_MAX_PARTIAL_TERMS), checked on the parsed JSON
 * before its schema validates each term: 10,000 terms are refused for the price of counting them (validating
 * them cost 20-170 ms of the worker's event loop per request). `v2`: the original's v2 body (partial unless
 * `exact_match`); else partial for `queries` with `matching_mode: "partial"`. A list over the cap is refused
 * whether or not the request's `group_by` uses it.
 */
export function checkTermCaps(body: unknown, bounds: Bounds, v2: boolean): void {
  if (typeof body !== "object" || body === null) return;
  const o = body as Record<string, unknown>;
  for (const field of ["queries", "pages"] as const) {
    const list = o[field];
    if (!Array.isArray(list)) continue;
    const partial = v2 ? o.exact_match === false : field === "queries" && o.matching_mode === "partial" && o.group_by !== "page";
    const most = partial ? bounds.maxPartialTerms : bounds.maxTerms;
    if (list.length <= most) continue;
    // The v3 body's duplicates count once (as its handler does).
    const n = v2 ? list.length : new Set(list).size;
    if (n <= most) continue;
    const setting = partial ? "ANALYTICS_MAX_PARTIAL_TERMS" : "ANALYTICS_MAX_TERMS";
    throw new ApiError(
      "validation_failed",
      `invalid body: ${field}: at most ${most} ${partial ? "partial-match " : ""}terms per request (${setting}); got ${n}`,
      [{ path: field, message: `at most ${most} terms (${setting})` }],
    );
  }
}

/**
 * Runs `fn` within a fresh budget of `bounds` and the request's abort signal: for work repeated within one
 * request (each render of a dashboard's live part). A key holds one of its places for live parts
 * (as many as ANALYTICS_CONCURRENCY_PER_KEY allows per worker, counted apart from its requests) while
 * `fn` runs; null, without running it, when they are all taken: a busy caller skips a turn. Keyless callers
 * (this machine's) take no place.
 */
export async function boundedTurn<T>(c: Parameters<MiddlewareHandler>[0], bounds: Bounds, fn: () => Promise<T>): Promise<T | null> {
  const caller = callerOf(c);
  let release = () => {};
  if (caller.startsWith("key:")) {
    try {
      release = take("live", caller, bounds.perKey, "ANALYTICS_CONCURRENCY_PER_KEY");
    } catch (err) {
      if (err instanceof ApiError && err.code === "rate_limited") return null;
      throw err;
    }
  }
  try {
    return await withBudget(budgetOf({ ...bounds, signal: c.req.raw.signal }), fn);
  } finally {
    release();
  }
}

/** `body` passed through, calling `release` once when it ends, fails or is cancelled. */
function releasedAtEnd(body: ReadableStream<Uint8Array>, release: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            release();
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          release();
          controller.error(err);
        }
      },
      async cancel(reason) {
        release();
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Requests of each kind running now in this process (tests). */
export function runningHeavy(): number {
  let n = 0;
  for (const v of running.values()) n += v;
  return n;
}
