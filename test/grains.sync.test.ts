// The daily sync writes Search Console's grains (docs/design/grains.md) from the fake Search Console:
// a hand-written property whose anonymized share is known, Google's per-type rules, the 50,000-row
// cap, search appearance, completeness. On the suite's engine.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { and, asc, eq, sql } from "drizzle-orm";
import { setLogLevel } from "../src/log.ts";
import { findSyncedDays } from "../src/sync/data.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { dayNumber, typeCode } from "../src/sync/grains.ts";
import { createTask } from "../src/sync/queries.ts";
import { syncRoutes } from "../src/sync/routes.ts";
import { scheduleRechecks } from "../src/sync/scheduler.ts";
import { startWorker, type Worker } from "../src/sync/worker.ts";
import { tempDb } from "./helpers/db.ts";
import { isDetailRequest, startFakeGsc, type FakeGsc, type UniverseRow } from "./helpers/fake-gsc.ts";
import { countRows, insertSites, waitForTaskEnd } from "./helpers/sync.ts";

setLogLevel("silent");
const DAY = "2026-03-10";
const D = dayNumber(DAY);

const row = (
  page: string,
  query: string,
  country: string,
  device: string,
  clicks: number,
  impressions: number,
  position: number,
  appearance = "",
) =>
  ({
    page: `https://hand.example/${page}`,
    query,
    country,
    device,
    appearance,
    anonymized: query === "",
    clicks,
    impressions,
    position,
  }) satisfies UniverseRow;

// The hand-written property. web: three named query rows (60 clicks) and one anonymized row (40 clicks):
// Search Console's total is 100 clicks, 1,000 impressions, position (2×300 + 5×200 + 1×100 + 8×400)/1000
// = 4.9; the anonymized share is exactly 1 − 60/100 = 0.4.
const hand: Record<string, UniverseRow[]> = {
  web: [
    row("a", "alpha", "usa", "MOBILE", 30, 300, 2, "VIDEO"),
    row("a", "beta", "gbr", "DESKTOP", 10, 200, 5),
    row("b", "gamma", "usa", "DESKTOP", 20, 100, 1),
    row("b", "", "usa", "MOBILE", 40, 400, 8),
  ],
  // discover: no query, no device, no position in Google's answers.
  discover: [row("a", "", "usa", "MOBILE", 5, 50, 3), row("b", "", "gbr", "DESKTOP", 7, 70, 3)],
  // googleNews: no query.
  googleNews: [row("a", "", "usa", "MOBILE", 3, 30, 4)],
};

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let sites: number[];
let next = 0;
const workers: Worker[] = [];
/** When this file started: every fetched_at it stores is at or after it. */
let fileStart = 0;

beforeAll(async () => {
  fileStart = Date.now();
  t = tempDb();
  fake = startFakeGsc({
    universe: (site, _day, type) => (site.startsWith("sc-domain:s0.") || site.startsWith("sc-domain:s1.") ? (hand[type] ?? []) : undefined),
    rows: (site, _d, type) => (site.startsWith("sc-domain:s2.") && type === "web" ? 50_001 : 0),
  });
  sites = await insertSites(t.db, 4, "grains.example");
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  // A task a failed test left unfinished (its worker handed it back on stop) must not run in the next
  // test, whose requests and rows it would mix into (the next test's own failure would hide the first).
  const st = t.db.t.syncTasks;
  await t.db.tx((tx) =>
    tx
      .update(st)
      .set({ status: "cancelled", completed_at: new Date().toISOString(), locked_until: null })
      .where(sql`${st.status} in ('pending', 'running')`),
  );
  fake.reset();
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});

function worker() {
  const source = gscSource({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 100_000 }),
    rowLimit: 25_000,
    maxRetries: 0,
    retryBaseMs: 5,
    timeoutMs: 30_000,
  });
  const w = startWorker({ db: t.open(), source, pollMs: 20, leaseMs: 60_000, retryBaseMs: 100, batchSize: 2000 });
  workers.push(w);
}

