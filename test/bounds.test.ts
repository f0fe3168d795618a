import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { children } from "../bench/cpu.ts";
import { seedAnalytics, type SeedResult } from "../bench/seed-analytics.ts";
import { createApiKey } from "../src/auth/queries.ts";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { type newPgDatabase, pgValue, psql, psqlBin } from "./helpers/engine.ts";
import { seededPgDatabase } from "./helpers/seeded-pg.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";
import { asc, sql } from "drizzle-orm";
import { streamQuery } from "../src/analytics/stream.ts";
import { exportQuery } from "../src/analytics/queries.ts";
import { boundedDb } from "../src/db/bounded.ts";
import { budgetOf, budgetStats, withBudget } from "../src/db/budget.ts";
import { apiErrorOf } from "../src/errors.ts";
import { pgNamedRead } from "../src/db/pg/named.ts";
import { registry } from "../src/metrics/registry.ts";

// Cost bounds of heavy requests against the real service (one HTTP worker, so its query processes are
// its children): a query past ANALYTICS_TIMEOUT_MS answers 504 query_timeout and its statement is
// stopped (SQLite: its query process is killed; PostgreSQL: the backend's query leaves
// pg_stat_activity); a client that goes away stops its query the same way; answers past the row cap are
// refused 413, too many terms 400, a third heavy request of one key at once 429 with Retry-After.
// The same bounds hold for every heavy read: Drizzle's (the v2-era ranking-data body, the MCP tools,
// insights, the v3 tool endpoints) through boundedDb, the page-keyword CSV; downloads have a total time limit.

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
/** A long time limit and a 1-second connection idle timeout. */
let sleepy: RunningServer;

