import type { Db, Engine } from "../db/index.ts";
import { resolveSite, siteNotFound, type ResolvedSite, type SiteRef } from "../sites/resolve.ts";
import { pgAll } from "../db/pg/named.ts";
import { containsPattern } from "../db/sql.ts";
import { addDays, dayOf, dayRange } from "../sync/dates.ts";
import { roundHalfEven } from "./format.ts";
import { byText } from "./query-sums.ts";
import { rollupDaysCte } from "./detail.ts";
import { queryPool } from "./pool.ts";
import type { PageKeywordItem, RankingDataItem, TrendsResponse } from "./schemas.ts";
import { sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import { dayDate, dayNumber, deviceCode, typeCode } from "../sync/grains.ts";
import {
  addSums,
  allRowsMany,
  allRowsOfSite,
  assertAnswerable,
  ctrOfSums,
  type DayTotals,
  anonymizedShareRead,
  findAnonymizedShare,
  findSiteDataDayBounds,
  findPropertyDays,
  pgNewestDaysReads,
  propertyDaysReads,
  shareOf,
  type GrainFilters,
  pageTotalsQuery,
  windowSince,
  positionOfSums,
  typeCodesOf,
} from "./totals.ts";

// Reads of the synced rows for the analytics endpoints, in plain SQL: they use JSON lists, window
// functions and exact orderings that the planner must serve from the indexes. One text per engine where the
// spelling differs (the helpers below), named parameters on both. Query-level rows come from the compact
// detail gsc_query_detail (`d`, key site_id, day, type, page_id, query_id, device) with its dictionaries
// gsc_pages (`p`) and gsc_queries (`q`), or from the day x query rollup gsc_day_query_totals; every filter
// is on integer day numbers and codes computed once from the request, so each read is an index seek on
// (site_id, day, ...) (the gsc_performance_data VIEW computes its date: a filter on it scans the site).
// SQLite: index seeks (exact terms, coverage) run on the process's reader; scans that aggregate a date
// range run on the query threads (pool.ts), off the event loop. Each SQL text is compiled once per
// connection. PostgreSQL: the server does the work; the event loop only awaits the pool.

/** The detail joined to its dictionaries (aliases d, p, q). */
const DETAIL_JOIN = "gsc_query_detail d join gsc_pages p on p.id = d.page_id join gsc_queries q on q.id = d.query_id";
/** A search type code's name sorts as the VIEW's text did: discover, googleNews, image, news, video, web. */
const TYPE_TEXT_ORDER = "case d.type when 5 then 1 when 6 then 2 when 2 then 3 when 4 then 4 when 3 then 5 else 6 end";
/** The old text index's order (date, page, query, device, search_type): a sort of each day's rows, read in day order. */
const INDEX_ORDER = `d.day, p.page, q.query, d.device, ${TYPE_TEXT_ORDER}`;

/** A day number as the 'YYYY-MM-DD' text the VIEW shows. */
const dateText = (e: Engine, day: string) =>
  e === "pg" ? `to_char(date '1970-01-01' + ${day}, 'YYYY-MM-DD')` : `date(${day} * 86400, 'unixepoch')`;
/** A device code as the VIEW's text. */
const deviceText = (col: string) => `case ${col} when 1 then 'DESKTOP' when 2 then 'MOBILE' when 3 then 'TABLET' else '' end`;
/** A search type code as the VIEW's text. */
const typeText = (col: string) =>
  `case ${col} when 1 then 'web' when 2 then 'image' when 3 then 'video' when 4 then 'news' when 5 then 'discover' when 6 then 'googleNews' end`;
/** One detail row's ctr and position exactly as the VIEW computes them (0 without impressions). */
const rowCtr = (e: Engine) =>
  `case when d.impressions > 0 then ${e === "pg" ? "d.clicks::float8" : "cast(d.clicks as real)"} / d.impressions else 0.0 end`;
const rowPosition = (e: Engine) =>
  `case when d.impressions > 0 then ${e === "pg" ? "d.sum_position::float8 / 100" : "d.sum_position / 100.0"} / d.impressions else 0.0 end`;

/** A JSON array parameter as rows `t(value, key)`, key giving the element's position. */
const jsonList = (e: Engine, param: string, alias: string) =>
  e === "pg" ? `jsonb_array_elements_text(${param}::jsonb) with ordinality ${alias}(value, key)` : `json_each(${param}) ${alias}`;
/**
 * A request's list of terms (exact values or substrings) as rows `t(value, key)`, key giving the term's position.
 * PostgreSQL: a text[] literal (termsParam), whose length the planner knows (unnest of a constant): a JSON list is
 * 100 rows to it, so one exact query's raw rows were a hash join over every detail row of the window (1.5 M at 20 M
 * rows, 30 days, each row's heap read) instead of the key's range read with the query id (290 -> 90 ms of backend CPU).
 */
const termList = (e: Engine, alias: string, terms: string[]) =>
  e === "pg"
    ? // One term (the common request) as a one-row VALUES: a named statement's generic plan knows it is one row, where
      // unnest of a parameter is 10 rows to it, dearer than each custom plan, so the statement was planned again on
      // every request (0.5-2 ms of a few-ms read; 0 generic plans in 30 runs).
      terms.length === 1
      ? `(values ($terms::text, 1::bigint)) ${alias}(value, key)`
      : `unnest($terms::text[]) with ordinality ${alias}(value, key)`
    : `json_each($terms) ${alias}`;
/** The terms as termList's parameter: the term itself or an array literal (each element quoted) on PostgreSQL, a JSON list on SQLite. */
const termsParam = (e: Engine, terms: string[]) =>
  e !== "pg"
    ? JSON.stringify(terms)
    : terms.length === 1
      ? terms[0]!
      : `{${terms.map((t) => `"${t.replace(/["\\]/g, "\\$&")}"`).join(",")}}`;
