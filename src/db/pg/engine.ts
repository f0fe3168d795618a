import { drizzle } from "drizzle-orm/node-postgres";
import { NodePgSession, NodePgTransaction } from "drizzle-orm/node-postgres/session";
import pg from "pg";
import { ApiError, isRetryableDbError, isUnavailableDbError } from "../../errors.ts";
import { log, logOncePer } from "../../log.ts";
import { pendingAnswerLater, requestFaulted, rideThroughLeft, trackAvailability, type Availability } from "../availability.ts";
import type { EngineHandle, Q } from "../engine.ts";
import type { Queryable } from "./prepared.ts";
import { newWriterStats } from "../sqlite/engine.ts";
import * as schema from "./schema.ts";

const noop = () => {};
export type PgOptions = {
  url: string;
  /** Connections in this process's pool (PG_POOL_SIZE). */
  poolSize: number;
  /** statement_timeout of every connection (ms; 0: none). */
  statementTimeoutMs: number;
  /** Give up on a write (503) once its retries of lost races have taken this long (ms); also the bound on learning a lost COMMIT's outcome. */
  retryForMs: number;
  /** How long a request waits for an unreachable server to come back (DB_RIDE_THROUGH_MS). */
  rideThroughMs: number;
  /** How long a new connection may take before the server counts as not answering (PG_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number;
  /** The URL without its password, for log lines. */
  target?: string;
  /** Called after each COMMIT (one write per transaction here, no lock wait to report). */
  onCommit: ((groupSize: number, lockWaitMs: number) => void)[];
};

/**
 * A write of one statement run on its own, autocommitted: no BEGIN and no COMMIT round trip (a create: one
 * round trip instead of four). `run` sends it on `client`; the statement must insert `token` into
 * commit_tokens itself (a data-modifying WITH), so that a connection lost while it runs is settled like a
 * lost COMMIT (outcomeOf). Its answer is lost then: `recover` reads back what it committed, on `on` (the
 * engine's own pool, past any request's ride-through: the outcome is known, only the answer is missing).
 */
export type OneStatementWrite<T> = {
  run(client: pg.PoolClient, token: CommitToken): Promise<T>;
  recover(on: Queryable): Promise<T>;
};

/** A write: a transaction's body (Drizzle), or one statement. */
type WriteBody<T> = ((tx: Q) => T | Promise<T>) | OneStatementWrite<T>;

/** The PostgreSQL half of a Db handle: a pool per process, writes as retried transactions. */
export type PgParts = {
  url: string;
  pool: pg.Pool;
  /** Deletes commit tokens older than their keep time (a timer does it each minute); how many. */
  sweepTokens(now?: number): Promise<number>;
  /** Runs a write of one statement with the retries, ride-through and lost-COMMIT checks of a transaction (db.tx). */
  oneStatement<T>(w: OneStatementWrite<T>, label?: string): Promise<T>;
};

/** A write transaction's commit token (commit_tokens): when written (epoch ms) and 53 random bits. */
export type CommitToken = { at: number; token: number };
/** How long commit tokens are kept (at least twice the bound on learning a lost COMMIT's outcome). */
const TOKEN_KEEP_MS = 15 * 60_000;
const TOKEN_SWEEP_MS = 60_000;
/** How long one outcome check waits for a transaction still open on the server before asking again. */
const TOKEN_LOCK_WAIT_MS = 500;

/** A new commit token. */
export function newCommitToken(): CommitToken {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return { at: Date.now(), token: (hi! & 0x1fffff) * 2 ** 32 + lo! };
}

/** How long an idle pooled connection is kept open. */
const IDLE_KEEP_MS = 10 * 60_000;

/** The server settings of the pool's sessions, sent at connection start (no statement of their own). */
const SESSION_OPTIONS = "-c jit=off -c random_page_cost=1.1";

