import { z } from "zod";
import { isDate, RETENTION_DAYS } from "../sync/dates.ts";
import { searchTypeCodes } from "../db/enums.ts";

// Input schemas of the MCP tools. The SDK validates arguments with them and publishes them to the
// client as JSON Schema, so the descriptions are what an assistant reads.

const day = z.string().refine(isDate, "expected a calendar date YYYY-MM-DD");

/** Every tool that reads one site's data names it by id or by hostname. */
export const siteArgs = {
  site_id: z.number().int().positive().optional().describe("The site's id (see list_sites). Wins over hostname."),
  hostname: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .describe("The site's Search Console property or host: 'sc-domain:example.com', 'example.com' or 'https://example.com/'."),
};

export const searchTypeArg = z
  .enum([...searchTypeCodes, "all"])
  .default("web")
  .describe("Search Console search type to read (discover and googleNews have no queries: totals and pages only); 'all' sums every type.");

export const daysArg = z
  .number()
  .int()
  .min(1)
  .max(RETENTION_DAYS)
  .default(30)
  .describe("Look back this many days: rows with date >= today (UTC) minus days. Data lags about 2 days.");

const limitArg = (def: number, max: number) => z.number().int().min(1).max(max).default(def).describe(`Most rows returned (1-${max}).`);

const pagesArg = z
  .array(z.string().min(1))
  .min(1)
  .max(500)
  .describe("Page URLs as stored (e.g. 'https://example.com/a'), or paths relative to the site ('/a'): every stored URL with that path.");

export const listSitesArgs = {
  active_only: z.boolean().default(false).describe("Only active sites."),
  include_archived: z.boolean().default(false).describe("Also archived sites (their data is kept and can still be read)."),
};

export const queryArgs = {
  sql: z
    .string()
    .min(1)
    .max(100_000)
    .describe(
      "One read-only SELECT (or WITH ... SELECT) in the database's syntax (SQLite or PostgreSQL: see the tool's description). '{site}' stands for the chosen site's daily rows " +
        "(date, page, query, device, search_type, clicks, impressions, ctr, position); '{site_hourly}' for its hourly rows " +
        "(date, hour, hour_timestamp, page, query, device, clicks, impressions, ctr, position). Readable tables: " +
        "sites, gsc_performance_data, gsc_synced_days, hourly_rankings.",
    ),
  ...siteArgs,
  data_type: z.enum(["daily", "hourly"]).default("daily").describe("What '{site}' stands for: the daily or the hourly rows."),
  max_rows: z.number().int().min(1).max(100_000).optional().describe("Most rows returned; capped by the server's limit."),
};

export const pageQueriesArgs = {
  ...siteArgs,
  page: z.string().min(1).describe("Page URL, or a path relative to the site ('/trail-running')."),
  days: daysArg,
  search_type: searchTypeArg,
  limit: limitArg(50, 1000),
};
export const keywordPagesArgs = {
  ...siteArgs,
  keyword: z.string().min(1).describe("The exact query text."),
  days: daysArg,
  search_type: searchTypeArg,
  limit: limitArg(100, 1000),
};
export const searchKeywordsArgs = {
  ...siteArgs,
  pattern: z.string().min(1).describe("SQL LIKE pattern, e.g. '%running%' (ASCII case-insensitive; % any text, _ one character)."),
  days: daysArg,
  search_type: searchTypeArg,
  limit: limitArg(100, 1000),
};
export const bestPagesArgs = { ...siteArgs, days: daysArg, search_type: searchTypeArg, limit: limitArg(20, 1000) };
export const trackPagesArgs = {
  ...siteArgs,
  pages: pagesArg,
  keywords: z.array(z.string().min(1)).max(500).default([]).describe("Only these queries (exact text); empty: all."),
  days: daysArg,
  search_type: searchTypeArg,
  limit: limitArg(1000, 10_000),
};
export const pagesQueriesArgs = { ...siteArgs, pages: pagesArg, search_type: searchTypeArg, limit: limitArg(1000, 10_000) };

const period = z.object({ start: day, end: day }).refine((p) => p.start <= p.end, "start is after end");

export const comparePeriodsArgs = {
  ...siteArgs,
  period_type: z
    .enum(["week", "month", "last_7_days", "custom"])
    .default("week")
    .describe(
      "'week': last Monday-Sunday vs this Monday-today (UTC); 'month': last calendar month vs this month to date; " +
        "'last_7_days': the 7 newest days with data vs the 7 days before (complete days: best for 'this week'); " +
        "'custom': custom_periods.",
    ),
  custom_periods: z
    .object({ period1: period, period2: period })
    .optional()
    .describe("For period_type 'custom': {period1: {start, end}, period2: {start, end}}, dates YYYY-MM-DD, inclusive."),
  breakdown: z
    .enum(["page", "query", "none"])
    .default("page")
    .describe("Also list the change per page or per query (e.g. which pages lost clicks), or only the totals."),
  order: z.enum(["losers_first", "gainers_first"]).default("losers_first").describe("Order of the breakdown by clicks change."),
  search_type: searchTypeArg,
  limit: limitArg(20, 1000),
};

export const sitemapsArgs = {
  ...siteArgs,
  history: z.boolean().default(false).describe("Also each change of the sitemaps (errors, warnings, downloads, counts), newest first."),
};

export const indexStatusArgs = {
  ...siteArgs,
  url: z.string().min(1).max(2048).optional().describe("One page: its inspections over time instead of every page's latest."),
  verdict: z
    .string()
    .regex(/^[A-Z_]{1,40}$/)
    .optional()
    .describe("Only pages whose latest verdict is this (PASS, PARTIAL, FAIL, NEUTRAL)."),
  limit: z.number().int().min(1).max(1000).default(200),
};

export const syncStatusArgs = {
  ...siteArgs,
  end: z
    .string()
    .refine(isDate, "expected a calendar date YYYY-MM-DD")
    .optional()
    .describe("Last day (default: the newest day Search Console may have, today minus 2, UTC)."),
  days: z.number().int().min(1).max(486).default(30).describe("Days ending at end (default 30)."),
};
