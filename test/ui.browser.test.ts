import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { and, eq, sql } from "drizzle-orm";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { addDays, dayRange, isFinalDay, newestDataDay } from "../src/sync/dates.ts";
import { haveChromium, launchChromium, localOnlyContext, newTab, openPage, type Tab } from "./helpers/browser.ts";
import { withDb } from "./helpers/observe.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(90_000);

/** What the functions polled inside a page read there (the tests are not compiled with the DOM's types). */
type InPageElement = {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): InPageElement | null;
};
type InPage = {
  document: { querySelector(selector: string): InPageElement | null; querySelectorAll(selector: string): Iterable<InPageElement> };
  /** Updates swapped in per live region (the init script's count). */
  __sse: Map<InPageElement, number>;
  /** Progress values seen by the sync test's poll. */
  seen?: number[];
};

// The dashboard in a real browser: Debian's chromium driven by playwright-core, against the real service
// (supervisor, 2 HTTP workers, 1 sync worker on the demo source). Every request the pages make is
// intercepted: anything not for this server is aborted and recorded, and the suite fails on it.

// .ci/run installs chromium and sets REQUIRE_BROWSER=1: there the browser tests must run, never skip.
const chromiumHere = haveChromium("ui.browser");
// SCREENSHOTS=1 bun test test/ui.browser.test.ts refreshes the README's screenshots in docs/screenshots.
const screenshots = process.env.SCREENSHOTS === "1" ? join(import.meta.dir, "../docs/screenshots") : null;