async function sync(siteId: number, start = DAY, end = DAY, mode: "skip" | "overwrite" = "skip", timeoutMs = 60_000) {
  const { id } = await createTask(t.db, {
    siteId,
    taskType: "daily_sync",
    startDate: start,
    endDate: end,
    params: { sync_mode: mode },
    runAt: new Date(),
    maxAttempts: 1,
  });
  return waitForTaskEnd(t.db, id, timeoutMs);
}

const where = (tbl: { site_id: never; day: never; type: never }, site: number, type: string) =>
  and(eq(tbl.site_id, site), eq(tbl.day, D), eq(tbl.type, typeCode(type as never)));

async function propertyTotals(site: number, type: string) {
  const p = t.db.t.gscPropertyTotals;
  return t.db.q
    .select({ country: p.country, device: p.device, clicks: p.clicks, impressions: p.impressions, sum_position: p.sum_position })
    .from(p)
    .where(where(p as never, site, type))
    .orderBy(asc(p.country), asc(p.device));
}

async function pageTotals(site: number, type: string) {
  const p = t.db.t.gscPageTotals;
  const pages = t.db.t.gscPages;
  return t.db.q
    .select({
      page: pages.page,
      country: p.country,
      device: p.device,
      clicks: p.clicks,
      impressions: p.impressions,
      sum_position: p.sum_position,
    })
    .from(p)
    .innerJoin(pages, eq(pages.id, p.page_id))
    .where(where(p as never, site, type))
    .orderBy(asc(pages.page), asc(p.country), asc(p.device));
}

async function completeness(site: number) {
  const c = t.db.t.gscDayCompleteness;
  const rows = await t.db.q.select().from(c).where(eq(c.site_id, site)).orderBy(asc(c.day), asc(c.type));
  return rows.map(({ fetched_at, ...r }) => {
    // A real fetch time of this run (not a fixed window: a slow machine may take minutes between fetch and check).
    expect(Date.parse(fetched_at)).toBeGreaterThanOrEqual(fileStart);
    expect(Date.parse(fetched_at)).toBeLessThanOrEqual(Date.now());
    return r;
  });
}

