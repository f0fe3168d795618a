import type { Db } from "../db/index.ts";
import { addDays, dayOf, dayRange } from "../sync/dates.ts";
import { roundHalfEven } from "./format.ts";
import { queryPool } from "./pool.ts";
import type { PageKeywordItem, RankingDataItem, TrendsResponse } from "./schemas.ts";

// Reads of the synced rows (gsc_performance_data) for the analytics endpoints, in plain SQL: they
// use json_each, window functions and exact orderings that the planner must serve from the indexes.
// Index seeks (exact terms, coverage) run on the process's reader; scans that aggregate a date range
// run on the query threads (pool.ts), off the event loop. Each SQL text is compiled once per connection.

// The unique index's order: (site_id, date, page, query, device, search_type). Rows read in it need
// no sort; it is also the "order of appearance" that daily groups keep within a day.
const INDEX_ORDER = "g.date, g.page, g.query, g.device, g.search_type";

export type RankingOptions = {
  siteId: number;
  start: string;
  end: string;
  groupBy: "query" | "page";
  /** Exact values to keep, each once, in the caller's order (exact mode). */
  exact: string[] | null;
  /** Substrings, any of which keeps a row (partial mode, queries only). */
  partial: string[] | null;
  daily: boolean;
  /** Rows to return; null: all. */
  limit: number | null;
};

type RankingRow = { date: string; key: string; clicks: number; impressions: number; ctr: number; position: number | null };

/** The SQL of one ranking-data request shape (group column, filter kind, mode). */
function rankingSql(o: RankingOptions): string {
  const col = o.groupBy === "query" ? "g.query" : "g.page";
  const range = "g.site_id = $site_id and g.date >= $start and g.date <= $end";
  let from = "gsc_performance_data g";
  let where = range;
  let order = INDEX_ORDER;
  let within = o.groupBy === "query" ? "min(g.page), g.query" : "g.page";
  if (o.exact) {
    // One pass per term, in request order, each by date: the original's concatenated per-term queries.
    // CROSS JOIN keeps the terms as the outer loop, so each term is an index seek on (site_id, query|page,
    // date); left to itself the planner scans the whole date range instead (25-50x slower at 5M rows).
    from = `json_each($terms) t cross join gsc_performance_data g on ${col} = t.value`;
    order = `t.key, ${INDEX_ORDER}`;
    within = "min(t.key)";
  } else if (o.partial) {
    // instr: a case-sensitive substring test in which % and _ are plain characters.
    where += " and exists (select 1 from json_each($terms) t where instr(g.query, t.value) > 0)";
  }
  if (!o.daily) {
    return `select g.date as date, ${col} as key, g.clicks as clicks, g.impressions as impressions, g.ctr as ctr, g.position as position
  from ${from} where ${where} order by ${order} limit $limit`;
  }
  return `select g.date as date, ${col} as key, sum(g.clicks) as clicks, sum(g.impressions) as impressions,
       avg(g.ctr) as ctr, avg(nullif(g.position, 0)) as position
  from ${from} where ${where}
 group by g.date, ${col}
 order by g.date desc, ${within}
 limit $limit`;
}

/**
 * Ranking rows of a site between two days (both included): raw rows in index order (per term first
 * when filtered exactly), or daily groups newest day first with summed clicks and impressions, the
 * mean ctr and the half-even rounded mean of the non-zero positions.
 */
export async function findRankingData(db: Db, o: RankingOptions): Promise<RankingDataItem[]> {
  const terms = o.exact ?? o.partial;
  const sql = rankingSql(o);
  const params = {
    site_id: o.siteId,
    start: o.start,
    end: o.end,
    limit: o.limit ?? -1,
    ...(terms ? { terms: JSON.stringify(terms) } : {}),
  };
  // Exact terms are index seeks (~1 ms for a month); anything else reads the whole range.
  const rows = o.exact
    ? db.raw.reader.query<RankingRow, [typeof params]>(sql).all(params)
    : await queryPool(db).all<RankingRow>(sql, params);
  const byQuery = o.groupBy === "query";
  return rows.map((r) => ({
    date: r.date,
    query: byQuery ? r.key : null,
    page: byQuery ? null : r.key,
    clicks: r.clicks,
    impressions: r.impressions,
    ctr: r.ctr ?? 0,
    position: o.daily ? (r.position === null ? 0 : roundHalfEven(r.position)) : (r.position ?? 0),
  }));
}

export type PageKeywordOptions = {
  siteId: number;
  /** Oldest day included; null: all time. */
  since: string | null;
  /** Keep pages whose URL contains this text (case-sensitive); null: all. */
  urlContains: string | null;
  /** Pages to return; null: all. */
  limit: number | null;
};

type PageRow = Omit<PageKeywordItem, "keywords"> & { keywords: string };

/** The per-page aggregate behind page-keyword-performance (JSON and CSV), most clicked first. */
export function pageKeywordSql(o: Pick<PageKeywordOptions, "since" | "urlContains">): string {
  return `select page as url, sum(clicks) as total_clicks, sum(impressions) as total_impressions,
       avg(ctr) as avg_ctr, avg(position) as avg_position,
       json_group_array(distinct query) as keywords, count(distinct query) as keyword_count
  from gsc_performance_data
 where site_id = $site_id and (clicks > 0 or impressions > 0)${o.since ? " and date >= $since" : ""}${
   o.urlContains !== null ? " and instr(page, $contains) > 0" : ""
 }
 group by page
 order by total_clicks desc, page
 limit $limit`;
}

