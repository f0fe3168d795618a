import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { storeSitemaps } from "../src/sitemaps/queries.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { haveChromium, launchChromium, localOnlyContext, newTab, type Tab } from "./helpers/browser.ts";
import { cli } from "./helpers/cli.ts";
import { stableNow } from "./helpers/day.ts";
import { withDb } from "./helpers/observe.ts";
import { addSite, storeCompleteness, storeInspection, storePageTotals, storePropertyTotals, storeRows } from "./helpers/rows.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(90_000);

// What the people who read the data find in the dashboard, in a real browser (Debian's chromium through
// playwright-core) against the real service: from /ui alone, the winners and losers of the last 28 days
// against the 28 before, the decaying pages and the cannibalized queries, with the numbers the API, MCP and
// CLI give (issue 20's "done when"); the insights' country field and index status; the site page's
// completeness marks, sitemaps and index status (issue 17).

const chromiumHere = haveChromium("ui.insights.browser");
const screenshots = process.env.SCREENSHOTS === "1" ? join(import.meta.dir, "../docs/screenshots") : null;

const E = newestDataDay(await stableNow()); // the newest day with data: every default window ends here
const H = "https://acme.example";
type Row = {
  day: string;
  page: string;
  query: string;
  device: string;
  country: string;
  clicks: number;
  impressions: number;
  position: number;
};
const rows: Row[] = [];
const add = (
  day: number,
  page: string,
  query: string,
  clicks: number,
  impressions: number,
  position: number,
  country = "usa",
  device = "DESKTOP",
) => rows.push({ day: addDays(E, day), page: `${H}${page}`, query, device, country, clicks, impressions, position });
// /a gains, /b loses, /c decays over 8 weeks, "shared q" is split between /d and /e.
add(-40, "/a", "alpha", 10, 100, 5);
add(-5, "/a", "alpha", 50, 200, 3);
add(-5, "/a", "alpha", 4, 50, 8, "deu", "MOBILE");
add(-40, "/b", "beta acme", 60, 300, 2);
add(-5, "/b", "beta acme", 20, 300, 4);
for (let w = 0; w < 8; w++) add(-55 + 7 * w, "/c", "gamma", 100 - 10 * w, 1000, 6);
add(-3, "/d", "shared q", 5, 100, 3);
add(-3, "/e", "shared q", 2, 60, 7, "deu");
add(-3, "/a", "shared q", 0, 5, 9);
add(0, "/a", "acme shop", 3, 30, 1);

/** Rows summed by a key: clicks, impressions, position weighted by impressions (Google's position per group). */
function totals<K extends string>(list: Row[], key: (r: Row) => K) {
  const m = new Map<K, Row[]>();
  for (const r of list) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
  return [...m.values()].map((g) => {
    const impressions = g.reduce((a, r) => a + r.impressions, 0);
    return {
      ...g[0]!,
      clicks: g.reduce((a, r) => a + r.clicks, 0),
      impressions,
      position: impressions ? g.reduce((a, r) => a + r.position * r.impressions, 0) / impressions : 0,
    };
  });
}

