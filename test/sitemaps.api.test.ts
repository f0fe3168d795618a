import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { sourceFromConfig } from "../src/sync/source.ts";
import { startWorker, type Worker } from "../src/sync/worker.ts";
import { call } from "./helpers/api.ts";
import { cli } from "./helpers/cli.ts";
import { tempDb } from "./helpers/db.ts";
import { defaultSitemaps, type FakeSitemap } from "./helpers/fake-gsc-resources.ts";
import { startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { addSite, storePageTotals } from "./helpers/rows.ts";
import { waitFor } from "./helpers/wait.ts";

// Sitemaps (sitemaps.list, stored with history) and URL inspection (urlInspection.index.inspect, stored
// over time) through the API, a sync worker in this process and the fake Search Console.

setLogLevel("silent");

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let app: ReturnType<typeof createApp>;
let config: ReturnType<typeof loadConfig>;
const workers: Worker[] = [];
const SITE = "sc-domain:maps.example";
let siteId: number;

const env = (extra: Record<string, string> = {}) =>
  loadConfig([], {
    GSC_API_BASE_URL: fake.url,
    GSC_ACCESS_TOKEN: "test-token",
    SYNC_SOURCE: "gsc",
    GSC_RETRY_BASE_MS: "1",
    GSC_MAX_RETRIES: "0",
    GSC_QUOTA_MAX_WAIT_MS: "0",
    ...extra,
  });

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc();
  config = env();
  app = createApp(t.db, { sync: { maxAttempts: 1 } });
  siteId = await addSite(t.db, SITE);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});

function worker(c = config) {
  const w = startWorker({ db: t.open(), source: sourceFromConfig(c, t.db), pollMs: 20, leaseMs: 5000, retryBaseMs: 50, batchSize: 50 });
  workers.push(w);
  return w;
}

const api = (method: string, path: string, body?: unknown) => call(app, method, path, body);

/** Queues through the API and waits for the job to end; returns the job. */
async function runJob(method: string, path: string, body?: unknown) {
  const r = await api(method, path, body);
  expect(r.status).toBe(202);
  return waitFor(
    async () => {
      const j = (await api("GET", `/api/v1/sync/job/${r.json.job_id}`)).json;
      return ["completed", "failed"].includes(j.status) ? j : null;
    },
    { timeout: 30_000, what: `job ${r.json.job_id}` },
  );
}