/**
 * `url` with SESSION_OPTIONS after the startup options it names (node-postgres takes a URL's `options` over the
 * client's own). JIT off: the server compiles each statement its planner costs above jit_above_cost (100,000) and,
 * above 500,000, inlines and optimizes the code too: most 90-day reports at 20 M rows. Compiling cost more than it
 * saved on every report measured (bench/page-window.ts --database, 20 M rows, the backends' CPU, on and off in two
 * runs, load 20-27): MCP best_pages 870-930 -> 300 ms, compare by page 2,040-2,070 -> 540-810, page keywords 2,240-2,810 ->
 * 1,540-1,810; the page keywords' page totals spent 3.7 of 7.1 s compiling (EXPLAIN ANALYZE, load 25).
 * random_page_cost 1.1 (the default 4 is a spinning disk's; the reports read cached pages): at 50 M the planner read
 * a 45-day range of the detail (2.25 M of 50 M rows) by a scan of the whole table, 3.5-4.0 s, where the key's range
 * took 0.7-1.0 s (EXPLAIN ANALYZE of cannibalization's page sums, quiet).
 */
export function withSessionOptions(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not a URL the WHATWG parser takes (e.g. a user without a host): the client's own `options` below apply.
    return url;
  }
  const own = u.searchParams.get("options");
  u.searchParams.set("options", own ? `${own} ${SESSION_OPTIONS}` : SESSION_OPTIONS);
  return u.toString();
}

const RETRY_BASE_MS = 5;
const RETRY_MAX_MS = 500;

