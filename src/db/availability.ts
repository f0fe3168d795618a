import { AsyncLocalStorage } from "node:async_hooks";
import { dbErrorCode } from "../errors.ts";
import { log } from "../log.ts";

// Whether this process can reach its database: one shared state per process, so an outage is noticed
// once (by the first failure a background probe confirms) and not by every request timing out alone.
// While down, a probe runs in the background every PROBE_MS; requests wait for it at most the
// ride-through (DB_RIDE_THROUGH_MS), then answer 503 with a Retry-After from what is known.
// One log line per change: down, still down every minute, back up.

// The ride-through is a budget per request, not per query: a request that waits for the database in its
// key check, then in its write, then in its idempotency record waits at most once the ride-through in all.
// A request may also offer a way to answer before its write's outcome is known (`onPending`: the
// Idempotency-Key middleware, which can hand the final answer to a retry with the key).
// A request that met the fault (waited for the server, or lost a connection) is marked: its later writes are
// answered early too if still running at its ride-through's end (see the PostgreSQL engine's tx).
const budget = new AsyncLocalStorage<{ until: number; onPending?: () => void; faulted?: boolean }>();

/** Runs `fn` (a request) with `ms` of waiting for the database in all. */
export function withRideThrough<T>(ms: number, fn: () => T): T {
  return budget.run({ until: performance.now() + ms }, fn);
}

/**
 * Offers the running request an early answer: `f` is called (once) if a write of it must go on waiting
 * for its outcome past the ride-through (a lost COMMIT, the server away). undefined withdraws the offer.
 */
export function offerPendingAnswer(f: (() => void) | undefined): void {
  const b = budget.getStore();
  if (b) b.onPending = f;
}

/** A one-shot signal the engine fires (offerPendingAnswer) when a write's outcome outlasts the ride-through. */
export function pendingSignal(): { announce: () => void; promise: Promise<"pending"> } {
  let announce!: () => void;
  const promise = new Promise<"pending">((r) => (announce = () => r("pending")));
  return { announce, promise };
}

/**
 * `write`'s result, or "pending" once its outcome must wait past the request's ride-through (a lost COMMIT):
 * the write goes on; the caller answers at once and deals with a late result through `write` itself.
 */
export async function raceWithPending<T>(write: Promise<T>): Promise<T | "pending"> {
  const signal = pendingSignal();
  offerPendingAnswer(signal.announce);
  try {
    return await Promise.race([write, signal.promise]);
  } finally {
    offerPendingAnswer(undefined);
  }
}

/**
 * The running request's early answer (see offerPendingAnswer) as a function to call later, from any context:
 * it fires whatever the request offers at that moment, once at most. undefined outside a request.
 */
export function pendingAnswerLater(): (() => void) | undefined {
  const b = budget.getStore();
  if (!b) return undefined;
  return () => {
    const f = b.onPending;
    b.onPending = undefined;
    f?.();
  };
}

/** Whether the running request met the fault: it waited for the server, or a query of it lost its connection. */
export function requestFaulted(): boolean {
  return budget.getStore()?.faulted === true;
}

function markFaulted() {
  const b = budget.getStore();
  if (b) b.faulted = true;
}

/** How long the caller may still wait for the database: `ms`, or less when its request's budget is shorter. */
export function rideThroughLeft(ms: number): number {
  const b = budget.getStore();
  return b ? Math.min(ms, b.until - performance.now()) : ms;
}

/** A probe: resolves when the database answers a fresh connection, rejects with why not. */
export type Probe = () => Promise<void>;

export type Availability = {
  /** Up, or down since (ms since the epoch). */
  readonly downSince: number | null;
  /** Up without a break since (ms since the epoch): when this handle was opened, or its last outage ended. */
  readonly upSince: number;
  /** The error that made it down, or the last probe's. */
  readonly lastError: string | null;
  /** Outages seen since start. */
  readonly outages: number;
  /** How long requests may wait for the database to come back (ms). */
  readonly rideThroughMs: number;
  /**
   * A query failed as if the database were gone (connection lost or refused): probe at once; down if the
   * probe fails. Resolves once the probe answered (true: up).
   */
  suspect(err: unknown): Promise<boolean>;
  /** Probes now (at once when a probe is under way): true when the database answered. */
  probe(): Promise<boolean>;
  /** Resolves true when the database is up, false when it stayed down `ms` (at once when up). */
  waitUp(ms: number): Promise<boolean>;
  /** Seconds a client should wait before retrying, from what is known of the outage. */
  retryAfterSeconds(): number;
  /** Runs `f` each time the database comes back. */
  onUp(f: () => void): void;
  /** Stops the background probe (the handle is closing). */
  stop(): void;
};

// Often enough that requests waiting for the server's return go on within ~50 ms of it (a refused connect is
// cheap; a server starting up answers 57P03 from a forked backend, ~1 ms of its CPU). A request that finds
// the state down asks at once instead of waiting for the next tick (one probe shared, at most one per
// PROBE_MIN_GAP_MS), so a request sent after the return does not wait for the pace at all.
const PROBE_MS = 50;
const PROBE_MIN_GAP_MS = 20;
const STILL_DOWN_LOG_MS = 60_000;

