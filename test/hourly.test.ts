import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { and, count, eq, type SQL } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, hourOf } from "../src/sync/dates.ts";
import { demoHourlyRows } from "../src/sync/demo.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { scheduleHourlySyncs } from "../src/sync/scheduler.ts";
import { startWorker, type Worker } from "../src/sync/worker.ts";
import { tempDb } from "./helpers/db.ts";
import { stableToday } from "./helpers/day.ts";
import { fakeHourlyRows, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { insertSites, waitFor } from "./helpers/sync.ts";

// Hourly data end to end in this process: the client's hourly request, the hourly_sync handler against
// the fake Search Console, the hourly schedule, the demo rows, and the API (tasks, status, ranking-data-hourly).

setLogLevel("silent");
const today = await stableToday();
// Old enough for skip mode to trust a complete day, young enough for Search Console's hourly window.
const DAYS = [addDays(today, -5), addDays(today, -4), addDays(today, -3)];
const PER_DAY = 60; // 24 hours: two or three queries each, over 5 pages of 13

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let ids: number[];
let next = 0;
let perDay = PER_DAY;
const workers: Worker[] = [];

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc({ hourlyRows: () => perDay });
  ids = await insertSites(t.db, 20, "hourly.example");
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  fake.reset();
  perDay = PER_DAY;
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});

const source = () =>
  gscSource({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 100_000 }),
    rowLimit: 13,
    maxRetries: 0,
    retryBaseMs: 5,
    timeoutMs: 5000,
  });

function worker() {
  const w = startWorker({ db: t.open(), source: source(), pollMs: 20, leaseMs: 2000, retryBaseMs: 100, batchSize: 7 });
  workers.push(w);
  return w;
}

const domain = (id: number) => `sc-domain:s${ids.indexOf(id)}.hourly.example`;
const hourlyCount = async (site: number, ...more: SQL[]) => {
  const h = t.db.t.hourlyRankings;
  return (
    await t.db.q
      .select({ n: count() })
      .from(h)
      .where(and(eq(h.site_id, site), ...more))
  )[0]!.n;
};

async function runHourly(site: number, mode: "skip" | "overwrite" = "skip", days = DAYS) {
  const { id } = await createTask(t.db, {
    siteId: site,
    taskType: "hourly_sync",
    startDate: days[0]!,
    endDate: days[days.length - 1]!,
    params: { sync_mode: mode },
    runAt: new Date(),
    maxAttempts: 1,
  });
  return waitFor(`hourly task ${id}`, async () => {
    const j = (await findJob(t.db, id))!;
    return j.status === "pending" || j.status === "running" ? null : j;
  });
}

