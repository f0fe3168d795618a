import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { setLogLevel } from "../src/log.ts";
import { claimNextTask, taskTypesParam } from "../src/sync/claim.ts";
import { markDaySynced, upsertRows } from "../src/sync/data.ts";
import { addDays, dayOf, newestDataDay } from "../src/sync/dates.ts";
import { JobSchema } from "../src/sync/schemas.ts";
import { call as apiCall } from "./helpers/api.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";
import { stableNow } from "./helpers/day.ts";

// The sync API in-process (app.request) over a real temp database. No worker runs here: tasks stay
// pending unless a test claims one by hand.

setLogLevel("silent");
let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let ids: { alpha: number; beta: number; gamma: number; delta: number };
const newest = newestDataDay(await stableNow());

/** One request to the app; the answer is checked for leaked internals (test/helpers/api.ts). */
const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  apiCall(app, method, path, body, headers);

const err = (code: string, message?: RegExp) => ({ error: message ? { code, message: expect.stringMatching(message) } : { code } });

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db, { sync: { maxAttempts: 4 } });
  const site = async (domain: string, name: string) => (await call("POST", "/api/v1/sites", { domain, name })).json.id as number;
  ids = {
    alpha: await site("sc-domain:alpha.example", "Alpha"),
    beta: await site("https://beta.example/", "Beta"),
    gamma: await site("sc-domain:gamma.example", "Gamma"),
    delta: await site("sc-domain:delta.example", "Delta"),
  };
});
afterAll(() => t.cleanup());