/** Whether `needle` occurs in `haystack`: case-sensitive, % and _ plain characters. */
const contains = (e: Engine, haystack: string, needle: string) =>
  e === "pg" ? `strpos(${haystack}, ${needle}) > 0` : `instr(${haystack}, ${needle}) > 0`;
/** Sums and counts as JSON numbers: PostgreSQL's bigint and numeric arrive as strings, float8 as numbers (exact to 2^53). */
const num = (e: Engine, expr: string) => (e === "pg" ? `(${expr})::float8` : expr);
/** `a / b` as a float (both engines divide integers to an integer), null when b is 0. */
const ratio = (e: Engine, a: string, b: string) => `(${e === "pg" ? `(${a})::float8` : `cast(${a} as real)`} / nullif(${b}, 0))`;
/** Search Console's CTR over grouped rows: Σ clicks / Σ impressions (0 without impressions). */
const ctrOf = (e: Engine, p = "", sum = true) =>
  sum ? `coalesce(${ratio(e, `sum(${p}clicks)`, `sum(${p}impressions)`)}, 0)` : `coalesce(${ratio(e, `${p}clicks`, `${p}impressions`)}, 0)`;
/** Search Console's position over grouped rows: Σ sum_position / Σ impressions / 100 (null without impressions). */
const positionOf = (e: Engine, p = "") => `(${ratio(e, `sum(${p}sum_position)`, `sum(${p}impressions)`)} / ${sumPositionScale})`;
/** "No limit": SQLite reads a negative LIMIT so, PostgreSQL a NULL one. */
const noLimit = (e: Engine) => (e === "pg" ? null : -1);

/** Runs an analytics SELECT: `slow` ones (range scans) on SQLite's query threads; the pool on PostgreSQL. */
async function all<R>(db: Db, sql: string, params: Record<string, string | number | null>, slow: boolean): Promise<R[]> {
  // Not slow: a few index probes with a few rows, read by PostgreSQL in one round trip.
  if (db.engine === "pg") return pgAll<R>(db, sql, params, { small: !slow });
  return slow ? queryPool(db).all<R>(sql, params) : db.raw.reader.query<R, [typeof params]>(sql).all(params);
}

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
  /** One search type; null: every stored type (the original's raw rows). */
  searchType?: SearchTypeCode | null;
  /** DESKTOP, MOBILE or TABLET; null: all. */
  device?: string | null;
};

type RankingRow = { day: number; key: string; clicks: number; impressions: number; ctr: number; position: number | null };

/** How each ranking-data request shape is read: the day x query rollup or the detail, and whether it scans a range. */
function rankingPlan(o: Omit<RankingOptions, "siteId">): { rollup: boolean; slow: boolean } {
  // Daily rows of exact queries over all devices are the rollup's: a term's rows of each stored day of the window
  // (SQLite: a seek per day on its (site_id, type, day, query_id) key; PostgreSQL: a range of its (site_id, query_id, day) key).
  const rollup = !!o.exact && o.daily && o.groupBy === "query" && !o.device;
  // Rollup seeks are ~1 ms a term; anything else reads the window's detail (seeked on site_id and day), off the event loop.
  return { rollup, slow: !rollup || o.exact!.length > 20 };
}