/** Opens a pool on the server at `url` (lazily: no connection is made before the first query). */
export function openPgEngine(opts: PgOptions): EngineHandle & { pg: PgParts; availability: Availability } {
  const connectTimeoutMs = opts.connectTimeoutMs;
  // When the server last answered this process (performance.now()): a query, a COMMIT, a new connection.
  // A probe that timed out while another connection got answers saw a busy server, not a gone one.
  let lastAnswerAt = Number.NEGATIVE_INFINITY;
  const answered = () => {
    lastAnswerAt = performance.now();
  };
  const pool = new pg.Pool({
    connectionString: withSessionOptions(opts.url),
    options: SESSION_OPTIONS,
    max: opts.poolSize,
    // Idle connections kept 10 minutes (node-postgres' default closes them after 10 s): a request after a quiet spell
    // would otherwise open a new backend, whose catalog caches start empty (a 90-day ranking read planned in 12-30 ms
    // on a new backend, 0.5 ms on a used one). 1 M rows at load 20: coverage after 11 s idle 102-354 ms, after 5 s 10-40.
    idleTimeoutMillis: IDLE_KEEP_MS,
    // Idle connections do not keep a process alive (one done with its work exits, as it did once they closed after 10 s).
    allowExitOnIdle: true,
    statement_timeout: opts.statementTimeoutMs || undefined,
    // A transaction left open by a crashed request must not hold its locks for ever.
    idle_in_transaction_session_timeout: 60_000,
    application_name: `sitesync-${process.pid}`,
    // The pool's connectionTimeoutMillis would also bound the wait for a free connection, which under load
    // is no sign of an outage: the bound is on each new connection instead (the client's own timeout), so
    // a server that accepts and never answers (packets dropped, a hung host) fails "timeout expired" within
    // it, and the state's probe (same bound) marks it down. The bound is generous (5 s by default): on a
    // loaded 2-core machine 40 connections opened at once took up to 2.2 s each (backends slow to start),
    // and half the ride-through (1 s, the former bound) turned that into a false outage and 503s.
    Client: class BoundedClient extends pg.Client {
      constructor(config?: pg.ClientConfig) {
        super({ ...config, connectionTimeoutMillis: connectTimeoutMs });
      }
    },
    // A statement whose client went away (a worker killed past its drain bound, a cut connection) is cancelled
    // by the server instead of running on: a create is one autocommitted statement, and one waiting for a lock
    // would otherwise commit whenever the lock frees, long after anyone could hear its answer. PostgreSQL 14+
    // on Linux; where the server refuses it (older, or a managed read-only setting), nothing changes. Awaited
    // before the connection is handed out: sent from the 'connect' event it overlapped the first query on the
    // client (node-postgres' "client.query() when the client is already executing a query" warning, an error
    // in pg 9).
    onConnect: (client) => client.query("SET client_connection_check_interval = 100").then(noop, noop),
  });
  // An idle client that loses its connection (server restart) emits 'error' on the pool; one checked out
  // (a transaction in progress) emits it on itself, where nobody listens: unhandled, either would kill
  // the process. The query in progress fails on its own (and is retried), so a log line is enough.
  pool.on("error", (err) => logOncePer("pg idle error", 10_000, "debug", "postgresql connection lost while idle", { error: err.message }));
  // Connections opened and not yet handed out (the probe tells a new connection from a reused idle one).
  const justOpened = new WeakSet<pg.PoolClient>();
  pool.on("connect", (client) => {
    answered();
    justOpened.add(client as pg.PoolClient);
    client.on("error", (err) => logOncePer("pg client error", 10_000, "debug", "postgresql connection lost", { error: err.message }));
  });
  // Connections checked out right now: close() cuts them (pool.end() alone waits for each to be released,
  // which a write stuck on a lock never is: a shutdown past its drain bound would hang there).
  const busy = new Set<pg.PoolClient>();
  pool.on("acquire", (client) => busy.add(client));
  pool.on("release", (_err, client) => busy.delete(client));
  pool.on("remove", (client) => busy.delete(client as pg.PoolClient));
  const rawQuery = pool.query.bind(pool) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
  const availability = trackAvailability(
    async () => {
      const started = performance.now();
      try {
        if (pool.idleCount > 0 || pool.totalCount < opts.poolSize) {
          // Through the pool while it has room: the connection that finds the server back stays in it, so
          // the first request after the return does not open another one (a new backend: 0.1 to 0.5 s on a
          // loaded machine). An idle connection that died with the server fails here and is dropped.
          for (let n = 0; ; n++) {
            const client = await pool.connect();
            const reused = !justOpened.delete(client);
            try {
              await client.query("select 1");
              client.release();
              break;
            } catch (err) {
              client.release(true);
              // An idle connection killed with the others (terminated backends, a restart) says nothing
              // of the server: only a new connection's failure counts.
              if (!reused || n >= opts.poolSize) throw err;
            }
          }
        } else {
          // A full pool must not delay the probe: a connection of its own.
          const client = new pg.Client({ connectionString: opts.url, connectionTimeoutMillis: connectTimeoutMs });
          client.on("error", () => {});
          try {
            await client.connect();
            await client.query("select 1");
          } finally {
            client.end().catch(() => {});
          }
        }
        answered();
      } catch (err) {
        // Timed out (no refusal, no reset) while the server answered other connections of this process:
        // it is there, only slow (a busy host). An outage is a refused or lost connection, or silence.
        if (isConnectTimeout(err) && lastAnswerAt >= started) return;
        throw err;
      }
    },
    { rideThroughMs: opts.rideThroughMs, target: opts.target ?? "postgresql" },
  );
  const unavailable = (why: string) =>
    new ApiError("unavailable", why, undefined, { "Retry-After": String(availability.retryAfterSeconds()) });

  // Reads (Drizzle over the pool calls pool.query) are idempotent: while the server is known to be down
  // they wait at most the ride-through; a read whose connection was lost is retried once.
  const readQuery = async (...args: unknown[]) => {
    if (typeof args[args.length - 1] === "function") return (rawQuery as (...a: unknown[]) => unknown)(...args);
    const started = performance.now();
    if (availability.downSince !== null && !(await availability.waitUp(opts.rideThroughMs))) {
      noteStorage({ code: "unreachable", message: availability.lastError ?? "unreachable" });
      throw unavailable(`the database is unreachable (since ${new Date(availability.downSince).toISOString()}); retry later`);
    }
    try {
      const r = await (rawQuery as (...a: unknown[]) => Promise<unknown>)(...args);
      answered();
      return r;
    } catch (err) {
      if (!isUnavailableDbError(err)) throw err;
      const left = () => rideThroughLeft(opts.rideThroughMs - (performance.now() - started));
      const up = await suspectWithin(err, left());
      // Not up: known down (wait for its return within what is left), or no verdict within the ride-through
      // (a silent server's probe takes the connect bound) — waitUp would answer "up" for a state not yet
      // marked down, and the retry would wait a second connect bound past the ride-through.
      const back = !up && availability.downSince !== null && (await availability.waitUp(left()));
      if ((!up && !back) || left() <= 0) {
        noteStorage(err);
        throw unavailable("the database is unreachable; retry later");
      }
      stats.readRetries++;
      try {
        const r = await (rawQuery as (...a: unknown[]) => Promise<unknown>)(...args);
        answered();
        return r;
      } catch (again) {
        // The one retry lost its connection too: still a 503, never the driver's raw error (a 500).
        if (!isUnavailableDbError(again)) throw again;
        noteStorage(again);
        throw unavailable("the database is unreachable; retry later");
      }
    }
  };
  (pool as unknown as { query: unknown }).query = readQuery;
  // The pool without the read path's ride-through (a committed write's read-back).
  const raw: Queryable = { query: rawQuery } as unknown as Queryable;

  /**
   * Has the state check whether the server is gone (a probe), waiting for its verdict at most `ms` (the
   * request's ride-through left): a probe of a silent server takes the connect bound, longer than that.
   * True when the probe found it up within `ms`.
   */
  async function suspectWithin(err: unknown, ms: number): Promise<boolean> {
    const verdict = availability.suspect(err);
    if (ms <= 0) return false;
    let timer: Timer | undefined;
    const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    try {
      return await Promise.race([verdict, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  const orm = drizzle({ client: pool, schema }) as unknown as Q;
  // Drizzle's own parts, to run a transaction on a connection we hold ourselves (see attempt()).
  const base = (orm as unknown as { session: { dialect: unknown; schema: unknown; options: unknown } }).session;
  const stats = newWriterStats();
  let inFlight = 0;
  let closing = false;
  let drainWaiters: (() => void)[] = [];

  /** Why a transaction attempt failed, whether its COMMIT was under way when the connection went, and its token. */
  type Failure = { err: unknown; atCommit: boolean; token: CommitToken | null; value?: unknown };

  /**
   * One attempt: BEGIN and the insert of its commit token in one round trip, fn, COMMIT, on a connection
   * held for it. Resolves with fn's value after COMMIT, or rejects with a Failure. One statement (fn an
   * OneStatementWrite): sent alone, its own transaction; its COMMIT is under way from the start.
   */
  async function attempt<T>(fn: WriteBody<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw { err, atCommit: false, token: null } satisfies Failure;
    }
    let broken = false;
    let token: CommitToken | null = null;
    let atCommit = false;
    let value: T | undefined;
    try {
      const t = newCommitToken();
      if (typeof fn !== "function") {
        token = t;
        tokensWritten = true;
        atCommit = true;
        value = await fn.run(client, t);
        answered();
        return value;
      }
      // The token's values are ours (integers): safe to inline, so BEGIN and the insert go in one round trip.
      await client.query(`BEGIN; INSERT INTO commit_tokens (at, token) VALUES (${t.at}, ${t.token})`);
      token = t;
      tokensWritten = true;
      const session = new NodePgSession(client, base.dialect as never, base.schema as never, base.options as never);
      const q = new NodePgTransaction(base.dialect as never, session, base.schema as never) as unknown as Q;
      value = await fn(q);
      atCommit = true;
      await client.query("COMMIT");
      answered();
      return value;
    } catch (err) {
      if (isUnavailableDbError(err)) broken = true;
      else if (!atCommit) {
        try {
          await client.query("ROLLBACK");
        } catch {
          broken = true;
        }
      }
      throw { err, atCommit, token, value } satisfies Failure;
    } finally {
      // A connection that failed is closed, not handed to the next caller.
      client.release(broken || undefined);
    }
  }

  /**
   * The fate of the transaction that wrote `token` and lost its connection during COMMIT, decided by the
   * token itself on another connection: the check inserts the same token, `burned`. The unique key makes
   * that insert wait while the transaction is still open (its server has not noticed the loss yet), then:
   * the transaction's row is there (committed), or the burned one is (it did not commit, and now never can:
   * its own insert would conflict). Unlike txid_status, nothing here depends on a transaction id, which a
   * server that crashed before its WAL reached disk may hand out again. Asked again while the server is down
   * or the transaction still open (lock_timeout), until `deadline` (performance.now() time).
   */
  async function outcomeOf(token: CommitToken, deadline: number): Promise<"committed" | "aborted" | "unknown"> {
    // One implicit transaction (a multi-statement query): lock_timeout, the burn and the read go together.
    const check = `SET lock_timeout = '${TOKEN_LOCK_WAIT_MS}ms'; INSERT INTO commit_tokens (at, token, burned) VALUES (${token.at}, ${token.token}, true) ON CONFLICT DO NOTHING; SELECT burned FROM commit_tokens WHERE at = ${token.at} AND token = ${token.token}; RESET lock_timeout`;
    for (;;) {
      try {
        const r = (await rawQuery(check)) as unknown as pg.QueryResult[];
        answered();
        const row = r[2]?.rows[0] as { burned: boolean } | undefined;
        if (row) return row.burned ? "aborted" : "committed";
        log("warn", "write outcome check found no commit token", { token: token.token });
        return "unknown";
      } catch (err) {
        // 55P03: still open; wait for it again below.
        if (!isUnavailableDbError(err) && codeOf(err) !== "55P03") {
          log("warn", "write outcome check failed", { token: token.token, error: String(err) });
          return "unknown";
        }
        if (isUnavailableDbError(err)) await availability.suspect(err);
      }
      const left = deadline - performance.now();
      if (left <= 0) return "unknown";
      // waitUp answers at once when the request's ride-through is spent (a check going on after a 202): pace it.
      if (availability.downSince === null || !(await availability.waitUp(left))) await Bun.sleep(Math.min(left, 50));
    }
  }

  /**
   * The answer of a one-statement write found committed after its connection was lost, read back on the pool
   * itself (rawQuery: no request's ride-through applies, the write is done and only its answer is missing),
   * asked again while the server is away until `deadline` (performance.now() time). Should it stay out of
   * reach, the client must not take the write for not applied (nor send it again blindly): a 503 with
   * outcome unknown.
   */
  async function readBack<T>(w: OneStatementWrite<T>, deadline: number, label?: string): Promise<T> {
    for (;;) {
      let err: unknown;
      try {
        const value = await w.recover(raw);
        answered();
        return value;
      } catch (e) {
        err = e;
      }
      if (isUnavailableDbError(err)) await availability.suspect(err);
      if (!isUnavailableDbError(err) || performance.now() >= deadline) {
        log("warn", "a committed write's answer could not be read back", { label, error: String(err) });
        throw new ApiError(
          "unavailable",
          "the database went away while this write was committing; it was applied but its answer could not be read back: check before retrying",
          { outcome: "unknown" },
          { "Retry-After": String(availability.retryAfterSeconds()) },
        );
      }
      await Bun.sleep(Math.min(deadline - performance.now(), 50));
    }
  }

  /** Deletes the commit tokens past TOKEN_KEEP_MS (a lost COMMIT's check is long over by then); how many. */
  async function sweepTokens(now = Date.now()): Promise<number> {
    const r = await rawQuery("DELETE FROM commit_tokens WHERE at < $1", [now - tokenKeepMs]);
    return r.rowCount ?? 0;
  }
  const tokenKeepMs = Math.max(TOKEN_KEEP_MS, 2 * opts.retryForMs);
  let tokensWritten = false;
  // Each process sweeps what is old, once every TOKEN_SWEEP_MS (jittered: processes do not sweep in step)
  // after it wrote tokens; a failure waits for the next round.
  const sweeper = setInterval(
    () => {
      if (!tokensWritten || availability.downSince !== null) return;
      tokensWritten = false;
      sweepTokens().catch((err) => logOncePer("commit token sweep", 600_000, "debug", "commit token sweep failed", { error: String(err) }));
    },
    TOKEN_SWEEP_MS + Math.round(Math.random() * 10_000),
  );
  sweeper.unref?.();

  async function tx<T>(fn: WriteBody<T>, label?: string): Promise<T> {
    const started = performance.now();
    inFlight++;
    // Once this write (or its request) has met the fault (a lost connection, a wait for the server), what is left of it (an
    // attempt on a new connection, a lost COMMIT's check) is answered by the end of the request's
    // ride-through if the request offers an early answer (202 pending: the Idempotency-Key middleware), and
    // goes on in the background. Waits for the server are not: they end in a 503 at the same deadline.
    let pendingTimer: Timer | undefined;
    let exposed = false;
    let late = false;
    let answerPending: (() => void) | undefined;
    const faulted = () => {
      if (answerPending) return;
      answerPending = pendingAnswerLater();
      if (!answerPending) return;
      const left = Math.max(0, rideThroughLeft(opts.rideThroughMs - (performance.now() - started)));
      pendingTimer = setTimeout(() => {
        late = true;
        if (exposed) answerPending!();
      }, left);
    };
    // A request that met the fault in an earlier step (its key check waited for the server): this write too.
    if (requestFaulted()) faulted();
    const exposing = async <R>(run: () => Promise<R>): Promise<R> => {
      exposed = true;
      if (late) answerPending?.();
      try {
        return await run();
      } finally {
        exposed = false;
      }
    };
    try {
      let grace = false;
      for (let n = 1; ; n++) {
        const graced = grace;
        grace = false;
        // Known down: wait for the background probe at most the ride-through, then 503.
        if (availability.downSince !== null && !graced) {
          faulted();
          const left = opts.rideThroughMs - (performance.now() - started);
          if (!(await availability.waitUp(left))) {
            stats.timeouts++;
            noteStorage({ code: "unreachable", message: availability.lastError ?? "unreachable" });
            throw unavailable(`the database is unreachable (since ${new Date(availability.downSince).toISOString()}); retry later`);
          }
        }
        // Closing (shutdown past its drain bound): the pool is ending, so no new attempt.
        if (closing)
          throw new ApiError("unavailable", "this process is shutting down; retry the request", undefined, { "Retry-After": "1" });
        let failure: Failure;
        try {
          const value = await (answerPending ? exposing(() => attempt(fn)) : attempt(fn));
          committed();
          return value;
        } catch (f) {
          if (f instanceof Error || !(f && typeof f === "object" && "atCommit" in f)) throw f;
          failure = f as Failure;
        }
        const { err } = failure;
        if (failure.atCommit && failure.token !== null && isUnavailableDbError(err)) {
          // The COMMIT was sent and the connection went: it may have committed. Never re-run blindly
          // (a create would meet its own row and answer 409): ask the server. Knowing beats answering
          // fast here, so this waits up to WRITE_LOCK_TIMEOUT_MS for a server that is restarting.
          // A request that can answer before the outcome is known (its retry with the key, or the token's
          // Location, gets the final answer) is answered 202 at the end of its ride-through; this goes on.
          faulted();
          const outcome = await exposing(() => outcomeOf(failure.token!, started + opts.retryForMs));
          stats.ambiguousCommits[outcome]++;
          log(outcome === "aborted" ? "info" : "warn", "write outcome checked after its COMMIT lost the connection", {
            label,
            token: failure.token.token,
            outcome,
            waited_ms: Math.round(performance.now() - started),
          });
          // The server just answered: let the state know (a probe), or what follows would find it still
          // marked down (a re-run would wait for it; a read-back would fail at once, its ride-through spent).
          if (outcome !== "unknown" && availability.downSince !== null) await availability.probe();
          if (outcome === "committed") {
            // fn's value is the committed transaction's: answer as committed (one statement: read it back).
            committed();
            if (typeof fn === "function") return failure.value as T;
            return await exposing(() => readBack(fn, Math.max(started + opts.retryForMs, performance.now() + opts.rideThroughMs), label));
          }
          if (outcome === "unknown") {
            noteStorage(err);
            throw new ApiError(
              "unavailable",
              "the database went away while this write was committing and did not come back in time to tell whether it was applied; retry with the same Idempotency-Key (or check before retrying)",
              { outcome: "unknown" },
              { "Retry-After": String(availability.retryAfterSeconds()) },
            );
          }
          // Aborted: nothing was applied; run it again at once, once even if the request's ride-through
          // went into learning the outcome.
          grace = true;
          continue;
        } else if (!isRetryableDbError(err)) {
          throw err;
        }
        const elapsed = performance.now() - started;
        const unavailableErr = isUnavailableDbError(err);
        if (unavailableErr) {
          faulted();
          // Is the server gone (down: later requests fail fast), or was it only this connection? Waited
          // for within the request's ride-through only (a silent server's probe takes the connect bound).
          await suspectWithin(err, rideThroughLeft(opts.rideThroughMs - elapsed));
        }
        const spent = performance.now() - started;
        if (unavailableErr ? graced || rideThroughLeft(opts.rideThroughMs - spent) <= 0 : elapsed >= opts.retryForMs) {
          stats.timeouts++;
          if (unavailableErr) noteStorage(err);
          throw unavailableErr
            ? unavailable("the database is unreachable; retry later")
            : new ApiError("unavailable", "the database stayed busy too long; retry the request", undefined, { "Retry-After": "1" });
        }
        stats.busyRetries++;
        if (n === 1 || n % 10 === 0) log("debug", "postgresql write retried", { label, attempt: n, code: codeOf(err) });
        // Full jitter: several processes that collided must not retry in step. A lost connection is
        // retried at once (a new connection), once the server is known to be up.
        if (!unavailableErr) await Bun.sleep(Math.random() * Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** n));
      }
    } finally {
      clearTimeout(pendingTimer);
      inFlight--;
      if (inFlight === 0) settle();
    }
  }

  function committed() {
    stats.commits++;
    stats.writes++;
    for (const f of opts.onCommit) f(1, 0);
  }

  function noteStorage(err: unknown) {
    stats.storageErrors++;
    stats.lastStorageError = { code: codeOf(err), message: messageOf(err), at: Date.now() };
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
    availability,
    drain: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => drainWaiters.push(r))),
    queueLength: () => inFlight,
    async closeConnections() {
      closing = true;
      clearInterval(sweeper);
      availability.stop();
      const ended = pool.end();
      // Their query fails "Connection terminated"; its caller releases the connection, which ends the pool.
      for (const client of busy) (client as unknown as pg.Client).end().catch(() => {});
      await ended;
    },
    pg: { url: opts.url, pool, sweepTokens, oneStatement: tx },
  };
}

/** True for pg's own bound on a new connection ("timeout expired"): silence, or only slowness. */
function isConnectTimeout(err: unknown): boolean {
  return /^timeout expired$/.test(messageOf(err));
}

function codeOf(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return String(e?.cause?.code ?? e?.code ?? "unknown");
}

function messageOf(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } };
  return String(e?.cause?.message ?? e?.message ?? err);
}