describe("validation (table-driven)", () => {
  const cases: { name: string; method: string; path: () => string; body?: unknown; status: number; json?: unknown }[] = [
    {
      name: "trigger: unknown site",
      method: "POST",
      path: () => "/api/v1/sync/trigger/999999",
      status: 404,
      json: err("not_found", /site 999999 not found/),
    },
    {
      name: "trigger: bad site id",
      method: "POST",
      path: () => "/api/v1/sync/trigger/abc",
      status: 400,
      json: err("validation_failed", /site_id/),
    },
    {
      name: "trigger: days=0",
      method: "POST",
      path: () => `/api/v1/sync/trigger/${ids.gamma}?days=0`,
      status: 400,
      json: err("validation_failed", /days/),
    },
    {
      name: "trigger: days=481",
      method: "POST",
      path: () => `/api/v1/sync/trigger/${ids.gamma}?days=481`,
      status: 400,
      json: err("validation_failed", /days/),
    },
    {
      name: "trigger: days=abc",
      method: "POST",
      path: () => `/api/v1/sync/trigger/${ids.gamma}?days=abc`,
      status: 400,
      json: err("validation_failed", /days/),
    },
    {
      name: "trigger: days=1.5",
      method: "POST",
      path: () => `/api/v1/sync/trigger/${ids.gamma}?days=1.5`,
      status: 400,
      json: err("validation_failed", /days/),
    },
    {
      name: "trigger: sync_mode=merge",
      method: "POST",
      path: () => `/api/v1/sync/trigger/${ids.gamma}?sync_mode=merge`,
      status: 400,
      json: err("validation_failed", /sync_mode/),
    },
    {
      name: "tasks: unknown task_type",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { task_type: "weekly_magic" },
      status: 400,
      json: {
        error: {
          code: "validation_failed",
          message: "unknown task_type 'weekly_magic'",
          details: [{ path: "task_type", message: expect.stringMatching(/^expected one of: daily_sync, hourly_sync, recheck(, |$)/) }],
        },
      },
    },
    {
      name: "tasks: impossible date",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { start_date: "2026-02-30", end_date: "2026-03-02" },
      status: 400,
      json: err("validation_failed", /start_date.*YYYY-MM-DD/),
    },
    {
      name: "tasks: date with time",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { end_date: "2026-03-02T00:00:00Z" },
      status: 400,
      json: err("validation_failed", /end_date/),
    },
    {
      name: "tasks: start after end",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { start_date: "2026-03-05", end_date: "2026-03-02" },
      status: 400,
      json: err("validation_failed", /start_date is after end_date/),
    },
    {
      name: "tasks: end beyond today-2",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { end_date: addDays(newest, 1) },
      status: 400,
      json: err("validation_failed", new RegExp(`data up to ${newest} \\(today minus 2 days`)),
    },
    {
      name: "tasks: days and start_date",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { days: 3, start_date: "2026-03-01" },
      status: 400,
      json: err("validation_failed", /days or start_date/),
    },
    {
      name: "tasks: range over 480 days",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { start_date: addDays(newest, -480), end_date: newest },
      status: 400,
      json: err("validation_failed", /at most 480 days/),
    },
    {
      name: "tasks: days 0",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { days: 0 },
      status: 400,
      json: err("validation_failed", /days/),
    },
    {
      name: "tasks: unknown field",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { days: 2, priority: 1 },
      status: 400,
      json: err("validation_failed", /priority/),
    },
    {
      name: "tasks: bad sync_mode",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { sync_mode: "append" },
      status: 400,
      json: err("validation_failed", /sync_mode/),
    },
    {
      name: "tasks: run_at 8 days ahead",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { run_at: new Date(Date.now() + 8 * 86_400_000).toISOString() },
      status: 400,
      json: err("validation_failed", /run_at may be at most 7 days ahead/),
    },
    {
      name: "tasks: run_at far future",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { run_at: "9999-12-31T00:00:00Z" },
      status: 400,
      json: err("validation_failed", /run_at/),
    },
    {
      name: "tasks: end_date year 0 with days",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { end_date: "0000-01-03", days: 7 },
      status: 400,
      json: err("validation_failed", /Search Console keeps data from/),
    },
    {
      name: "tasks: start older than 16 months",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { start_date: addDays(newest, -487), end_date: addDays(newest, -480) },
      status: 400,
      json: err("validation_failed", new RegExp(`keeps data from ${addDays(newest, -486)}`)),
    },
    {
      name: "tasks: bad run_at",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: { run_at: "tomorrow" },
      status: 400,
      json: err("validation_failed", /run_at/),
    },
    {
      name: "tasks: malformed JSON",
      method: "POST",
      path: () => `/api/v1/sites/${ids.gamma}/sync-tasks`,
      body: "{",
      status: 400,
      json: err("invalid_json"),
    },
    {
      name: "tasks: unknown site",
      method: "POST",
      path: () => "/api/v1/sites/999999/sync-tasks",
      body: {},
      status: 404,
      json: err("not_found"),
    },
    {
      name: "job: unknown",
      method: "GET",
      path: () => "/api/v1/sync/job/999999",
      status: 404,
      json: err("not_found", /job 999999 not found/),
    },
    { name: "job: bad id", method: "GET", path: () => "/api/v1/sync/job/x", status: 400, json: err("validation_failed", /job_id/) },
    { name: "cancel: unknown", method: "DELETE", path: () => "/api/v1/sync/job/999999", status: 404, json: err("not_found") },
    {
      name: "jobs: bad status",
      method: "GET",
      path: () => "/api/v1/sync/jobs?status=done",
      status: 400,
      json: err("validation_failed", /status/),
    },
    { name: "jobs: limit 0", method: "GET", path: () => "/api/v1/sync/jobs?limit=0", status: 400, json: err("validation_failed", /limit/) },
    {
      name: "jobs: bad site_id",
      method: "GET",
      path: () => "/api/v1/sync/jobs?site_id=-1",
      status: 400,
      json: err("validation_failed", /site_id/),
    },
    {
      name: "jobs: bad cursor",
      method: "GET",
      path: () => "/api/v1/sync/jobs?cursor=%21%21",
      status: 400,
      json: err("validation_failed", /cursor/),
    },
    { name: "status: unknown site", method: "GET", path: () => "/api/v1/sync/status/999999", status: 404, json: err("not_found") },
  ];
  for (const c of cases) {
    test(`${c.method} ${c.name} -> ${c.status}`, async () => {
      const r = await call(c.method, c.path(), c.body);
      expect({ name: c.name, status: r.status }).toEqual({ name: c.name, status: c.status });
      if (c.json) expect(structuredClone(r.json)).toMatchObject(c.json as object);
      if (c.status >= 400) {
        // Our shape plus the original's `detail` (reference §0.4): the same message as a string.
        expect(Object.keys(r.json)).toEqual(["error", "detail"]);
        expect(r.json.detail).toBe(r.json.error.message);
      }
    });
  }

  test("no task was created by any rejected request", async () => {
    const r = await call("GET", `/api/v1/sync/jobs?site_id=${ids.gamma}`);
    expect(r.json).toEqual({ total: 0, jobs: [] });
  });
});