/** The SQL of one ranking-data request shape (group column, filter kind, mode). */
function rankingSql(e: Engine, o: RankingOptions): string {
  const byQuery = o.groupBy === "query";
  const terms = o.exact ?? o.partial ?? [];
  // SQLite's CROSS JOIN fixes the loop order (terms, dictionary, then the detail's index range); PostgreSQL's planner picks it.
  const J = e === "pg" ? "join" : "cross join";
  const typeFilter = (a: string) => (o.searchType ? ` and ${a}.type = $type` : "");
  if (rankingPlan(o).rollup) {
    const rollupRows =
      e === "pg"
        ? `${J} gsc_day_query_totals r on r.site_id = $site_id and r.query_id = q.id and r.day >= $start and r.day <= $end${typeFilter("r")}`
        : `cross join rd cross join gsc_day_query_totals r on r.site_id = $site_id and r.type = rd.type and r.day = rd.day and r.query_id = q.id
 where rd.day <= $end`;
    const days = e === "pg" ? "" : `with recursive ${rollupDaysCte(o.searchType ? ["$type"] : null, "$start", "$end")}\n`;
    return `${days}select r.day as day, q.query as key, ${num(e, "sum(r.clicks)")} as clicks, ${num(e, "sum(r.impressions)")} as impressions,
       ${ctrOf(e, "r.")} as ctr, ${positionOf(e, "r.")} as position
  from ${termList(e, "t", terms)} ${J} gsc_queries q on q.site_id = $site_id and q.query = t.value
  ${rollupRows}
 group by r.day, q.query
 order by r.day desc, min(t.key)
 limit $limit`;
  }
  const col = byQuery ? "q.query" : "p.page";
  const range = `d.site_id = $site_id and d.day >= $start and d.day <= $end${typeFilter("d")}${o.device ? " and d.device = $device" : ""}`;
  let from = `gsc_query_detail d ${J} gsc_pages p on p.id = d.page_id ${J} gsc_queries q on q.id = d.query_id where ${range}`;
  const matching = o.partial ? ` and exists (select 1 from ${termList(e, "t", terms)} where ${contains(e, "q.query", "t.value")})` : "";
  let order = INDEX_ORDER;
  let within = byQuery ? "min(p.page), q.query" : "p.page";
  if (o.exact) {
    // One pass per term, in request order, each by date: the original's concatenated per-term queries.
    // Each term is a dictionary seek on (site_id, query|page), then the detail's range on (site_id, day).
    from = byQuery
      ? `${termList(e, "t", terms)} ${J} gsc_queries q on q.site_id = $site_id and q.query = t.value
  ${J} gsc_query_detail d on d.query_id = q.id and ${range} ${J} gsc_pages p on p.id = d.page_id`
      : `${termList(e, "t", terms)} ${J} gsc_pages p on p.site_id = $site_id and p.page = t.value
  ${J} gsc_query_detail d on d.page_id = p.id and ${range} ${J} gsc_queries q on q.id = d.query_id`;
    order = `t.key, ${INDEX_ORDER}`;
    within = "min(t.key)";
  } else if (o.partial) {
    from += matching;
  }
  if (rawByPage(e, o)) {
    // PostgreSQL: one day's (`$day`) first rows by page with their ties: the site's pages in their text order (its
    // (site_id, page) key) and each one's rows of the day by the detail's key, until the limit: ~400 pages' seeks for
    // 1,000 rows at 50,000 rows a day, not the day's every row joined to its page and sorted by text (readRankingRows
    // reads day after day). Then only their query texts looked up (one index probe each) for the rest of the order.
    const text = "(select q.query from gsc_queries q where q.id = t.query_id)";
    const t = (x: string) => x.replaceAll("d.", "t.");
    const cols = "d.day, d.query_id, d.device, d.type, d.clicks, d.impressions, d.sum_position";
    return `select t.day as day, ${byQuery ? text : "t.page"} as key, t.clicks as clicks, t.impressions as impressions, ${t(rowCtr(e))} as ctr, ${t(rowPosition(e))} as position
  from (select ${cols}, p.page
          from gsc_pages p cross join lateral (select ${cols} from gsc_query_detail d
                 where d.site_id = $site_id and d.day = $day and d.type = any($types::int[]) and d.page_id = p.id${o.device ? " and d.device = $device" : ""}) d
         where p.site_id = $site_id
         order by p.page fetch first ($limit) rows with ties) t
 order by t.day, t.page, ${byQuery ? "key" : text}, t.device, ${t(TYPE_TEXT_ORDER)}
 limit $limit`;
  }
  if (o.daily && byQuery && e === "pg" && !o.exact && o.limit !== null) {
    // PostgreSQL: the groups by (day, query id) with their first page, the first `limit` of them by (day, first page)
    // with their ties, then only their query texts looked up for the rest of the order (a query's text is unique in
    // its site: the same groups): not every detail row's query read and the day's rows sorted by its text (20 M rows,
    // one day of 50,000 rows: 32,561 groups, each a dictionary probe, for 1,000 kept).
    // A partial match: the matching queries' ids first, once (the dictionary's trigram index serves each term's LIKE,
    // written as a constant), then a hash probe per detail row, not a dictionary read and a text test per row.
    const like = (o.partial ?? []).map((_, i) => `m.query like $like_${i} escape '\\'`).join(" or ");
    const rows = `gsc_query_detail d join gsc_pages p on p.id = d.page_id
         where ${range}${like ? ` and d.query_id in (select m.id from gsc_queries m where m.site_id = $site_id and (${like}) offset 0)` : ""}`;
    return `select g.day as day, q.query as key, (g.clicks)::float8 as clicks, (g.impressions)::float8 as impressions,
       coalesce(${ratio(e, "g.clicks", "g.impressions")}, 0) as ctr, (${ratio(e, "g.sp", "g.impressions")} / ${sumPositionScale}) as position
  from (select d.day as day, d.query_id as query_id, sum(d.clicks) as clicks, sum(d.impressions) as impressions,
               sum(d.sum_position) as sp, min(p.page) as first_page
          from ${rows}
         group by d.day, d.query_id
         order by d.day desc, first_page fetch first ($limit) rows with ties) g
  join gsc_queries q on q.id = g.query_id
 order by g.day desc, g.first_page, q.query
 limit $limit`;
  }
  if (!o.daily) {
    return `select d.day as day, ${col} as key, d.clicks as clicks, d.impressions as impressions, ${rowCtr(e)} as ctr, ${rowPosition(e)} as position
  from ${from} order by ${order} limit $limit`;
  }
  return `select d.day as day, ${col} as key, ${num(e, "sum(d.clicks)")} as clicks, ${num(e, "sum(d.impressions)")} as impressions,
       ${ctrOf(e, "d.")} as ctr, ${positionOf(e, "d.")} as position
  from ${from}
 group by d.day, ${col}
 order by d.day desc, ${within}
 limit $limit`;
}

/** Whether a ranking-data read is of raw rows without terms, on PostgreSQL: day by day, by page (rankingSql). */
const rawByPage = (e: Engine, o: Omit<RankingOptions, "siteId">) => e === "pg" && !o.daily && !o.exact && !o.partial && o.limit !== null;

