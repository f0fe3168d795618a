import { listInspectionHistory, listLatestInspections } from "../inspection/queries.ts";
import { listSitemapHistory, listSitemaps } from "../sitemaps/queries.ts";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { z } from "zod";
import type { Db } from "../db/index.ts";
import { ApiError, apiErrorOf, isBusyError } from "../errors.ts";
import { log } from "../log.ts";
import { listSites } from "../sites/queries.ts";
import { resolveSite, type SiteRef } from "../sites/resolve.ts";
import { addDays, dayOf } from "../sync/dates.ts";
import {
  comparePeriodsBy,
  comparePeriodTotals,
  findBestPages,
  findKeywordPages,
  findPageQueries,
  findPagesQueries,
  searchKeywords,
  trackPages,
  type Scope,
} from "./queries.ts";
import {
  bestPagesArgs,
  comparePeriodsArgs,
  keywordPagesArgs,
  listSitesArgs,
  pageQueriesArgs,
  pagesQueriesArgs,
  queryArgs,
  searchKeywordsArgs,
  trackPagesArgs,
  indexStatusArgs,
  sitemapsArgs,
  syncStatusArgs,
} from "./schemas.ts";
import { siteCompleteness } from "../sync/completeness.ts";
import { newestDataDay } from "../sync/dates.ts";
import { expandSitePlaceholders, runReadOnlySql } from "./sql.ts";
import { resolvePages } from "../compat/pages.ts";
import { periodsOf } from "./periods.ts";
import { registerInsightTools } from "../insights/mcp.ts";

export type McpOptions = {
  /** The `query` tool's time limit: its child process is killed after this. */
  queryTimeoutMs: number;
  /** Most rows the `query` tool returns. */
  queryMaxRows: number;
  /** Most `query` calls running at once in one process. */
  queryConcurrency: number;
  /** Resident memory past which a `query` statement's child is killed (default 256 MB). */
  queryMaxMemoryBytes?: number;
  /**
   * Whether this caller may run the `query` tool (arbitrary read-only SQL): keys of scope `query` or `admin`, and
   * this machine's keyless clients (who could read the file anyway); never read/write keys nor anyone under AUTH=off.
   */
  mayRunSql?: boolean;
  /** Which key calls (`key:<id>`), for the per-key cap on `query` runs (MCP_QUERY_PER_KEY); none: no such cap. */
  sqlCaller?: string;
  /** Most `query` calls one caller may have running or waiting at once in one process. */
  queryPerCaller?: number;
};

const QUERY_MAX_BYTES = 4 * 1024 * 1024;

const instructions = `sitesync holds Google Search Console data of the registered sites: per site, day (UTC, YYYY-MM-DD), page, \
query, device and search type, the clicks, impressions, ctr (a fraction) and average position (1 = top). Search Console \
data lags about 2 days. Start with list_sites; name a site by site_id or hostname. To see which pages lost clicks \
recently, call compare_periods with period_type 'last_7_days' (complete days) or 'week', breakdown 'page'.`;

type Args<S extends z.ZodRawShape> = z.output<z.ZodObject<S>>;