beforeAll(async () => {
  dir = tempDir();
  if (testEngine === "pg") {
    // More rows than SQLite: PostgreSQL's parallel workers make 60,000 too quick to watch a slow body run. A copy of the
    // run's 120,000-row seed (analytics.stream's and bounds.load's, test/helpers/seeded-pg.ts), not 200,000 rows of its
    // own: seeding those cost 10-11 s of the server's CPU and 6-7 s of this process's (load 16-18); the slow body takes
    // 4.0-7.5 s on 120,000 rows against 7.3-7.8 s on 200,000 (4 each, load 19-23), past the 500 ms limit either way.
    ({ pgdb, seed } = await seededPgDatabase({ rows: 120_000, days: 30 }));
    dbPath = pgdb.url;
  } else {
    dbPath = join(dir.dir, "app.db");
    seed = await seedAnalytics(dbPath, { rows: 60_000, days: 30 });
  }
  const db: Db = testEngine === "pg" ? openPgDb({ url: dbPath, role: "test" }) : openDb({ path: dbPath, role: "test" });
  key = (await createApiKey(db, { name: "reader", scope: "read" })).key;
  otherKey = (await createApiKey(db, { name: "other", scope: "read" })).key;
  await db.close();
  const env = { ANALYTICS_MAX_PARTIAL_TERMS: "10000", ANALYTICS_MAX_ROWS: "1000" };
  [quick, patient, sleepy] = await Promise.all([
    startServer({
      workers: 1,
      dbPath,
      // PostgreSQL runs the slow bodies below in 1-2 s with parallel workers: a shorter limit there.
      env: { ...env, ANALYTICS_TIMEOUT_MS: testEngine === "pg" ? "500" : "2000", ANALYTICS_MAX_ROWS: "20" },
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
    // A connection idle timeout far shorter than the time limit (a server of its own: clients that reuse a
    // kept-alive connection would race its close on the other servers).
    startServer({
      workers: 1,
      dbPath,
      env: { ...env, ANALYTICS_TIMEOUT_MS: "600000", HTTP_IDLE_TIMEOUT_S: "1" },
      args: ["--allow-shared-database"],
      timeoutMs: 60_000,
    }),
  ]);
});
afterAll(async () => {
  await quick?.stop();
  await patient?.stop();
  await sleepy?.stop();
  pgdb?.drop();
  dir?.cleanup();
});

/** A ranking-data body that reads every row of the range against `n` substrings none of them holds: seconds of work. */
function slowBody(n = testEngine === "pg" ? 10_000 : 5000) {
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
async function pgRunning(): Promise<number> {
  // A bounded read's FETCH, or the batch that declares its cursor and runs its first FETCH (src/db/pg/named.ts;
  // pg_stat_activity keeps the first 1 kB of a statement: match its start).
  return Number(
    await pgValue(
      `select count(*) from pg_stat_activity where datname = '${pgdb!.name}' and state = 'active'
          and (query like 'fetch forward % from bounded_read' or query like 'begin read only;%declare bounded_read %')`,
    ),
  );
}

/** PostgreSQL: waits until no statement of the test database like `pattern` is running (its read was cancelled). */
async function backendCancelled(pattern: string): Promise<void> {
  const running = `select count(*) from pg_stat_activity where datname = '${pgdb!.name}' and state = 'active' and query like '${pattern}'`;
  await waitFor(async () => Number(await pgValue(running)) === 0, { what: "the backend's statement to be cancelled" });
}

/** Bounded queries running in the service now (SQLite: their query processes; PostgreSQL: the backends' statements too). */
async function runningQueries(server: RunningServer): Promise<number> {
  const n = await metric(server, "sitesync_bounded_queries_running");
  return testEngine === "pg" ? Math.max(n, await pgRunning()) : n;
}

/**
 * Waits until `n` heavy queries run; returns a check that they were stopped: no longer counted, and
 * (SQLite) the query processes that ran them killed (PostgreSQL) the backends' statements gone.
 */
async function whileRunning(server: RunningServer, n = 1) {
  await waitFor(async () => (await runningQueries(server)) >= n && (testEngine === "pg" ? (await pgRunning()) >= n : true), {
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

describe("connection idle timeout", () => {
  // Bun closes a connection silent past its idle timeout (HTTP_IDLE_TIMEOUT_S, 1 s on `sleepy`) even while a GET
  // on it waits for its answer; a heavy request raises its own connection's timeout to its time limit. The read is
  // held up for 6 s whatever the machine's speed: SQLite's query processes are stopped (SIGSTOP), PostgreSQL's
  // backend waits on a lock this test holds on the analytics tables.
  test("a heavy GET silent past the connection's idle timeout still gets its answer", async () => {
    const path = `/api/v1/sites/${seed.siteId}/insights/overview`;
    // A new connection each: a kept-alive one may be closed by the server as it is reused.
    const get = () => fetch(`${sleepy.url}${path}`, { headers: { authorization: `Bearer ${key}` }, keepalive: false });
    expect((await get()).status).toBe(200);
    let release: () => Promise<void>;
    if (testEngine === "pg") {
      const tables = psql(
        `select string_agg(tablename, ', ') from pg_tables where schemaname = 'public' and tablename like 'gsc_%'`,
        pgdb!.url,
      );
      const holder = Bun.spawn(
        [psqlBin(), pgdb!.url, "-qAtc", `begin; lock table ${tables} in access exclusive mode; select pg_sleep(6); commit;`],
        {
          stdout: "ignore",
          stderr: "inherit",
        },
      );
      await waitFor(
        async () =>
          Number(
            await pgValue(
              `select count(*) from pg_locks where mode = 'AccessExclusiveLock' and granted and relation = 'gsc_queries'::regclass`,
              pgdb!.url,
            ),
          ) > 0,
        { what: "the test's lock" },
      );
      release = async () => {
        expect(await holder.exited).toBe(0);
      };
    } else {
      const pids = children(workerOf(sleepy));
      expect(pids.length).toBeGreaterThan(0);
      for (const p of pids) process.kill(p, "SIGSTOP");
      release = async () => {
        await Bun.sleep(6000);
        for (const p of pids) process.kill(p, "SIGCONT");
      };
    }
    const pending = get();
    await release();
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await res.json()) as object).not.toHaveProperty("error");
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

describe("term caps before the schema", () => {
  test("terms past the cap are refused before the body's schema validates each of them (v3 and v2 bodies)", async () => {
    const base = { site_id: seed.siteId, start_date: seed.start, end_date: seed.end };
    // One term is not even a string: the schema would answer that; the cap answers first, unvalidated.
    const terms = [...Array.from({ length: 1001 }, (_, i) => `q${i}`), 7];
    const exact = await post(quick, { ...base, queries: terms });
    expect(exact.status).toBe(400);
    expect(((await exact.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_TERMS");
    // Past the schema's own 10,000: the cap's message, not the schema's "too big".
    const partial = await post(quick, { ...base, matching_mode: "partial", queries: Array.from({ length: 10_001 }, (_, i) => `q${i}`) });
    expect(partial.status).toBe(400);
    expect(((await partial.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_PARTIAL_TERMS");
    const v2 = await post(quick, { site_id: seed.siteId, date_from: seed.start, date_to: seed.end, pages: terms, exact_match: true });
    expect(v2.status).toBe(400);
    expect(((await v2.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_TERMS");
    // Duplicates count once (1,001 copies of one term are one term).
    const dup = await post(quick, { ...base, max_results: 1, queries: Array.from({ length: 1001 }, () => "q") });
    expect(dup.status).toBe(200);
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

/**
 * LIKE terms that make a v2 body seconds of work on SQLite. Past ~1,000 SQLite refuses the OR of LIKEs as
 * too deep an expression.
 */
const V2_SLOW_TERMS = 900;

/**
 * The original's v2-era ranking-data body (date_from/date_to, LIKE for partial terms) over the whole range.
 */
function v2Body(o: { terms?: number; group_by?: string[]; limit?: number } = {}) {
  return {
    site_id: seed.siteId,
    date_from: seed.start,
    date_to: seed.end,
    group_by: o.group_by ?? ["query"],
    ...(o.terms ? { queries: Array.from({ length: o.terms }, (_, i) => `no such query ${i}`), exact_match: false } : {}),
    limit: o.limit ?? 100,
  };
}

/** A JSON-RPC tools/call of the MCP endpoint with `key`. */
async function mcpCall(server: RunningServer, name: string, args: Record<string, unknown>, opts: { key?: string } = {}) {
  const res = await fetch(`${server.url}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${opts.key ?? key}`,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** Whether an error message is one of the cost bounds' refusals (row/byte cap or time limit). */
const boundedRefusal = (text: string) => /ANALYTICS_MAX_ROWS|ANALYTICS_MAX_BYTES|ANALYTICS_TIMEOUT_MS/.test(text);

describe("every heavy read is bounded", () => {
  // SQLite only: PostgreSQL runs any v2 body the schema takes in about a second with parallel workers (or
  // refuses the OR of 10,000 LIKEs), too short to watch; its bounded reads are stopped in "the bounded runner" below.
  test.skipIf(testEngine === "pg")(
    "the v2-era ranking-data body: past the time limit 504, its statement stopped; a client that leaves stops it",
    async () => {
      const res = await post(quick, v2Body({ terms: V2_SLOW_TERMS }));
      expect(res.status).toBe(504);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("query_timeout");
      await waitFor(async () => (await runningQueries(quick)) === 0, { what: "the stopped query to be gone", timeout: 10_000 });

      const ctl = new AbortController();
      const pending = post(patient, v2Body({ terms: V2_SLOW_TERMS }), { signal: ctl.signal }).catch((e: Error) => e);
      const stopped = await whileRunning(patient);
      ctl.abort();
      expect(await pending).toBeInstanceOf(Error);
      await stopped();
      // Within the bounds it answers.
      const ok = await post(patient, v2Body({ limit: 10 }));
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { data: unknown[] }).data.length).toBe(10);
    },
  );

  test("the v2 body, insights, MCP tools and the v3 tool endpoints are refused past the row cap (or the time limit)", async () => {
    // quick: ANALYTICS_MAX_ROWS 20. Each of these reads more rows than that in one statement.
    const v2 = await post(quick, v2Body({ group_by: ["query", "date"], limit: 1000 }));
    expect([413, 504]).toContain(v2.status);
    expect(boundedRefusal(((await v2.json()) as { error: { message: string } }).error.message)).toBe(true);

    const top = await fetch(`${quick.url}/api/v1/sites/${seed.siteId}/insights/top?limit=1000&days=30`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect([413, 504]).toContain(top.status);
    expect(boundedRefusal(((await top.json()) as { error: { message: string } }).error.message)).toBe(true);

    const tool = await mcpCall(quick, "insight_top", { site_id: seed.siteId, limit: 1000 });
    expect(tool.status).toBe(200);
    expect(tool.body.result.isError).toBe(true);
    expect(boundedRefusal(tool.body.result.content[0].text)).toBe(true);

    // A v3 tool endpoint whose answer has more rows than the cap: every query of three pages. (compare_periods was
    // used here; its answer is a few totals, so on SQLite it was refused only when load pushed it past the time limit.)
    const pdb: Db = testEngine === "pg" ? openPgDb({ url: dbPath, role: "test" }) : openDb({ path: dbPath, role: "test" });
    const pages = (await pdb.q.select({ page: pdb.t.gscPages.page }).from(pdb.t.gscPages).limit(3)).map((r) => r.page);
    await pdb.close();
    expect(pages.length).toBe(3);
    const v3 = await fetch(`${quick.url}/pages_queries`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ site: seed.domain, pages }),
    });
    expect([413, 504]).toContain(v3.status);
    expect(boundedRefusal(((await v3.json()) as { error: { message: string } }).error.message)).toBe(true);

    // The page-keyword CSV is read within the same bounds before its first byte (413 or 504, never a cut download).
    const csv = await fetch(`${quick.url}/api/v1/page-keyword-performance/csv?site_id=${seed.siteId}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect([413, 504]).toContain(csv.status);
    expect(boundedRefusal(((await csv.json()) as { error: { message: string } }).error.message)).toBe(true);
    // With the long time limit and a larger row cap, the same requests answer.
    const okTop = await fetch(`${patient.url}/api/v1/sites/${seed.siteId}/insights/top?limit=500&days=30`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(okTop.status).toBe(200);
    const okCsv = await fetch(`${patient.url}/api/v1/page-keyword-performance/csv?site_id=${seed.siteId}&max_results=10`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(okCsv.status).toBe(200);
    expect((await okCsv.text()).split("\r\n").filter(Boolean).length).toBe(11);
  });

  // SQLite only: on PostgreSQL the slow bodies end too soon to hold two places reliably (see above).
  test.skipIf(testEngine === "pg")("MCP tools and insights count against the key's heavy-request places (429 while two run)", async () => {
    const ctl = new AbortController();
    const first = [post(patient, slowBody(), { signal: ctl.signal }), post(patient, slowBody(), { signal: ctl.signal })].map((p) =>
      p.catch((e: Error) => e),
    );
    const stopped = await whileRunning(patient, 2);
    const tool = await mcpCall(patient, "insight_overview", { site_id: seed.siteId });
    expect(tool.status).toBe(429);
    const insight = await fetch(`${patient.url}/api/v1/sites/${seed.siteId}/insights/overview`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(insight.status).toBe(429);
    expect(insight.headers.get("retry-after")).toBe("1");
    // Another key is answered meanwhile.
    expect((await mcpCall(patient, "insight_overview", { site_id: seed.siteId }, { key: otherKey })).status).toBe(200);
    ctl.abort();
    await Promise.all(first);
    await stopped();
  });
});

describe("the dashboard's data reads", () => {
  const page = (server: RunningServer, path: string) => fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  const pages = () => [
    `/ui/sites/${seed.siteId}`,
    `/ui/queries?site_id=${seed.siteId}&start=${seed.start}&end=${seed.end}`,
    `/ui/queries?site_id=${seed.siteId}&q=e&start=${seed.start}&end=${seed.end}`,
  ];

  test("a site's page and the queries page read within the row cap (an HTML 413 past it, 200 within)", async () => {
    // quick: ANALYTICS_MAX_ROWS 20. The site page totals 30 days (30 rows), the queries page lists 50 or 100.
    for (const path of pages()) {
      const res = await page(quick, path);
      const html = await res.text();
      expect({ path, status: [413, 504].includes(res.status) }).toEqual({ path, status: true });
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(boundedRefusal(html)).toBe(true);
    }
    for (const path of pages()) expect({ path, status: (await page(patient, path)).status }).toEqual({ path, status: 200 });
  });

  test("in process: every data page and the live calendar read within the request's time limit and its client", async () => {
    const { createApp } = await import("../src/app.ts");
    const { defaultBounds } = await import("../src/analytics/bounds.ts");
    const db = testEngine === "pg" ? openPgDb({ url: dbPath, role: "test", poolSize: 4 }) : openDb({ path: dbPath, role: "test" });
    try {
      // A time limit already spent: any bounded read is refused before it runs (504), whatever the machine's speed.
      const spent = createApp(db, { bounds: { ...defaultBounds, timeoutMs: 0 }, idleTimeoutS: 1 });
      const auth = { authorization: `Bearer ${key}` };
      for (const path of [...pages(), `/ui/insights?site_id=${seed.siteId}`]) {
        const res = await spent.request(path, { headers: auth });
        const html = await res.text();
        expect({ path, status: res.status, named: html.includes("ANALYTICS_TIMEOUT_MS") }).toEqual({ path, status: 504, named: true });
      }
      // A client already gone: its reads are not run (499 client_closed, for logs and metrics).
      const app = createApp(db, { idleTimeoutS: 1 });
      for (const path of pages()) {
        const res = await app.request(path, { headers: auth, signal: AbortSignal.abort() });
        expect({ path, status: res.status }).toEqual({ path, status: 499 });
      }
      // The live calendar: each render is bounded. Spent, it sends no calendar, only keep-alive comments.
      const stream = await spent.request(`/ui/sites/${seed.siteId}/calendar/stream`, { headers: auth });
      const reader = stream.body!.getReader();
      let text = "";
      while (!text.includes(": keep-alive")) text += new TextDecoder().decode((await reader.read()).value);
      expect(text).not.toContain("event: calendar");
      await reader.cancel();
      // Within its bounds it renders.
      const live = await app.request(`/ui/sites/${seed.siteId}/calendar/stream`, { headers: auth });
      const r2 = live.body!.getReader();
      text = "";
      while (!text.includes("event: calendar")) text += new TextDecoder().decode((await r2.read()).value);
      await r2.cancel();
    } finally {
      await db.close();
    }
  });
});

describe("bodies and places", () => {
  test("a heavy request's body past ANALYTICS_MAX_BODY_BYTES is refused 413 from its Content-Length, unread", async () => {
    // Headers announcing 500 kB (under the global 1 MiB limit), and no body byte sent: the answer comes without the server waiting for the body.
    const { hostname, port } = new URL(quick.url);
    let text = "";
    const done = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        data(_s, chunk) {
          text += chunk.toString();
          if (text.includes("\r\n\r\n") && text.includes("}")) done.resolve();
        },
        close() {
          done.resolve();
        },
      },
    });
    socket.write(
      `POST /api/v1/analytics/ranking-data HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n`,
    );
    await done.promise;
    socket.end();
    expect(text.split("\r\n")[0]).toContain(" 413 ");
    expect(text).toContain("ANALYTICS_MAX_BODY_BYTES");
    // The same through fetch with a real body just past the default (256 KiB), the v2 body and MCP too.
    const big = JSON.stringify({ ...slowBody(10), queries: ["x".repeat(300 * 1024)] });
    for (const path of ["/api/v1/analytics/ranking-data", "/mcp", "/pages_queries"]) {
      const res = await fetch(`${quick.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` },
        body: big,
      });
      expect({ path, status: res.status }).toEqual({ path, status: 413 });
    }
  });

  test("a chunked heavy body (no Content-Length) past ANALYTICS_MAX_BODY_BYTES is refused 413 as its bytes arrive", async () => {
    const big = new TextEncoder().encode(JSON.stringify({ ...slowBody(10), queries: ["x".repeat(300 * 1024)] }));
    const res = await fetch(`${quick.url}/api/v1/analytics/ranking-data`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      // A stream: sent chunked, so only counting the bytes can refuse it (before, the app's 1 MiB limit let it reach the parser).
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < big.length; i += 16 * 1024) c.enqueue(big.subarray(i, i + 16 * 1024));
          c.close();
        },
      }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("ANALYTICS_MAX_BODY_BYTES");
  });

  test("per-key concurrency is per instance: each worker allows its share (at least 1)", async () => {
    const { boundsFrom } = await import("../src/analytics/bounds.ts");
    const { defaults } = await import("../src/config.ts");
    const c = { ...defaults, ANALYTICS_CONCURRENCY_PER_KEY: 4, EXPORT_CONCURRENCY_PER_KEY: 3 };
    expect(boundsFrom(c, 1)).toMatchObject({ perKey: 4, exportsPerKey: 3 });
    expect(boundsFrom(c, 2)).toMatchObject({ perKey: 2, exportsPerKey: 1 });
    expect(boundsFrom(c, 8)).toMatchObject({ perKey: 1, exportsPerKey: 1 });
  });
});

describe("the bounded runner (in process)", () => {
  const open = (): Db =>
    testEngine === "pg" ? openPgDb({ url: dbPath, role: "test", poolSize: 2 }) : openDb({ path: dbPath, role: "test" });
  const budget = (timeoutMs: number, maxRows = 100_000, signal?: AbortSignal) =>
    budgetOf({ timeoutMs, maxRows, maxBytes: 32 * 1024 * 1024, signal });
  /** A statement that counts to 10^9: minutes of work unless stopped. */
  const endless = sql`(with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select x from c) as c`;

  test("a read whose request has no time left (or whose client left) runs nothing and is counted as stopped", async () => {
    const db = open();
    try {
      const b = boundedDb(db);
      const s = db.t.sites;
      const before = { ...budgetStats.stopped };
      const spent = budget(1);
      await Bun.sleep(5);
      const late = await withBudget(spent, async () => b.q.select({ id: s.id }).from(s)).catch((e) => e);
      expect(apiErrorOf(late)?.code).toBe("query_timeout");
      const ctl = new AbortController();
      ctl.abort();
      const gone = await withBudget(budget(30_000, 100_000, ctl.signal), async () => b.q.select({ id: s.id }).from(s)).catch((e) => e);
      expect(apiErrorOf(gone)?.code).toBe("client_closed");
      // Before, a 504 for a request whose earlier reads had used its time was not counted (bounds' 504 test read 0 at load).
      expect(budgetStats.stopped).toEqual({ timeout: before.timeout + 1, client_closed: before.client_closed + 1 });
    } finally {
      await db.close();
    }
  });

  test("Drizzle reads through boundedDb answer as the handle's own, past the cap 413, past the deadline 504 and stopped", async () => {
    const db = open();
    try {
      const b = boundedDb(db);
      const s = db.t.sites;
      const plain = await db.q.select({ id: s.id, domain: s.domain, created: s.created_at }).from(s).orderBy(asc(s.id));
      const viaRunner = await withBudget(budget(30_000), async () =>
        b.q.select({ id: s.id, domain: s.domain, created: s.created_at }).from(s).orderBy(asc(s.id)),
      );
      expect(viaRunner).toEqual(plain);
      expect(viaRunner.length).toBeGreaterThan(0);

      const g = db.t.gscPerformanceData;
      const capped = await withBudget(budget(30_000, 50), async () => b.q.select({ q: g.query }).from(g).limit(51)).catch((e) => e);
      // Drizzle wraps what the runner threw (DrizzleQueryError); the app's error handler unwraps it.
      expect(apiErrorOf(capped)?.code).toBe("result_too_large");

      const t0 = performance.now();
      const slow = await withBudget(budget(300), async () => b.q.select({ n: sql<number>`count(*)` }).from(endless)).catch((e) => e);
      expect(apiErrorOf(slow)?.code).toBe("query_timeout");
      // Stopped, not left running: the next bounded read is answered at once rather than after the count.
      const after = await withBudget(budget(30_000), async () => b.q.select({ id: s.id }).from(s).limit(1));
      expect(after.length).toBe(1);
      expect(performance.now() - t0).toBeLessThan(60_000);
      if (testEngine === "pg") {
        await backendCancelled("%recursive c(x)%");
      }

      // A client that goes away stops it too.
      const ctl = new AbortController();
      const gone = withBudget(budget(600_000, 100_000, ctl.signal), async () =>
        b.q.select({ n: sql<number>`count(*)` }).from(endless),
      ).catch((e) => e);
      await waitFor(() => budgetStats.running > 0, { what: "the read to run" });
      ctl.abort();
      const why = await gone;
      expect(apiErrorOf(why)?.code).toBe("client_closed");
    } finally {
      await db.close();
    }
  });

  test.if(testEngine === "pg")(
    "a named small read (pgNamedRead) answers as a plain read, past the cap 413, past the deadline 504 with its statement cancelled",
    async () => {
      const db = openPgDb({ url: dbPath, role: "test", poolSize: 2 });
      try {
        const text = "select id, domain from sites where id >= $from order by id";
        const plain = await db.pg.pool.query("select id, domain from sites where id >= 1 order by id");
        // Twice on each connection: parsed once, then the named statement again.
        for (let i = 0; i < 4; i++) expect(await withBudget(budget(30_000), () => pgNamedRead(db, text, { from: 1 }))).toEqual(plain.rows);
        expect(plain.rows.length).toBeGreaterThan(0);
        const capped = await withBudget(budget(30_000, plain.rows.length - 1), () => pgNamedRead(db, text, { from: 1 })).catch((e) => e);
        expect(apiErrorOf(capped)?.code).toBe("result_too_large");
        const missing = await withBudget(budget(30_000), () => pgNamedRead(db, text, {})).catch((e) => e);
        expect(String(missing)).toContain("$from has no value");
        const slow = await withBudget(budget(300), () =>
          pgNamedRead(db, "select count(*) from generate_series(1, $n::bigint)", { n: 1e11 }),
        ).catch((e) => e);
        expect(apiErrorOf(slow)?.code).toBe("query_timeout");
        await backendCancelled("%generate_series(1, $1%");
      } finally {
        await db.close();
      }
    },
  );

  test.if(testEngine === "pg")(
    "heavy reads take at most half the pool's connections: a light read is answered while they run",
    async () => {
      const db = openPgDb({ url: dbPath, role: "test", poolSize: 4 });
      const ctl = new AbortController();
      try {
        const b = boundedDb(db);
        const s = db.t.sites;
        // Four heavy reads at once on a pool of 4: before, they took every connection and the light read waited for one to end.
        const heavy = Array.from({ length: 4 }, () =>
          withBudget(budget(600_000, 100_000, ctl.signal), async () => b.q.select({ n: sql<number>`count(*)` }).from(endless)).catch(
            (e) => e,
          ),
        );
        let settled = 0;
        for (const h of heavy) void h.then(() => settled++);
        await waitFor(async () => (await pgRunning()) >= 2, { what: "two heavy reads to run" });
        const light = await db.q.select({ id: s.id }).from(s).limit(1);
        expect(light.length).toBe(1);
        // Answered while the heavy reads still run, two of them on the server and two waiting for their turn.
        expect(settled).toBe(0);
        expect(await pgRunning()).toBe(2);
      } finally {
        ctl.abort();
        await waitFor(async () => (await pgRunning()) === 0, { what: "the heavy reads to be cancelled" });
        await db.close();
      }
    },
  );

  test("an answer past the byte cap (ANALYTICS_MAX_BYTES) is refused 413 though its rows are under the row cap", async () => {
    const db = open();
    try {
      const b = boundedDb(db);
      const g = db.t.gscPerformanceData;
      const small = budgetOf({ timeoutMs: 30_000, maxRows: 100_000, maxBytes: 2000 });
      // 500 rows of a query text each: far past 2,000 bytes as JSON, far under 100,000 rows.
      const big = await withBudget(small, async () => b.q.select({ q: g.query, p: g.page }).from(g).limit(500)).catch((e) => e);
      expect(apiErrorOf(big)?.code).toBe("result_too_large");
      expect(apiErrorOf(big)?.message).toContain("ANALYTICS_MAX_BYTES");
      // Within the byte cap the same read answers.
      const few = await withBudget(small, async () => b.q.select({ q: g.query }).from(g).limit(2));
      expect(few.length).toBe(2);
    } finally {
      await db.close();
    }
  });

  test("a download past EXPORT_TIMEOUT_MS is cut: its stream errors and its connection is closed", async () => {
    const db = open();
    try {
      const header = "h\n";
      const q = exportQuery(db.engine, { siteId: seed.siteId });
      const body = await streamQuery<Record<string, unknown>>(db, q.sql, q.params, header, (r) => `${JSON.stringify(r)}\n`, {
        timeoutMs: 1000,
      });
      const reader = body.getReader();
      const t0 = performance.now();
      expect((await reader.read()).done).toBe(false);
      // The client stops reading until the limit has passed (a slow reader), then asks for more.
      await waitFor(() => performance.now() - t0 > 1100, { what: "the download's time limit to pass" });
      let err: unknown = null;
      try {
        for (;;) if ((await reader.read()).done) break;
      } catch (e) {
        err = e;
      }
      expect(String(err)).toContain("EXPORT_TIMEOUT_MS");
    } finally {
      await db.close();
    }
  });
  /** Downloads holding a database connection in this process now (sitesync_downloads_open). */
  const downloadsOpen = async () => (await registry.getSingleMetric("sitesync_downloads_open")!.get()).values[0]?.value ?? 0;

  test("a download whose client stops reading is cut at EXPORT_TIMEOUT_MS: its connection is let go without another read", async () => {
    const db = open();
    try {
      const before = await downloadsOpen();
      const q = exportQuery(db.engine, { siteId: seed.siteId });
      const body = await streamQuery<Record<string, unknown>>(db, q.sql, q.params, "h\n", (r) => `${JSON.stringify(r)}\n`, {
        timeoutMs: 1000,
      });
      const reader = body.getReader();
      expect((await reader.read()).done).toBe(false);
      expect(await downloadsOpen()).toBe(before + 1);
      // The client reads nothing more: the limit alone closes the connection (before, only the next read did).
      await waitFor(async () => (await downloadsOpen()) === before, { what: "the download's connection to close", timeout: 20_000 });
      const err = await (async () => {
        for (;;) if ((await reader.read()).done) return null;
      })().catch((e) => e);
      expect(String(err)).toContain("EXPORT_TIMEOUT_MS");
    } finally {
      await db.close();
    }
  });

  test.if(testEngine === "pg")(
    "a FETCH still running at EXPORT_TIMEOUT_MS is cut at the limit (not at its own statement_timeout)",
    async () => {
      const db = open();
      try {
        // 2,500 quick rows, then every row sleeps: the second FETCH runs across the limit.
        const slow = "select g from generate_series(1, 100000) g where g <= 2500 or pg_sleep(0.5)::text is not null";
        const body = await streamQuery<{ g: number }>(db, slow, {}, "g\n", (r) => `${r.g}\n`, { timeoutMs: 1500 });
        const err = await (async () => {
          const reader = body.getReader();
          for (;;) if ((await reader.read()).done) return null;
        })().catch((e) => e);
        // Before, each FETCH had the whole limit as its statement_timeout: it ended with the server's cancel message.
        expect(String(err)).toContain("EXPORT_TIMEOUT_MS");
        await waitFor(
          async () =>
            Number(
              await pgValue(
                `select count(*) from pg_stat_activity where datname = '${pgdb!.name}' and query like '%pg_sleep(0.5)%' and pid <> pg_backend_pid()`,
              ),
            ) === 0,
          { what: "the download's backend to end" },
        );
      } finally {
        await db.close();
      }
    },
  );
});