describe("a property with a known anonymized share", () => {
  test("property totals equal Search Console's exactly; page, appearance and completeness by hand", async () => {
    const site = sites[next++]!;
    worker();
    expect(await sync(site)).toMatchObject({ status: "completed", total_records: 3 });

    // byProperty by country × device; sum_position = position × impressions × 100.
    expect(await propertyTotals(site, "web")).toEqual([
      { country: "gbr", device: 1, clicks: 10, impressions: 200, sum_position: 100_000 },
      { country: "usa", device: 1, clicks: 20, impressions: 100, sum_position: 10_000 },
      { country: "usa", device: 2, clicks: 70, impressions: 700, sum_position: 380_000 },
    ]);
    // Summed: 100 clicks, 1,000 impressions, position 490,000 / 1,000 / 100 = 4.9: Search Console's numbers.
    const sum = (await propertyTotals(site, "web")).reduce(
      (s, r) => ({ c: s.c + r.clicks, i: s.i + r.impressions, sp: s.sp + r.sum_position }),
      { c: 0, i: 0, sp: 0 },
    );
    expect(sum).toEqual({ c: 100, i: 1000, sp: 490_000 });
    // The query detail leaves the anonymized row out: 60 clicks in 3 rows.
    expect(await countRows(t.db, site)).toBe(3);

    expect(await pageTotals(site, "web")).toEqual([
      { page: "https://hand.example/a", country: "gbr", device: 1, clicks: 10, impressions: 200, sum_position: 100_000 },
      { page: "https://hand.example/a", country: "usa", device: 2, clicks: 30, impressions: 300, sum_position: 60_000 },
      { page: "https://hand.example/b", country: "usa", device: 1, clicks: 20, impressions: 100, sum_position: 10_000 },
      { page: "https://hand.example/b", country: "usa", device: 2, clicks: 40, impressions: 400, sum_position: 320_000 },
    ]);
    const a = t.db.t.gscAppearanceTotals;
    expect(
      await t.db.q
        .select({ appearance: a.appearance, clicks: a.clicks, impressions: a.impressions, sum_position: a.sum_position })
        .from(a)
        .where(eq(a.site_id, site)),
    ).toEqual([{ appearance: "VIDEO", clicks: 30, impressions: 300, sum_position: 60_000 }]);

    // discover: by country only (device 0), no position; googleNews: by country × device; neither has detail.
    expect(await propertyTotals(site, "discover")).toEqual([
      { country: "gbr", device: 0, clicks: 7, impressions: 70, sum_position: 0 },
      { country: "usa", device: 0, clicks: 5, impressions: 50, sum_position: 0 },
    ]);
    expect(await pageTotals(site, "discover")).toEqual([
      { page: "https://hand.example/a", country: "usa", device: 0, clicks: 5, impressions: 50, sum_position: 0 },
      { page: "https://hand.example/b", country: "gbr", device: 0, clicks: 7, impressions: 70, sum_position: 0 },
    ]);
    expect(await propertyTotals(site, "googleNews")).toEqual([
      { country: "usa", device: 2, clicks: 3, impressions: 30, sum_position: 12_000 },
    ]);

    const none = { page_rows: 0, detail_rows: 0, appearance_rows: 0, property_rows: 0, anonymized_share: null };
    const base = { site_id: site, day: D, page_truncated: false, detail_truncated: false, data_state: "final", derived: false };
    expect(await completeness(site)).toEqual([
      { ...base, type: 1, property_rows: 3, page_rows: 4, detail_rows: 3, appearance_rows: 1, anonymized_share: 0.4 },
      { ...base, type: 2, ...none },
      { ...base, type: 3, ...none },
      { ...base, type: 4, ...none },
      { ...base, type: 5, property_rows: 2, page_rows: 2, detail_rows: 0, appearance_rows: 0, anonymized_share: null },
      { ...base, type: 6, property_rows: 1, page_rows: 1, detail_rows: 0, appearance_rows: 0, anonymized_share: null },
    ]);

    // GET /sync/status shows it (the fields the original had stay as they were).
    const res = await syncRoutes(t.db).request(`/sync/status/${site}`);
    const status = (await res.json()) as Record<string, any>;
    expect(status.daily_data).toMatchObject({ total_days: 1, final_days: 1 });
    expect(status.completeness).toMatchObject({
      day_types: 6,
      days: 1,
      provisional: 0,
      derived: 0,
      detail_truncated: 0,
      page_truncated: 0,
      last_fetched_at: expect.any(String),
    });
    expect(status.completeness.recent.length).toBe(6);
    expect(status.completeness.recent[0]).toMatchObject({
      date: DAY,
      search_type: "web",
      data_state: "final",
      property_rows: 3,
      page_rows: 4,
      detail_rows: 3,
      appearance_rows: 1,
      detail_truncated: false,
      anonymized_share: 0.4,
    });
    expect(status.completeness.recent[4]).toMatchObject({ search_type: "discover", anonymized_share: null, detail_rows: 0 });

    // The requests followed Google's rules (the fake answers 400 otherwise): none failed.
    expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    // The property totals first (none: nothing more is asked); the other grains then at once, in any order.
    const of = (type: string) => {
      const [first, ...then] = fake.requests
        .filter((r) => r.type === type)
        .map((r) => [r.dimensions.join(","), r.aggregationType ?? "auto"]);
      return first ? [first, ...then.sort((a, b) => String(a).localeCompare(String(b)))] : [];
    };
    expect(of("web")).toEqual([
      ["date,country,device", "byProperty"],
      ["date,page,country,device", "byPage"],
      ["page,query,device", "auto"],
      ["searchAppearance", "auto"],
    ]);
    expect(of("discover")).toEqual([
      ["date,country", "byProperty"],
      ["date,page,country", "byPage"],
    ]);
    expect(of("googleNews")).toEqual([
      ["date,country,device", "byProperty"],
      ["date,page,country,device", "byPage"],
    ]);
    // image, video, news have no data: their empty property totals end their day at one request each.
    for (const type of ["image", "video", "news"]) expect(of(type).length).toBe(1);
  });

  test("skip leaves a day with its grains alone; overwrite replaces them (no duplicates)", async () => {
    const site = sites[next++]!;
    worker();
    await sync(site);
    fake.reset();
    expect(await sync(site)).toMatchObject({ status: "completed", stats_skipped: 1 });
    expect(fake.requests.length).toBe(0);
    expect(await sync(site, DAY, DAY, "overwrite")).toMatchObject({ status: "completed", stats_synced: 1 });
    expect((await propertyTotals(site, "web")).length).toBe(3);
    expect((await pageTotals(site, "web")).length).toBe(4);
    expect((await completeness(site)).length).toBe(6);
    // Totals derived from the old query rows (the in-place migration) are fetched again, even in skip mode.
    const c = t.db.t.gscDayCompleteness;
    await t.db.tx((tx) =>
      tx
        .update(c)
        .set({ derived: true })
        .where(and(eq(c.site_id, site), eq(c.type, 1))),
    );
    fake.reset();
    expect(await sync(site)).toMatchObject({ status: "completed", stats_synced: 1 });
    expect(new Set(fake.requests.map((r) => r.type))).toEqual(new Set(["web"]));
    expect((await completeness(site)).every((r) => r.derived === false)).toBe(true);
  });

  test("a recent day is stored as provisional", async () => {
    const site = sites[3]!;
    const recent = addDays(dayOf(new Date()), -2);
    worker();
    await sync(site, recent, recent);
    const c = t.db.t.gscDayCompleteness;
    const rows = await t.db.q.select({ s: c.data_state }).from(c).where(eq(c.site_id, site));
    expect(rows.length).toBe(6);
    expect(rows.every((r) => r.s === "provisional")).toBe(true);
  });
});