/** A fresh MCP server with the assistant tools over `db`: one per request, nothing kept between requests. */
export function createMcpServer(db: Db, opts: McpOptions): McpServer {
  const server = new McpServer({ name: "sitesync", version: "0.1.0" }, { instructions });
  const tool = <S extends z.ZodRawShape>(
    name: string,
    description: string,
    inputSchema: S,
    run: (args: Args<S>) => Promise<Record<string, unknown>>,
  ) =>
    server.registerTool(
      name,
      { description, inputSchema, annotations: { readOnlyHint: true, openWorldHint: false } },
      // The SDK hands over the arguments already parsed with inputSchema.
      ((args: Args<S>) => answer(name, () => run(args))) as never,
    );

  /** The scope of a tool call: its site, search type and look-back window. */
  const scope = async (a: SiteRef & { search_type: string; days?: number }): Promise<Scope> => ({
    siteId: (await resolveSite(db, a)).id,
    searchType: a.search_type,
    since: a.days === undefined ? undefined : addDays(dayOf(new Date()), -a.days),
  });

  tool("list_sites", "The registered sites (id, domain, name, category, is_active, archived_at), by name.", listSitesArgs, async (a) => {
    const sites = [];
    let cursor;
    do {
      const page = await listSites(db, { activeOnly: a.active_only, includeArchived: a.include_archived, limit: 500, cursor });
      sites.push(...page.items);
      cursor = page.next ?? undefined;
    } while (cursor);
    return { sites };
  });

  tool(
    "query",
    `Run one read-only SQL SELECT over the synced data (${db.engine === "pg" ? "PostgreSQL" : "SQLite"} syntax). Writes are refused; results are capped in rows and time.`,
    queryArgs,
    async (a) => {
      if (opts.mayRunSql === false) {
        throw new ApiError("forbidden", "the query tool runs arbitrary SQL: it needs a key with the 'query' (or 'admin') scope");
      }
      const site = a.site_id || a.hostname ? await resolveSite(db, a) : null;
      const result = await runReadOnlySql(
        db,
        expandSitePlaceholders(a.sql, site?.id ?? null, a.data_type, db.engine),
        {
          maxRows: Math.min(a.max_rows ?? opts.queryMaxRows, opts.queryMaxRows),
          timeoutMs: opts.queryTimeoutMs,
          maxBytes: QUERY_MAX_BYTES,
          maxConcurrent: opts.queryConcurrency,
          maxMemoryBytes: opts.queryMaxMemoryBytes,
        },
        opts.sqlCaller === undefined ? undefined : { id: opts.sqlCaller, maxConcurrent: opts.queryPerCaller ?? 1 },
      );
      return { site_id: site?.id ?? null, ...result };
    },
  );

  tool(
    "show_page_queries",
    "The queries one page was found for: clicks, impressions (summed) and average position, most impressions first.",
    pageQueriesArgs,
    async (a) => {
      const s = await scope(a);
      // A page may be given relative to the site (`/trail-running`): every stored URL with that path.
      const pages = await resolvePages(db, s.siteId, [a.page]);
      const rows = (await Promise.all(pages.map((page) => findPageQueries(db, { ...s, page, limit: a.limit })))).flat();
      return { site_id: s.siteId, since: s.since, ...(pages.length > 1 || pages[0] !== a.page ? { pages } : {}), rows };
    },
  );

  tool("show_keyword_pages", "The pages one query (exact text) led to, most clicked first.", keywordPagesArgs, async (a) => {
    const s = await scope(a);
    return { site_id: s.siteId, since: s.since, rows: await findKeywordPages(db, { ...s, keyword: a.keyword, limit: a.limit }) };
  });

  tool("search_keywords", "Queries matching an SQL LIKE pattern, most impressions first.", searchKeywordsArgs, async (a) => {
    const s = await scope(a);
    return { site_id: s.siteId, since: s.since, rows: await searchKeywords(db, { ...s, pattern: a.pattern, limit: a.limit }) };
  });

  tool("best_pages", "The most clicked pages, with impressions, average position and ctr (percent).", bestPagesArgs, async (a) => {
    const s = await scope(a);
    return { site_id: s.siteId, since: s.since, rows: await findBestPages(db, { ...s, limit: a.limit }) };
  });

  tool(
    "track_pages",
    "Day-by-day clicks, impressions and position of the given pages per query (optionally only the given queries), newest first.",
    trackPagesArgs,
    async (a) => {
      const s = await scope(a);
      return {
        site_id: s.siteId,
        since: s.since,
        rows: await trackPages(db, { ...s, pages: await resolvePages(db, s.siteId, a.pages), keywords: a.keywords, limit: a.limit }),
      };
    },
  );

  tool(
    "pages_queries",
    "Every query of the given pages over all synced days, by page, most impressions first.",
    pagesQueriesArgs,
    async (a) => {
      const s = await scope(a);
      return {
        site_id: s.siteId,
        rows: await findPagesQueries(db, { ...s, pages: await resolvePages(db, s.siteId, a.pages), limit: a.limit }),
      };
    },
  );

  tool(
    "compare_periods",
    "Compare two periods: clicks, impressions, position, distinct queries and pages, and their change; with a breakdown per " +
      "page or query ordered by clicks change (losers first), e.g. which pages lost clicks this week.",
    comparePeriodsArgs,
    async (a) => {
      const s = await scope(a);
      const [period1, period2] = await periodsOf(db, s, a.period_type, a.custom_periods);
      // The breakdown (the longest read) runs beside the totals' reads, each in its own query process; the
      // totals' error, if any, is still the one answered.
      const breakdown =
        a.breakdown === "none" ? null : comparePeriodsBy(db, { ...s, period1, period2, by: a.breakdown, order: a.order, limit: a.limit });
      breakdown?.catch(() => {});
      const totals = await comparePeriodTotals(db, { ...s, period1, period2 });
      const out: Record<string, unknown> = {
        site_id: s.siteId,
        period_type: a.period_type,
        period1_start: period1.start,
        period1_end: period1.end,
        period2_start: period2.start,
        period2_end: period2.end,
        ...totals,
      };
      if (breakdown) {
        const rows = await breakdown;
        out.breakdown = a.breakdown;
        out.rows = rows.map(({ key, ...r }) => ({ [a.breakdown]: key, ...r }));
      }
      return out;
    },
  );

  registerInsightTools(tool, db);

  // Honest capabilities: the tool list of this stateless server never changes while a client is
  // connected, and no notification could reach the client anyway (the SDK says listChanged: true).
  server.server.registerCapabilities({ tools: { listChanged: false } });
  tool(
    "get_sitemaps",
    "The site's sitemaps as Search Console lists them (submitted, last downloaded, pending, errors, warnings, URLs per content type); with history, each change over time.",
    sitemapsArgs,
    async (a) => {
      const site = await resolveSite(db, a);
      const sitemaps = await listSitemaps(db, site.id, { current: true });
      return { site_id: site.id, sitemaps, ...(a.history ? { history: await listSitemapHistory(db, site.id, { limit: 200 }) } : {}) };
    },
  );

  tool(
    "get_index_status",
    "Google's index status of the site's inspected pages (URL inspection): verdict, coverage state, Google's vs the page's canonical, last crawl, robots.txt and fetch state. Latest per page, or one page's history.",
    indexStatusArgs,
    async (a) => {
      const site = await resolveSite(db, a);
      if (a.url) return { site_id: site.id, url: a.url, history: await listInspectionHistory(db, site.id, a.url, a.limit) };
      return { site_id: site.id, pages: await listLatestInspections(db, site.id, { limit: a.limit, verdict: a.verdict }) };
    },
  );

  tool(
    "get_sync_status",
    "How complete each stored day is, per search type (gsc_day_completeness): rows fetched per grain, whether Google's 50,000-row cap truncated the page or query rows, the share of clicks from anonymized queries, dataState (final or provisional), when fetched; each day marked complete, truncated, provisional or derived (its totals summed from the named queries: under-counted), the worst of its types. Days never fetched at the grains are absent.",
    syncStatusArgs,
    async (a) => {
      const site = await resolveSite(db, a);
      const end = a.end ?? newestDataDay();
      const start = addDays(end, -(a.days - 1));
      return { site_id: site.id, ...(await siteCompleteness(db, site.id, start, end)) };
    },
  );

  return server;
}

/** Runs a tool and shapes its answer: JSON text plus structured content, or a tool error with a clear message. */
async function answer(name: string, run: () => Promise<Record<string, unknown>>): Promise<CallToolResult> {
  try {
    const result = await run();
    return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
  } catch (err) {
    // Drizzle wraps what a bounded read threw (timeout, caps) in its DrizzleQueryError.
    const api = apiErrorOf(err);
    if (api) return toolError(api.message);
    if (isBusyError(err)) return toolError("the database is busy; retry the call");
    log("error", "mcp tool failed", { tool: name, error: String(err), stack: (err as Error).stack });
    return toolError(`internal error in ${name} (logged)`);
  }
}

function toolError(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}