describe("trigger and job status", () => {
  test("202 with job_id and status_url; the job covers the N days ending today minus 2", async () => {
    const r = await call("POST", `/api/v1/sync/trigger/${ids.alpha}?days=7`);
    expect(r.status).toBe(202);
    expect(r.json).toEqual({
      job_id: expect.any(Number),
      message: expect.stringContaining(`${addDays(newest, -6)}..${newest}`),
      status_url: `/api/v1/sync/job/${r.json.job_id}`,
    });
    expect(r.headers.get("location")).toBe(r.json.status_url);

    const job = await call("GET", r.json.status_url);
    expect(job.status).toBe(200);
    expect(job.json).toEqual({
      id: r.json.job_id,
      site_id: ids.alpha,
      site_name: "Alpha",
      task_type: "daily_sync",
      status: "pending",
      progress: 0,
      total_tasks: 7,
      start_date: addDays(newest, -6),
      end_date: newest,
      started_at: null,
      completed_at: null,
      error: null,
      stats: { synced: 0, failed: 0, skipped: 0 },
      total_records: 0,
      attempts: 0,
      max_attempts: 4,
      worker_pid: null,
      heartbeat_at: null,
      created_at: expect.any(String),
      run_at: expect.any(String),
      scheduled_for: null,
      cancel_requested: false,
      sync_mode: "skip",
    });
  });

  test("409 with the existing job_id while that site has a pending sync; other sites are free", async () => {
    // Its own sites: the test must not depend on what earlier tests left pending.
    const busy = (await call("POST", "/api/v1/sites", { domain: "sc-domain:conflict.example", name: "Conflict" })).json.id as number;
    const free = (await call("POST", "/api/v1/sites", { domain: "sc-domain:free.example", name: "Free" })).json.id as number;
    const firstCall = await call("POST", `/api/v1/sync/trigger/${busy}?days=1`);
    expect(firstCall.status).toBe(202);
    const first = firstCall.json.job_id;
    const again = await call("POST", `/api/v1/sync/trigger/${busy}?days=1&sync_mode=overwrite`);
    expect(again.status).toBe(409);
    expect(again.json.error).toEqual({
      code: "conflict",
      message: `site ${busy} already has a pending daily_sync (job ${first})`,
      details: { job_id: first, status: "pending" },
    });
    const viaTasks = await call("POST", `/api/v1/sites/${busy}/sync-tasks`, { days: 1 });
    expect(viaTasks.status).toBe(409);
    expect(viaTasks.json.error.details.job_id).toBe(first);
    expect((await call("POST", `/api/v1/sync/trigger/${free}?days=1&sync_mode=overwrite`)).status).toBe(202);
  });

  test("sync-tasks: explicit range, mode and run_at (normalized to UTC)", async () => {
    const r = await call("POST", `/api/v1/sites/${ids.delta}/sync-tasks`, {
      task_type: "daily_sync",
      start_date: "2026-01-30",
      end_date: "2026-02-02",
      sync_mode: "overwrite",
      run_at: `${addDays(dayOf(new Date()), 2)}T01:30:00+02:00`,
    });
    expect(r.status).toBe(202);
    const job = (await call("GET", r.json.status_url)).json;
    expect(job).toMatchObject({
      start_date: "2026-01-30",
      end_date: "2026-02-02",
      total_tasks: 4,
      sync_mode: "overwrite",
      run_at: `${addDays(dayOf(new Date()), 1)}T23:30:00.000Z`,
      status: "pending",
    });
    // Exactly the documented fields: no internal column (params, locked_until, progress_*) leaks.
    expect(Object.keys(job).sort()).toEqual(Object.keys(JobSchema.shape).sort());
  });

  test("a future run_at is not due: it is the only pending task, and no worker claims it until it is due", async () => {
    // Its own file: with other tasks pending, a claim would take those and prove nothing about this one.
    const own = tempDb();
    try {
      const ownApp = createApp(own.db);
      const post = async (path: string, body: unknown) =>
        (
          await ownApp.request(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } })
        ).json() as Promise<any>;
      const site = await post("/api/v1/sites", { domain: "sc-domain:later.example", name: "Later" });
      const later = await post(`/api/v1/sites/${site.id}/sync-tasks`, { days: 1, run_at: new Date(Date.now() + 3_600_000).toISOString() });
      const types = taskTypesParam(["daily_sync"]);
      expect(await claimNextTask(own.db, { types, leaseMs: 1000, pid: 1 })).toBeUndefined();
      // The control: the same task once its time has come is claimed.
      const st = own.db.t.syncTasks;
      await own.db.tx((tx) =>
        tx
          .update(st)
          .set({ run_at: new Date(Date.now() - 1000).toISOString() })
          .where(eq(st.id, later.job_id)),
      );
      expect((await claimNextTask(own.db, { types, leaseMs: 1000, pid: 1 }))?.id).toBe(later.job_id);
    } finally {
      await own.cleanup();
    }
  });

  test("sync-tasks: days alone end at today minus 2; end_date alone takes 7 days", async () => {
    const g = await call("POST", `/api/v1/sites/${ids.gamma}/sync-tasks`, { days: 3 });
    expect((await call("GET", g.json.status_url)).json).toMatchObject({
      start_date: addDays(newest, -2),
      end_date: newest,
      total_tasks: 3,
    });
    await call("DELETE", g.json.status_url);
    const e = await call("POST", `/api/v1/sites/${ids.gamma}/sync-tasks`, { end_date: "2026-05-10" });
    expect((await call("GET", e.json.status_url)).json).toMatchObject({ start_date: "2026-05-04", end_date: "2026-05-10", total_tasks: 7 });
    await call("DELETE", e.json.status_url);
  });
});

