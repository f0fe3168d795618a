import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { children } from "../bench/cpu.ts";
import { seedAnalytics, type SeedResult } from "../bench/seed-analytics.ts";
import { seedAnalyticsPg } from "../bench/seed-analytics-pg.ts";
import { createApiKey } from "../src/auth/queries.ts";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { newPgDatabase, psql } from "./helpers/engine.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

// Cost bounds of heavy requests against the real service (one HTTP worker, so its query processes are
// its children): a query past ANALYTICS_TIMEOUT_MS answers 504 query_timeout and its statement is
// stopped (SQLite: its query process is killed; PostgreSQL: the backend's query leaves
// pg_stat_activity); a client that goes away stops its query the same way; answers past the row cap are
// refused 413, too many terms 400, a third heavy request of one key at once 429 with Retry-After.

setDefaultTimeout(120_000);

let dir: ReturnType<typeof tempDir>;
let seed: SeedResult;
let dbPath: string;
let pgdb: ReturnType<typeof newPgDatabase> | null = null;
let key: string;
let otherKey: string;
/** Short time limit, small row cap. */
let quick: RunningServer;
/** A long time limit: only a client that goes away stops its query. */
let patient: RunningServer;

beforeAll(async () => {
  dir = tempDir();
  if (testEngine === "pg") {
    pgdb = newPgDatabase();
    dbPath = pgdb.url;
    seed = await seedAnalyticsPg(dbPath, { rows: 60_000, days: 30 });
  } else {
    dbPath = join(dir.dir, "app.db");
    seed = await seedAnalytics(dbPath, { rows: 60_000, days: 30 });
  }
  const db: Db = testEngine === "pg" ? openPgDb({ url: dbPath, role: "test" }) : openDb({ path: dbPath, role: "test" });
  key = (await createApiKey(db, { name: "reader", scope: "read" })).key;
  otherKey = (await createApiKey(db, { name: "other", scope: "read" })).key;
  await db.close();
  const env = { ANALYTICS_MAX_PARTIAL_TERMS: "10000", ANALYTICS_MAX_ROWS: "1000" };
  [quick, patient] = await Promise.all([
    startServer({
      workers: 1,
      dbPath,
      env: { ...env, ANALYTICS_TIMEOUT_MS: "2000" },
      args: ["--allow-shared-database"],
      timeoutMs: 60_000,
    }),
    startServer({
      workers: 1,
      dbPath,
      env: { ...env, ANALYTICS_TIMEOUT_MS: "600000" },
      args: ["--allow-shared-database"],
      timeoutMs: 60_000,
    }),
  ]);
});
afterAll(async () => {
  await quick?.stop();
  await patient?.stop();
  pgdb?.drop();
  dir?.cleanup();
});

/** A ranking-data body that reads every row of the range against `n` substrings none of them holds: seconds of work. */
function slowBody(n = 5000) {
  return {
    site_id: seed.siteId,
    start_date: seed.start,
    end_date: seed.end,
    matching_mode: "partial",
    queries: Array.from({ length: n }, (_, i) => `no such query ${i}`),
    max_results: null,
  };
}