describe("fresh data (dataState all)", () => {
  test("a recent day Google still collects is stored provisional with its fresh numbers and fetched again until Google calls it final", async () => {
    const [site] = (await insertSites(t.db, 1, "fresh.grains.example")) as [number]; // s0: the hand property
    const url = "sc-domain:s0.fresh.grains.example";
    // Old enough for our clock (today minus 6 is past FINAL_LAG_DAYS) but Google still collects it.
    const day = addDays(dayOf(new Date()), -6);
    const at = (tbl: { site_id: never; day: never; type: never }) =>
      and(eq(tbl.site_id, site as never), eq(tbl.day, dayNumber(day) as never), eq(tbl.type, typeCode("web") as never));
    const webTotals = async () => {
      const p = t.db.t.gscPropertyTotals;
      const [r] = await t.db.q
        .select({ clicks: sql<number>`sum(${p.clicks})`.mapWith(Number), impressions: sql<number>`sum(${p.impressions})`.mapWith(Number) })
        .from(p)
        .where(at(p as never));
      return r;
    };
    const webState = async () => {
      const c = t.db.t.gscDayCompleteness;
      return (
        await t.db.q
          .select({ s: c.data_state })
          .from(c)
          .where(at(c as never))
      )[0]?.s;
    };
    const marked = async () => (await findSyncedDays(t.db, site, day, day)).has(`${day}|web`);
    fake.reset();
    fake.setFirstIncompleteDate(addDays(day, -1));
    worker();

    expect(await sync(site, day, day)).toMatchObject({ status: "completed" });
    const ours = fake.requests.filter((r) => r.site === url);
    expect(ours.length).toBeGreaterThan(0);
    // Every request of the recent day (totals and detail) asks for fresh data.
    expect(ours.every((r) => r.dataState === "all")).toBe(true);
    // The provisional numbers (the hand property × 0.8: 24 + 8 + 16 + 32 clicks, 240 + 160 + 80 + 320 impressions).
    expect(await webTotals()).toEqual({ clicks: 80, impressions: 800 });
    expect(await webState()).toBe("provisional");
    expect(await marked()).toBe(false);
    expect(await countRows(t.db, site)).toBe(3);

    // Still collecting: skip mode fetches it again (no marker), still provisional.
    fake.requests.length = 0;
    expect(await sync(site, day, day)).toMatchObject({ status: "completed", stats_synced: 1 });
    expect(fake.requests.filter((r) => r.site === url && r.aggregationType === "byProperty").length).toBe(6);
    expect(await webState()).toBe("provisional");

    // Google has finished the day: the final numbers replace the provisional ones, the day is marked, no correction.
    fake.setFirstIncompleteDate(addDays(day, 1));
    expect(await sync(site, day, day)).toMatchObject({ status: "completed", stats_synced: 1 });
    expect(await webTotals()).toEqual({ clicks: 100, impressions: 1000 });
    expect(await webState()).toBe("final");
    expect(await marked()).toBe(true);
    const k = t.db.t.gscCorrections;
    expect(await t.db.q.select().from(k).where(eq(k.site_id, site))).toEqual([]);

    // Final: skipped from now on; an old day is asked with Google's default dataState (final data only).
    fake.requests.length = 0;
    expect(await sync(site, day, day)).toMatchObject({ status: "completed", stats_skipped: 1 });
    expect(fake.requests.filter((r) => r.site === url)).toEqual([]);
    expect(await sync(site, DAY, DAY)).toMatchObject({ status: "completed" });
    const old = fake.requests.filter((r) => r.site === url && r.startDate === DAY);
    expect(old.length).toBeGreaterThan(0);
    expect(old.every((r) => r.dataState === undefined)).toBe(true);
    // Out of the way of the scheduler tests below (they count the active sites).
    await t.db.tx((tx) => tx.update(t.db.t.sites).set({ is_active: false }).where(eq(t.db.t.sites.id, site)));
  });

  test("the fake, as Google documents: final data has no rows for an incomplete day; dataState all has them and metadata.firstIncompleteDate", async () => {
    const day = addDays(dayOf(new Date()), -3);
    fake.reset();
    fake.setFirstIncompleteDate(day);
    const ask = async (body: Record<string, unknown>) =>
      (await (
        await fetch(`${fake.url}/webmasters/v3/sites/${encodeURIComponent("sc-domain:s0.grains.example")}/searchAnalytics/query`, {
          method: "POST",
          headers: { authorization: "Bearer test-token", "content-type": "application/json" },
          body: JSON.stringify({ startDate: day, endDate: day, type: "web", ...body }),
        })
      ).json()) as Record<string, any>;
    expect((await ask({ dimensions: ["date"] })).rows).toBeUndefined();
    const fresh = await ask({ dimensions: ["date"], dataState: "all" });
    expect(fresh.metadata).toEqual({ firstIncompleteDate: day });
    expect(fresh.rows).toEqual([expect.objectContaining({ keys: [day], clicks: 80, impressions: 800 })]);
    expect((await ask({ dimensions: ["country"], dataState: "all" })).metadata).toBeUndefined();
    fake.setFirstIncompleteDate(addDays(day, 1));
    const final = await ask({ dimensions: ["date"], dataState: "all" });
    expect(final.metadata).toBeUndefined();
    expect(final.rows[0]).toMatchObject({ clicks: 100, impressions: 1000 });
  });
});

