import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { resolveSite } from "../sites/resolve.ts";
import { resolveRange } from "../sync/range.ts";
import { SiteIdParam } from "../sync/schemas.ts";
import { createTask } from "../sync/queries.ts";
import { attachmentHeader, csvLine, fileStamp, formatFixed, safeName, UTF8_BOM } from "./format.ts";
import {
  exportQuery,
  findCoverage,
  findPageKeywordPerformance,
  findPerformanceTrends,
  findSiteRankingData,
  pageKeywordSince,
} from "./queries.ts";
import {
  CoverageQuery,
  CoverageResponse,
  exportColumns,
  ExportQuery,
  PageKeywordCsvQuery,
  PageKeywordRequest,
  PageKeywordResponse,
  RankingDataRequest,
  RankingDataResponse,
  TrendsQuery,
  TrendsResponse,
  TriggerBody,
  TriggerResponse,
  flagOn,
  grainFiltersOf,
} from "./schemas.ts";
import { PARQUET_GROUP_ROWS, parquetRows } from "./parquet.ts";
import { linesStream, streamQuery, streamRows, streamSteps } from "./stream.ts";
import { csvDays, EXPORT_PARQUET, exportDaySteps } from "./export.ts";
import { parquetDays } from "./export-parquet.ts";
import { assertAnswerable } from "./totals.ts";
import { defaultBounds, heavyRequest, type Bounds } from "./bounds.ts";
import { ApiError } from "../errors.ts";

export type AnalyticsOptions = {
  /** max_attempts of the sync tasks POST /sync/trigger creates (SYNC_MAX_ATTEMPTS). */
  maxAttempts?: number;
  /** Cost bounds of the heavy routes (time limit, caps, per-key concurrency). */
  bounds?: Bounds;
};

const csvResponse = (description: string) => ({ description, content: { "text/csv": { schema: z.string() } } });

/** `max_results` as a row count: null/0 mean all; a negative one is applied after the query (see README). */
function sqlLimit(max: number | null): number | null {
  return max === null || max <= 0 ? null : max;
}

/** The original's tail-dropping negative `max_results` (a Python slice), or the list unchanged. */
function sliceNegative<T>(rows: T[], max: number | null): T[] {
  return max !== null && max < 0 ? rows.slice(0, max) : rows;
}

const EXPORT_TYPES = {
  csv: "text/csv; charset=utf-8",
  jsonl: "application/x-ndjson; charset=utf-8",
  parquet: "application/vnd.apache.parquet",
};

const PAGE_KEYWORD_HEADER = csvLine(["url", "total_clicks", "total_impressions", "avg_ctr", "avg_position", "keywords", "keyword_count"]);

