import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { addDays } from "../sync/dates.ts";
import {
  comparePeriods,
  defaultPeriods,
  findBrandSplit,
  findCannibalization,
  findDecayingPages,
  findNewestDataDay,
  findOverview,
  findTop,
  listBrandTerms,
  type Filters,
} from "./queries.ts";
import { assertAnswerable, findPageTotals, type GrainFilters } from "../analytics/totals.ts";
import { sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import { countLatestInspections, findInspectedUrls, listLatestNotPassing } from "../inspection/queries.ts";
import { insightFilters, type WindowInput } from "./window.ts";
import { newestDataDay } from "../sync/dates.ts";

// Each insight as one answer object: the dashboard renders it, the API returns it, the CLI prints the
// API's, the MCP tools return it. One function per insight, so every surface shows the same numbers.

async function siteOr404(db: Db, siteId: number) {
  const site = await findSiteById(db, siteId);
  if (!site) throw siteNotFound(siteId);
  return site;
}

const windowOf = (f: Filters) => ({
  site_id: f.siteId,
  start: f.start,
  end: f.end,
  search_type: f.searchType,
  device: f.device ?? null,
  country: f.country ?? null,
});

/** The grain filters of an insight's filters. */
const grainOf = (f: Filters): GrainFilters => ({
  ...f,
  searchType: f.searchType as SearchTypeCode,
  device: f.device ?? null,
  country: f.country ?? null,
});

/** Property overview: totals, distinct queries and pages, the daily trend (gaps as gaps). */
export async function overviewInsight(db: Db, siteId: number, w: WindowInput) {
  await siteOr404(db, siteId);
  const f = await insightFilters(db, siteId, w);
  return { ...windowOf(f), ...(await findOverview(db, f)) };
}

/** Top queries or pages. */
export async function topInsight(
  db: Db,
  siteId: number,
  w: WindowInput & { by: "query" | "page"; order?: "clicks" | "impressions"; contains?: string; limit: number },
) {
  await siteOr404(db, siteId);
  const f = await insightFilters(db, siteId, w);
  const rows = await findTop(db, { ...f, by: w.by, order: w.order, contains: w.contains ?? null, limit: w.limit });
  return { ...windowOf(f), by: w.by, order: w.order ?? "clicks", rows };
}

export type CompareInput = {
  by: "query" | "page";
  current_start?: string;
  current_end?: string;
  previous_start?: string;
  previous_end?: string;
  days?: number;
  search_type?: string;
  device?: string;
  country?: string;
  limit: number;
};

/** Two periods compared (default: the last 28 days with data vs the 28 before): winners and losers by clicks, position moves. */
export async function compareInsight(db: Db, siteId: number, c: CompareInput) {
  await siteOr404(db, siteId);
  const searchType = c.search_type ?? "web";
  const days = c.days ?? 28;
  const end = c.current_end ?? (await findNewestDataDay(db, siteId, searchType)) ?? newestDataDay();
  const d = defaultPeriods(end, days);
  const current = { start: c.current_start ?? d.current.start, end };
  const previous = { start: c.previous_start ?? d.previous.start, end: c.previous_end ?? d.previous.end };
  if (c.current_start && !c.previous_start && !c.previous_end) {
    // Only the current period given: the previous is as long, just before it.
    const len = Math.round((Date.parse(current.end) - Date.parse(current.start)) / 86_400_000) + 1;
    previous.end = addDays(current.start, -1);
    previous.start = addDays(current.start, -len);
  }
  for (const [name, p] of [
    ["current", current],
    ["previous", previous],
  ] as const) {
    if (p.start > p.end)
      throw new ApiError("validation_failed", `the ${name} period starts after it ends`, [{ path: `${name}_start`, message: "after end" }]);
  }
  const r = await comparePeriods(db, {
    siteId,
    searchType,
    device: c.device ?? null,
    country: c.country ?? null,
    by: c.by,
    current,
    previous,
    limit: c.limit,
  });
  return { site_id: siteId, search_type: searchType, device: c.device ?? null, country: c.country ?? null, ...r };
}

/** Content decay: pages losing clicks over the last N weeks. */
export async function decayInsight(
  db: Db,
  siteId: number,
  o: {
    end?: string;
    weeks: number;
    min_drop: number;
    min_clicks: number;
    search_type?: string;
    device?: string;
    country?: string;
    limit: number;
  },
) {
  await siteOr404(db, siteId);
  const searchType = o.search_type ?? "web";
  const end = o.end ?? (await findNewestDataDay(db, siteId, searchType)) ?? newestDataDay();
  const r = await findDecayingPages(db, {
    siteId,
    end,
    searchType,
    device: o.device ?? null,
    country: o.country ?? null,
    weeks: o.weeks,
    minDrop: o.min_drop,
    minClicks: o.min_clicks,
    limit: o.limit,
  });
  return {
    site_id: siteId,
    search_type: searchType,
    device: o.device ?? null,
    country: o.country ?? null,
    min_drop: o.min_drop,
    min_clicks: o.min_clicks,
    ...r,
  };
}

/** Cannibalization: queries whose impressions several pages share. */
export async function cannibalizationInsight(
  db: Db,
  siteId: number,
  w: WindowInput & { min_share: number; min_impressions: number; limit: number },
) {
  await siteOr404(db, siteId);
  const f = await insightFilters(db, siteId, w);
  // Query level: the query detail has no country (a country filter is a 400, never silently ignored).
  assertAnswerable(grainOf(f), "query");
  const queries = await findCannibalization(db, { ...f, minShare: w.min_share, minImpressions: w.min_impressions, limit: w.limit });
  return { ...windowOf(f), min_share: w.min_share, min_impressions: w.min_impressions, queries };
}

/** Brand vs non-brand, with the site's stored brand terms. */
export async function brandInsight(db: Db, siteId: number, w: WindowInput) {
  await siteOr404(db, siteId);
  const f = await insightFilters(db, siteId, w);
  assertAnswerable(grainOf(f), "query");
  const terms = await listBrandTerms(db, siteId);
  return { ...windowOf(f), ...(await findBrandSplit(db, { ...f, terms })) };
}

/** Most not-passing pages whose clicks are looked up (the newest inspections, by URL). */
export const INDEX_NOT_PASSING_MAX = 5000;
/** The top pages by clicks checked for never having been inspected. */
const INDEX_TOP_PAGES = 100;

/**
 * Index status (URL inspection) beside the traffic: pages per verdict and coverage state (each page's
 * newest inspection), the pages whose newest verdict is not PASS with their clicks and impressions in the
 * window (most clicks first: what losing them from the index costs), and which of the window's top pages
 * by clicks were never inspected.
 */
export async function indexInsight(db: Db, siteId: number, w: WindowInput & { limit: number }) {
  await siteOr404(db, siteId);
  const f = await insightFilters(db, siteId, w);
  const grain = grainOf(f);
  const [counts, failing, top] = await Promise.all([
    countLatestInspections(db, siteId),
    listLatestNotPassing(db, siteId, INDEX_NOT_PASSING_MAX),
    findPageTotals(db, grain, { limit: INDEX_TOP_PAGES }),
  ]);
  const sums = failing.length > 0 ? await findPageTotals(db, grain, { pages: failing.map((i) => i.url) }) : [];
  const byPage = new Map(sums.map((s) => [s.page, s]));
  const pages = failing
    .map((i) => {
      const s = byPage.get(i.url);
      const clicks = s?.clicks ?? 0;
      const impressions = s?.impressions ?? 0;
      return {
        page: i.url,
        clicks,
        impressions,
        // Search Console's formulas: CTR = Σclicks / Σimpressions, position weighted by impressions.
        ctr: impressions > 0 ? Math.round((clicks / impressions) * 1e4) / 1e4 : null,
        position: impressions > 0 ? Math.round(((s?.sumPosition ?? 0) / sumPositionScale / impressions) * 100) / 100 : null,
        verdict: i.verdict,
        coverage_state: i.coverage_state,
        indexing_state: i.indexing_state,
        robots_txt_state: i.robots_txt_state,
        page_fetch_state: i.page_fetch_state,
        google_canonical: i.google_canonical,
        user_canonical: i.user_canonical,
        last_crawl_time: i.last_crawl_time,
        inspected_at: i.inspected_at,
      };
    })
    .sort((a, b) => b.clicks - a.clicks || b.impressions - a.impressions || (a.page < b.page ? -1 : 1));
  const inspected = await findInspectedUrls(
    db,
    siteId,
    top.map((p) => p.page),
  );
  const uninspected = top.filter((p) => !inspected.has(p.page));
  return {
    ...windowOf(f),
    ...counts,
    not_passing_pages: failing.length,
    not_passing_with_clicks: pages.filter((p) => p.clicks > 0).length,
    not_passing_clicks: pages.reduce((n, p) => n + p.clicks, 0),
    pages: pages.slice(0, w.limit),
    top_pages_checked: top.length,
    top_pages_uninspected: uninspected.length,
    uninspected_top_pages: uninspected.slice(0, 10).map((p) => ({ page: p.page, clicks: p.clicks, impressions: p.impressions })),
  };
}