describe("hourly_sync against the fake Search Console", () => {
  test("stores every hourly row of every day with date and hour from the HOUR key; the request asks for HOUR with HOURLY_ALL", async () => {
    const site = ids[next++]!;
    worker();
    const j = await runHourly(site);
    expect(j).toMatchObject({
      status: "completed",
      progress_done: 3,
      stats_synced: 3,
      stats_skipped: 0,
      total_records: 3 * PER_DAY,
      error: null,
    });
    expect(await hourlyCount(site)).toBe(3 * PER_DAY);
    // 60 rows in pages of 13: 5 requests per day, startRow 0, 13, ..., 52.
    expect(fake.requests.length).toBe(15);
    for (const r of fake.requests) {
      expect(r).toMatchObject({
        site: domain(site),
        dimensions: ["HOUR", "query", "page", "device"],
        dataState: "HOURLY_ALL",
        type: "web",
        rowLimit: 13,
      });
    }
    expect(fake.requests.slice(0, 5).map((r) => r.startRow)).toEqual([0, 13, 26, 39, 52]);
    const expected = fakeHourlyRows(domain(site), DAYS[1]!, PER_DAY)[27]!;
    const h = t.db.t.hourlyRankings;
    const [row] = await t.db.q
      .select()
      .from(h)
      .where(and(eq(h.site_id, site), eq(h.hour_timestamp, expected.keys[0]), eq(h.query, expected.keys[1])));
    expect(row).toMatchObject({
      date: DAYS[1],
      hour: 3,
      hour_timestamp: `${DAYS[1]}T03:00:00-08:00`,
      query: expected.keys[1],
      page: expected.keys[2],
      device: expected.keys[3],
      clicks: expected.clicks,
      impressions: expected.impressions,
      ctr: expected.ctr,
      position: expected.position,
    });
  });

  test("skip: complete days older than yesterday are not fetched again; overwrite refetches and drops rows the source no longer has", async () => {
    const site = ids[next++]!;
    worker();
    await runHourly(site);
    fake.reset();
    const skipped = await runHourly(site, "skip");
    expect(skipped).toMatchObject({ status: "completed", stats_skipped: 3, stats_synced: 0 });
    expect(fake.requests.length).toBe(0);

    // The source now has fewer rows per day, and one row changed its clicks in our copy.
    perDay = 30;
    const h = t.db.t.hourlyRankings;
    await t.db.tx((tx) => tx.update(h).set({ clicks: 999_999 }).where(eq(h.site_id, site)));
    const over = await runHourly(site, "overwrite");
    expect(over).toMatchObject({ status: "completed", stats_synced: 3, total_records: 90 });
    expect(await hourlyCount(site)).toBe(90);
    const big = await hourlyCount(site, eq(h.clicks, 999_999));
    expect(big).toBe(0);
  });

  test("skip refetches a day that has no hour 23 yet, and re-running a day never duplicates rows", async () => {
    const site = ids[next++]!;
    worker();
    perDay = 20; // hours 0..19 only: incomplete
    await runHourly(site);
    expect(await hourlyCount(site)).toBe(60);
    fake.reset();
    perDay = PER_DAY;
    const again = await runHourly(site, "skip");
    expect(again).toMatchObject({ status: "completed", stats_synced: 3, stats_skipped: 0 });
    expect(fake.requests.length).toBe(15);
    expect(await hourlyCount(site)).toBe(3 * PER_DAY);
    await runHourly(site, "overwrite");
    expect(await hourlyCount(site)).toBe(3 * PER_DAY);
  });

  test("a property Search Console refuses fails the task at once with its message", async () => {
    const site = ids[next++]!;
    fake.forbid(domain(site));
    worker();
    const j = await runHourly(site);
    expect(j.status).toBe("failed");
    expect(j.error).toContain("refused access");
    expect(await hourlyCount(site)).toBe(0);
  });
});

describe("hourly schedule", () => {
  test("one hourly_sync per active site and slot, covering the last ~10 days up to today", async () => {
    const s = tempDb();
    try {
      const [a, b, c] = (await insertSites(s.db, 3, "sched.example")) as [number, number, number];
      const { sites, syncTasks } = s.db.t;
      await s.db.tx((tx) => tx.update(sites).set({ is_active: false }).where(eq(sites.id, c)));
      const opts = { everyMs: 3_600_000, maxAttempts: 2 };
      const at = new Date("2026-06-10T10:20:00.000Z");
      expect(await scheduleHourlySyncs(s.db, opts, at)).toBe(2);
      expect(await scheduleHourlySyncs(s.db, opts, new Date("2026-06-10T10:59:59.000Z"))).toBe(0);
      const tasks = await s.db.q.select().from(syncTasks).orderBy(syncTasks.id);
      expect(tasks.map((x) => x.site_id)).toEqual([a, b]);
      expect(tasks[0]).toMatchObject({
        task_type: "hourly_sync",
        start_date: "2026-06-01",
        end_date: "2026-06-10",
        progress_total: 10,
        scheduled_for: "2026-06-10T10:00:00.000Z",
        params: { sync_mode: "skip" },
        max_attempts: 2,
      });
      // Next slot: still nothing while the first tasks are pending (one active task per site and type)...
      expect(await scheduleHourlySyncs(s.db, opts, new Date("2026-06-10T11:00:00.000Z"))).toBe(0);
      // ...and once they finished, one more each.
      await s.db.tx((tx) => tx.update(syncTasks).set({ status: "completed" }));
      expect(await scheduleHourlySyncs(s.db, opts, new Date("2026-06-10T11:00:00.000Z"))).toBe(2);
      expect(await scheduleHourlySyncs(s.db, opts, new Date("2026-06-10T11:30:00.000Z"))).toBe(0);
    } finally {
      await s.cleanup();
    }
  });
});