describe("sitemaps", () => {
  test("a sitemaps sync stores Search Console's list: counts from int64 strings, contents per type", async () => {
    worker();
    const job = await runJob("POST", `/api/v1/sites/${siteId}/sitemaps/sync`);
    expect(job.status).toBe("completed");
    const r = await api("GET", `/api/v1/sites/${siteId}/sitemaps`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject([
      {
        path: "https://maps.example/sitemap-posts.xml",
        type: "sitemap",
        last_submitted: "2026-11-02T09:30:00.000Z",
        last_downloaded: "2026-12-02T06:00:00.000Z",
        is_pending: false,
        is_sitemaps_index: false,
        warnings: 3,
        errors: 1,
        contents: [
          { type: "web", submitted: 97 },
          { type: "image", submitted: 40 },
        ],
        removed_at: null,
      },
      {
        path: "https://maps.example/sitemap_index.xml",
        is_sitemaps_index: true,
        warnings: 0,
        errors: 0,
        contents: [{ type: "web", submitted: 120 }],
      },
    ]);
    expect(fake.resources.requests.filter((x) => x.kind === "sitemaps.list" && x.site === SITE)).toHaveLength(1);
  });

  test("history keeps each change: an unchanged sitemap adds nothing, a changed one a row, a gone one a removal", async () => {
    worker();
    const [index, posts] = defaultSitemaps(SITE) as [FakeSitemap, FakeSitemap];
    // Google downloaded the posts sitemap again and found the error fixed; the index is unchanged.
    fake.resources.setSitemaps(SITE, [index, { ...posts, lastDownloaded: "2026-12-04T06:00:00.000Z", errors: "0" }]);
    expect((await runJob("POST", `/api/v1/sites/${siteId}/sitemaps/sync`)).status).toBe("completed");
    let h = (await api("GET", `/api/v1/sites/${siteId}/sitemaps/history?path=${encodeURIComponent(posts.path)}`)).json;
    expect(h.map((e: { errors: number; last_downloaded: string; removed: boolean }) => [e.errors, e.last_downloaded, e.removed])).toEqual([
      [0, "2026-12-04T06:00:00.000Z", false],
      [1, "2026-12-02T06:00:00.000Z", false],
    ]);
    // The posts sitemap was deleted in Search Console.
    fake.resources.setSitemaps(SITE, [index]);
    expect((await runJob("POST", `/api/v1/sites/${siteId}/sitemaps/sync`)).status).toBe("completed");
    h = (await api("GET", `/api/v1/sites/${siteId}/sitemaps/history`)).json;
    expect(h.map((e: { path: string; removed: boolean }) => [e.path.split("/").at(-1), e.removed])).toEqual([
      ["sitemap-posts.xml", true],
      ["sitemap-posts.xml", false],
      ["sitemap-posts.xml", false],
      ["sitemap_index.xml", false],
    ]);
    expect((await api("GET", `/api/v1/sites/${siteId}/sitemaps`)).json.map((s: { path: string }) => s.path)).toEqual([index.path]);
    const all = (await api("GET", `/api/v1/sites/${siteId}/sitemaps?include_removed=true`)).json;
    expect(all.find((s: { path: string }) => s.path === posts.path).removed_at).toEqual(expect.any(String));
  });

  test("unknown site: 404; bad parameters: 400", async () => {
    expect((await api("GET", "/api/v1/sites/99999/sitemaps")).status).toBe(404);
    expect((await api("POST", "/api/v1/sites/99999/sitemaps/sync")).status).toBe(404);
    expect((await api("GET", `/api/v1/sites/${siteId}/sitemaps/history?limit=0`)).status).toBe(400);
    expect((await api("GET", `/api/v1/sites/${siteId}/sitemaps?include_removed=maybe`)).status).toBe(400);
  });
});

describe("URL inspection", () => {
  test("given URLs: each result stored (verdict, coverage, canonicals, crawl, robots/fetch); a URL outside the property fails alone", async () => {
    worker();
    const urls = ["https://maps.example/a", "https://maps.example/noindex", "https://elsewhere.example/x"];
    const job = await runJob("POST", `/api/v1/sites/${siteId}/inspections`, { by: "request", urls });
    expect(job.status).toBe("completed");
    const r = await api("GET", `/api/v1/sites/${siteId}/index-status`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject([
      {
        url: "https://maps.example/a",
        verdict: "PASS",
        coverage_state: "Submitted and indexed",
        indexing_state: "INDEXING_ALLOWED",
        robots_txt_state: "ALLOWED",
        page_fetch_state: "SUCCESSFUL",
        last_crawl_time: "2026-12-03T08:15:00Z",
        crawled_as: "MOBILE",
        google_canonical: "https://maps.example/a",
        user_canonical: "https://maps.example/a",
        sitemaps: ["https://maps.example/sitemap-posts.xml"],
        rich_results_verdict: "PASS",
        chosen_by: "request",
      },
      { url: "https://maps.example/noindex", verdict: "FAIL", indexing_state: "BLOCKED_BY_META_TAG", google_canonical: null },
    ]);
    expect((await api("GET", `/api/v1/sites/${siteId}/index-status?verdict=FAIL`)).json.map((x: { url: string }) => x.url)).toEqual([
      "https://maps.example/noindex",
    ]);
  });

  test("over time: a page inspected again (force) keeps both results; the latest is the new one; today's are skipped without force", async () => {
    worker();
    const url = "https://maps.example/a";
    fake.resources.setInspection(url, {
      inspectionResult: {
        inspectionResultLink: "https://search.google.com/x",
        indexStatusResult: {
          verdict: "FAIL",
          coverageState: "Crawled - currently not indexed",
          robotsTxtState: "ALLOWED",
          indexingState: "INDEXING_ALLOWED",
          pageFetchState: "SOFT_404",
          userCanonical: url,
        } as never,
        mobileUsabilityResult: { verdict: "VERDICT_UNSPECIFIED" },
      },
    });
    const before = fake.resources.requests.filter((x) => x.kind === "inspect").length;
    const skipped = await runJob("POST", `/api/v1/sites/${siteId}/inspections`, { by: "request", urls: [url] });
    expect(skipped.status).toBe("completed");
    expect(fake.resources.requests.filter((x) => x.kind === "inspect").length).toBe(before);
    expect((await runJob("POST", `/api/v1/sites/${siteId}/inspections`, { by: "request", urls: [url], force: true })).status).toBe(
      "completed",
    );
    const h = (await api("GET", `/api/v1/sites/${siteId}/index-status/history?url=${encodeURIComponent(url)}`)).json;
    expect(h.map((x: { verdict: string; page_fetch_state: string }) => [x.verdict, x.page_fetch_state])).toEqual([
      ["FAIL", "SOFT_404"],
      ["PASS", "SUCCESSFUL"],
    ]);
    const latest = (await api("GET", `/api/v1/sites/${siteId}/index-status`)).json.find((x: { url: string }) => x.url === url);
    expect(latest).toMatchObject({ verdict: "FAIL", coverage_state: "Crawled - currently not indexed" });
  });

  test("by clicks: the pages with the most clicks (page totals) first, up to the limit", async () => {
    worker();
    const other = await addSite(t.db, "sc-domain:clicks.example");
    const day = addDays(newestDataDay(new Date()), -1);
    await storePageTotals(t.db, other, day, "web", [
      { page: "https://clicks.example/low", clicks: 1, impressions: 10, position: 3 },
      { page: "https://clicks.example/top", clicks: 90, impressions: 100, position: 1 },
      { page: "https://clicks.example/mid", clicks: 40, impressions: 100, position: 2 },
    ]);
    expect((await runJob("POST", `/api/v1/sites/${other}/inspections`, { by: "clicks", limit: 2 })).status).toBe("completed");
    const inspected = fake.resources.requests
      .filter((x) => x.kind === "inspect" && x.site === "sc-domain:clicks.example")
      .map((x) => x.url);
    expect(inspected).toEqual(["https://clicks.example/top", "https://clicks.example/mid"]);
    expect((await api("GET", `/api/v1/sites/${other}/index-status`)).json.map((x: { chosen_by: string }) => x.chosen_by)).toEqual([
      "clicks",
      "clicks",
    ]);
  });

  test("by sitemap: the URLs the site's sitemap files list (an index followed one level down)", async () => {
    worker();
    const other = await addSite(t.db, "sc-domain:bymap.example");
    fake.resources.setSitemapFile("bymap-index.xml", [`${fake.url}/sitemap-files/bymap-posts.xml`], true);
    fake.resources.setSitemapFile("bymap-posts.xml", [
      "https://bymap.example/p/1",
      "https://bymap.example/p/2",
      "https://bymap.example/p/3",
    ]);
    const base = defaultSitemaps("sc-domain:bymap.example")[0]!;
    fake.resources.setSitemaps("sc-domain:bymap.example", [{ ...base, path: `${fake.url}/sitemap-files/bymap-index.xml` }]);
    expect((await runJob("POST", `/api/v1/sites/${other}/sitemaps/sync`)).status).toBe("completed");
    expect((await runJob("POST", `/api/v1/sites/${other}/inspections`, { by: "sitemap", limit: 2 })).status).toBe("completed");
    const rows = (await api("GET", `/api/v1/sites/${other}/index-status`)).json;
    expect(rows.map((x: { url: string; chosen_by: string }) => [x.url, x.chosen_by])).toEqual([
      ["https://bymap.example/p/1", "sitemap"],
      ["https://bymap.example/p/2", "sitemap"],
    ]);
  });

  test("within the inspection quota: a day budget of 3 inspects exactly 3 pages, then the task stops for quota", async () => {
    worker(env({ GSC_INSPECT_PER_DAY: "3" }));
    const other = await addSite(t.db, "sc-domain:budget.example");
    const urls = Array.from({ length: 8 }, (_, i) => `https://budget.example/${i}`);
    const job = await runJob("POST", `/api/v1/sites/${other}/inspections`, { by: "request", urls });
    expect(job.status).toBe("failed");
    expect(job.error).toContain("quota of 3 per day for URL inspection of sc-domain:budget.example");
    expect(fake.resources.requests.filter((x) => x.kind === "inspect" && x.site === "sc-domain:budget.example")).toHaveLength(3);
    expect((await api("GET", `/api/v1/sites/${other}/index-status`)).json).toHaveLength(3);
  });

  test("bad requests: 400 (urls without by=request, by=request without urls, not a URL, unknown field); unknown site 404", async () => {
    const cases: [unknown, number][] = [
      [{ by: "clicks", urls: ["https://maps.example/a"] }, 400],
      [{ by: "request" }, 400],
      [{ by: "request", urls: ["not a url"] }, 400],
      [{ by: "clicks", extra: 1 }, 400],
      [{ by: "everything" }, 400],
    ];
    for (const [body, status] of cases)
      expect({ body, status: (await api("POST", `/api/v1/sites/${siteId}/inspections`, body)).status }).toEqual({ body, status });
    expect((await api("POST", "/api/v1/sites/99999/inspections", { by: "clicks" })).status).toBe(404);
    expect((await api("GET", `/api/v1/sites/${siteId}/index-status/history`)).status).toBe(400);
  });
});

describe("MCP tools", () => {
  const tool = async (name: string, args: Record<string, unknown>) => {
    const r = await app.request("/mcp", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }),
    });
    expect(r.status).toBe(200);
    return ((await r.json()) as { result: { structuredContent: any; isError?: boolean } }).result;
  };

  test("get_sitemaps and get_index_status answer from the stored results (by hostname, with history / one page)", async () => {
    const maps = await tool("get_sitemaps", { hostname: "maps.example", history: true });
    expect(maps.structuredContent.site_id).toBe(siteId);
    expect(maps.structuredContent.sitemaps.map((s: { path: string }) => s.path)).toEqual(["https://maps.example/sitemap_index.xml"]);
    expect(maps.structuredContent.history.length).toBeGreaterThanOrEqual(4);
    const status = await tool("get_index_status", { site_id: siteId, verdict: "FAIL" });
    expect(status.structuredContent.pages.map((p: { url: string }) => p.url).sort()).toEqual([
      "https://maps.example/a",
      "https://maps.example/noindex",
    ]);
    const one = await tool("get_index_status", { site_id: siteId, url: "https://maps.example/a" });
    expect(one.structuredContent.history.map((h: { verdict: string }) => h.verdict)).toEqual(["FAIL", "PASS"]);
  });
});