describe("cancel", () => {
  test("pending: cancelled at once, a second cancel is 409, and the site can be synced again", async () => {
    const r = await call("POST", `/api/v1/sync/trigger/${ids.gamma}?days=2`);
    const del = await call("DELETE", r.json.status_url);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ id: r.json.job_id, status: "cancelled", cancel_requested: true, completed_at: expect.any(String) });
    const again = await call("DELETE", r.json.status_url);
    expect(again.status).toBe(409);
    expect(again.json.error).toEqual({
      code: "conflict",
      message: `job ${r.json.job_id} already finished (cancelled)`,
      details: { job_id: r.json.job_id, status: "cancelled" },
    });
    const next = await call("POST", `/api/v1/sync/trigger/${ids.gamma}?days=2`);
    expect(next.status).toBe(202);
    await call("DELETE", next.json.status_url);
  });

  test("running: flagged (the worker stops at its next checkpoint); 200 with the running job", async () => {
    const r = await call("POST", `/api/v1/sync/trigger/${ids.gamma}?days=2`);
    // Claim it as a worker would (the oldest due task may be another one: claim until it is ours).
    let claimed;
    do claimed = await claimNextTask(t.db, { types: taskTypesParam(["daily_sync"]), leaseMs: 60_000, pid: 4242 });
    while (claimed && claimed.id !== r.json.job_id);
    expect(claimed?.id).toBe(r.json.job_id);
    const del = await call("DELETE", r.json.status_url);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ status: "running", cancel_requested: true, worker_pid: 4242, attempts: 1, completed_at: null });
  });
});

describe("job list", () => {
  test("newest first, filters, total ignores paging, Link header pages through everything", async () => {
    // Its own site with two cancelled jobs and one pending, whatever other tests left behind.
    const site = (await call("POST", "/api/v1/sites", { domain: "sc-domain:job-list.example", name: "Jobs" })).json.id as number;
    for (let i = 0; i < 2; i++) {
      const j = await call("POST", `/api/v1/sync/trigger/${site}?days=1`);
      expect((await call("DELETE", j.json.status_url)).status).toBe(200);
    }
    const pending = (await call("POST", `/api/v1/sync/trigger/${site}?days=1`)).json.job_id;
    const all = (await call("GET", "/api/v1/sync/jobs?limit=500")).json;
    expect(all.jobs.length).toBeGreaterThanOrEqual(3);
    expect(all.total).toBe(all.jobs.length);
    expect(all.jobs.map((j: { id: number }) => j.id)).toEqual([...all.jobs.map((j: { id: number }) => j.id)].sort((a, b) => b - a));

    const seen: number[] = [];
    let path: string | null = "/api/v1/sync/jobs?limit=2";
    while (path) {
      const page = await call("GET", path);
      expect(page.json.total).toBe(all.total);
      expect(page.json.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.json.jobs.map((j: { id: number }) => j.id));
      path = /<([^>]+)>; rel="next"/.exec(page.headers.get("link") ?? "")?.[1] ?? null;
    }
    expect(seen).toEqual(all.jobs.map((j: { id: number }) => j.id));

    const active = (await call("GET", "/api/v1/sync/jobs?active_only=true")).json;
    expect(active.jobs.every((j: { status: string }) => j.status === "pending" || j.status === "running")).toBe(true);
    expect(active.total).toBe(all.jobs.filter((j: { status: string }) => j.status === "pending" || j.status === "running").length);

    expect(active.jobs.map((j: { id: number }) => j.id)).toContain(pending);

    const cancelled = (await call("GET", `/api/v1/sync/jobs?status=cancelled&site_id=${site}`)).json;
    expect(cancelled.total).toBe(2);
    expect(cancelled.jobs.every((j: { status: string; site_id: number }) => j.status === "cancelled" && j.site_id === site)).toBe(true);
    const ofSite = (await call("GET", `/api/v1/sync/jobs?site_id=${site}`)).json;
    expect(ofSite.jobs.map((j: { id: number }) => j.id)[0]).toBe(pending);
    expect(ofSite.total).toBe(3);
  });
});

