import { and, desc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import type { Db, Q } from "../db/index.ts";
import type { UrlInspectionRow } from "../db/model.ts";
import { addDays, newestDataDay } from "../sync/dates.ts";
import { dayNumber } from "../sync/grains.ts";
import type { GscInspection } from "../sync/gsc/resources.ts";

// URL inspection results over time (gsc_url_inspections): one row per inspection; a page's newest row is
// its current index status.

/** How a page came to be inspected. */
export const inspectionChoices = ["clicks", "sitemap", "request"] as const;
export type InspectionChoice = (typeof inspectionChoices)[number];

/** Stores one inspection result (inside a task's write). */
export async function insertInspection(
  tx: Q,
  t: Db["t"],
  siteId: number,
  url: string,
  r: GscInspection,
  chosenBy: InspectionChoice,
  now: string,
) {
  const s = r.indexStatusResult;
  await tx.insert(t.gscUrlInspections).values({
    site_id: siteId,
    url,
    inspected_at: now,
    verdict: s.verdict ?? null,
    coverage_state: s.coverageState ?? null,
    indexing_state: s.indexingState ?? null,
    robots_txt_state: s.robotsTxtState ?? null,
    page_fetch_state: s.pageFetchState ?? null,
    last_crawl_time: s.lastCrawlTime ?? null,
    crawled_as: s.crawledAs ?? null,
    google_canonical: s.googleCanonical ?? null,
    user_canonical: s.userCanonical ?? null,
    sitemaps: s.sitemap,
    referring_urls: s.referringUrls,
    mobile_verdict: r.mobileUsabilityResult?.verdict ?? null,
    rich_results_verdict: r.richResultsResult?.verdict ?? null,
    inspection_link: r.inspectionResultLink ?? null,
    chosen_by: chosenBy,
  });
}

const asRow = (r: Record<string, unknown>) => ({ ...r, id: Number(r.id) }) as UrlInspectionRow;

/** Each inspected page's newest result for a site, by URL; `verdict` filters. */
export async function listLatestInspections(
  db: Db,
  siteId: number,
  opts: { limit: number; verdict?: string },
): Promise<UrlInspectionRow[]> {
  const { gscUrlInspections: i } = db.t;
  const newest = db.q
    .select({ id: sql<number>`max(${i.id})`.as("id") })
    .from(i)
    .where(eq(i.site_id, siteId))
    .groupBy(i.url);
  const conds = [inArray(i.id, newest)];
  if (opts.verdict) conds.push(eq(i.verdict, opts.verdict));
  const rows = await db.q
    .select()
    .from(i)
    .where(and(...conds))
    .orderBy(i.url)
    .limit(opts.limit);
  return rows.map(asRow);
}

/** One page's inspections, newest first. */
export async function listInspectionHistory(db: Db, siteId: number, url: string, limit: number): Promise<UrlInspectionRow[]> {
  const { gscUrlInspections: i } = db.t;
  const rows = await db.q
    .select()
    .from(i)
    .where(and(eq(i.site_id, siteId), eq(i.url, url)))
    .orderBy(desc(i.id))
    .limit(limit);
  return rows.map(asRow);
}

/** URLs inspected for a site since `since` (ISO time): a task skips those already inspected today. */
export async function listInspectedSince(db: Db, siteId: number, since: string): Promise<Set<string>> {
  const { gscUrlInspections: i } = db.t;
  const rows = await db.q
    .selectDistinct({ url: i.url })
    .from(i)
    .where(and(eq(i.site_id, siteId), gte(i.inspected_at, since)));
  return new Set(rows.map((r) => r.url));
}

/**
 * A site's pages with the most clicks over the `days` ending at the newest day with data: from the page
 * totals (gsc_page_totals, all search types), else from the stored query detail.
 */
export async function listTopPagesByClicks(db: Db, siteId: number, opts: { days: number; limit: number }): Promise<string[]> {
  const end = newestDataDay(new Date());
  const start = addDays(end, -(opts.days - 1));
  const { gscPageTotals: pt, gscPages: pg, gscQueryDetail: pd } = db.t;
  const clicks = sql<number>`sum(${pt.clicks})`;
  const fromTotals = await db.q
    .select({ page: pg.page, clicks })
    .from(pt)
    .innerJoin(pg, eq(pg.id, pt.page_id))
    .where(and(eq(pt.site_id, siteId), gte(pt.day, dayNumber(start)), lt(pt.day, dayNumber(end) + 1)))
    .groupBy(pg.page)
    .orderBy(desc(clicks), pg.page)
    .limit(opts.limit);
  if (fromTotals.length > 0) return fromTotals.map((r) => r.page);
  const detailClicks = sql<number>`sum(${pd.clicks})`;
  const fromDetail = await db.q
    .select({ page: pg.page, clicks: detailClicks })
    .from(pd)
    .innerJoin(pg, eq(pg.id, pd.page_id))
    .where(and(eq(pd.site_id, siteId), gte(pd.day, dayNumber(start)), lt(pd.day, dayNumber(end) + 1)))
    .groupBy(pg.page)
    .orderBy(desc(detailClicks), pg.page)
    .limit(opts.limit);
  return fromDetail.map((r) => r.page);
}

/** The ids of each inspected page's newest inspection of a site (a subquery). */
function newestIds(db: Db, siteId: number) {
  const { gscUrlInspections: i } = db.t;
  return db.q
    .select({ id: sql<number>`max(${i.id})`.as("id") })
    .from(i)
    .where(eq(i.site_id, siteId))
    .groupBy(i.url);
}

/**
 * How a site's inspected pages stand now (each page's newest inspection): pages inspected, the newest
 * inspection, and pages per verdict and per coverage state (most pages first).
 */
export async function countLatestInspections(db: Db, siteId: number) {
  const { gscUrlInspections: i } = db.t;
  const pages = sql<number>`count(*)`.mapWith(Number);
  const latest = inArray(i.id, newestIds(db, siteId));
  const [byVerdict, byCoverage, [last]] = await Promise.all([
    db.q.select({ verdict: i.verdict, pages }).from(i).where(latest).groupBy(i.verdict).orderBy(desc(pages), i.verdict),
    db.q
      .select({ coverage_state: i.coverage_state, verdict: i.verdict, pages })
      .from(i)
      .where(latest)
      .groupBy(i.coverage_state, i.verdict)
      .orderBy(desc(pages), i.coverage_state),
    db.q
      .select({ at: sql<string | null>`max(${i.inspected_at})` })
      .from(i)
      .where(eq(i.site_id, siteId)),
  ]);
  return {
    inspected_pages: byVerdict.reduce((n, r) => n + r.pages, 0),
    last_inspected_at: last?.at ?? null,
    by_verdict: byVerdict,
    by_coverage: byCoverage,
  };
}

/** Each inspected page's newest inspection whose verdict is not PASS (not indexed, or indexed with problems), by URL, at most `limit`. */
export async function listLatestNotPassing(db: Db, siteId: number, limit: number): Promise<UrlInspectionRow[]> {
  const { gscUrlInspections: i } = db.t;
  const rows = await db.q
    .select()
    .from(i)
    .where(and(inArray(i.id, newestIds(db, siteId)), sql`coalesce(${i.verdict}, '') <> 'PASS'`))
    .orderBy(i.url)
    .limit(limit);
  return rows.map(asRow);
}

/** Which of `urls` a site has inspected at least once. */
export async function findInspectedUrls(db: Db, siteId: number, urls: string[]): Promise<Set<string>> {
  if (urls.length === 0) return new Set();
  const { gscUrlInspections: i } = db.t;
  const rows = await db.q
    .selectDistinct({ url: i.url })
    .from(i)
    .where(and(eq(i.site_id, siteId), inArray(i.url, urls)));
  return new Set(rows.map((r) => r.url));
}