describe("CLI", () => {
  test("sitemaps, sitemaps --sync, index-status (table, --json, one page), index-status --inspect request", async () => {
    worker();
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => app.fetch(req) });
    const env = { SITESYNC_URL: server.url.origin };
    try {
      const maps = await cli(["sitemaps", "maps.example"], { env });
      expect(maps).toMatchObject({ code: 0, stderr: "" });
      expect(maps.stdout).toContain("https://maps.example/sitemap_index.xml");
      expect(maps.stdout).toContain("web 120");
      const queued = await cli(["sitemaps", "maps.example", "--sync", "--json"], { env });
      expect(queued.code).toBe(0);
      expect(JSON.parse(queued.stdout)).toMatchObject({ job_id: expect.any(Number) });
      const latest = await cli(["index-status", "maps.example", "--json"], { env });
      expect(JSON.parse(latest.stdout).map((x: { url: string }) => x.url)).toContain("https://maps.example/noindex");
      const text = await cli(["index-status", "maps.example", "--verdict", "FAIL"], { env });
      expect(text.stdout).toContain("https://maps.example/noindex");
      expect(text.stdout).toContain("FAIL");
      const one = await cli(["index-status", "maps.example", "https://maps.example/a", "--json"], { env });
      expect(JSON.parse(one.stdout).map((x: { verdict: string }) => x.verdict)).toEqual(["FAIL", "PASS"]);
      const inspect = await cli(["index-status", "maps.example", "https://maps.example/cli", "--inspect", "request", "--json"], { env });
      expect(inspect.code).toBe(0);
      const job = JSON.parse(inspect.stdout).job_id as number;
      await waitFor(async () => (await api("GET", `/api/v1/sync/job/${job}`)).json.status === "completed", {
        timeout: 30_000,
        what: "the inspection",
      });
      expect((await api("GET", `/api/v1/sites/${siteId}/index-status`)).json.map((x: { url: string }) => x.url)).toContain(
        "https://maps.example/cli",
      );
    } finally {
      server.stop(true);
    }
  });
});