describe("Google's 50,000-row cap", () => {
  test("a day with 50,001 query rows: the detail is cut at 50,000 and marked truncated; totals stay whole", async () => {
    const site = sites[2]!;
    worker();
    expect(await sync(site, DAY, DAY, "skip", 170_000)).toMatchObject({ status: "completed", total_records: 50_000 });
    const [web] = (await completeness(site)).filter((r) => r.type === 1);
    expect(web).toMatchObject({ detail_rows: 50_000, detail_truncated: true, page_truncated: false });
    const status = (await (await syncRoutes(t.db).request(`/sync/status/${site}`)).json()) as Record<string, any>;
    expect(status.completeness).toMatchObject({ day_types: 6, detail_truncated: 1 });
    // The totals count every row (50,001 named plus the anonymized ones), as Search Console's do.
    const universe = fake.universe(`sc-domain:s2.grains.example`, DAY, "web");
    const clicks = universe.reduce((s, r) => s + r.clicks, 0);
    expect((await propertyTotals(site, "web")).reduce((s, r) => s + r.clicks, 0)).toBe(clicks);
    expect(fake.requests.filter(isDetailRequest).map((r) => r.startRow)).toEqual([0, 25_000, 50_000]);
  }, 180_000);
});

describe("the fake follows Google's rules", () => {
  const ask = async (body: Record<string, unknown>) => {
    const res = await fetch(`${fake.url}/webmasters/v3/sites/${encodeURIComponent("sc-domain:s0.grains.example")}/searchAnalytics/query`, {
      method: "POST",
      headers: { authorization: "Bearer test-token", "content-type": "application/json" },
      body: JSON.stringify({ startDate: DAY, endDate: DAY, ...body }),
    });
    return {
      status: res.status,
      body: (await res.json()) as { rows?: Record<string, unknown>[]; error?: { message: string } },
    };
  };

  test("400 for query on discover/googleNews, device on discover, appearance with another dimension, byProperty with page", async () => {
    for (const body of [
      { type: "discover", dimensions: ["query"] },
      { type: "googleNews", dimensions: ["page", "query"] },
      { type: "discover", dimensions: ["device"] },
      { type: "web", dimensions: ["searchAppearance", "page"] },
      { type: "web", dimensions: ["page"], aggregationType: "byProperty" },
    ]) {
      expect((await ask(body)).status).toBe(400);
    }
    expect((await ask({ type: "web", dimensions: ["query"] })).status).toBe(200);
  });

  test("answers without the query dimension count anonymized queries; with it they do not; appearance in two steps", async () => {
    const sumClicks = (r: { body: { rows?: Record<string, unknown>[] } }) => (r.body.rows ?? []).reduce((s, x) => s + Number(x.clicks), 0);
    expect(sumClicks(await ask({ type: "web", dimensions: [] }))).toBe(100);
    expect(sumClicks(await ask({ type: "web", dimensions: ["query"] }))).toBe(60);
    const step1 = await ask({ type: "web", dimensions: ["searchAppearance"] });
    expect(step1.body.rows).toEqual([{ keys: ["VIDEO"], clicks: 30, impressions: 300, ctr: 0.1, position: 2 }]);
    const step2 = await ask({
      type: "web",
      dimensions: ["device"],
      dimensionFilterGroups: [{ filters: [{ dimension: "searchAppearance", operator: "equals", expression: "VIDEO" }] }],
    });
    expect(step2.body.rows).toEqual([{ keys: ["MOBILE"], clicks: 30, impressions: 300, ctr: 0.1, position: 2 }]);
  });
});