/** A state that is always up (SQLite: the file is on this machine; its failures are reported per write). */
export function alwaysUp(rideThroughMs: number): Availability {
  const upSince = Date.now();
  return {
    downSince: null,
    upSince,
    lastError: null,
    outages: 0,
    rideThroughMs,
    suspect: async () => true,
    probe: async () => true,
    waitUp: async () => true,
    retryAfterSeconds: () => 1,
    onUp() {},
    stop() {},
  };
}

/** The availability of a database reached over the network, confirmed by `probe` (PostgreSQL). */
export function trackAvailability(probe: Probe, opts: { rideThroughMs: number; target: string; probeMs?: number }): Availability {
  const probeMs = opts.probeMs ?? PROBE_MS;
  let downSince: number | null = null;
  let upSince = Date.now();
  let lastError: string | null = null;
  let lastCode: string | undefined;
  let outages = 0;
  let probing: Promise<boolean> | null = null;
  let probeStartedAt = Number.NEGATIVE_INFINITY;
  let timer: Timer | null = null;
  let stillDownLoggedAt = 0;
  let stopped = false;
  let waiters: ((up: boolean) => void)[] = [];
  const upListeners: (() => void)[] = [];

  function wentUp() {
    if (downSince === null) return;
    const downMs = Date.now() - downSince;
    downSince = null;
    upSince = Date.now();
    if (timer) clearTimeout(timer);
    timer = null;
    log("info", "database reachable again", { target: opts.target, down_ms: downMs });
    const w = waiters;
    waiters = [];
    for (const f of w) f(true);
    for (const f of upListeners) {
      try {
        f();
      } catch (err) {
        log("warn", "database-up listener failed", { error: String(err) });
      }
    }
  }

  function wentDown(err: unknown) {
    lastError = describe(err);
    lastCode = dbErrorCode(err);
    if (downSince !== null) {
      if (Date.now() - stillDownLoggedAt >= STILL_DOWN_LOG_MS) {
        stillDownLoggedAt = Date.now();
        log("warn", "database still unreachable", {
          target: opts.target,
          since: new Date(downSince).toISOString(),
          down_ms: Date.now() - downSince,
          error: lastError,
        });
      }
      return;
    }
    downSince = Date.now();
    stillDownLoggedAt = downSince;
    outages++;
    log("warn", "database unreachable", { target: opts.target, error: lastError });
    schedule();
  }

  function schedule() {
    if (stopped || timer || downSince === null) return;
    timer = setTimeout(() => {
      timer = null;
      void runProbe().then(() => schedule());
    }, probeMs);
    // A process with nothing else to do must be free to exit during an outage.
    timer.unref?.();
  }

  function runProbe(): Promise<boolean> {
    if (!probing) probeStartedAt = performance.now();
    probing ??= probe()
      .then(
        () => {
          wentUp();
          return true;
        },
        (err) => {
          wentDown(err);
          return false;
        },
      )
      .finally(() => {
        probing = null;
      });
    return probing;
  }

  return {
    get downSince() {
      return downSince;
    },
    get upSince() {
      return upSince;
    },
    get lastError() {
      return lastError;
    },
    get outages() {
      return outages;
    },
    rideThroughMs: opts.rideThroughMs,
    suspect(err) {
      markFaulted();
      if (downSince === null) lastError = describe(err);
      return runProbe();
    },
    probe: () => runProbe(),
    waitUp(ms) {
      if (downSince === null) return Promise.resolve(true);
      markFaulted();
      ms = rideThroughLeft(ms);
      if (ms <= 0) return Promise.resolve(false);
      // Ask now rather than at the next tick: the server may be back already.
      if (!probing && !stopped && performance.now() - probeStartedAt >= PROBE_MIN_GAP_MS) void runProbe();
      return new Promise<boolean>((resolve) => {
        const t = setTimeout(() => {
          waiters = waiters.filter((f) => f !== done);
          resolve(false);
        }, ms);
        const done = (up: boolean) => {
          clearTimeout(t);
          resolve(up);
        };
        waiters.push(done);
      });
    },
    retryAfterSeconds() {
      if (downSince === null) return 1;
      // Starting up or shutting down (57P03), or its connections terminated by an administrator
      // (57P01): a restart is in progress, back in a few seconds. Otherwise half the outage so far.
      if (lastCode === "57P03" || lastCode === "57P01") return 2;
      const downS = (Date.now() - downSince) / 1000;
      return Math.min(30, Math.max(2, Math.ceil(downS / 2)));
    },
    onUp(f) {
      upListeners.push(f);
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const w = waiters;
      waiters = [];
      for (const f of w) f(false);
    },
  };
}

function describe(err: unknown): string {
  const code = dbErrorCode(err);
  let e = err as { message?: unknown; cause?: unknown } | null;
  while (e?.cause && typeof e.cause === "object") e = e.cause as typeof e;
  const message = String(e?.message ?? err);
  return code ? `${code}: ${message}` : message;
}