/** The original's analytics endpoints and the raw-data export, mounted at /api/v1. */
export function analyticsRoutes(db: Db, opts: AnalyticsOptions = {}) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const bounds = opts.bounds ?? defaultBounds;
  // Heavy routes: a time limit, answer caps and per-key concurrency (bounds.ts); downloads hold their place while they stream.
  for (const path of [
    "/analytics/ranking-data",
    "/page-keyword-performance",
    "/page-keyword-performance/csv",
    "/analytics/performance-trends",
  ]) {
    app.use(path, heavyRequest(bounds));
  }
  app.use("/sites/:site_id/export", heavyRequest(bounds, "export"));

  app.openapi(
    createRoute({
      method: "post",
      path: "/analytics/ranking-data",
      tags: ["analytics"],
      summary: "Ranking rows of queries or pages between two days: raw or per day",
      request: { body: jsonBody(RankingDataRequest) },
      responses: { 200: jsonResponse(RankingDataResponse, "Ranking rows"), ...errorResponses(400, 404, 413, 415, 429, 504) },
    }),
    async (c) => {
      const b = c.req.valid("json");
      // Rows of the query detail: it has no country, and discover/googleNews have no query rows.
      assertAnswerable({ searchType: b.search_type ?? "web", device: b.device ?? null, country: b.country ?? null }, "query");
      const byQuery = b.group_by === "query";
      // A filter of the other dimension is ignored, as in the original; duplicates count once.
      const terms = byQuery ? b.queries : b.pages;
      const list = terms && terms.length > 0 ? [...new Set(terms)] : null;
      const partial = byQuery && b.matching_mode === "partial";
      // Partial terms cost a substring test each per row of the range: far fewer are allowed than exact ones.
      const most = partial ? bounds.maxPartialTerms : bounds.maxTerms;
      if (list && list.length > most) {
        const field = byQuery ? "queries" : "pages";
        const setting = partial ? "ANALYTICS_MAX_PARTIAL_TERMS" : "ANALYTICS_MAX_TERMS";
        throw new ApiError(
          "validation_failed",
          `invalid body: ${field}: at most ${most} ${partial ? "partial-match " : ""}terms per request (${setting}); got ${list.length}`,
          [{ path: field, message: `at most ${most} terms (${setting})` }],
        );
      }
      const { site, data } = await findSiteRankingData(db, b, {
        start: b.start_date,
        end: b.end_date,
        groupBy: b.group_by,
        exact: partial ? null : list,
        partial: partial ? list : null,
        daily: b.aggregation_mode === "daily",
        limit: sqlLimit(b.max_results),
        searchType: b.search_type ?? null,
        device: b.device ?? null,
      });
      const rows = sliceNegative(data, b.max_results);
      return c.json(
        { site_id: site.id, start_date: b.start_date, end_date: b.end_date, group_by: b.group_by, total_results: rows.length, data: rows },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/page-keyword-performance",
      tags: ["analytics"],
      summary: "Per page: totals, mean ctr (percent) and position, and its queries",
      description: "Also at the original's `/page-keyword-performance/`.",
      request: { body: jsonBody(PageKeywordRequest) },
      responses: { 200: jsonResponse(PageKeywordResponse, "Pages, most clicked first"), ...errorResponses(400, 404, 413, 415, 429, 504) },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const site = await resolveSite(db, b);
      const rows = await findPageKeywordPerformance(db, {
        siteId: site.id,
        since: pageKeywordSince(b.days),
        urlContains: b.query ?? null,
        limit: sqlLimit(b.max_results),
        searchType: b.search_type,
        device: b.device ?? null,
      });
      const data = sliceNegative(rows, b.max_results);
      return c.json({ site_id: site.id, time_range: b.days ? `Last ${b.days} days` : "All time", total_results: data.length, data }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/page-keyword-performance/csv",
      tags: ["analytics"],
      summary: "The page-keyword-performance rows as a streamed CSV download",
      description: "Also at the original's `/page-keyword-performance/csv/`. RFC 4180, CRLF, UTF-8, header row always.",
      request: { query: PageKeywordCsvQuery },
      responses: { 200: csvResponse("CSV, one line per page"), ...errorResponses(400, 404, 413, 429, 504) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const site = await resolveSite(db, q);
      const o = {
        siteId: site.id,
        since: pageKeywordSince(q.days),
        urlContains: q.query ?? null,
        limit: q.max_results || null,
        searchType: q.search_type,
        device: q.device ?? null,
      };
      const raw = flagOn(q.raw);
      // Read whole within the request's bounds (query processes on SQLite: the aggregation would hold the
      // event loop on its first row), then written out a chunk per turn of the event loop.
      const items = await findPageKeywordPerformance(db, o);
      const body = linesStream((flagOn(q.bom) ? UTF8_BOM : "") + PAGE_KEYWORD_HEADER, items, (p) => {
        // The original's CSV: ctr percent with 4 decimals, the 2-decimal position printed with 1.
        const fields = [p.url, p.total_clicks, p.total_impressions, formatFixed(p.avg_ctr, 4), formatFixed(p.avg_position, 1)];
        return csvLine([...fields, p.keywords.join("|"), p.keyword_count], raw);
      });
      const name = safeName(site.name) || `site_${site.id}`;
      return new Response(body, {
        status: 200,
        headers: {
          "content-type": "text/csv; charset=utf-8",
          "content-disposition": attachmentHeader(`page_keyword_performance_${name}_${fileStamp(new Date())}.csv`),
        },
      });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/analytics/performance-trends",
      tags: ["analytics"],
      summary: "Daily totals of the newest `days` days with data, with 7-day average, week-over-week change and running sum",
      request: { query: TrendsQuery },
      responses: { 200: jsonResponse(TrendsResponse, "Newest day first"), ...errorResponses(400, 404, 413, 429, 504) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await findPerformanceTrends(db, q, q.days, grainFiltersOf(q)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sync/status",
      tags: ["sync"],
      summary: "Per-day coverage of a site's data from today minus `days` to today (UTC)",
      request: { query: CoverageQuery },
      responses: { 200: jsonResponse(CoverageResponse, "Coverage"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const { site, daily, hourly, lastSync } = await findCoverage(db, q, q.days);
      return c.json(
        {
          site_id: site.id,
          site_name: site.name,
          daily_coverage: daily,
          hourly_coverage: hourly,
          last_sync: lastSync,
          total_records: Object.values(daily).filter(Boolean).length,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/sync/trigger",
      tags: ["sync"],
      summary: "Queue a daily_sync of the last `days` days for a site named by id or hostname",
      request: { body: jsonBody(TriggerBody) },
      responses: { 201: jsonResponse(TriggerResponse, "Queued"), ...errorResponses(400, 404, 409, 413, 415) },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const site = await resolveSite(db, b);
      const range = resolveRange({ days: b.days });
      // force: days already stored are fetched again, which is what overwrite does.
      const mode = b.force ? "overwrite" : b.sync_mode;
      const task = await createTask(db, {
        siteId: site.id,
        taskType: "daily_sync",
        startDate: range.start,
        endDate: range.end,
        params: { sync_mode: mode },
        runAt: new Date(),
        maxAttempts: opts.maxAttempts ?? 3,
      });
      const statusUrl = `/api/v1/sync/job/${task.id}`;
      c.header("Location", statusUrl);
      return c.json(
        {
          status: "queued" as const,
          job_id: task.id,
          site_id: site.id,
          days: b.days,
          sync_mode: mode,
          force: b.force,
          message: `Sync job queued for site ${site.id} with mode '${mode}' (${range.start}..${range.end})`,
          status_url: statusUrl,
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sites/{site_id}/export",
      tags: ["analytics"],
      summary: "Every synced row of a site, streamed as CSV, JSON lines or Parquet",
      description: `Columns ${exportColumns.join(", ")}; in (date, page, query, device, search_type) order. Parquet: date is a DATE, clicks and impressions INT64, ctr and position DOUBLE, text UTF-8; a row group per ${PARQUET_GROUP_ROWS} rows, snappy-compressed.`,
      request: { params: SiteIdParam, query: ExportQuery },
      responses: {
        200: {
          description: "The rows",
          content: {
            "text/csv": { schema: z.string() },
            "application/x-ndjson": { schema: z.string() },
            "application/vnd.apache.parquet": { schema: z.string().openapi({ format: "binary" }) },
          },
        },
        ...errorResponses(400, 404, 429, 504),
      },
    }),
    async (c) => {
      const { site_id } = c.req.valid("param");
      const q = c.req.valid("query");
      const site = await resolveSite(db, { site_id });
      const exportOptions = { siteId: site.id, start: q.start_date, end: q.end_date, searchType: q.search_type };
      const { sql, params } = exportQuery(db.engine, exportOptions);
      type Row = Record<(typeof exportColumns)[number], string | number>;
      const limit = { timeoutMs: bounds.exportTimeoutMs };
      const csv = q.format === "csv";
      const raw = flagOn(q.raw);
      const body =
        q.format === "parquet" && db.engine === "sqlite"
          ? streamSteps(db, (conn) => exportDaySteps(conn, exportOptions, parquetDays()), 1, { ...limit, direct: true })
          : q.format === "parquet"
            ? await streamRows<Row>(db, sql, params, parquetRows<Row>(EXPORT_PARQUET), limit)
            : csv && db.engine === "sqlite"
              ? streamSteps(
                  db,
                  (conn) => exportDaySteps(conn, exportOptions, csvDays((flagOn(q.bom) ? UTF8_BOM : "") + csvLine(exportColumns), raw)),
                  1,
                  { ...limit, direct: true },
                )
              : csv
                ? await streamQuery<Row>(
                    db,
                    sql,
                    params,
                    (flagOn(q.bom) ? UTF8_BOM : "") + csvLine(exportColumns),
                    (r) => csvLine([r.date, r.page, r.query, r.device, r.search_type, r.clicks, r.impressions, r.ctr, r.position], raw),
                    limit,
                  )
                : await streamQuery<Row>(db, sql, params, "", (r) => `${JSON.stringify(r)}\n`, limit);
      const span = `${q.start_date ?? "all"}_${q.end_date ?? "all"}`;
      return new Response(body, {
        status: 200,
        headers: {
          "content-type": EXPORT_TYPES[q.format],
          "content-disposition": attachmentHeader(`site_${site.id}_${span}.${q.format}`),
        },
      });
    },
  );

  return app;
}