function post(server: RunningServer, body: unknown, opts: { key?: string; signal?: AbortSignal } = {}) {
  return fetch(`${server.url}/api/v1/analytics/ranking-data`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${opts.key ?? key}` },
    body: JSON.stringify(body),
    signal: opts.signal,
  });
}

/** The HTTP worker's pid (its children are the query processes). */
function workerOf(server: RunningServer): number {
  const [w] = children(server.proc.pid);
  if (!w) throw new Error("no worker");
  return w;
}

/** Whether process `pid` still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A metric's value from the service's /metrics (summed over the label sets that match `labels`). */
async function metric(server: RunningServer, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(labels)) sum += Number(m[2]);
  return sum;
}

/** PostgreSQL: statements of the test database running right now that read the partial-terms filter. */
function pgRunning(): number {
  return Number(
    psql(
      `select count(*) from pg_stat_activity where datname = '${pgdb!.name}' and state = 'active' and query like 'fetch forward % from bounded_read'`,
    ),
  );
}

/** Bounded queries running in the service now (SQLite: their query processes; PostgreSQL: the backends' statements too). */
async function runningQueries(server: RunningServer): Promise<number> {
  const n = await metric(server, "sitesync_bounded_queries_running");
  return testEngine === "pg" ? Math.max(n, pgRunning()) : n;
}

/**
 * Waits until `n` heavy queries run; returns a check that they were stopped: no longer counted, and
 * (SQLite) the query processes that ran them killed (PostgreSQL) the backends' statements gone.
 */
async function whileRunning(server: RunningServer, n = 1) {
  await waitFor(async () => (await runningQueries(server)) >= n && (testEngine === "pg" ? pgRunning() >= n : true), {
    what: `${n} queries running`,
  });
  const pids = testEngine === "sqlite" ? children(workerOf(server)) : [];
  return async (timeout = 15_000) => {
    await waitFor(async () => (await runningQueries(server)) === 0, { what: "the queries to stop", timeout });
    if (testEngine === "sqlite") {
      // n of the processes that were there were killed (a statement cannot run on in a dead process).
      await waitFor(() => pids.filter((p) => !alive(p)).length >= n, { what: "their query processes to be killed", timeout });
    }
  };
}

describe("time limit", () => {
  test("a query past ANALYTICS_TIMEOUT_MS answers 504 query_timeout and is stopped", async () => {
    const stoppedBefore = await metric(quick, "sitesync_bounded_queries_stopped_total", 'reason="timeout"');
    const res = await post(quick, slowBody());
    expect(res.status).toBe(504);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("query_timeout");
    expect(body.error.message).toContain("ANALYTICS_TIMEOUT_MS");
    expect(await metric(quick, "sitesync_bounded_queries_stopped_total", 'reason="timeout"')).toBe(stoppedBefore + 1);
    // The statement does not run on: nothing counted as running, and on PostgreSQL the backend is idle.
    await waitFor(async () => (await runningQueries(quick)) === 0, { what: "the stopped query to be gone", timeout: 10_000 });
    // And the next request is served (by the replacement query process).
    const ok = await post(quick, { site_id: seed.siteId, start_date: seed.end, end_date: seed.end, max_results: 5 });
    expect(ok.status).toBe(200);
  });
});

describe("client disconnect", () => {
  test("a client that goes away stops its query, and the place is free again", async () => {
    const ctl = new AbortController();
    const pending = post(patient, slowBody(), { signal: ctl.signal }).catch((e: Error) => e);
    const stopped = await whileRunning(patient);
    ctl.abort();
    expect(await pending).toBeInstanceOf(Error);
    // With a 10-minute limit, only the disconnect can have stopped it.
    await stopped();
    expect(await metric(patient, "sitesync_bounded_queries_stopped_total", 'reason="client_closed"')).toBeGreaterThanOrEqual(1);
    const ok = await post(patient, { site_id: seed.siteId, start_date: seed.end, end_date: seed.end, max_results: 5 });
    expect(ok.status).toBe(200);
  });
});

describe("caps", () => {
  // On the server with the long time limit: on a loaded machine the short one may stop the read first (504).
  test("max_results null past ANALYTICS_MAX_ROWS answers 413 result_too_large", async () => {
    const res = await post(patient, { site_id: seed.siteId, start_date: seed.start, end_date: seed.end, max_results: null });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("result_too_large");
    expect(body.error.message).toContain("ANALYTICS_MAX_ROWS");
    // Within the cap it answers.
    const ok = await post(patient, { site_id: seed.siteId, start_date: seed.start, end_date: seed.end, max_results: 1000 });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { data: unknown[] }).data.length).toBe(1000);
  });

  test("too many terms answer 400 naming the setting", async () => {
    const base = { site_id: seed.siteId, start_date: seed.start, end_date: seed.end };
    const exact = await post(quick, { ...base, queries: Array.from({ length: 1001 }, (_, i) => `q${i}`) });
    expect(exact.status).toBe(400);
    expect(((await exact.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_TERMS");
    // The default partial cap (100) on the other server? Both raised it; the schema's own bound still holds.
    const partial = await post(quick, { ...base, matching_mode: "partial", queries: Array.from({ length: 10_001 }, (_, i) => `q${i}`) });
    expect(partial.status).toBe(400);
    // The original's v2 body (date_from/date_to, LIKE for partial terms) has the same caps.
    const v2 = await post(quick, {
      site_id: seed.siteId,
      date_from: seed.start,
      date_to: seed.end,
      queries: Array.from({ length: 1001 }, (_, i) => `q${i}`),
      exact_match: true,
    });
    expect(v2.status).toBe(400);
    expect(((await v2.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_TERMS");
  });
});

describe("per-key concurrency", () => {
  test("a third heavy request of one key at once answers 429 with Retry-After; another key is not held up", async () => {
    const ctl = new AbortController();
    const first = [post(patient, slowBody(), { signal: ctl.signal }), post(patient, slowBody(), { signal: ctl.signal })].map((p) =>
      p.catch((e: Error) => e),
    );
    const stopped = await whileRunning(patient, 2);
    const third = await post(patient, slowBody(10));
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("1");
    const body = (await third.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.message).toContain("ANALYTICS_CONCURRENCY_PER_KEY");
    // Another key has places of its own.
    const other = await post(
      patient,
      { site_id: seed.siteId, start_date: seed.end, end_date: seed.end, max_results: 5 },
      { key: otherKey },
    );
    expect(other.status).toBe(200);
    ctl.abort();
    await Promise.all(first);
    await stopped();
    // The places are given back.
    const again = await post(patient, { site_id: seed.siteId, start_date: seed.end, end_date: seed.end, max_results: 5 });
    expect(again.status).toBe(200);
  });
});