/** The search type codes a ranking-data read keeps, as a PostgreSQL int[] literal. */
const typesParam = (o: Omit<RankingOptions, "siteId">) => `{${(o.searchType ? [typeCode(o.searchType)] : typeCodesOf("all")).join(",")}}`;

/** The named parameters of a ranking-data request: day numbers and codes, computed once. */
function rankingParams(e: Engine, o: RankingOptions): Record<string, string | number | null> {
  const terms = o.exact ?? o.partial;
  return {
    // rawByPage: the day read, and the types.
    ...(rawByPage(e, o) ? { day: dayNumber(o.start), types: typesParam(o) } : {}),
    site_id: o.siteId,
    start: dayNumber(o.start),
    end: dayNumber(o.end),
    limit: o.limit ?? noLimit(e),
    ...(terms ? { terms: termsParam(e, terms) } : {}),
    // PostgreSQL's partial match: each term's LIKE pattern (strpos > 0 as a pattern the trigram index serves).
    ...(e === "pg" && o.partial ? Object.fromEntries(o.partial.map((t, i) => [`like_${i}`, containsPattern(t)])) : {}),
    ...(o.searchType ? { type: typeCode(o.searchType) } : {}),
    ...(o.device ? { device: deviceCode(o.device) } : {}),
  };
}

/** The SQL text and parameters of a ranking-data read (for EXPLAIN in tests and benchmarks). */
export function rankingQuery(e: Engine, o: RankingOptions) {
  return { sql: rankingSql(e, o), params: rankingParams(e, o) };
}

/**
 * The rows of a ranking-data read. Daily groups of the detail without exact terms come newest day first, so
 * the first `limit` of them are in the newest days: the window is read in spans from its end (1 day, then 2,
 * 4, ...), each with the limit still left, until the limit is reached (the same rows, in the same order, as one
 * read of the whole window, which groups and sorts every day of it before the limit applies).
 */
async function readRankingRows(db: Db, o: RankingOptions): Promise<RankingRow[]> {
  const plan = rankingPlan(o);
  const start = dayNumber(o.start);
  const end = dayNumber(o.end);
  if (rawByPage(db.engine, o)) {
    // Day after day from the window's first day with rows (of the types read), each read with the limit still left.
    const out: RankingRow[] = [];
    const next = `select d.day as day from gsc_query_detail d
 where d.site_id = $site_id and d.day >= $from and d.day <= $end and d.type = any($types::int[]) order by d.day limit 1`;
    for (let from = start; out.length < o.limit!; ) {
      const day = (await all<{ day: number }>(db, next, { site_id: o.siteId, from, end, types: typesParam(o) }, false))[0]?.day;
      if (day == null) break;
      const q = rankingQuery(db.engine, { ...o, start: dayDate(Number(day)), limit: o.limit! - out.length });
      // At most 1,000 rows (the limit left): read whole, in one round trip.
      out.push(...(await all<RankingRow>(db, q.sql, q.params, o.limit! - out.length > 1000)));
      from = Number(day) + 1;
    }
    return out;
  }
  if (plan.rollup || o.exact || !o.daily || o.limit === null || end === start) {
    const q = rankingQuery(db.engine, o);
    return all<RankingRow>(db, q.sql, q.params, plan.slow);
  }
  const out: RankingRow[] = [];
  for (let to = end, span = 1; to >= start && out.length < o.limit; to -= span, span *= 2) {
    const from = Math.max(start, to - span + 1);
    const q = rankingQuery(db.engine, { ...o, start: dayDate(from), end: dayDate(to), limit: o.limit - out.length });
    out.push(...(await all<RankingRow>(db, q.sql, q.params, plan.slow)));
  }
  return out;
}

/**
 * Ranking rows of a site between two days (both included): raw rows in the old index's order (per term
 * first when filtered exactly), or daily groups newest day first with summed clicks and impressions, the
 * ctr Σ clicks / Σ impressions and the half-even rounded impression-weighted position (0 without impressions).
 */
export async function findRankingData(db: Db, o: RankingOptions): Promise<RankingDataItem[]> {
  return rankingItems(o, await readRankingRows(db, o));
}

/**
 * The request's site and its ranking rows (findRankingData; none when start is after end). The daily rollup rows of
 * a few exact queries are one small statement: on PostgreSQL it reads the site's row in its own round trip (allRowsOfSite).
 */
export async function findSiteRankingData(
  db: Db,
  ref: SiteRef,
  o: Omit<RankingOptions, "siteId">,
): Promise<{ site: ResolvedSite; data: RankingDataItem[] }> {
  const empty = o.start > o.end;
  if (empty || !rankingPlan(o).slow) {
    const { site, rows } = await allRowsOfSite(db, ref, (siteId) => (empty ? [] : [rankingQuery(db.engine, { ...o, siteId })]));
    return { site, data: rankingItems(o, (rows[0] ?? []) as RankingRow[]) };
  }
  const site = await resolveSite(db, ref);
  return { site, data: await findRankingData(db, { ...o, siteId: site.id }) };
}