describe("hourly schedule from several connections at once", () => {
  test("eight concurrent schedulers create exactly one task per active site for the slot", async () => {
    const s = tempDb();
    try {
      const siteIds = await insertSites(s.db, 25, "race.example");
      const handles = Array.from({ length: 8 }, () => s.open());
      const at = new Date("2026-06-10T10:20:00.000Z");
      const created = await Promise.all(handles.map((h) => scheduleHourlySyncs(h, { everyMs: 3_600_000, maxAttempts: 1 }, at)));
      expect(created.reduce((a, b) => a + b, 0)).toBe(siteIds.length);
      const rows = await s.db.q.select({ site: s.db.t.syncTasks.site_id }).from(s.db.t.syncTasks);
      expect(rows.length).toBe(siteIds.length);
      expect(new Set(rows.map((r) => r.site)).size).toBe(siteIds.length);
    } finally {
      await s.cleanup();
    }
  });
});

describe("demo hourly rows", () => {
  test("deterministic, keys unique, Pacific HOUR keys; today only up to now", () => {
    const day = "2026-11-20";
    const a = demoHourlyRows("sc-domain:demo.example", day, 200, new Date("2026-12-01T00:00:00Z"));
    expect(a).toEqual(demoHourlyRows("sc-domain:demo.example", day, 200, new Date("2026-12-01T00:00:00Z")));
    expect(a.length).toBe(200);
    expect(new Set(a.map((r) => `${r.hour_timestamp}|${r.query}|${r.page}|${r.device}`)).size).toBe(200);
    expect(a[3]!.hour_timestamp).toBe("2026-11-20T03:00:00-08:00");
    expect(demoHourlyRows("sc-domain:demo.example", "2026-07-01", 24)[5]!.hour_timestamp).toBe("2026-07-01T05:00:00-07:00");
    for (const r of a) expect(r.clicks).toBeLessThanOrEqual(r.impressions);
    // 10:30 Pacific (18:30Z): hours 0..10 have started.
    const partial = demoHourlyRows("sc-domain:demo.example", day, 240, new Date("2026-11-20T18:30:00Z"));
    expect(new Set(partial.map((r) => hourOf(r.hour_timestamp)!.hour))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  });

  test("hourOf reads Search Console's HOUR keys and refuses anything else", () => {
    expect(hourOf("2026-11-20T03:00:00-08:00")).toEqual({ date: "2026-11-20", hour: 3 });
    expect(hourOf("2026-11-20T23:00:00Z")).toEqual({ date: "2026-11-20", hour: 23 });
    for (const bad of ["2026-11-20", "2026-11-20T24:00:00Z", "2026-02-30T01:00:00Z", "yesterday"]) expect(hourOf(bad)).toBeNull();
  });
});

describe("API", () => {
  let app: ReturnType<typeof createApp>;
  let site: number;
  let other: number;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    expect(text).not.toContain("stack");
    return { status: res.status, json: JSON.parse(text) };
  };

  beforeAll(async () => {
    app = createApp(t.db);
    site = (await call("POST", "/api/v1/sites", { domain: "sc-domain:rank.example", name: "Rank" })).json.id;
    other = (await call("POST", "/api/v1/sites", { domain: "https://url.example/", name: "Url" })).json.id;
    const row = (
      hour: number,
      query: string,
      page: string,
      device: string,
      clicks: number,
      impressions: number,
      position: number,
      date = "2026-11-20",
    ) => ({
      site_id: site,
      date,
      hour,
      hour_timestamp: `${date}T${String(hour).padStart(2, "0")}:00:00-08:00`,
      query,
      page,
      device,
      clicks,
      impressions,
      ctr: clicks / impressions,
      position,
    });
    await t.db.tx(async (tx) => {
      await tx
        .insert(t.db.t.hourlyRankings)
        .values([
          row(3, "red shoes", "https://rank.example/a", "MOBILE", 2, 10, 2),
          row(3, "red shoes", "https://rank.example/b", "DESKTOP", 1, 30, 6),
          row(3, "blue shoes", "https://rank.example/a", "MOBILE", 0, 5, 9),
          row(1, "red shoes", "https://rank.example/a", "MOBILE", 4, 20, 1.5),
          row(0, "red shoes", "https://rank.example/a", "MOBILE", 1, 1, 1, "2026-11-21"),
        ]);
    });
  });

  const path = "/api/v1/analytics/ranking-data-hourly";
  const range = { start_date: "2026-11-20", end_date: "2026-11-20" };
  const cases: { name: string; body: () => unknown; status: number; json: (s: number) => unknown }[] = [
    {
      name: "by query: one bucket per hour and query, sums, ctr from sums, impression-weighted position, oldest hour first",
      body: () => ({ site_id: site, ...range }),
      status: 200,
      json: (s) => ({
        site_id: s,
        ...range,
        group_by: "query",
        total_results: 3,
        data: [
          {
            datetime: "2026-11-20 01:00",
            date: "2026-11-20",
            hour: 1,
            hour_timestamp: "2026-11-20T01:00:00-08:00",
            query: "red shoes",
            page: null,
            clicks: 4,
            impressions: 20,
            ctr: 0.2,
            position: 1.5,
          },
          {
            datetime: "2026-11-20 03:00",
            date: "2026-11-20",
            hour: 3,
            hour_timestamp: "2026-11-20T03:00:00-08:00",
            query: "blue shoes",
            page: null,
            clicks: 0,
            impressions: 5,
            ctr: 0,
            position: 9,
          },
          {
            datetime: "2026-11-20 03:00",
            date: "2026-11-20",
            hour: 3,
            hour_timestamp: "2026-11-20T03:00:00-08:00",
            query: "red shoes",
            page: null,
            clicks: 3,
            impressions: 40,
            ctr: 0.075,
            position: 5,
          },
        ],
      }),
    },
    {
      name: "by page, filtered to one page, hostname resolved as sc-domain:",
      body: () => ({ hostname: "rank.example", ...range, group_by: "page", pages: ["https://rank.example/b"] }),
      status: 200,
      json: (s) => ({
        site_id: s,
        ...range,
        group_by: "page",
        total_results: 1,
        data: [
          {
            datetime: "2026-11-20 03:00",
            date: "2026-11-20",
            hour: 3,
            hour_timestamp: "2026-11-20T03:00:00-08:00",
            query: null,
            page: "https://rank.example/b",
            clicks: 1,
            impressions: 30,
            ctr: 1 / 30,
            position: 6,
          },
        ],
      }),
    },
    {
      name: "partial match and max_results over two days",
      body: () => ({
        site_id: site,
        start_date: "2026-11-20",
        end_date: "2026-11-21",
        queries: ["red"],
        matching_mode: "partial",
        max_results: 2,
      }),
      status: 200,
      json: (s) => ({
        site_id: s,
        start_date: "2026-11-20",
        end_date: "2026-11-21",
        group_by: "query",
        total_results: 2,
        data: [expect.objectContaining({ hour: 1, query: "red shoes" }), expect.objectContaining({ hour: 3, query: "red shoes" })],
      }),
    },
    {
      name: "exact match needs the whole query",
      body: () => ({ site_id: site, ...range, queries: ["red"] }),
      status: 200,
      json: (s) => ({ site_id: s, ...range, group_by: "query", total_results: 0, data: [] }),
    },
    {
      name: "a site with no hourly data: empty",
      body: () => ({ site_id: other, ...range }),
      status: 200,
      json: (s) => ({ site_id: s, ...range, group_by: "query", total_results: 0, data: [] }),
    },
    {
      name: "no site",
      body: () => range,
      status: 400,
      json: () => ({
        error: expect.objectContaining({ code: "validation_failed", message: expect.stringContaining("site_id or hostname") }),
        detail: expect.any(String),
      }),
    },
    {
      name: "unknown site id",
      body: () => ({ site_id: 999_999, ...range }),
      status: 404,
      json: () => ({
        error: expect.objectContaining({
          code: "not_found",
          message: expect.stringMatching(/site.*999999.*not found|site not found: 999999/i),
        }),
        detail: expect.any(String),
      }),
    },
    {
      name: "unknown hostname",
      body: () => ({ hostname: "nope.example", ...range }),
      status: 404,
      json: () => ({
        error: expect.objectContaining({ code: "not_found", message: expect.stringMatching(/site not found: nope\.example/i) }),
        detail: expect.any(String),
      }),
    },
    {
      name: "bad group_by",
      body: () => ({ site_id: site, ...range, group_by: "device" }),
      status: 400,
      json: () => ({ error: expect.objectContaining({ code: "validation_failed" }), detail: expect.any(String) }),
    },
    {
      name: "start after end",
      body: () => ({ site_id: site, start_date: "2026-11-21", end_date: "2026-11-20" }),
      status: 400,
      json: () => ({
        error: expect.objectContaining({ message: expect.stringContaining("start_date is after end_date") }),
        detail: expect.any(String),
      }),
    },
    {
      name: "bad date",
      body: () => ({ site_id: site, start_date: "2026-11-31", end_date: "2026-12-01" }),
      status: 400,
      json: () => ({ error: expect.objectContaining({ code: "validation_failed" }), detail: expect.any(String) }),
    },
    {
      name: "max_results over 10000",
      body: () => ({ site_id: site, ...range, max_results: 10_001 }),
      status: 400,
      json: () => ({ error: expect.objectContaining({ code: "validation_failed" }), detail: expect.any(String) }),
    },
    {
      name: "not JSON",
      body: () => "{",
      status: 400,
      json: () => ({ error: expect.objectContaining({ code: "invalid_json" }), detail: expect.any(String) }),
    },
  ];
  for (const c of cases) {
    test(`ranking-data-hourly: ${c.name} -> ${c.status}`, async () => {
      const res = await call("POST", path, c.body());
      expect(res.status).toBe(c.status);
      const id = (c.body() as { hostname?: string; site_id?: number }).site_id ?? site;
      expect(res.json).toEqual(c.json(id));
    });
  }

  test("hourly_sync tasks: today is allowed, further back than ~10 days is not; sync status shows hourly coverage", async () => {
    const ok = await call("POST", `/api/v1/sites/${other}/sync-tasks`, { task_type: "hourly_sync", days: 3 });
    expect(ok.status).toBe(202);
    const task = (await findJob(t.db, ok.json.job_id))!;
    expect(task).toMatchObject({ task_type: "hourly_sync", start_date: addDays(today, -2), end_date: today });
    const old = await call("POST", `/api/v1/sites/${site}/sync-tasks`, {
      task_type: "hourly_sync",
      start_date: addDays(today, -11),
      end_date: addDays(today, -9),
    });
    expect(old.status).toBe(400);
    expect(old.json.error.message).toContain("hourly data");
    const future = await call("POST", `/api/v1/sites/${site}/sync-tasks`, { task_type: "hourly_sync", end_date: addDays(today, 1) });
    expect(future.status).toBe(400);
    const status = await call("GET", `/api/v1/sync/status/${site}`);
    expect(status.json.hourly_data).toEqual({ total_days: 2, latest_date: "2026-11-21", oldest_date: "2026-11-20" });
  });
});