/** Parameters of pageKeywordSql. */
export function pageKeywordParams(o: PageKeywordOptions): Record<string, string | number> {
  return {
    site_id: o.siteId,
    limit: o.limit ?? -1,
    ...(o.since ? { since: o.since } : {}),
    ...(o.urlContains !== null ? { contains: o.urlContains } : {}),
  };
}

/** One aggregate row as the API shows it: ctr as a percentage (3 decimals), position 2 decimals, keywords sorted. */
export function toPageKeywordItem(r: PageRow): PageKeywordItem {
  return {
    url: r.url,
    total_clicks: r.total_clicks,
    total_impressions: r.total_impressions,
    avg_ctr: roundHalfEven(r.avg_ctr * 100, 3),
    avg_position: roundHalfEven(r.avg_position, 2),
    keywords: (JSON.parse(r.keywords) as string[]).sort(),
    keyword_count: r.keyword_count,
  };
}

/** Pages of a site with their totals and keywords (see pageKeywordSql). */
export async function findPageKeywordPerformance(db: Db, o: PageKeywordOptions): Promise<PageKeywordItem[]> {
  const rows = await queryPool(db).all<PageRow>(pageKeywordSql(o), pageKeywordParams(o));
  return rows.map(toPageKeywordItem);
}

/** The first day of the original's page-keyword window: today minus (days + 1), so days + 2 days with today. */
export function pageKeywordSince(days: number | null | undefined, now = new Date()): string | null {
  return days ? addDays(dayOf(now), -(days + 1)) : null;
}

/** The raw rows of a site for the export, in index order (no sort), optionally bounded by days and a search type. */
export function exportSql(o: { start: boolean; end: boolean; searchType: boolean }): string {
  return `select date, page, query, device, search_type, clicks, impressions, ctr, position
  from gsc_performance_data g
 where site_id = $site_id${o.start ? " and date >= $start" : ""}${o.end ? " and date <= $end" : ""}${
   o.searchType ? " and search_type = $search_type" : ""
 }
 order by ${INDEX_ORDER}`;
}

// The newest `days` days that have rows, found by hopping down the (site_id, date, ...) index one
// seek per day instead of scanning the rows.
const TRENDS_SQL = `with recursive d(date, n) as (
  select (select max(date) from gsc_performance_data where site_id = $site_id), 1
  union all
  select (select max(date) from gsc_performance_data where site_id = $site_id and date < d.date), n + 1
    from d where d.date is not null and n < $days
), daily as (
  select g.date, sum(g.clicks) as total_clicks, sum(g.impressions) as total_impressions,
         avg(g.position) as avg_position, count(distinct g.query) as unique_queries
    from gsc_performance_data g
   where g.site_id = $site_id and g.date >= (select min(date) from d)
   group by g.date
)
select date, total_clicks, total_impressions, avg_position, unique_queries,
       avg(total_clicks) over w7 as clicks_7d_avg,
       total_clicks - lag(total_clicks, 7) over w as clicks_wow_change,
       sum(total_clicks) over w as cumulative_clicks
  from daily
window w as (order by date), w7 as (order by date rows between 6 preceding and current row)
 order by date desc`;

/**
 * Daily totals of a site's newest `days` days with data (not a calendar window), with a 7-row
 * moving average, the change against 7 rows before and a running sum; newest first.
 */
export async function findPerformanceTrends(db: Db, siteId: number, days: number): Promise<TrendsResponse> {
  const data = await queryPool(db).all<TrendsResponse["data"][number]>(TRENDS_SQL, { site_id: siteId, days });
  const n = data.length;
  return {
    data,
    summary: {
      total_clicks: data.reduce((s, r) => s + r.total_clicks, 0),
      avg_position: n ? data.reduce((s, r) => s + r.avg_position, 0) / n : 0,
      unique_queries: data.reduce((s, r) => s + r.unique_queries, 0),
    },
  };
}

const COVERAGE_SQL = `select d.value as date,
       exists (select 1 from gsc_performance_data g where g.site_id = $site_id and g.date = d.value) as has_rows,
       exists (select 1 from hourly_rankings h where h.site_id = $site_id and h.date = d.value) as has_hourly
  from json_each($days) d order by d.value`;
const LAST_SYNC_SQL = "select max(synced_at) as at from gsc_synced_days where site_id = $site_id";

/** For each day from today minus `days` to today (UTC): whether the site has daily / hourly rows that day; index seeks only. */
export async function findCoverage(db: Db, siteId: number, days: number, now = new Date()) {
  const today = dayOf(now);
  const list = dayRange(addDays(today, -days), today);
  const rows = db.raw.reader
    .query<{ date: string; has_rows: number; has_hourly: number }, [Record<string, string | number>]>(COVERAGE_SQL)
    .all({ site_id: siteId, days: JSON.stringify(list) });
  const lastSync = db.raw.reader.query<{ at: string | null }, [Record<string, number>]>(LAST_SYNC_SQL).get({ site_id: siteId });
  return {
    daily: Object.fromEntries(rows.map((r) => [r.date, r.has_rows === 1])),
    hourly: Object.fromEntries(rows.map((r) => [r.date, r.has_hourly === 1])),
    lastSync: lastSync?.at ?? null,
  };
}