describe("sync status", () => {
  // Reference §1.8: total_days is the number of distinct dates with rows for the site; ours adds final_days.
  const today = dayOf(new Date());
  const old = ["2026-03-01", "2026-03-02", "2026-03-05"];
  const recent = [addDays(today, -3), addDays(today, -2)];
  const rows = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      page: `https://beta.example/${i}`,
      query: `q ${i}`,
      device: "MOBILE",
      clicks: 1,
      impressions: 2,
      ctr: 0.5,
      position: 3,
    }));

  test("counts every day that has rows (as the original); final_days counts the ones Google no longer revises", async () => {
    expect((await call("GET", `/api/v1/sync/status/${ids.beta}`)).json).toEqual({
      site_id: ids.beta,
      daily_data: { total_days: 0, latest_date: null, oldest_date: null, final_days: 0 },
      hourly_data: { total_days: 0, latest_date: null, oldest_date: null },
      // Nothing fetched at Search Console's grains yet (test/grains.sync.test.ts fills it).
      completeness: {
        day_types: 0,
        days: 0,
        provisional: 0,
        derived: 0,
        detail_truncated: 0,
        page_truncated: 0,
        last_fetched_at: null,
        recent: [],
      },
    });
    await t.db.tx(async (tx) => {
      // Old days synced once final (marked), two recent days stored but not marked (the sync only marks
      // final days), one old day stored without a marker (cut short), one marker for a day without rows.
      for (const day of old) {
        await upsertRows(tx, ids.beta, day, "web", rows(3));
        await markDaySynced(tx, ids.beta, day, "web", 3);
      }
      for (const day of recent) await upsertRows(tx, ids.beta, day, "web", rows(2));
      await upsertRows(tx, ids.beta, "2026-02-20", "image", rows(1));
      await markDaySynced(tx, ids.beta, "2026-02-10", "web", 0);
      // Another site's rows do not count.
      await upsertRows(tx, ids.delta, "2026-01-01", "web", rows(1));
    });
    expect((await call("GET", `/api/v1/sync/status/${ids.beta}`)).json).toEqual({
      site_id: ids.beta,
      daily_data: { total_days: 6, latest_date: recent[1], oldest_date: "2026-02-20", final_days: 3 },
      hourly_data: { total_days: 0, latest_date: null, oldest_date: null },
      completeness: expect.objectContaining({ day_types: 0 }),
    });
  });

  test("a marker on a day that is not final yet does not make it final", async () => {
    await t.db.tx((tx) => markDaySynced(tx, ids.beta, recent[1]!, "web", 2));
    expect((await call("GET", `/api/v1/sync/status/${ids.beta}`)).json.daily_data).toMatchObject({ total_days: 6, final_days: 3 });
  });

  test.skipIf(testEngine === "pg")("the day scan seeks the query detail's key instead of reading every row (SQLite's query plan)", () => {
    const plan = asSqlite(t.db)
      .raw.reader.query<{ detail: string }, []>(
        "explain query plan select min(day) from gsc_query_detail where site_id = 1 and day > 20454",
      )
      .all()
      .map((r) => r.detail)
      .join("\n");
    expect(plan).toMatch(/SEARCH gsc_query_detail USING (COVERING INDEX \w+|PRIMARY KEY) \(site_id=\? AND day>\?\)/);
  });
});

test("every sync route is in /openapi.json", async () => {
  const doc = (await call("GET", "/openapi.json")).json;
  expect(Object.keys(doc.paths)).toEqual(
    expect.arrayContaining([
      "/api/v1/sync/trigger/{site_id}",
      "/api/v1/sites/{id}/sync-tasks",
      "/api/v1/sync/job/{job_id}",
      "/api/v1/sync/jobs",
      "/api/v1/sync/status/{site_id}",
      "/api/v1/sites/{id}/corrections",
      "/api/v1/sites/{site_id}/queries/search",
    ]),
  );
  expect(Object.keys(doc.paths["/api/v1/sync/job/{job_id}"])).toEqual(expect.arrayContaining(["get", "delete"]));
  expect(doc.components.schemas.SyncJob.properties.stats).toBeDefined();
});