describe.skipIf(!chromiumHere)("insights in chromium", () => {
  let s: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  // The one page every test opens its paths in (a new page is a new renderer: see newTab).
  let tab: Tab;
  let siteId = 0;
  const offsite: string[] = [];
  const consoleErrors: string[] = [];

  const api = async (path: string) => {
    const r = await request(s.url, "GET", `/api/v1/sites/${siteId}/${path}`);
    expect({ path, status: r.status }).toEqual({ path, status: 200 });
    return r.body;
  };
  const mcp = async (name: string, args: Record<string, unknown>) => {
    const r = await request(
      s.url,
      "POST",
      "/mcp",
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: { site_id: siteId, ...args } } },
      { accept: "application/json, text/event-stream" },
    );
    expect(r.body.result.isError).toBeUndefined();
    return r.body.result.structuredContent;
  };

  beforeAll(async () => {
    s = await startServer({ workers: 1, syncWorkers: 0, env: { SYNC_SCHEDULER: "false" } });
    await withDb(s.dbPath, async (db) => {
      siteId = await addSite(db, "sc-domain:acme.example", "Acme");
      for (const [day, list] of Map.groupBy(rows, (r) => r.day)) {
        // Google's grains of the day (no anonymized queries here): the detail, the property and page totals.
        await storeRows(
          db,
          siteId,
          day,
          "web",
          list.map((r) => ({ ...r, ctr: r.clicks / r.impressions })),
        );
        await storePropertyTotals(
          db,
          siteId,
          day,
          "web",
          totals(list, (r) => `${r.country} ${r.device}`),
          { anonymizedShare: 0 },
        );
        await storePageTotals(
          db,
          siteId,
          day,
          "web",
          totals(list, (r) => `${r.page} ${r.country} ${r.device}`),
        );
      }
      // Completeness marks on three days without data: cut at the row cap, provisional, derived.
      await storeCompleteness(db, siteId, addDays(E, -61), "web", { detail_rows: 50_000, detail_truncated: true, anonymized_share: 0.125 });
      await storeCompleteness(db, siteId, addDays(E, -62), "web", { data_state: "provisional", detail_rows: 12 });
      await storeCompleteness(db, siteId, addDays(E, -63), "web", { derived: true });
      await storeCompleteness(db, siteId, addDays(E, -63), "image", { detail_rows: 3 });
      await db.tx((tx) =>
        storeSitemaps(
          tx,
          db.t,
          siteId,
          [
            {
              path: `${H}/sitemap.xml`,
              lastDownloaded: new Date(Date.now() - 3_600_000).toISOString(),
              isPending: false,
              isSitemapsIndex: false,
              warnings: 1,
              errors: 2,
              contents: [{ type: "web", submitted: 40 }],
            },
          ],
          new Date().toISOString(),
        ),
      );
      await storeInspection(
        db,
        siteId,
        `${H}/a`,
        { verdict: "PASS", coverageState: "Submitted and indexed" },
        `${addDays(E, -20)}T10:00:00.000Z`,
      );
      await storeInspection(db, siteId, `${H}/a`, { verdict: "FAIL", coverageState: "Crawled - currently not indexed" });
      await storeInspection(db, siteId, `${H}/c`, { verdict: "PASS", coverageState: "Submitted and indexed" });
      await storeInspection(db, siteId, `${H}/e`, {
        verdict: "NEUTRAL",
        coverageState: "Excluded by 'noindex' tag",
        googleCanonical: `${H}/d`,
      });
    });
    browser = await launchChromium();
    context = await localOnlyContext(browser, s.url, offsite);
    tab = await newTab(context, s.url, consoleErrors);
  });

  afterAll(async () => {
    await browser?.close();
    await s?.cleanup();
  });

  async function open(path: string): Promise<Page> {
    return tab.open(path);
  }

  async function shot(page: Page, name: string) {
    if (!screenshots) return;
    mkdirSync(screenshots, { recursive: true });
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  }

  /** A table's rows as [data-key, the given attribute, the row's visible text]. */
  const tableRows = (page: Page, selector: string, attr: string) =>
    page
      .locator(`${selector} tbody tr`)
      .evaluateAll(
        (trs, a) => trs.map((tr) => [tr.getAttribute("data-key"), tr.getAttribute(a), (tr as unknown as { innerText: string }).innerText]),
        attr,
      );

  test("from /ui alone: winners and losers (28 days vs the 28 before), decaying pages, cannibalized queries, as the API, MCP and CLI say", async () => {
    const page = await open("/ui");
    await page.getByRole("link", { name: "Insights" }).click();
    await page.waitForURL(/\/ui\/insights/);
    await page.locator('select[name="site_id"]').selectOption({ label: "Acme" });
    await page.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(new RegExp(`site_id=${siteId}`));

    const compare = await api("insights/compare?by=page&limit=10");
    expect(await mcp("insight_compare", { by: "page", limit: 10 })).toEqual(compare);
    const fromCli = await cli(["--json", "insights", String(siteId), "--kind", "compare", "--by", "page", "--limit", "10"], {
      env: { SITESYNC_URL: s.url },
    });
    expect(JSON.parse(fromCli.stdout)).toEqual(compare);
    // 28 days against the 28 just before, ending at the newest day with data.
    expect([compare.current.start, compare.current.end, compare.previous.start, compare.previous.end]).toEqual([
      addDays(E, -27),
      E,
      addDays(E, -55),
      addDays(E, -28),
    ]);
    expect(await page.locator("#h-compare").innerText()).toBe(
      `Winners and losers: ${addDays(E, -27)} – ${E} vs ${addDays(E, -55)} – ${addDays(E, -28)}`,
    );
    const sign = (n: number) => (n > 0 ? `+${n}` : String(n));
    for (const [kind, list] of [
      ["winners", compare.winners],
      ["losers", compare.losers],
    ] as const) {
      const shown = await tableRows(page, `table.changes.${kind}`, "data-clicks-change");
      expect(shown.map(([k, c]) => [k, Number(c)])).toEqual(
        list.map((w: { page: string; clicks_change: number }) => [w.page, w.clicks_change]),
      );
      for (const [i, w] of list.entries()) {
        expect(shown[i]![2]).toContain(`${w.previous.clicks}\t${w.current.clicks}\t${sign(w.clicks_change)}`);
      }
    }
    expect(compare.winners[0]).toMatchObject({ page: `${H}/a`, clicks_change: 50 + 4 + 3 - 10 });
    expect(compare.losers.map((l: { page: string }) => l.page)).toEqual([`${H}/c`, `${H}/b`]);

    const decay = await api("insights/decay?weeks=8&min_drop=0.2&min_clicks=10&limit=20");
    expect(await mcp("insight_decay", { weeks: 8, min_drop: 0.2, min_clicks: 10, limit: 20 })).toEqual(decay);
    const decaying = await tableRows(page, "table.decay", "data-clicks-lost");
    expect(decaying.map(([k, lost]) => [k, Number(lost)])).toEqual(
      decay.pages.map((p: { page: string; clicks_lost: number }) => [p.page, p.clicks_lost]),
    );
    expect(decay.pages.map((p: { page: string; weekly_clicks: number[] }) => [p.page, p.weekly_clicks])).toEqual([
      [`${H}/c`, [100, 90, 80, 70, 60, 50, 40, 30]],
    ]);
    expect(await page.locator("table.decay svg.weekbars").getAttribute("aria-label")).toBe("100, 90, 80, 70, 60, 50, 40, 30");

    const cannibal = await api("insights/cannibalization?min_share=0.1&min_impressions=50&limit=20");
    expect(await mcp("insight_cannibalization", { min_share: 0.1, min_impressions: 50, limit: 20 })).toEqual(cannibal);
    const shared = await tableRows(page, "table.cannibal", "data-pages");
    expect(shared.map(([k, n]) => [k, Number(n)])).toEqual(
      cannibal.queries.map((q: { query: string; competing_pages: number }) => [q.query, q.competing_pages]),
    );
    expect(shared[0]![2]).toContain(`/d (${((100 / 165) * 100).toFixed(1)}%`);
  });

  test("the country field narrows totals and page reports like the API; the query reports say why they are absent", async () => {
    const page = await open(`/ui/insights?site_id=${siteId}`);
    await page.getByLabel("Country").fill("us");
    await page.getByRole("button", { name: "Show" }).click();
    // Two letters do not pass the field's pattern: the browser keeps the form (no request with a bad code).
    expect(
      await page
        .getByLabel("Country")
        .evaluate((i) => (i as unknown as { validity: { patternMismatch: boolean } }).validity.patternMismatch),
    ).toBe(true);
    expect(page.url()).not.toContain("country=");
    await page.getByLabel("Country").fill("DEU");
    await page.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(/country=DEU/);
    const o = await api("insights/overview?country=deu");
    expect(o).toMatchObject({ clicks: 4 + 2, impressions: 50 + 60 });
    expect(await page.locator('dd[data-stat="clicks"]').innerText()).toBe(String(o.clicks));
    expect(await page.locator('dd[data-stat="impressions"]').innerText()).toBe(String(o.impressions));
    expect(await page.getByLabel("Country").inputValue()).toBe("deu");
    const top = await api("insights/top?by=page&country=deu&limit=10");
    const shown = await tableRows(page, "table.top-page", "data-clicks");
    expect(shown.map(([k, c]) => [k, Number(c)])).toEqual(top.rows.map((r: { page: string; clicks: number }) => [r.page, r.clicks]));
    expect(await page.locator("[data-insight-unavailable=country]").count()).toBe(3);
    expect(await page.locator("[data-insight-unavailable=country]").first().innerText()).toContain("stored without country");
    // Discover has no query dimension: the query reports say so.
    await page.getByLabel("Country").fill("");
    await page.getByLabel("Search type").selectOption("discover");
    await page.getByRole("button", { name: "Show" }).click();
    await page.waitForURL(/search_type=discover/);
    expect(await page.locator("[data-insight-unavailable=search_type]").count()).toBe(3);
    expect(await page.locator("[data-insight-unavailable=search_type]").first().innerText()).toContain("no query dimension");
    // In the same page: a page that comes with status 400, which chromium reports on the console (expected here, and only here).
    const errorsBefore = consoleErrors.length;
    const logged = page.waitForEvent("console", (m) => m.type() === "error");
    expect((await page.goto(`${s.url}/ui/insights?site_id=${siteId}&country=us`))?.status()).toBe(400);
    expect(await page.locator("body").innerText()).toContain("ISO 3166-1 alpha-3");
    await logged;
    expect(consoleErrors.splice(errorsBefore)).toEqual([expect.stringContaining("status of 400 (Bad Request)")]);
  });

  test("index status in insights: pages per coverage state, the not-indexed pages by clicks, top pages never inspected", async () => {
    const page = await open(`/ui/insights?site_id=${siteId}`);
    const x = await api("insights/index?limit=20");
    expect(await mcp("insight_index", { limit: 20 })).toEqual(x);
    const section = page.locator('section[data-insight="index"]');
    expect(await section.getAttribute("data-not-passing")).toBe("2");
    expect(await section.innerText()).toContain(`3 pages inspected`);
    expect(await section.innerText()).toContain(`2 not passing: 2 of them had ${x.not_passing_clicks} clicks`);
    const states = await page
      .locator("table.coverage-states tbody tr")
      .evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-coverage"), Number(tr.getAttribute("data-pages"))]));
    expect(states).toEqual(x.by_coverage.map((r: { coverage_state: string; pages: number }) => [r.coverage_state, r.pages]));
    const failing = await tableRows(page, "table.not-indexed", "data-clicks");
    expect(failing.map(([k, c]) => [k, Number(c)])).toEqual([
      [`${H}/a`, 50 + 4 + 3],
      [`${H}/e`, 2],
    ]);
    expect(failing[0]![2]).toContain("Crawled - currently not indexed");
    expect(await page.locator("ul.uninspected li").allInnerTexts()).toEqual(["/b (20 clicks)", "/d (5 clicks)"]);
    await section.scrollIntoViewIfNeeded();
    await shot(page, "insights-index");
  });

  test("the site page: completeness marks in the calendar (as MCP get_sync_status has them), sitemaps and index status", async () => {
    const page = await open(`/ui/sites/${siteId}`);
    const status = await mcp("get_sync_status", { end: E, days: 91 });
    const marks = await page
      .locator("td.day[data-completeness]")
      .evaluateAll((tds) =>
        tds.map((td) => [td.getAttribute("data-date"), td.getAttribute("data-completeness"), td.querySelector(".mark")?.textContent]),
      );
    const symbol: Record<string, string> = { complete: "✓", truncated: "!", provisional: "~", derived: "Σ" };
    expect(marks).toEqual(status.days.map((d: { date: string; mark: string }) => [d.date, d.mark, symbol[d.mark]]));
    expect(Object.fromEntries(marks.filter(([d]) => d! < addDays(E, -60)).map(([d, m]) => [d, m]))).toEqual({
      [addDays(E, -63)]: "derived",
      [addDays(E, -62)]: "provisional",
      [addDays(E, -61)]: "truncated",
    });
    expect(marks.filter(([, m]) => m === "complete")).toHaveLength(new Set(rows.map((r) => r.day)).size);
    // The tooltip names each search type's details; the legend says what each mark means.
    const cut = page.locator(`td[data-date="${addDays(E, -61)}"]`);
    expect(await cut.getAttribute("title")).toContain("web truncated, 50,000 query rows (cut at the cap)");
    expect(await cut.getAttribute("title")).toContain("12.5 % of clicks from anonymized queries");
    expect(await page.locator(`td[data-date="${addDays(E, -63)}"]`).getAttribute("title")).toContain("image complete");
    const legend = await page.locator(".calendar .legend").innerText();
    for (const words of ["complete:", "truncated:", "provisional:", "derived:"]) expect(legend).toContain(words);
    expect(await page.locator(".calendar caption").innerText()).toContain(
      `${new Set(rows.map((r) => r.day)).size} complete, 1 truncated, 1 provisional, 1 derived`,
    );
    // The marks are visible, inside their cells. boundingBox does not wait: a cell swapped in again meanwhile (the page's
    // live updates) read null once (CI-6 of stop 41, passed alone): wait for both to be laid out first.
    await cut.locator(".mark").waitFor({ state: "visible" });
    const box = await cut.boundingBox();
    const markBox = await cut.locator(".mark").boundingBox();
    expect(markBox!.x >= box!.x && markBox!.x + markBox!.width <= box!.x + box!.width + 0.5).toBe(true);
    expect(markBox!.height).toBeGreaterThan(4);

    const maps = await page.locator("table.sitemaps tbody tr").allInnerTexts();
    expect(maps).toHaveLength(1);
    expect(maps[0]).toContain(`${H}/sitemap.xml`);
    expect(maps[0]).toMatch(/\t2\t1\tweb 40\t1h( \d+m)? ago/);
    const idx = await page.locator("table.index-status tbody tr").allInnerTexts();
    const latest = await api("index-status");
    expect(idx).toHaveLength(latest.length);
    expect(idx.map((t) => t.split("\t")[0])).toEqual(latest.map((i: { url: string }) => i.url));
    expect(await page.locator("#h-index + p").innerText()).toBe("3 pages inspected, 2 not passing.");
    expect(idx.find((t) => t.startsWith(`${H}/e`))).toContain(`${H}/d`);
    await page.locator(".calendar").scrollIntoViewIfNeeded();
    await shot(page, "site-completeness");
  });

  test("no console errors, nothing requested from another server", () => {
    expect(consoleErrors).toEqual([]);
    expect(offsite).toEqual([]);
  });
});