describe("dashboard", () => {
  test("the site page shows the stored sitemaps and each page's latest index status", async () => {
    const r = await app.request(`/ui/sites/${siteId}`);
    expect(r.status).toBe(200);
    const html = await r.text();
    expect(html).toContain('id="h-sitemaps"');
    expect(html).toContain("https://maps.example/sitemap_index.xml");
    expect(html).toContain('id="h-index"');
    expect(html).toContain("https://maps.example/noindex");
    expect(html).toContain("Excluded by ‘noindex’ tag");
    expect(html).toMatch(/\d+ pages inspected, \d+ not passing/);
    // A site with nothing stored says how to get it.
    const empty = await addSite(t.db, "sc-domain:empty.example");
    expect(await (await app.request(`/ui/sites/${empty}`)).text()).toContain("No sitemaps stored yet");
  });
});

describe("schedule", () => {
  test("scheduleSitemapsSyncs: one sitemaps_sync per active site and day, however many schedulers run", async () => {
    const { scheduleSitemapsSyncs } = await import("../src/sync/scheduler.ts");
    const at = new Date();
    const made = await Promise.all([t.db, t.open(), t.open()].map((db) => scheduleSitemapsSyncs(db, { maxAttempts: 1 }, at)));
    const sites = (await api("GET", "/api/v1/sites?active_only=true")).json.length;
    expect(made.reduce((a, b) => a + b, 0)).toBe(sites);
    expect(await scheduleSitemapsSyncs(t.db, { maxAttempts: 1 }, at)).toBe(0);
  });
});