/** Ranking rows as the API's items. */
function rankingItems(o: Omit<RankingOptions, "siteId">, rows: RankingRow[]): RankingDataItem[] {
  const byQuery = o.groupBy === "query";
  return rows.map((r) => ({
    date: dayDate(Number(r.day)),
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
  /** Search type (default web) and device: the page totals and the keywords read the same rows. */
  searchType?: SearchTypeCode;
  device?: string | null;
};

/** An aggregate row: keywords a JSON text (SQLite) or already an array (PostgreSQL's json); their count is the list's length. */
type PageRow = Omit<PageKeywordItem, "keywords" | "keyword_count"> & { keywords: string | string[] };

/**
 * The SQL and parameters behind page-keyword-performance (JSON and CSV), most clicked first: each
 * page's clicks, impressions, ctr and position from Search Console's page totals (gsc_page_totals;
 * ctr Σclicks/Σimpressions, impression-weighted position; ungrained days derived from the detail), and
 * the queries it was found for (with clicks or impressions) from the query detail. With `keywordsSql`
 * (a few of many pages) `sql` reads the pages alone (with `byParity`, those of one id parity, `$parity`), and
 * `keywordsSql` the keywords of the pages in its `$pages` (a JSON list of page ids), as rows (page_id, keywords).
 */
export async function pageKeywordQuery(
  db: Db,
  o: PageKeywordOptions,
): Promise<{ sql: string; params: Record<string, string | number | null>; keywordsSql?: string; byParity?: boolean }> {
  const e = db.engine;
  const filters = { searchType: o.searchType ?? "web", device: o.device ?? null };
  const window = (await windowSince(db, o.siteId, o.since)) ?? { start: dayOf(new Date()), end: dayOf(new Date()) };
  const seek = o.limit !== null && o.limit * 4 <= (await countSitePages(db, o.siteId));
  const pt = await pageTotalsQuery(
    db,
    { siteId: o.siteId, ...window, ...filters },
    { urlContains: o.urlContains, limit: o.limit, byParity: seek && e === "sqlite" },
  );
  const device = filters.device ? " and d.device = $device" : "";
  const params: Record<string, string | number | null> = { ...pt.params, kw_type: typeCode(filters.searchType) };
  const columns = `pt.page as url, pt.clicks as total_clicks, pt.impressions as total_impressions,
       ${ctrOf(e, "pt.", false)} as avg_ctr, coalesce(${ratio(e, "pt.sp", "pt.impressions")} / ${sumPositionScale}, 0) as avg_position`;
  // SQLite, a few of the site's pages (the API's default 1,000): each kept page's queries read by the detail's key
  // (site_id, day, type, page_id), one seek per day, and made distinct per page (a small sort each, not one of the
  // window's pairs: 5 M rows, 90 days, 374,000 rows of 1,000 pages, 30,600 pairs: 520 -> 360 ms CPU); then each
  // pair's query text, one dictionary read per pair. The pages first, then their keywords, each by two statements at
  // once (findPageKeywordPerformance): `sql` keeps the pages of one id parity ($parity). Else the window's rows
  // filtered by page (a seek per page and day costs more than the scan for most pages), grouped on the integer ids
  // first, the text read once per pair.
  if (seek) {
    params.days = JSON.stringify(dayRange(window.start, window.end).map(dayNumber));
    const sql = `select pt.page_id as page_id, ${columns} from (
${pt.sql}
) pt
 order by pt.clicks desc, pt.page`;
    if (e === "pg") {
      // PostgreSQL: the kept pages' rows of the window's days in one statement, the pages and days as constant arrays
      // (the values are written into the text: translate() is folded at planning, so the planner sees both lists):
      // an index seek per day and page on the detail's key where they are a small part of the window, else a scan.
      // The window's rows of every page joined to the kept ones read the whole detail in key order at 20-50 M.
      const keywordsSql = `select x.page_id as page_id, json_agg(q.query) as keywords
  from (select distinct d.page_id as page_id, d.query_id as query_id from gsc_query_detail d
         where d.site_id = $site_id and d.day = any(translate($days, '[]', '{}')::int[]) and d.type = $kw_type
           and d.page_id = any(translate($pages, '[]', '{}')::int[]) and (d.clicks > 0 or d.impressions > 0)${device}) x
  join gsc_queries q on q.id = x.query_id
 group by x.page_id`;
      return { sql, params, keywordsSql, byParity: false };
    }
    const keywordsSql = `select pp.value as page_id,
       (select json_group_array(q.query)
          from (select distinct d.query_id as query_id
                  from json_each($days) dd cross join gsc_query_detail d
                    on d.site_id = $site_id and d.day = dd.value and d.type = $kw_type and d.page_id = pp.value
                 where (d.clicks > 0 or d.impressions > 0)${device}) x
          cross join gsc_queries q on q.id = x.query_id) as keywords
  from json_each($pages) pp`;
    return { sql, params, keywordsSql, byParity: true };
  }
  // Materialized on SQLite: the keywords' page filter would otherwise compute the page totals a second time.
  const sql = `with pt as ${e === "sqlite" ? "materialized " : ""}(
${pt.sql}
)
select ${columns},
       coalesce(kw.keywords, ${e === "pg" ? "'[]'::json" : "'[]'"}) as keywords
  from pt left join (
    select pq.page_id as page_id, ${e === "pg" ? "json_agg(q.query)" : "json_group_array(q.query)"} as keywords
      from (
      select d.page_id as page_id, d.query_id as query_id from gsc_query_detail d
       where d.site_id = $site_id and d.day >= $from and d.day <= $to and d.type = $kw_type
         and (d.clicks > 0 or d.impressions > 0)${device}
         and d.page_id in (select page_id from pt)
       group by d.page_id, d.query_id
      ) pq join gsc_queries q on q.id = pq.query_id
     group by pq.page_id
  ) kw on kw.page_id = pt.page_id
 order by pt.clicks desc, pt.page`;
  return { sql, params };
}

/** How many pages a site's dictionary holds: its (site_id, page) index counted (SQLite on the reader, ~1 ms per 20,000). */
async function countSitePages(db: Db, siteId: number): Promise<number> {
  const sql = "select count(*) as n from gsc_pages where site_id = $site_id";
  if (db.engine === "pg") return Number((await all<{ n: string }>(db, sql, { site_id: siteId }, false))[0]?.n ?? 0);
  return db.raw.reader.query<{ n: number }, [{ site_id: number }]>(sql).get({ site_id: siteId })?.n ?? 0;
}

/** One aggregate row as the API shows it: ctr as a percentage (3 decimals), position 2 decimals, keywords sorted. */
export function toPageKeywordItem(r: PageRow): PageKeywordItem {
  const keywords = (typeof r.keywords === "string" ? (JSON.parse(r.keywords) as string[]) : r.keywords).sort();
  return {
    url: r.url,
    total_clicks: r.total_clicks,
    total_impressions: r.total_impressions,
    avg_ctr: roundHalfEven(r.avg_ctr * 100, 3),
    avg_position: roundHalfEven(r.avg_position, 2),
    keywords,
    keyword_count: keywords.length,
  };
}

/** Pages of a site with their totals and keywords (see pageKeywordQuery). */
export async function findPageKeywordPerformance(db: Db, o: PageKeywordOptions): Promise<PageKeywordItem[]> {
  const q = await pageKeywordQuery(db, o);
  if (!q.keywordsSql) return (await all<PageRow>(db, q.sql, q.params, true)).map(toPageKeywordItem);
  // SQLite: the pages by two statements at once (two query processes: the first `limit` of the even ids and of the odd
  // ones, in the page totals' order, whose first `limit` are the first of all), then their keywords, every other page
  // each. PostgreSQL: each by one statement (the server's plan reads the kept pages' rows once).
  type Page = Omit<PageRow, "keywords"> & { page_id: number };
  const byTotals = (a: Page, b: Page) =>
    b.total_clicks - a.total_clicks || b.total_impressions - a.total_impressions || byText(a.url, b.url);
  const parts = q.byParity ? [0, 1] : [null];
  const pages = (await Promise.all(parts.map((parity) => all<Page>(db, q.sql, { ...q.params, parity }, true))))
    .flat()
    .sort(byTotals)
    .slice(0, o.limit ?? undefined)
    .sort((a, b) => b.total_clicks - a.total_clicks || byText(a.url, b.url));
  const ids = pages.map((p) => p.page_id);
  const lists = q.byParity ? [0, 1].map((h) => ids.filter((_, i) => i % 2 === h)).filter((l) => l.length > 0) : [ids];
  const keywords = new Map<number, PageRow["keywords"]>();
  for (const rows of await Promise.all(
    lists.map((l) =>
      all<{ page_id: number; keywords: PageRow["keywords"] }>(db, q.keywordsSql!, { ...q.params, pages: JSON.stringify(l) }, true),
    ),
  ))
    for (const r of rows) keywords.set(r.page_id, r.keywords);
  return pages.map(({ page_id, ...p }) => toPageKeywordItem({ ...p, keywords: keywords.get(page_id) ?? [] }));
}

/** The first day of the original's page-keyword window: today minus (days + 1), so days + 2 days with today. */
export function pageKeywordSince(days: number | null | undefined, now = new Date()): string | null {
  return days ? addDays(dayOf(now), -(days + 1)) : null;
}

/** What an export reads: a site, optionally bounded by days (both included) and one search type. */
export type ExportOptions = { siteId: number; start?: string | null; end?: string | null; searchType?: string | null };

/**
 * The raw rows of a site for the export, with the old table's columns and text, in its order (date, page,
 * query, device, search_type): the detail's range on (site_id, day) read in day order, each day's rows sorted.
 */
export function exportQuery(e: Engine, o: ExportOptions): { sql: string; params: Record<string, string | number | null> } {
  const sql = `select ${dateText(e, "d.day")} as date, p.page as page, q.query as query, ${deviceText("d.device")} as device,
       ${typeText("d.type")} as search_type, d.clicks as clicks, d.impressions as impressions, ${rowCtr(e)} as ctr, ${rowPosition(e)} as position
  from ${DETAIL_JOIN}
 where d.site_id = $site_id${o.start ? " and d.day >= $start" : ""}${o.end ? " and d.day <= $end" : ""}${o.searchType ? " and d.type = $type" : ""}
 order by ${INDEX_ORDER}`;
  return {
    sql,
    params: {
      site_id: o.siteId,
      ...(o.start ? { start: dayNumber(o.start) } : {}),
      ...(o.end ? { end: dayNumber(o.end) } : {}),
      // An unknown search type is code 0, which no row has: an empty export, as before.
      ...(o.searchType ? { type: typeCode(o.searchType as SearchTypeCode) } : {}),
    },
  };
}

/** The filters performance-trends takes besides the site (search type, country, device, appearance). */
export type TrendsFilters = Omit<GrainFilters, "siteId" | "start" | "end">;

/**
 * Distinct named queries per day (the trend's unique_queries): counted at ingest in gsc_day_query_counts for
 * one search type over every device; under a device filter or for every type together, counted from the
 * window's query detail or rollup rows.
 */
async function countDailyQueries(db: Db, siteId: number, f: TrendsFilters, start: string, end: string): Promise<Map<string, number>> {
  const e = db.engine;
  if (f.searchType === "all" && !f.device) return countDailyQueriesAllTypes(db, siteId, start, end);
  const keptRead = dailyQueriesRead(siteId, f, start, end);
  if (keptRead) return countsOf(await all<CountRow>(db, keptRead.sql, keptRead.params, false));
  // The rollup's window (a key range per type on SQLite's (site_id, type, day, query_id)); the detail under a device.
  const table = f.device ? "gsc_query_detail" : "gsc_day_query_totals";
  const rows = await all<CountRow>(
    db,
    `select g.day as day, ${num(e, "count(distinct g.query_id)")} as n from ${table} g
 where g.site_id = $site_id and g.day >= $start and g.day <= $end
   and g.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})${f.device ? " and g.device = $device" : ""}
 group by g.day`,
    {
      site_id: siteId,
      start: dayNumber(start),
      end: dayNumber(end),
      types: JSON.stringify(typeCodesOf(f.searchType)),
      ...(f.device ? { device: deviceCode(f.device) } : {}),
    },
    true,
  );
  return countsOf(rows);
}

type CountRow = { day: number; n: number };
const countsOf = (rows: CountRow[]) => new Map(rows.map((r) => [dayDate(Number(r.day)), Number(r.n)]));
const maxDay = (a: string, b: string) => (a < b ? b : a);

/** The named queries per day as counted at ingest (one search type over every device), a small read; null for other filters. */
function dailyQueriesRead(siteId: number, f: TrendsFilters, start: string, end: string) {
  if (f.searchType === "all" || f.device) return null;
  return {
    sql: `select g.day as day, g.queries as n from gsc_day_query_counts g
 where g.site_id = $site_id and g.day >= $start and g.day <= $end and g.type = $type and g.device = 0`,
    params: { site_id: siteId, start: dayNumber(start), end: dayNumber(end), type: typeCodesOf(f.searchType)[0]! },
  };
}

/**
 * Distinct named queries per day over every search type: a day with one type's rows is that type's count kept at
 * ingest (gsc_day_query_counts); only the days with several types count the rollup's rows (a query may have rows
 * in more than one type).
 */
async function countDailyQueriesAllTypes(db: Db, siteId: number, start: string, end: string): Promise<Map<string, number>> {
  const e = db.engine;
  const params = { site_id: siteId, start: dayNumber(start), end: dayNumber(end), types: JSON.stringify(typeCodesOf("all")) };
  const kept = await all<{ day: number; types: number; n: number }>(
    db,
    `select g.day as day, ${num(e, "count(*)")} as types, ${num(e, "sum(g.queries)")} as n from gsc_day_query_counts g
 where g.site_id = $site_id and g.day >= $start and g.day <= $end and g.device = 0
   and g.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})
 group by g.day`,
    params,
    false,
  );
  const out = new Map<string, number>();
  const several: number[] = [];
  for (const r of kept) {
    if (Number(r.types) === 1) out.set(dayDate(Number(r.day)), Number(r.n));
    else several.push(Number(r.day));
  }
  if (several.length) {
    // The rollup's days (SQLite: a key range per type and day of its (site_id, type, day, query_id) key).
    const rows = await all<{ day: number; n: number }>(
      db,
      `select g.day as day, ${num(e, "count(distinct g.query_id)")} as n from gsc_day_query_totals g
 where g.site_id = $site_id and g.day in (select cast(value as integer) from ${jsonList(e, "$days", "d")})
   and g.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})
 group by g.day`,
      { site_id: siteId, types: params.types, days: JSON.stringify(several) },
      true,
    );
    for (const r of rows) out.set(dayDate(Number(r.day)), Number(r.n));
  }
  return out;
}

/**
 * Daily totals of a site's newest `days` days with data (not a calendar window), newest first, from
 * Search Console's property totals (docs/analytics.md): clicks and impressions as Google counts them
 * (anonymized queries included), ctr Σclicks/Σimpressions, impression-weighted position; with a
 * 7-row moving average, the change against 7 rows before and a running sum. Days stored before the
 * grains existed are summed from the query detail and flagged `derived`.
 */
export async function findPerformanceTrends(
  db: Db,
  site: number | SiteRef,
  days: number,
  f: TrendsFilters = { searchType: "web" },
): Promise<TrendsResponse> {
  assertAnswerable(f, "property");
  // A request's site (SiteRef): resolved with the first read (one round trip on PostgreSQL); 404 when none.
  const ref = typeof site === "number" ? { site_id: site } : site;
  // The detail has no country and no appearance: no exact count of named queries under those filters.
  const counted = !f.country && !f.appearance;
  // The newest `days` calendar days' reads, with their query counts and share.
  const windowReads = (siteId: number, start: string, end: string) => {
    const w = { ...f, siteId, start, end };
    const p = propertyDaysReads(db, w);
    const countRead = counted ? dailyQueriesRead(siteId, f, start, end) : null;
    const shareRead = anonymizedShareRead(db, w);
    return { p, countRead, shareRead, reads: [...p.reads, ...(countRead ? [countRead] : []), ...(shareRead ? [shareRead] : [])] };
  };
  let bounds: { site: ResolvedSite; first: string | null; last: string | null };
  // PostgreSQL, a site by id: the site, its bounds and the window's reads in one round trip (pgNewestDaysReads).
  let read: unknown[][] | null = null;
  if (db.engine === "pg" && ref.site_id) {
    const got = await pgNewestDaysReads(db, ref.site_id, f.searchType, days, windowReads(ref.site_id, "1970-01-01", "1970-01-01").reads);
    if (!got.site) throw siteNotFound(ref.site_id);
    bounds = { ...got, site: got.site };
    read = got.rows;
  } else bounds = await findSiteDataDayBounds(db, ref, f.searchType);
  const { last, first } = bounds;
  const siteId = bounds.site.id;
  let rows: DayTotals[] = [];
  let named: Map<string, number> | null | undefined;
  let share: number | null | undefined;
  if (last && first) {
    // The newest `days` calendar days first, with their query counts and share in the same round trip (PostgreSQL):
    // when they hold every day with data up to `days` or reach the first day, the counts and share of the window
    // are those of its days with data.
    const start = maxDay(addDays(last, -(days - 1)), first);
    const { p, countRead, shareRead, reads } = windowReads(siteId, start, last);
    read ??= await allRowsMany(db, reads);
    rows = await p.finish(read.slice(0, p.reads.length));
    if (rows.length >= days || start <= first) {
      if (countRead) named = countsOf(read[p.reads.length] as CountRow[]);
      share = shareRead ? shareOf(read.at(-1)!) : null;
    } else {
      // Widen the calendar window until it holds `days` days with data or reaches the first day.
      for (let span = days * 2; ; span *= 2) {
        const from = addDays(last, -(span - 1));
        rows = await findPropertyDays(db, { ...f, siteId, start: maxDay(from, first), end: last });
        if (rows.length >= days || from <= first) break;
      }
      rows = rows.slice(-days);
    }
  }
  [named, share] = await Promise.all([
    named !== undefined || !counted
      ? (named ?? null)
      : rows.length === 0
        ? new Map<string, number>()
        : countDailyQueries(db, siteId, f, rows[0]!.date, rows.at(-1)!.date),
    share !== undefined
      ? share
      : rows.length
        ? findAnonymizedShare(db, { ...f, siteId, start: rows[0]!.date, end: rows.at(-1)!.date })
        : null,
  ]);
  let cumulative = 0;
  const asc = rows.map((r, i) => {
    cumulative += r.clicks;
    const week = rows.slice(Math.max(0, i - 6), i + 1);
    return {
      date: r.date,
      total_clicks: r.clicks,
      total_impressions: r.impressions,
      avg_position: positionOfSums(r),
      unique_queries: named ? (named.get(r.date) ?? 0) : null,
      clicks_7d_avg: week.reduce((s, w) => s + w.clicks, 0) / week.length,
      clicks_wow_change: i >= 7 ? r.clicks - rows[i - 7]!.clicks : null,
      cumulative_clicks: cumulative,
      ctr: ctrOfSums(r),
      derived: r.derived,
    };
  });
  const total = addSums(rows);
  return {
    data: asc.reverse(),
    summary: {
      total_clicks: total.clicks,
      avg_position: positionOfSums(total),
      unique_queries: named ? asc.reduce((s, r) => s + (r.unique_queries ?? 0), 0) : null,
      total_impressions: total.impressions,
      ctr: ctrOfSums(total),
      anonymized_clicks_share: share,
      derived_days: rows.filter((r) => r.derived).length,
      search_type: f.searchType,
    },
  };
}

const coverageSql = (e: Engine) => `select ${e === "pg" ? "d.value::int" : "d.value"} as day,
       exists (select 1 from gsc_query_detail g where g.site_id = $site_id and g.day = ${e === "pg" ? "d.value::int" : "d.value"}) as has_rows,
       exists (select 1 from hourly_rankings h where h.site_id = $site_id and h.date = ${dateText(e, e === "pg" ? "d.value::int" : "d.value")}) as has_hourly,
       (select max(synced_at) from gsc_synced_days where site_id = $site_id) as last_sync
  from ${jsonList(e, "$days", "d")} order by 1`;
const COVERAGE_SQL = { sqlite: coverageSql("sqlite"), pg: coverageSql("pg") };

/**
 * The request's site and, for each day from today minus `days` to today (UTC), whether it has daily / hourly rows
 * that day, and when it was last synced; index seeks only, one statement (on PostgreSQL with the site's row, see
 * allRowsOfSite).
 */
export async function findCoverage(db: Db, ref: SiteRef, days: number, now = new Date()) {
  const today = dayOf(now);
  const list = JSON.stringify(dayRange(addDays(today, -days), today).map(dayNumber));
  // exists() is 0/1 on SQLite, a boolean on PostgreSQL.
  type Row = { day: number; has_rows: number | boolean; has_hourly: number | boolean; last_sync: string | null };
  const { site, rows: answers } = await allRowsOfSite(db, ref, (siteId) => [
    { sql: COVERAGE_SQL[db.engine], params: { site_id: siteId, days: list } },
  ]);
  const dayRows = answers[0] as Row[];
  const rows = dayRows.map((r) => ({ ...r, date: dayDate(Number(r.day)) }));
  return {
    site,
    daily: Object.fromEntries(rows.map((r) => [r.date, Boolean(r.has_rows)])),
    hourly: Object.fromEntries(rows.map((r) => [r.date, Boolean(r.has_hourly)])),
    lastSync: dayRows[0]?.last_sync ?? null,
  };
}