describe("corrections", () => {
  const url = (i: number) => `sc-domain:s${i}.grains.example`;

  async function queueRecheck(siteId: number, start = DAY, end = DAY) {
    const { id } = await createTask(t.db, {
      siteId,
      taskType: "recheck",
      startDate: start,
      endDate: end,
      params: {},
      runAt: new Date(),
      maxAttempts: 1,
    });
    return waitForTaskEnd(t.db, id, 60_000);
  }

  const corrections = async (siteId: number, query = "") =>
    (await (await syncRoutes(t.db).request(`/sites/${siteId}/corrections${query}`)).json()) as Record<string, any>;

  test("recheck: a final day whose property totals Google changed is fetched again and logged (old and new); unchanged, nothing", async () => {
    // Site s1 was synced above (hand property: web 100 clicks, 1,000 impressions, sum_position 490,000).
    const site = sites[1]!;
    worker();
    fake.reset();
    // Unchanged: one property-totals request per type with data (web, discover, googleNews), nothing else.
    expect(await queueRecheck(site)).toMatchObject({ status: "completed", stats_synced: 1 });
    expect(fake.requests.map((r) => `${r.type}:${r.aggregationType}`).sort()).toEqual([
      "discover:byProperty",
      "googleNews:byProperty",
      "web:byProperty",
    ]);
    expect((await corrections(site)).corrections).toEqual([]);

    // Google adds 10 clicks and 100 impressions at position 5 to web: 110 clicks, 1,100 impressions,
    // sum_position 490,000 + 5 × 100 × 100 = 540,000 (position 540,000 / 1,100 / 100 = 4.909…).
    fake.reset();
    fake.revise(url(1), DAY, "web", 10, 100, 5);
    expect(await queueRecheck(site)).toMatchObject({ status: "completed" });
    expect(fake.requests.filter(isDetailRequest).length).toBe(1);
    const body = await corrections(site);
    expect(body).toEqual({
      site_id: site,
      corrections: [
        {
          id: expect.any(Number),
          date: DAY,
          search_type: "web",
          old: { clicks: 100, impressions: 1000, ctr: 0.1, position: 4.9 },
          new: { clicks: 110, impressions: 1100, ctr: 0.1, position: 540_000 / 1100 / 100 },
          detected_at: expect.any(String),
        },
      ],
    });
    const k = t.db.t.gscCorrections;
    expect(await t.db.q.select({ o: k.old_sum_position, n: k.new_sum_position }).from(k).where(eq(k.site_id, site))).toEqual([
      { o: 490_000, n: 540_000 },
    ]);
    // The stored totals are the new ones; the anonymized share moved to 1 − 60/110.
    expect((await propertyTotals(site, "web")).reduce((s, r) => s + r.clicks, 0)).toBe(110);
    const [web] = (await completeness(site)).filter((r) => r.type === 1);
    expect(web!.anonymized_share).toBeCloseTo(1 - 60 / 110, 12);

    // A daily_sync in overwrite mode (any range, on demand) logs a correction the same way; pages by cursor.
    fake.revise(url(1), DAY, "web", 1, 1, 5);
    expect(await sync(site, DAY, DAY, "overwrite")).toMatchObject({ status: "completed" });
    const first = await syncRoutes(t.db).request(`/sites/${site}/corrections?limit=1`);
    const page1 = (await first.json()) as Record<string, any>;
    expect(page1.corrections.map((c: any) => [c.old.clicks, c.new.clicks])).toEqual([[110, 111]]);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get("link") ?? "")![1]!;
    const cursor = new URL(next, "http://x").searchParams.get("cursor");
    const page2 = await corrections(site, `?limit=1&cursor=${cursor}`);
    expect(page2.corrections.map((c: any) => [c.old.clicks, c.new.clicks])).toEqual([[100, 110]]);
  });

  test("a provisional day changing is no correction (Google is still filling it in)", async () => {
    const site = sites[3]!;
    const recent = addDays(dayOf(new Date()), -2);
    worker();
    fake.revise(url(3), recent, "web", 5, 50);
    expect(await sync(site, recent, recent)).toMatchObject({ status: "completed" });
    expect((await corrections(site)).corrections).toEqual([]);
  });

  test("the scheduler queues one recheck per active site and day over the last SYNC_RECHECK_DAYS final days", async () => {
    const now = new Date("2026-03-20T05:00:00Z");
    const opts = { dailyAt: "03:00", catchupDays: 30, maxAttempts: 1, recheckDays: 7 };
    expect(await scheduleRechecks(t.db, { ...opts, recheckDays: 0 }, now)).toBe(0);
    expect(await scheduleRechecks(t.db, opts, new Date("2026-03-20T02:00:00Z"))).toBe(0);
    expect(await scheduleRechecks(t.db, opts, now)).toBe(sites.length);
    expect(await scheduleRechecks(t.db, opts, now)).toBe(0);
    const st = t.db.t.syncTasks;
    const tasks = await t.db.q.select().from(st).where(eq(st.scheduled_for, "2026-03-20"));
    expect(tasks.map((x) => [x.task_type, x.start_date, x.end_date])).toEqual(sites.map(() => ["recheck", "2026-03-10", "2026-03-16"]));
    await t.db.tx((tx) => tx.delete(st).where(eq(st.scheduled_for, "2026-03-20")));
  });
});