describe.skipIf(!chromiumHere)("dashboard in chromium", () => {
  let s: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  // The one page the tests open their paths in (a new page is a new renderer: see newTab).
  let tab: Tab;
  const offsite: string[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    s = await startServer({
      workers: 2,
      syncWorkers: 1,
      // A 30-day sync of the default 200 demo rows a day takes seconds (4.6-4.7 s at load 15, ~65 ms of a day's fixed
      // cost each), longer than the live list's 1 s turn: its progress can be seen moving. 800 rows a day (before
      // 2026-12-07) took 7.6-9.3 s and 3.0-3.5 s of the service's CPU against 1.9-2.1 s (2 alternated rounds).
      env: { SYNC_POLL_MS: "50", SYNC_SCHEDULER: "false" },
    });
    browser = await launchChromium();
    context = await newContext(true);
    tab = await newTab(context, s.url, consoleErrors);
  });

  afterAll(async () => {
    await browser?.close();
    await s?.cleanup();
  });

  async function newContext(javaScriptEnabled: boolean, viewport = { width: 1280, height: 900 }) {
    const ctx = await localOnlyContext(browser, s.url, offsite, { javaScriptEnabled, viewport });
    // Counts the updates each live region (htmx's sse-connect) has swapped in, for liveUpdated() below.
    await ctx.addInitScript(`window.__sse = new Map();
      document.addEventListener("htmx:sseMessage", (e) => window.__sse.set(e.target, (window.__sse.get(e.target) ?? 0) + 1));`);
    return ctx;
  }

  /** `path` in the shared page, or in a new page of another context (close it after). */
  async function open(path: string, ctx = context): Promise<Page> {
    return ctx === context ? tab.open(path) : openPage(ctx, s.url, path, consoleErrors);
  }

  async function shot(page: Page, name: string) {
    if (!screenshots) return;
    mkdirSync(screenshots, { recursive: true });
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  }

  /**
   * Waits until every live region of the page has swapped in the update its stream sends on connect, and on
   * the overview until the rates show (they need a second sample, sent ~2 s later): the live parts have run.
   * Polled inside the page (no round trip to the test per poll).
   */
  async function liveUpdated(page: Page, overview: boolean) {
    // Functions, not strings: the pages' CSP forbids eval, which a polled string predicate needs.
    await page.waitForFunction(
      () => {
        const w = globalThis as unknown as InPage;
        return [...w.document.querySelectorAll("[sse-connect]")].every((el) => (w.__sse.get(el) ?? 0) >= 1);
      },
      undefined,
      { polling: 100, timeout: 30_000 },
    );
    if (overview) {
      await page.waitForFunction(
        () => (globalThis as unknown as InPage).document.querySelector('[data-stat="request-rate"]')?.textContent !== "—",
        undefined,
        { polling: 100, timeout: 30_000 },
      );
    }
  }

  let siteId = 0;
  let firstJob = 0;

  test("add a site from the sites page", async () => {
    const page = await open("/ui/sites");
    await page.getByLabel("Search Console property").fill("sc-domain:browser.example");
    await page.getByLabel("Name", { exact: true }).fill("Browser Example");
    await page.getByRole("button", { name: "Add site" }).click();
    await page.waitForURL(/\/ui\/sites\/\d+\?notice=site-added/);
    siteId = Number(/\/ui\/sites\/(\d+)/.exec(page.url())![1]);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Browser Example");
    expect(await page.getByRole("status").textContent()).toContain("Site added");
    // A duplicate is refused with the reason on the page, not a JSON body.
    await page.goto(`${s.url}/ui/sites`);
    await page.getByLabel("Search Console property").fill("sc-domain:browser.example");
    await page.getByLabel("Name", { exact: true }).fill("Again");
    const errorsBefore = consoleErrors.length;
    await page.getByRole("button", { name: "Add site" }).click();
    expect(await page.getByRole("alert").textContent()).toContain("already exists");
    // The page comes with status 409, which chromium reports on the console: expected here, and only here.
    expect(consoleErrors.splice(errorsBefore)).toEqual([expect.stringContaining("status of 409 (Conflict)")]);
  });

  test("a sync started from the site page shows its progress moving and finishing, live", async () => {
    const page = await open(`/ui/sites/${siteId}`);
    await page.getByLabel("Days (ending today minus 2)").fill("30");
    await page.getByRole("button", { name: "Start sync" }).click();
    // The page stays the site's: its job list and calendar are live.
    await page.waitForURL(/\/ui\/sites\/\d+\?notice=sync-queued/);
    firstJob = Number(new URL(page.url()).searchParams.get("id"));
    expect(firstJob).toBeGreaterThan(0);
    // From here on the page is never reloaded: everything below arrives over server-sent events.
    await page.evaluate("window.marker = 42");
    const row = page.locator(`tr[data-job="${firstJob}"]`);
    // Every progress value the row shows, read inside the page every 50 ms until the job completes.
    await page.waitForFunction(
      (job) => {
        const w = globalThis as unknown as InPage;
        const tr = w.document.querySelector(`tr[data-job="${job}"]`);
        (w.seen ??= []).push(Number(tr?.querySelector("[data-progress]")?.getAttribute("data-progress")));
        return tr?.getAttribute("data-status") === "completed";
      },
      firstJob,
      { polling: 50, timeout: 60_000 },
    );
    const seen = new Set((await page.evaluate(() => (globalThis as unknown as InPage).seen)) ?? []);
    expect(await page.evaluate("window.marker")).toBe(42);
    expect(Number(await row.locator("[data-progress]").getAttribute("data-progress"))).toBe(100);
    // Moving: at least one value strictly between 0 and 100 was shown before 100.
    expect([...seen].some((p) => p > 0 && p < 100)).toBe(true);
    await shot(page, "jobs");
  });

  test("the coverage calendar shows the synced days; the chart has the rows' clicks", async () => {
    const page = await open(`/ui/sites/${siteId}`);
    const end = newestDataDay();
    const synced = dayRange(addDays(end, -29), end);
    for (const d of synced) {
      const state = await page.locator(`td[data-date="${d}"]`).getAttribute("data-state");
      expect({ d, state }).toEqual({ d, state: isFinalDay(d) ? "final" : "provisional" });
    }
    const before = addDays(end, -30);
    expect(await page.locator(`td[data-date="${before}"]`).getAttribute("data-state")).toBe("missing");
    expect(await page.locator('td[data-state="final"]').count()).toBe(synced.filter((d) => isFinalDay(d)).length);
    // The charts' totals are Search Console's web totals, the same numbers as the API's trend; at least
    // the sum of the named queries' rows (the property totals add the anonymized ones).
    const named = await withDb(s.dbPath, async (db) => {
      const g = db.t.gscPerformanceData;
      const [row] = await db.q
        .select({ clicks: sql<number>`sum(${g.clicks})`.mapWith(Number), impressions: sql<number>`sum(${g.impressions})`.mapWith(Number) })
        .from(g)
        .where(and(eq(g.site_id, siteId), eq(g.search_type, "web")));
      return row!;
    });
    const trend = (await request(s.url, "GET", `/api/v1/analytics/performance-trends?site_id=${siteId}&days=1000`)).body as {
      summary: { total_clicks: number; total_impressions: number };
    };
    expect(named.clicks).toBeGreaterThan(0);
    expect(trend.summary.total_clicks).toBeGreaterThanOrEqual(named.clicks);
    expect(Number(await page.locator('svg[data-series="clicks"]').getAttribute("data-total"))).toBe(trend.summary.total_clicks);
    expect(Number(await page.locator('svg[data-series="impressions"]').getAttribute("data-total"))).toBe(trend.summary.total_impressions);
    await shot(page, "site");
  });

  test("cancel a running sync from the jobs page", async () => {
    const trigger = await request(s.url, "POST", `/api/v1/sync/trigger/${siteId}?days=120&sync_mode=overwrite`);
    expect(trigger.status).toBe(202);
    const job = trigger.body.job_id as number;
    const page = await open(`/ui/jobs?site_id=${siteId}`);
    const row = page.locator(`tr[data-job="${job}"]`);
    await page.locator(`tr[data-job="${job}"][data-status="running"]`).waitFor({ timeout: 60_000 });
    await row.getByRole("button", { name: `Cancel job ${job}` }).click();
    await page.waitForURL(/notice=job-cancelled/);
    await page.locator(`tr[data-job="${job}"][data-status="cancelled"]`).waitFor({ timeout: 60_000 });
    const api = await request(s.url, "GET", `/api/v1/sync/job/${job}`);
    expect(api.body.status).toBe("cancelled");
    expect(api.body.progress).toBeLessThan(100);
    // A cancelled job can be queued again.
    await page
      .locator(`tr[data-job="${job}"]`)
      .getByRole("button", { name: `Retry job ${job}` })
      .click();
    await page.waitForURL(/notice=job-retried/);
    const retried = Number(new URL(page.url()).searchParams.get("id"));
    const again = await request(s.url, "GET", `/api/v1/sync/job/${retried}`);
    expect({ start: again.body.start_date, end: again.body.end_date, mode: again.body.sync_mode }).toEqual({
      start: api.body.start_date,
      end: api.body.end_date,
      mode: "overwrite",
    });
    await request(s.url, "DELETE", `/api/v1/sync/job/${retried}`);
  });

  test("every page renders without console errors, and nothing leaves this server", async () => {
    const pages: [string, string][] = [
      ["/ui", "overview"],
      ["/ui/sites", "sites"],
      [`/ui/sites?q=browser`, ""],
      [`/ui/sites/${siteId}`, ""],
      [`/ui/jobs?status=completed`, ""],
      [`/ui/queries?site_id=${siteId}&q=running`, ""],
      [`/ui/queries?site_id=${siteId}`, "queries"],
      [`/ui/insights?site_id=${siteId}`, "insights"],
      ["/ui/alerts", "alerts"],
    ];
    for (const [path, name] of pages) {
      const page = await open(path);
      // The live parts connected and sent an update (their errors would be on the console by then).
      await liveUpdated(page, name === "overview");
      expect(await page.locator("h1").count()).toBe(1);
      if (path.endsWith("&q=running")) expect(await page.getByRole("heading", { level: 2 }).textContent()).toMatch(/^\d+ matching quer/);
      if (name) await shot(page, name);
    }
    // The API reference (/docs: offline, no console error, nothing from elsewhere) is ui.defects.browser's, once a run.
    expect(consoleErrors).toEqual([]);
    expect(offsite).toEqual([]);
  });

  test("the overview updates itself", async () => {
    const page = await open("/ui");
    const before = Number((await page.locator('[data-stat="requests"]').textContent())!.replaceAll(",", ""));
    for (let i = 0; i < 5; i++) await request(s.url, "GET", "/health");
    // The live request count grows (read inside the page: no round trip per poll).
    await page.waitForFunction(
      (min) =>
        Number((globalThis as unknown as InPage).document.querySelector('[data-stat="requests"]')?.textContent?.replaceAll(",", "")) >= min,
      before + 5,
      { polling: 100, timeout: 15_000 },
    );
    expect(await page.locator("tbody tr", { hasText: "http" }).count()).toBe(2);
  });

  test("keyboard: a skip link first, then the navigation; no horizontal scrolling on a phone", async () => {
    const page = await open("/ui/jobs");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Sites");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/ui\/sites$/);
    // A phone's viewport on the same page (what a context of that viewport has, without a renderer more).
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const path of ["/ui", "/ui/sites", `/ui/sites/${siteId}`, "/ui/jobs", `/ui/insights?site_id=${siteId}`]) {
        const p = await open(path);
        expect({ path, overflow: await p.evaluate("document.documentElement.scrollWidth > window.innerWidth") }).toEqual({
          path,
          overflow: false,
        });
        if (path === `/ui/sites/${siteId}`) await shot(p, "site-phone");
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  test("with JavaScript off: pages render and forms work", async () => {
    const noJs = await newContext(false);
    const page = await open("/ui/sites", noJs);
    await page.getByLabel("Search Console property").fill("https://nojs.example/");
    await page.getByLabel("Name", { exact: true }).fill("No JS");
    await page.getByRole("button", { name: "Add site" }).click();
    await page.waitForURL(/\/ui\/sites\/\d+\?notice=site-added/);
    await page.getByRole("button", { name: "Deactivate No JS" }).click();
    await page.waitForURL(/notice=site-updated/);
    expect(await page.locator("p.site-meta").textContent()).toContain("inactive");
    await page.goto(`${s.url}/ui/jobs?site_id=${siteId}`);
    expect(await page.locator(`tr[data-job="${firstJob}"]`).getAttribute("data-status")).toBe("completed");
    await page.close();
    await noJs.close();
    expect(offsite).toEqual([]);
  });

  test("forms are refused from another origin (CSRF)", async () => {
    const res = await fetch(`${s.url}/ui/sites`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.example" },
      body: "domain=sc-domain%3Aevil.example&name=Evil",
    });
    expect(res.status).toBe(403);
    const list = await request(s.url, "GET", "/api/v1/sites");
    expect((list.body as { domain: string }[]).some((x) => x.domain === "sc-domain:evil.example")).toBe(false);
  });

  // Last: once a key exists the whole server wants keys.
  test("once an API key exists, the dashboard asks for one and keeps it in an HttpOnly, SameSite=Strict cookie", async () => {
    const created = await request(s.url, "POST", "/api/v1/keys", { name: "browser", scope: "read" });
    expect(created.status).toBe(201);
    // The shared page's context: no cookie in it yet (nothing signed in before this test).
    const ctx = context;
    // On PostgreSQL another HTTP worker learns of the first key when its notification arrives, milliseconds after the
    // commit (docs/postgresql.md, PG_POOL_SIZE): until then it may still answer keyless. Asked again for up to 2 s.
    // A page answered keylessly in that window opens its live stream (htmx's SSE), which a worker that knew of the
    // key refuses: a 401 and the EventSource's error event in the console. Those two, and only from such pages, are
    // the window's, not the dashboard's.
    const errorsBefore = consoleErrors.length;
    let keylessPages = 0;
    let page = await open("/ui/jobs");
    for (const until = Date.now() + 2_000; new URL(page.url()).pathname !== "/ui/login" && Date.now() < until; ) {
      keylessPages++;
      await Bun.sleep(50);
      page = await open("/ui/jobs");
    }
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    const windowErrors = consoleErrors.splice(errorsBefore);
    const ofTheWindow = (e: string) => /^\/ui\/jobs: (Failed to load resource: .*\(Unauthorized\)|\[object Event\])$/.test(e);
    expect(windowErrors.filter((e) => keylessPages === 0 || !ofTheWindow(e))).toEqual([]);
    await page.getByLabel("API key").fill(created.body.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/ui\/jobs$/);
    expect(await page.locator("header .who").textContent()).toContain("browser (read)");
    // A read key: the job list without cancel or retry buttons.
    expect(await page.locator(`tr[data-job="${firstJob}"]`).count()).toBe(1);
    expect(await page.getByRole("button", { name: /^(Cancel|Retry) job/ }).count()).toBe(0);
    const [cookie] = await ctx.cookies();
    expect({ name: cookie!.name, httpOnly: cookie!.httpOnly, sameSite: cookie!.sameSite, path: cookie!.path }).toEqual({
      name: "sitesync_session",
      httpOnly: true,
      sameSite: "Strict",
      path: "/ui",
    });
    expect(await page.evaluate("document.cookie")).toBe("");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/ui\/login$/);
    expect(consoleErrors).toEqual([]);
    expect(offsite).toEqual([]);
  });
});
