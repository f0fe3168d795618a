import type { Db, Engine } from "../db/index.ts";
import { deviceCodes, searchTypeCodes, sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import { pgAll, pgAllMany, pgNamedRead } from "../db/pg/named.ts";
import { countPagesBySeeksPg, setPageCountBySeeksPg } from "../db/pg/page-count.ts";
import { ApiError } from "../errors.ts";
import { resolveSite, SITE_BY_ID_SQL, siteNotFound, type ResolvedSite, type SiteRef } from "../sites/resolve.ts";
import { addDays, dayOf, dayRange } from "../sync/dates.ts";
import { dayDate, dayNumber } from "../sync/grains.ts";
import { splitWeeks } from "../sync/rollups.ts";
import { likeAsciiSql } from "../db/sql.ts";
import { queryPool } from "./pool.ts";

// Totals read from Search Console's grains (docs/analytics.md, docs/design/grains.md): property totals
// (gsc_property_totals, or gsc_appearance_totals for one search appearance) for every total and trend,
// page totals (gsc_page_totals) for page reports; the query detail only for query-level numbers.
// CTR = Σclicks / Σimpressions, position = Σsum_position / Σimpressions / 100: never a mean of rows.
//
// Days stored before the grains existed (query detail, no gsc_day_completeness row and no property
// totals for that site, day and type) are derived at read time from the detail and flagged `derived`:
// they under-count what Google's anonymized queries add, until the day is fetched again.

/** What a total reads: a site, a day window (both included), one search type or all, and the dimensions a grain may filter on. */
export type GrainFilters = {
  siteId: number;
  start: string;
  end: string;
  /** One search type, or every type summed ("all", the MCP tools' option). */
  searchType: SearchTypeCode | "all";
  /** ISO 3166-1 alpha-3, lower case (property and page totals only). */
  country?: string | null;
  /** DESKTOP, MOBILE or TABLET (any case). */
  device?: string | null;
  /** One searchAppearance value (property totals only, alone). */
  appearance?: string | null;
};

/** Summed clicks, impressions and sum_position (position × impressions × 100) of some grain rows. */
export type Sums = { clicks: number; impressions: number; sumPosition: number };

/** One day of property totals; `derived`: summed from the query detail (no grain stored for it). */
export type DayTotals = Sums & { date: string; derived: boolean };

/** A page's totals over a window. */
export type PageSums = Sums & { page: string };

/** Search Console's CTR: Σclicks / Σimpressions, 0 without impressions. */
export const ctrOfSums = (s: Sums): number => (s.impressions > 0 ? s.clicks / s.impressions : 0);

/** Search Console's position: Σsum_position / Σimpressions / 100 (impression-weighted), 0 without impressions. */
export const positionOfSums = (s: Sums): number => (s.impressions > 0 ? s.sumPosition / s.impressions / sumPositionScale : 0);

/** The sums of several. */
export function addSums(rows: Sums[]): Sums {
  const out = { clicks: 0, impressions: 0, sumPosition: 0 };
  for (const r of rows) {
    out.clicks += r.clicks;
    out.impressions += r.impressions;
    out.sumPosition += r.sumPosition;
  }
  return out;
}

/** The stored type codes a filter reads. */
export function typeCodesOf(t: SearchTypeCode | "all"): number[] {
  return t === "all" ? searchTypeCodes.map((_, i) => i + 1) : [searchTypeCodes.indexOf(t) + 1];
}

/** A device filter as its stored code (1..3), or null; anything else is refused. */
function deviceCodeOf(device: string | null | undefined): number | null {
  if (!device) return null;
  const i = deviceCodes.indexOf(device.toUpperCase() as (typeof deviceCodes)[number]);
  if (i <= 0)
    throw new ApiError("validation_failed", `unknown device ${device}: DESKTOP, MOBILE or TABLET`, [
      { path: "device", message: "unknown" },
    ]);
  return i;
}

/** The report levels a filter combination must be answerable at. */
export type ReportLevel = "property" | "page" | "query";

/**
 * Refuses (400) a filter combination no stored grain answers exactly: country on query-level
 * reports (the query detail stores no country), a search appearance with anything but the property
 * total (Google gives searchAppearance only alone), device on discover (no device dimension), and
 * query-level reports of discover and googleNews (no query dimension).
 */
export function assertAnswerable(f: Omit<GrainFilters, "siteId" | "start" | "end">, level: ReportLevel): void {
  const fail = (path: string, message: string) => {
    throw new ApiError("validation_failed", message, [{ path, message }]);
  };
  deviceCodeOf(f.device);
  if (f.country != null && !/^[a-z]{3}$/.test(f.country))
    fail("country", "country must be an ISO 3166-1 alpha-3 code, lower case (e.g. usa)");
  if (f.appearance) {
    if (level !== "property") fail("search_appearance", `search appearance totals are stored per property only, not per ${level}`);
    if (f.country || f.device) fail("search_appearance", "Search Console gives searchAppearance only alone: no country or device with it");
  }
  if (level === "query" && f.country) fail("country", "the query detail stores no country: country filters property and page totals only");
  if (f.searchType === "discover" && f.device) fail("device", "search type discover has no device dimension");
  if (level === "query" && (f.searchType === "discover" || f.searchType === "googleNews")) {
    fail("search_type", `search type ${f.searchType} has no query dimension: only property and page totals`);
  }
}

/** A JSON array parameter as rows `t(value)`. */
export const jsonList = (e: Engine, param: string, alias: string) =>
  e === "pg" ? `jsonb_array_elements_text(${param}::jsonb) ${alias}(value)` : `json_each(${param}) ${alias}`;
/**
 * `col` is one of the integers of the JSON array parameter `param`. PostgreSQL: as an array (= ANY), which the keys
 * seek; `in (select ...)` became a hash semi-join over a scan of the site's whole detail or weeks (5 M rows, page keyword
 * 90 days: 3.2 s of the statement's 17; insight overview 90 days 0.97 s of backend CPU at 5 M, 4.4 s wall at 20 M).
 */
const intIn = (e: Engine, col: string, param: string, alias: string) => {
  const list = `(select cast(value as integer) from ${jsonList(e, param, alias)})`;
  return e === "pg" ? `${col} = any(array${list})` : `${col} in ${list}`;
};
/** Sums as JSON numbers: PostgreSQL's bigint and numeric arrive as strings. */
const num = (e: Engine, expr: string) => (e === "pg" ? `coalesce((${expr})::float8, 0)` : `coalesce(${expr}, 0)`);
/** Whether `needle` occurs in `haystack`: case-sensitive, % and _ plain characters. */
export const containsSql = (e: Engine, haystack: string, needle: string) =>
  e === "pg" ? `strpos(${haystack}, ${needle}) > 0` : `instr(${haystack}, ${needle}) > 0`;

type Params = Record<string, string | number | null>;

/**
 * Runs a SELECT with named parameters: on SQLite's query threads when `slow`, else the reader; the pool on PostgreSQL
 * (not `slow`: a few rows, read whole in one round trip).
 */
export async function allRows<R>(db: Db, sql: string, params: Params, slow = false): Promise<R[]> {
  if (db.engine === "pg") return pgAll<R>(db, sql, params, { small: !slow });
  return slow ? queryPool(db).all<R>(sql, params) : db.raw.reader.query<R, [Params]>(sql).all(params);
}

/** Several independent small SELECTs (see allRows): in one round trip on PostgreSQL; each answer's rows in order. */
export async function allRowsMany(db: Db, list: { sql: string; params: Params }[]): Promise<unknown[][]> {
  if (db.engine === "pg")
    return pgAllMany(
      db,
      list.map((q) => ({ text: q.sql, params: q.params })),
    );
  return list.map((q) => db.raw.reader.query<unknown, [Params]>(q.sql).all(q.params));
}

/**
 * The request's site (resolveSite) and a report's small SELECTs of it (allRowsMany): on PostgreSQL, a `site_id`'s
 * row is read in the report's own round trip (one instead of two: the site's, then the report's); a site not
 * found is a 404 either way. `reads` gets the site's id.
 */
export async function allRowsOfSite(
  db: Db,
  ref: SiteRef,
  reads: (siteId: number) => { sql: string; params: Params }[],
): Promise<{ site: ResolvedSite; rows: unknown[][] }> {
  if (db.engine === "pg" && ref.site_id) {
    const id = ref.site_id;
    const list = reads(id);
    if (list.length === 1) return pgReadOfSite(db, id, list[0]!);
    const [found, ...rows] = await allRowsMany(db, [{ sql: SITE_BY_ID_SQL, params: { site_id: id } }, ...list]);
    const site = found![0] as ResolvedSite | undefined;
    if (!site) throw siteNotFound(id);
    return { site, rows };
  }
  const site = await resolveSite(db, ref);
  return { site, rows: await allRowsMany(db, reads(site.id)) };
}

/** Each report statement's text with its site's row (pgReadOfSite), made once per text. */
const ofSiteTexts = new Map<string, string>();

/**
 * PostgreSQL: one report statement and the site's row as one named statement (pgNamedRead): the site by id, each of
 * the report's rows beside it in the report's order, or one row of nulls when it has none; none at all: no such site.
 */
async function pgReadOfSite(db: Db, id: number, read: { sql: string; params: Params }): Promise<{ site: ResolvedSite; rows: unknown[][] }> {
  let text = ofSiteTexts.get(read.sql);
  if (text === undefined) {
    text = `select s.id as site_id_, s.domain as site_domain_, s.name as site_name_, r.*
  from sites s left join lateral (select row_number() over () as row_, x.* from (${read.sql}) x) r on true
 where s.id = $site_id
 order by r.row_`;
    ofSiteTexts.set(read.sql, text);
  }
  type Row = { site_id_: number; site_domain_: string; site_name_: string; row_: number | null };
  const got = await pgNamedRead<Row>(db, text, { ...read.params, site_id: id });
  const first = got[0];
  if (!first) throw siteNotFound(id);
  const site = { id: first.site_id_, domain: first.site_domain_, name: first.site_name_ };
  const rows = first.row_ === null ? [] : got.map(({ site_id_, site_domain_, site_name_, row_, ...row }) => row);
  return { site, rows: [rows] };
}

/**
 * The days of a window (per type) that no grain covers: no completeness row and no property totals
 * for that site, day and type. Their numbers come from the query detail, flagged derived. Returns
 * the day numbers and the (day × 10 + type) pairs as JSON lists for the SQL below.
 */
export async function findUngrainedDays(db: Db, siteId: number, types: number[], start: string, end: string) {
  const q = ungrainedQuery(db.engine, siteId, types, start, end);
  return ungrainedOf(await allRows<{ day: number; type: number }>(db, q.sql, q.params), types, start, end);
}

/** The SQL of findUngrainedDays: the (day, type) pairs of the window that a grain covers. */
function ungrainedQuery(e: Engine, siteId: number, types: number[], start: string, end: string) {
  const sql = `select day, type from gsc_day_completeness
 where site_id = $site_id and day >= $from and day <= $to and type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})
union
select distinct day, type from gsc_property_totals
 where site_id = $site_id and day >= $from and day <= $to and type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})`;
  return { sql, params: { site_id: siteId, from: dayNumber(start), to: dayNumber(end), types: JSON.stringify(types) } };
}

/** findUngrainedDays' answer from the covered pairs. */
function ungrainedOf(rows: { day: number; type: number }[], types: number[], start: string, end: string) {
  const covered = new Set(rows.map((r) => Number(r.day) * 10 + Number(r.type)));
  const days = new Set<number>();
  const ungrainedTypes = new Set<number>();
  const pairs: number[] = [];
  for (const d of dayRange(start, end)) {
    const n = dayNumber(d);
    for (const t of types) {
      if (covered.has(n * 10 + t)) continue;
      days.add(n);
      ungrainedTypes.add(t);
      pairs.push(n * 10 + t);
    }
  }
  return { days: JSON.stringify([...days]), types: JSON.stringify([...ungrainedTypes]), pairs: JSON.stringify(pairs), count: pairs.length };
}

/**
 * The query detail rows (gsc_query_detail `g`) of the ungrained days: index seeks on (site_id, day, type) for the
 * ungrained days and types (a type with no rows, e.g. every type but web under "all", is an empty range, not a read
 * of the day's rows), then the (day, type) pairs and the device.
 */
const derivedWhere = (e: Engine, device: boolean) =>
  `g.site_id = $site_id and ${intIn(e, "g.day", "$ud", "ud")}
   and g.type in (select cast(value as integer) from ${jsonList(e, "$ut", "ut")})
   and g.day * 10 + g.type in (select cast(value as integer) from ${jsonList(e, "$up", "up")})${device ? " and g.device = $device" : ""}`;

/** Whether a filter lets ungrained days be derived from the detail (it has no country and no appearance). */
const derivable = (f: GrainFilters) => !f.country && !f.appearance;

/** The parameters shared by the grain reads. */
function grainParams(f: GrainFilters): Params {
  const device = deviceCodeOf(f.device);
  return {
    site_id: f.siteId,
    from: dayNumber(f.start),
    to: dayNumber(f.end),
    types: JSON.stringify(typeCodesOf(f.searchType)),
    ...(f.country ? { country: f.country } : {}),
    ...(device !== null ? { device, device_text: deviceCodes[device]! } : {}),
    ...(f.appearance ? { appearance: f.appearance } : {}),
  };
}

/** Grain rows' filter on type, days (through the parameter `to`) and the dimensions given (alias `x`). */
function grainWhere(e: Engine, f: GrainFilters, to = "$to"): string {
  return `x.site_id = $site_id and x.day >= $from and x.day <= ${to} and ${intIn(e, "x.type", "$types", "t")}${
    f.country ? " and x.country = $country" : ""
  }${f.device ? " and x.device = $device" : ""}${f.appearance ? " and x.appearance = $appearance" : ""}`;
}

/**
 * Search Console's property totals per day of the window (only days with data), oldest first: from
 * gsc_property_totals (or gsc_appearance_totals for one appearance), summed over the country and
 * device rows the filters keep; ungrained days derived from the query detail (flagged).
 */
export async function findPropertyDays(db: Db, f: GrainFilters): Promise<DayTotals[]> {
  const p = propertyDaysReads(db, f);
  return p.finish(await allRowsMany(db, p.reads));
}

/** A read of a few rows that can run beside others (allRowsMany: one round trip on PostgreSQL). */
export type SmallRead = { sql: string; params: Params };

/**
 * findPropertyDays as its first reads (the covered days, the grain's days and the marked days: a few rows a day,
 * to be run together, with others if the caller likes) and `finish`, the answer from their rows (reading the
 * ungrained days' sums from the detail afterwards, only when there are any: data stored before the grains).
 */
export function propertyDaysReads(db: Db, f: GrainFilters): { reads: SmallRead[]; finish(rows: unknown[][]): Promise<DayTotals[]> } {
  assertAnswerable(f, "property");
  const e = db.engine;
  const table = f.appearance ? "gsc_appearance_totals" : "gsc_property_totals";
  const params = grainParams(f);
  const grainSql = `select x.day as day, ${num(e, "sum(x.clicks)")} as clicks, ${num(e, "sum(x.impressions)")} as impressions,
       ${num(e, "sum(x.sum_position)")} as sp
  from ${table} x where ${grainWhere(e, f)} group by x.day`;
  // Days whose totals the migration of old data summed from the detail (completeness says derived).
  const derivedDaysSql = `select distinct x.day as day from gsc_day_completeness x
 where x.site_id = $site_id and x.day >= $from and x.day <= $to and x.derived = ${e === "pg" ? "true" : "1"}
   and x.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})`;
  const types = typeCodesOf(f.searchType);
  const uq = ungrainedQuery(e, f.siteId, types, f.start, f.end);
  const canDerive = derivable(f);
  const reads = [
    { sql: grainSql, params },
    { sql: derivedDaysSql, params: { site_id: f.siteId, from: params.from!, to: params.to!, types: params.types! } },
    ...(canDerive ? [uq] : []),
  ];
  return { reads, finish: (read) => propertyDaysOf(db, f, read, canDerive, params) };
}

/** findPropertyDays' answer from its first reads' rows (propertyDaysReads). */
async function propertyDaysOf(db: Db, f: GrainFilters, read: unknown[][], canDerive: boolean, params: Params): Promise<DayTotals[]> {
  const e = db.engine;
  const types = typeCodesOf(f.searchType);
  type Row = { clicks: number; impressions: number; sp: number };
  const [grain, marked] = read as [(Row & { day: number })[], { day: number }[]];
  const ungrained = canDerive ? ungrainedOf(read[2] as { day: number; type: number }[], types, f.start, f.end) : null;
  const derivedSql =
    ungrained && ungrained.count > 0
      ? `select g.day as day, ${num(e, "sum(g.clicks)")} as clicks, ${num(e, "sum(g.impressions)")} as impressions,
       ${num(e, "sum(g.sum_position)")} as sp
  from gsc_query_detail g where ${derivedWhere(e, !!f.device)} group by g.day`
      : null;
  const derived = derivedSql
    ? await allRows<Row & { day: number }>(
        db,
        derivedSql,
        { ...params, ud: ungrained!.days, ut: ungrained!.types, up: ungrained!.pairs },
        true,
      )
    : [];
  const markedDays = new Set(marked.map((r) => Number(r.day)));
  const byDay = new Map<string, DayTotals>();
  const add = (date: string, r: Row, isDerived: boolean) => {
    const d = byDay.get(date) ?? { date, clicks: 0, impressions: 0, sumPosition: 0, derived: false };
    d.clicks += Number(r.clicks);
    d.impressions += Number(r.impressions);
    d.sumPosition += Number(r.sp);
    d.derived ||= isDerived;
    byDay.set(date, d);
  };
  for (const r of grain) add(dayDate(Number(r.day)), r, markedDays.has(Number(r.day)));
  for (const r of derived) add(dayDate(Number(r.day)), r, true);
  return [...byDay.values()].sort((a, b) => (a.date < b.date ? -1 : 1));
}

/**
 * The share of clicks from queries Google does not name, over the window: 1 − Σ named / Σ property
 * clicks, from each day's share as the sync recorded it (gsc_day_completeness.anonymized_share, the
 * query detail against the property totals). Derived days and days without a recorded share are left
 * out; null when no day has one, or when the filters (country, device, appearance) have no per-day share.
 */
export async function findAnonymizedShare(db: Db, f: GrainFilters): Promise<number | null> {
  const read = anonymizedShareRead(db, f);
  return read ? shareOf(await allRows<ShareRow>(db, read.sql, read.params)) : null;
}

type ShareRow = { clicks: number; anonymized: number };

/** findAnonymizedShare's one read (null: the filters have no per-day share). */
export function anonymizedShareRead(db: Db, f: GrainFilters): SmallRead | null {
  if (f.country || f.device || f.appearance) return null;
  const e = db.engine;
  const sql = `select ${num(e, "sum(p.clicks)")} as clicks, ${num(e, "sum(p.clicks * c.anonymized_share)")} as anonymized
  from gsc_day_completeness c
  join (select x.day, x.type, sum(x.clicks) as clicks from gsc_property_totals x where ${grainWhere(e, f)} group by x.day, x.type) p
    on p.day = c.day and p.type = c.type
 where c.site_id = $site_id and c.derived = ${e === "pg" ? "false" : "0"} and c.anonymized_share is not null`;
  return { sql, params: grainParams(f) };
}

/** The share from anonymizedShareRead's rows. */
export function shareOf(rows: unknown[]): number | null {
  const row = rows[0] as ShareRow | undefined;
  const clicks = Number(row?.clicks ?? 0);
  return clicks > 0 ? Number(row!.anonymized) / clicks : null;
}

/**
 * The page-total rows of a window, as `select page_id, clicks, impressions, sp`: without a country or device
 * filter, the window's whole weeks from the weekly rollup (gsc_week_page_totals: every country and device
 * summed, ~10x fewer rows than the days') and the edge days from gsc_page_totals; else the days' rows.
 * Adds its day and week bounds to `params`.
 */
function pageGrainRows(e: Engine, f: GrainFilters, params: Params, idFilter: (alias: string) => string, useWeeks: boolean): string {
  const cols = "x.page_id as page_id, x.clicks as clicks, x.impressions as impressions, x.sum_position as sp";
  const weeks = !useWeeks || f.country || f.device ? null : splitWeeks(Number(params.from), Number(params.to));
  if (!weeks) return `select ${cols} from gsc_page_totals x where ${grainWhere(e, f)}${idFilter("x")}`;
  Object.assign(params, { w_first: weeks.first, w_last: weeks.last, head_to: weeks.head[1], tail_from: weeks.tail[0] });
  const types = intIn(e, "x.type", "$types", "t");
  const days = (lo: string, hi: string) =>
    `select ${cols} from gsc_page_totals x where x.site_id = $site_id and x.day >= ${lo} and x.day <= ${hi} and ${types}${idFilter("x")}`;
  return `select ${cols} from gsc_week_page_totals x
     where x.site_id = $site_id and x.week >= $w_first and x.week <= $w_last and ${types}${idFilter("x")}
    union all
    ${days("$from", "$head_to")}
    union all
    ${days("$tail_from", "$to")}`;
}

export type PageTotalsOptions = {
  /** Exact page URLs to keep; null: all. */
  pages?: string[] | null;
  /** Keep pages whose URL contains this text (case-sensitive). */
  urlContains?: string | null;
  /** Keep pages whose URL matches this LIKE pattern (`\\` escapes; ASCII letters fold on both engines: likeAsciiSql). */
  urlLike?: string | null;
  /** Pages returned, most clicks (or impressions) first; null: all. */
  limit?: number | null;
  /** Most clicks then impressions first (default), most impressions then clicks, or most clicks then the URL (v2's order). */
  order?: "clicks" | "impressions" | "clicks_page";
  /** "day": the day rows only, never the weekly rollup (the reference the weekly reads are measured against). */
  grain?: "day";
  /** Only the pages whose id % 2 is the statement's `$parity` (a report read by two statements at once). */
  byParity?: boolean;
};

/**
 * The page-total rows of a window with the derived days' detail rows (`select page_id, clicks, impressions, sp`,
 * not yet summed per page), the URL filter to apply to whole pages (`%p` for the URL) and their parameters.
 */
async function pageRowsQuery(db: Db, f: GrainFilters, o: PageTotalsOptions) {
  assertAnswerable(f, "page");
  const e = db.engine;
  const params: Params = { ...grainParams(f) };
  let pageFilter = "";
  if (o.pages) {
    params.pages = JSON.stringify(o.pages);
    pageFilter += ` and %p in (select value from ${jsonList(e, "$pages", "pl")})`;
  }
  if (o.urlContains != null) {
    params.contains = o.urlContains;
    pageFilter += ` and ${containsSql(e, "%p", "$contains")}`;
  }
  if (o.urlLike != null) {
    params.like = o.urlLike;
    pageFilter += ` and ${likeAsciiSql(e, "%p", "$like")}`;
  }
  const ungrained = derivable(f) ? await findUngrainedDays(db, f.siteId, typeCodesOf(f.searchType), f.start, f.end) : null;
  // Exact pages: only their ids' rows are summed.
  const idFilter = (alias: string) =>
    (o.pages
      ? ` and ${alias}.page_id in (select pi.id from gsc_pages pi where pi.site_id = $site_id and pi.page in (select value from ${jsonList(e, "$pages", "pl")}))`
      : "") + (o.byParity ? ` and ${alias}.page_id % 2 = $parity` : "");
  let union = "";
  if (ungrained && ungrained.count > 0) {
    params.ud = ungrained.days;
    params.ut = ungrained.types;
    params.up = ungrained.pairs;
    union = `
  union all
  select g.page_id as page_id, g.clicks as clicks, g.impressions as impressions, g.sum_position as sp
    from gsc_query_detail g where ${derivedWhere(e, !!f.device)}${idFilter("g")}`;
  }
  return {
    rows: `${pageGrainRows(e, f, params, idFilter, o.grain !== "day")}${union}`,
    pageFilter,
    params,
    derivedDays: ungrained?.count ?? 0,
  };
}

/** The SQL and parameters of page totals over a window (see findPageTotals), as a subquery text `pt(page, page_id, clicks, impressions, sp)`. */
export async function pageTotalsQuery(db: Db, f: GrainFilters, o: PageTotalsOptions) {
  const e = db.engine;
  const { rows, pageFilter, params, derivedDays } = await pageRowsQuery(db, f, o);
  // Summed per page id first, the URL joined to each page's sums afterwards (one dictionary read per page,
  // not one per row of the window: 3x less CPU over 90 days of 10,000 rows a day); the URL filters then keep
  // whole pages, as before.
  const sql = `select p.page as page, u.page_id as page_id, u.clicks as clicks, u.impressions as impressions, u.sp as sp
  from (
  select w.page_id as page_id, ${num(e, "sum(w.clicks)")} as clicks, ${num(e, "sum(w.impressions)")} as impressions,
         ${num(e, "sum(w.sp)")} as sp
    from (
    ${rows}
    ) w
   group by w.page_id
  having sum(w.clicks) > 0 or sum(w.impressions) > 0
  ) u join gsc_pages p on p.id = u.page_id
 where true${pageFilter.replaceAll("%p", "p.page")}
 order by ${o.order === "impressions" ? "impressions desc, clicks desc, " : o.order === "clicks_page" ? "clicks desc, " : "clicks desc, impressions desc, "}p.page
 limit $limit`;
  params.limit = o.limit ?? (e === "pg" ? null : -1);
  return { sql, params, derivedDays };
}

/** Page totals (gsc_page_totals, Google's by-page aggregation) over the window, most clicks first. */
export async function findPageTotals(db: Db, f: GrainFilters, o: PageTotalsOptions = {}): Promise<PageSums[]> {
  const q = await pageTotalsQuery(db, f, o);
  const rows = await allRows<{ page: string; clicks: number; impressions: number; sp: number }>(db, q.sql, q.params, true);
  return rows.map((r) => ({ page: r.page, clicks: Number(r.clicks), impressions: Number(r.impressions), sumPosition: Number(r.sp) }));
}

/** A page's sums in two periods (1 and 2), by page id: zeros in a period where it has no clicks and no impressions. */
export type PagePeriodSums = { pageId: number; c1: number; i1: number; s1: number; c2: number; i2: number; s2: number };

/**
 * Each page's page totals in two windows (as findPageTotals: pages with clicks or impressions in either), by page id
 * and without the URL, in one read: SQLite by two statements at once (the pages of even and odd ids, two query
 * processes). For reports that need every page's numbers but the URL of a few (findPageUrls).
 */
export async function findPagePeriodSums(db: Db, f1: GrainFilters, f2: GrainFilters): Promise<PagePeriodSums[]> {
  const e = db.engine;
  const byParity = e === "sqlite";
  const [a, b] = await Promise.all([pageRowsQuery(db, f1, { byParity }), pageRowsQuery(db, f2, { byParity })]);
  // Each window's parameters renamed apart ($x -> $x_1, $x_2); $parity is shared.
  const apart = (q: { rows: string; params: Params }, suffix: string) => ({
    rows: q.rows.replace(/\$([A-Za-z_]\w*)/g, (m, name: string) => (name in q.params ? `$${name}${suffix}` : m)),
    params: Object.fromEntries(Object.entries(q.params).map(([k, v]) => [`${k}${suffix}`, v])),
  });
  const [x, y] = [apart(a, "_1"), apart(b, "_2")];
  // Each window's sums per page first (a page without clicks and impressions in it counts as absent there).
  const per = (rows: string) => `select r.page_id as page_id, sum(r.clicks) as c, sum(r.impressions) as i, sum(r.sp) as s
      from (${rows}) r group by r.page_id having sum(r.clicks) > 0 or sum(r.impressions) > 0`;
  const sql = `select w.page_id as page_id, ${num(e, "sum(w.c1)")} as c1, ${num(e, "sum(w.i1)")} as i1, ${num(e, "sum(w.s1)")} as s1,
       ${num(e, "sum(w.c2)")} as c2, ${num(e, "sum(w.i2)")} as i2, ${num(e, "sum(w.s2)")} as s2
  from (select a.page_id as page_id, a.c as c1, a.i as i1, a.s as s1, 0 as c2, 0 as i2, 0 as s2 from (${per(x.rows)}) a
        union all
        select b.page_id, 0, 0, 0, b.c, b.i, b.s from (${per(y.rows)}) b) w
 group by w.page_id`;
  const params = { ...x.params, ...y.params };
  const parts = await Promise.all(
    (byParity ? [0, 1] : [null]).map((parity) =>
      allRows<Record<string, number>>(db, sql, parity === null ? params : { ...params, parity }, true),
    ),
  );
  return parts.flat().map((r) => ({
    pageId: Number(r.page_id),
    c1: Number(r.c1),
    i1: Number(r.i1),
    s1: Number(r.s1),
    c2: Number(r.c2),
    i2: Number(r.i2),
    s2: Number(r.s2),
  }));
}

/** The URLs of page ids (one read, the ids bound as one JSON list). */
export async function findPageUrls(db: Db, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const rows = await allRows<{ id: number; page: string }>(
    db,
    `select p.id as id, p.page as page from gsc_pages p where p.id in (select cast(value as integer) from ${jsonList(db.engine, "$ids", "ids")})`,
    { ids: JSON.stringify(ids) },
  );
  return new Map(rows.map((r) => [Number(r.id), r.page]));
}

/** How many pages (of those the options keep) have clicks or impressions in the page totals of the window. */
export async function countPages(db: Db, f: GrainFilters, o: Omit<PageTotalsOptions, "limit" | "order"> = {}): Promise<number> {
  if (!o.pages && o.urlContains == null && o.urlLike == null) {
    const n = await countPagesByWeeks(db, f, o);
    if (n !== null) return n;
    // Every page: no row has negative clicks or impressions, so a page has some in the window exactly when one of its
    // rows does: its id counted once among those rows, no sums per page, no URL (5 M rows, 90 days: ~2x less CPU).
    const r = await pageRowsQuery(db, f, o);
    const [row] = await allRows<{ n: number }>(
      db,
      `select count(distinct w.page_id) as n from (${r.rows}) w where w.clicks > 0 or w.impressions > 0`,
      r.params,
      true,
    );
    return Number(row?.n ?? 0);
  }
  const q = await pageTotalsQuery(db, f, o);
  const [row] = await allRows<{ n: number }>(db, `select count(*) as n from (${q.sql}) c`, q.params, true);
  return Number(row?.n ?? 0);
}

/**
 * countPages of every page from the weekly rollup alone, without the edge days' rows (their country x device rows
 * are ~45 % of the reads at 5 M, 90 days): the pages with clicks or impressions in the window's whole weeks, plus
 * those of the two edge weeks (the partial weeks at the window's ends) not among them that have some on an edge
 * day of the window (a seek per such page and edge day). Exact as the weekly rows are the sums of their days (no
 * negative numbers: a page has some in a week exactly when it has some on one of its days). Null (the caller reads
 * the rows) under a country, device or appearance, for a window without a whole week, or with days to derive.
 */
async function countPagesByWeeks(db: Db, f: GrainFilters, o: Omit<PageTotalsOptions, "limit" | "order">): Promise<number | null> {
  const e = db.engine;
  const weeks = f.country || f.device || f.appearance || o.grain === "day" ? null : splitWeeks(dayNumber(f.start), dayNumber(f.end));
  if (!weeks) return null;
  if ((await findUngrainedDays(db, f.siteId, typeCodesOf(f.searchType), f.start, f.end)).count > 0) return null;
  const edgeWeeks: number[] = [];
  const edgeDays: number[] = [];
  for (const [[lo, hi], week] of [
    [weeks.head, weeks.first - 1],
    [weeks.tail, weeks.last + 1],
  ] as const) {
    if (lo > hi) continue;
    edgeWeeks.push(week);
    for (let d = lo; d <= hi; d++) edgeDays.push(d);
  }
  const list = (name: string, alias: string) => `(select cast(value as integer) from ${jsonList(e, name, alias)})`;
  const weekNumbers = Array.from({ length: weeks.last - weeks.first + 1 }, (_, i) => weeks.first + i);
  const weekList = JSON.stringify(weekNumbers);
  if (e === "pg") {
    const n = await countPagesBySeeksPg(db, f.siteId, typeCodesOf(f.searchType), weekNumbers, edgeDays);
    if (n !== null) return n;
  }
  if (e === "sqlite") {
    const n = await countPagesBySeeks(db, f, weekList, edgeDays);
    if (n !== null) return n;
  }
  // SQLite: two statements at once (two query processes), one for the page ids below the newest whole week's median
  // page id, one for the rest, their counts added: each reads its half of the weeks' rows by key (site_id, week, type,
  // page_id), the weeks listed (50 M rows, 90 days: 55 ms CPU in one statement, 24 + 24 in two). Any split point is
  // exact (the halves share no page); the median only balances them (0 when that week has no rows: all in one).
  const mid = `coalesce((select m.page_id from gsc_week_page_totals m
     where m.site_id = $site_id and m.week = $w_last and m.type in ${list("$types", "mt")} order by m.page_id
     limit 1 offset (select count(*) / 2 from gsc_week_page_totals c where c.site_id = $site_id and c.week = $w_last and c.type in ${list("$types", "ct")})), 0)`;
  const halves = e === "sqlite" ? [` and x.page_id < ${mid}`, ` and x.page_id >= ${mid}`] : [""];
  const weekRange = e === "sqlite" ? `x.week in ${list("$weeks", "wk")}` : "x.week >= $w_first and x.week <= $w_last";
  const sql = (half: string) => `with w as ${e === "sqlite" ? "materialized " : ""}(
  select distinct x.page_id as page_id from gsc_week_page_totals x
   where x.site_id = $site_id and ${weekRange} and x.type in ${list("$types", "t")}${half}
     and (x.clicks > 0 or x.impressions > 0))
select (select count(*) from w) + (
  select count(distinct x.page_id) from gsc_week_page_totals x
   where x.site_id = $site_id and ${intIn(e, "x.week", "$edge_weeks", "ew")} and x.type in ${list("$types", "t")}${half}
     and (x.clicks > 0 or x.impressions > 0) and x.page_id not in (select w.page_id from w)
     and exists (select 1 from gsc_page_totals d
                  where d.site_id = $site_id and ${intIn(e, "d.day", "$edge_days", "ed")} and d.type = x.type and d.page_id = x.page_id
                    and (d.clicks > 0 or d.impressions > 0))) as n`;
  const params = {
    site_id: f.siteId,
    types: JSON.stringify(typeCodesOf(f.searchType)),
    w_first: weeks.first,
    w_last: weeks.last,
    edge_weeks: JSON.stringify(edgeWeeks),
    edge_days: JSON.stringify(edgeDays),
    ...(e === "sqlite" ? { weeks: weekList } : {}),
  };
  const counts = await Promise.all(halves.map((half) => allRows<{ n: number }>(db, sql(half), params, true)));
  return counts.reduce((n, [row]) => n + Number(row?.n ?? 0), 0);
}

/** How SQLite's countPagesByWeeks counts: by the site's pages when cheaper (auto), always, or never (tests: both ways). */
let pageCountBySeeks: "auto" | "always" | "never" = "auto";

/** Sets how page counts from the weekly rollup read, on both engines (tests: each way gives the same counts). */
export function setPageCountBySeeks(mode: "auto" | "always" | "never"): void {
  pageCountBySeeks = mode;
  setPageCountBySeeksPg(mode);
}

/**
 * SQLite, countPagesByWeeks by the site's pages instead of the weeks' rows: each page of the site (gsc_pages) counted
 * when a seek finds it some clicks or impressions in one of the whole weeks (gsc_week_page_totals, by key: site, week,
 * type, page) or on an edge day (gsc_page_totals), without the distinct page ids of every week's rows (50 M rows, 90
 * days: 240,000 rows, ~85 ms CPU in one statement, 2 x 41 in halves; the seeks ~15 ms). Null when the site's pages
 * not in the window would make the seeks dearer than the rows (a page with data costs ~0.75 us, one without ~4 us of
 * failed seeks, a week's row ~0.35 us; the pages with data guessed as the newest whole week's rows).
 */
async function countPagesBySeeks(db: Db, f: GrainFilters, weeks: string, edgeDays: number[]): Promise<number | null> {
  if (pageCountBySeeks === "never") return null;
  const w = JSON.parse(weeks) as number[];
  const params = { site_id: f.siteId, types: JSON.stringify(typeCodesOf(f.searchType)), weeks, edge_days: JSON.stringify(edgeDays) };
  const types = (alias: string) => `(select cast(value as integer) from json_each($types) ${alias})`;
  if (pageCountBySeeks === "auto") {
    // Seeks are dearer when 75 A + 400 (N - A) > 35 A W (A the pages with data, N the site's pages, W the weeks): the
    // site's pages counted only up to that bound (a dictionary of a million pages is not walked on the event loop).
    const [week] = await allRows<{ n: number }>(
      db,
      `select count(*) as n from gsc_week_page_totals x where x.site_id = $site_id and x.week = $w_last and x.type in ${types("t")}`,
      { site_id: f.siteId, types: params.types, w_last: w[w.length - 1]! },
    );
    const active = Number(week?.n ?? 0);
    const cap = Math.floor((active * (35 * w.length + 325)) / 400) + 1;
    const [pages] = await allRows<{ n: number }>(
      db,
      "select count(*) as n from (select 1 from gsc_pages where site_id = $site_id limit $cap) s",
      { site_id: f.siteId, cap },
    );
    if (Number(pages?.n ?? 0) >= cap) return null;
  }
  const [row] = await allRows<{ n: number }>(
    db,
    `select count(*) as n from gsc_pages p
  where p.site_id = $site_id
    and (exists (select 1 from gsc_week_page_totals x
                  where x.site_id = $site_id and x.week in (select cast(value as integer) from json_each($weeks) wk)
                    and x.type in ${types("t")} and x.page_id = p.id and (x.clicks > 0 or x.impressions > 0))
      or exists (select 1 from gsc_page_totals d
                  where d.site_id = $site_id and d.day in (select cast(value as integer) from json_each($edge_days) ed)
                    and d.type in ${types("t2")} and d.page_id = p.id and (d.clicks > 0 or d.impressions > 0)))`,
    params,
    true,
  );
  return Number(row?.n ?? 0);
}

/** A page's clicks in each of a run of consecutive 7-day spans. */
export type PageSeries = { page: string; clicks: number[] };

/**
 * Each page's clicks in `weeks` consecutive 7-day spans from f.start (page totals, ungrained days from the detail),
 * in ONE read: only pages with at least `minFirst` clicks in the first span and at most `maxLastShare` of them in the
 * last, the most clicks lost first, then the URL. Without a country or device filter a span not on the weekly
 * rollup's week boundaries is a week's row plus or minus the days it is shifted by (at most 3 a span: the head days
 * H of a week when the spans start 1-3 days into one, span = W(w) - H(w) + H(w + 1); else the tail days T, span =
 * T(w) + W(w + 1) - T(w + 1)), exact in integers; else the days' rows.
 */
export async function findPageWeekSeries(
  db: Db,
  f: GrainFilters,
  weeks: number,
  keep: { minFirst: number; maxLastShare: number },
): Promise<PageSeries[]> {
  assertAnswerable(f, "page");
  const e = db.engine;
  const s = dayNumber(f.start);
  const to = s + weeks * 7 - 1;
  const params: Params = { ...grainParams({ ...f, end: dayDate(to) }), s, first_to: s + 6 };
  const types = intIn(e, "x.type", "$types", "t");
  // Rows (page_id, k, c, k2, c2): a row adds c to span k (negative: takes from it) and c2 to span k2 (a shifted day's
  // row counts in two spans at once, read once); `first`, the first span's rows alone (page_id, c), which pick the
  // candidate pages. Only the candidates' rows are read for the spans (each part filtered by them) and rows without
  // clicks are left out (they add nothing; in the first span only when minFirst > 0, so a page with rows but no clicks
  // still counts at 0).
  const rows: string[] = [];
  const first: string[] = [];
  const sqlite = e === "sqlite";
  const asRow = (k: string, c: string) =>
    sqlite ? `${k} as k, ${c} as c, null as k2, null as c2` : `${k} as k, (${c})::float8 as c, null::integer as k2, null::float8 as c2`;
  const asC = (c: string) => (sqlite ? `${c} as c` : `(${c})::float8 as c`);
  // Each part's rows: the candidates' only (`seek`: on PostgreSQL as an array its key seeks, the part's days or weeks a
  // list: with a range before it, the array would be one index scan per page), with clicks.
  const inCand = (t: string, seek = false) =>
    ` and ${t}.clicks <> 0 and ${t}.page_id ${!sqlite && seek ? "= any(array(select cand.page_id from cand))" : "in (select cand.page_id from cand)"}`;
  const firstNz = (t: string) => (keep.minFirst > 0 ? ` and ${t}.clicks <> 0` : "");
  const bucket = (day: string) => `(${day} - $s) / 7`;
  const a = Math.floor(s / 7);
  const r = s - 7 * a;
  if (f.country || f.device) {
    const from = `from gsc_page_totals x where ${grainWhere(e, f)}`;
    rows.push(`select x.page_id as page_id, ${asRow(bucket("x.day"), "x.clicks")} ${from}${inCand("x")}`);
    // SQLite: the first span's days as the key's range (a second upper bound may be the one it seeks by or not).
    const firstFrom = sqlite ? `from gsc_page_totals x where ${grainWhere(e, f, "$first_to")}` : `${from} and x.day <= $first_to`;
    first.push(`select x.page_id as page_id, ${asC("x.clicks")} ${firstFrom}${firstNz("x")}`);
  } else {
    // The weekly rows: week a + k (r <= 3) or a + k + 1 (r >= 4) is span k's bulk.
    const shift = r <= 3 ? 0 : 1;
    Object.assign(params, { w_first: a + shift, w_last: a + shift + weeks - 1, a: a + shift });
    const from = "from gsc_week_page_totals x where x.site_id = $site_id and x.week >= $w_first and x.week <=";
    if (sqlite) rows.push(`select x.page_id as page_id, ${asRow("x.week - $a", "x.clicks")} ${from} $w_last and ${types}${inCand("x")}`);
    else {
      params.weeks = `{${Array.from({ length: weeks }, (_, k) => a + shift + k).join(",")}}`;
      rows.push(
        `select x.page_id as page_id, ${asRow("x.week - $a", "x.clicks")} from gsc_week_page_totals x where x.site_id = $site_id and x.week = any(cast($weeks as integer[])) and ${types}${inCand("x", true)}`,
      );
    }
    first.push(`select x.page_id as page_id, ${asC("x.clicks")} ${from} $w_first and ${types}${firstNz("x")}`);
    if (r > 0) {
      // The shifted days: H(w) = days 7w .. 7w + r - 1 of weeks a .. a + weeks, or T(w) = 7w + r .. 7w + 6.
      const edge: number[] = [];
      for (let w = a; w <= a + weeks; w++)
        for (let d = r <= 3 ? 7 * w : 7 * w + r; d <= (r <= 3 ? 7 * w + r - 1 : 7 * w + 6); d++) edge.push(d);
      // The first span's: weeks a and a + 1.
      const edgeFirst = edge.filter((d) => Math.floor(d / 7) - a <= 1);
      const list = (days: number[]) => (e === "pg" ? `{${days.join(",")}}` : JSON.stringify(days));
      params.edge = list(edge);
      params.edge_first = list(edgeFirst);
      params.wa = a;
      // H(w): takes from span w - a, adds to span w - a - 1. T(w): adds to span w - a, takes from span w - a - 1.
      const [own, prev] = r <= 3 ? ["-x.clicks", "x.clicks"] : ["x.clicks", "-x.clicks"];
      // One read of the days (an index range each), each row to both of its spans.
      const days = (p: string) =>
        e === "pg"
          ? `from gsc_page_totals x where x.site_id = $site_id and x.day = any(cast(${p} as integer[])) and ${types}`
          : `from gsc_page_totals x where x.site_id = $site_id and x.day in (select cast(value as integer) from ${jsonList(e, p, "ed")}) and ${types}`;
      const c = (v: string) => (sqlite ? v : `(${v})::float8`);
      rows.push(
        `select x.page_id as page_id, x.day / 7 - $wa as k, ${c(own)} as c, x.day / 7 - $wa - 1 as k2, ${c(prev)} as c2 ${days("$edge")}${inCand("x", true)}`,
      );
      first.push(
        `select x.page_id as page_id, ${asC(`case when x.day / 7 = $wa then ${own} else ${prev} end`)} ${days("$edge_first")}${firstNz("x")}`,
      );
    }
  }
  const ungrained = derivable(f) ? await findUngrainedDays(db, f.siteId, typeCodesOf(f.searchType), f.start, dayDate(to)) : null;
  if (ungrained && ungrained.count > 0) {
    params.ud = ungrained.days;
    params.ut = ungrained.types;
    params.up = ungrained.pairs;
    const from = `from gsc_query_detail g where ${derivedWhere(e, !!f.device)}`;
    rows.push(`select g.page_id as page_id, ${asRow(bucket("g.day"), "g.clicks")} ${from}${inCand("g")}`);
    first.push(`select g.page_id as page_id, ${asC("g.clicks")} ${from} and g.day <= $first_to${firstNz("g")}`);
  }
  params.min_first = keep.minFirst;
  params.last_share = keep.maxLastShare;
  // The pages past the first-span filter first (the first span's rows only: 1,364 of 20,000 pages at 50 M rows, 13
  // weeks), and only their rows grouped into the spans. SQLite before: the candidates from every span's rows, then
  // every row again, the shifted days' rows read four times (50 M rows, 13 weeks: 1.36 M rows a read, ~1 s CPU; now
  // ~0.2 s). PostgreSQL: the union inlined twice was six sequential scans, four of the page totals (1 M rows, 13
  // weeks: 3.0-3.4 s -> 0.8 s); then every row of the weeks and shifted days read and hash-joined to the candidates
  // (20 M rows: 1.6 M rows, 4.6-6.4 s at load 20), now the candidates' keys sought (1.2-2.7 s). Sums as float8 (exact
  // for integers below 2^53; a bigint sum is a numeric one).
  const union = (list: string[]) => list.join("\n    union all\n    ");
  const spans = Array.from(
    { length: weeks },
    (_, k) => `coalesce(sum(case when w.k = ${k} then w.c when w.k2 = ${k} then w.c2 end), 0) as w${k}`,
  ).join(", ");
  const sql = `with cand as ${sqlite ? "materialized " : ""}(
  select w.page_id as page_id from (${union(first)}) w group by w.page_id having sum(w.c) >= $min_first)
select p.page as page, u.* from (
  select w.page_id as page_id, ${spans}
    from (${union(rows)}) w
   group by w.page_id) u
  join gsc_pages p on p.id = u.page_id
 where u.w0 >= $min_first and u.w${weeks - 1} <= u.w0 * cast($last_share as double precision)
 order by u.w0 - u.w${weeks - 1} desc, p.page`;
  const got = await allRows<Record<string, number | string>>(db, sql, params, true);
  return got.map((row) => ({ page: String(row.page), clicks: Array.from({ length: weeks }, (_, k) => Number(row[`w${k}`])) }));
}

/** The first day a site has any data (grain or detail), or null. */
export async function findFirstDataDay(db: Db, siteId: number): Promise<string | null> {
  return firstDayOf(await allRows(db, FIRST_DAY_SQL, { site_id: siteId }));
}

/** The newest day a site has data for the search type(s) (grain or detail), or null. */
export async function findLastDataDay(db: Db, siteId: number, searchType: SearchTypeCode | "all"): Promise<string | null> {
  const q = lastDayRead(db.engine, siteId, searchType);
  return lastDayOf(await allRows(db, q.sql, q.params));
}

/** The request's site and the first and newest days it has data for (on PostgreSQL in one round trip, see allRowsOfSite). */
export async function findSiteDataDayBounds(
  db: Db,
  ref: SiteRef,
  searchType: SearchTypeCode | "all",
): Promise<{ site: ResolvedSite; first: string | null; last: string | null }> {
  const { site, rows } = await allRowsOfSite(db, ref, (siteId) => [
    { sql: FIRST_DAY_SQL, params: { site_id: siteId } },
    lastDayRead(db.engine, siteId, searchType),
  ]);
  return { site, first: firstDayOf(rows[0]!), last: lastDayOf(rows[1]!) };
}

/**
 * PostgreSQL: the site `siteId`, its first and newest days with data for the search type(s) (findSiteDataDayBounds) and
 * `reads` over its newest `days` calendar days (from max(newest - days + 1, first) to the newest), in one statement
 * (pgAllMany): the window's days computed in the statement from the bounds, so a report of the newest days is one round
 * trip, not the bounds' and then the window's. `reads` are built for any window: their window parameters (`$from` or
 * `$start`, `$to` or `$end`) become the statement's days. No site: `site` is null; no data: `first` and `last` null
 * (the reads then read nothing).
 */
export async function pgNewestDaysReads(
  db: Db,
  siteId: number,
  searchType: SearchTypeCode | "all",
  days: number,
  reads: SmallRead[],
): Promise<{ site: ResolvedSite | null; first: string | null; last: string | null; rows: unknown[][] }> {
  const last = lastDayRead("pg", siteId, searchType);
  const prelude = {
    with: `newest_first as (${FIRST_DAY_SQL}), newest_last as (${last.sql}),
newest_bounds as (select least(f.day, f.detail_day) as first, greatest(l.day, l.detail_day) as last from newest_first f, newest_last l),
newest_window as (select greatest(b.last - ($days - 1), b.first) as start, b.last as last from newest_bounds b)`,
    params: { site_id: siteId, types: last.params.types, days },
  };
  const start = { sql: "select nw.start from newest_window nw" };
  const end = { sql: "select nw.last from newest_window nw" };
  const windowed = reads.map((r) => {
    const params: Params | Record<string, unknown> = { ...r.params };
    for (const k of ["from", "start"]) if (k in params) params[k] = start;
    for (const k of ["to", "end"]) if (k in params) params[k] = end;
    return { text: r.sql, params };
  });
  const [site, bounds, ...rows] = await pgAllMany(
    db,
    [
      { text: SITE_BY_ID_SQL, params: { site_id: siteId } },
      { text: "select b.first as first, b.last as last from newest_bounds b", params: {} },
      ...windowed,
    ],
    prelude,
  );
  const b = bounds![0] as { first: number | null; last: number | null } | undefined;
  return {
    site: (site![0] as ResolvedSite | undefined) ?? null,
    first: b?.first == null ? null : dayDate(Number(b.first)),
    last: b?.last == null ? null : dayDate(Number(b.last)),
    rows,
  };
}

type BoundRow = { day: number | null; detail_day: number | null };
const FIRST_DAY_SQL = `select (select min(day) from gsc_property_totals where site_id = $site_id) as day,
            (select min(day) from gsc_query_detail where site_id = $site_id) as detail_day`;

const boundDays = (rows: unknown[]) => {
  const row = rows[0] as BoundRow | undefined;
  return [row?.day, row?.detail_day].filter((d): d is number => d != null).map(Number);
};
const firstDayOf = (rows: unknown[]) => {
  const days = boundDays(rows);
  return days.length ? dayDate(Math.min(...days)) : null;
};
const lastDayOf = (rows: unknown[]) => {
  const days = boundDays(rows);
  return days.length ? dayDate(Math.max(...days)) : null;
};

function lastDayRead(e: Engine, siteId: number, searchType: SearchTypeCode | "all"): SmallRead {
  return {
    // The property totals (a few rows a day) read backwards to the first row of the type(s). The detail's stored
    // days walked back from its newest, a seek each, until one holds a row of the type(s) (a seek on (site_id, day,
    // type)): read backwards row by row, a type the site has no rows of read every detail row of the site (1.4 s at
    // 5 M on SQLite; PostgreSQL's 15 s limit at 20 M).
    sql: `select (select day from gsc_property_totals where site_id = $site_id and type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})
             order by day desc limit 1) as day,
            (with recursive d(day) as (
               select (select max(day) from gsc_query_detail where site_id = $site_id)
               union all
               select (select max(x.day) from gsc_query_detail x where x.site_id = $site_id and x.day < d.day) from d
                where d.day is not null and not exists (
                  select 1 from gsc_query_detail y where y.site_id = $site_id and y.day = d.day
                     and y.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")})))
             select d.day from d where d.day is not null and exists (
               select 1 from gsc_query_detail y where y.site_id = $site_id and y.day = d.day
                  and y.type in (select cast(value as integer) from ${jsonList(e, "$types", "t")}))) as detail_day`,
    params: { site_id: siteId, types: JSON.stringify(typeCodesOf(searchType)) },
  };
}

/** A window from `since` (or the site's first data day) to today: the "all time" of the original's endpoints. */
export async function windowSince(
  db: Db,
  siteId: number,
  since: string | null,
  now = new Date(),
): Promise<{ start: string; end: string } | null> {
  const end = dayOf(now);
  const start = since ?? (await findFirstDataDay(db, siteId));
  if (!start || start > end) return null;
  return { start, end: addDays(end, 0) };
}
