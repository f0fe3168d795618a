import { Hono, type Context } from "hono";
import { z } from "zod";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { comparePeriodTotals, findPagesQueries, trackPages } from "../mcp/queries.ts";
import { periodsOf } from "../mcp/periods.ts";
import { resolveSite } from "../sites/resolve.ts";
import { addDays, dayOf, isDate } from "../sync/dates.ts";
import { resolvePages } from "./pages.ts";
import { findRankingDataV2, v2GroupColumns } from "./queries.ts";
import { checkTermCaps, defaultBounds, heavyRequest, type Bounds } from "../analytics/bounds.ts";
import { boundedDb } from "../db/bounded.ts";

// The original tool's other clients (docs/compatibility.md): the v1 paths of before the modular app
// (aliases routed to today's handlers), the v2-era ranking-data body, and the v3 HTTP tool endpoints.

/** The path the client asked for (before aliasing), without a trailing slash. */
function askedPath(c: Context): string {
  return new URL(c.req.url).pathname.replace(/\/+$/, "") || "/";
}

const DateStr = z.string().refine(isDate, "expected a date YYYY-MM-DD");
const LaxId = z
  .union([
    z.number().int(),
    z
      .string()
      .regex(/^\d{1,15}$/)
      .transform(Number),
  ])
  .nullish();
const Terms = z.array(z.string().max(2048)).max(10_000).nullish();

/** v2's ranking-data body (reference §4 N5): date_from/date_to, group_by a list, limit, exact_match. */
const V2RankingBody = z.object({
  site_id: LaxId,
  hostname: z.string().max(2048).nullish(),
  date_from: DateStr,
  date_to: DateStr,
  queries: Terms,
  pages: Terms,
  group_by: z
    .union([z.array(z.enum(v2GroupColumns)).min(1).max(v2GroupColumns.length), z.enum(v2GroupColumns).transform((c) => [c])])
    .default(["query"]),
  limit: z.number().int().min(1).max(100_000).default(1000),
  exact_match: z.boolean().default(true),
});

/** A ranking-data body in v2's shape (the v1 one has start_date/end_date and a string group_by). */
function isV2Body(b: unknown): b is Record<string, unknown> {
  if (typeof b !== "object" || b === null || Array.isArray(b)) return false;
  const o = b as Record<string, unknown>;
  return "date_from" in o || "date_to" in o || Array.isArray(o.group_by) || ("limit" in o && !("start_date" in o));
}

function invalid(error: z.ZodError): ApiError {
  const details = error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
  return new ApiError("validation_failed", `invalid body: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, details);
}

const Site = z.string().min(1).max(2048);
const Pages = z.array(z.string().min(1).max(2048)).min(1).max(500);
const TrackPagesBody = z.object({
  site: Site,
  pages: Pages,
  keywords: z.array(z.string().max(2048)).max(1000).default([]),
  days: z.number().int().min(1).max(486).default(30),
});
const PagesQueriesBody = z.object({ site: Site, pages: Pages });
const PeriodBody = z.object({ start: DateStr, end: DateStr });
const ComparePeriodsBody = z.object({
  site: Site,
  period_type: z.enum(["week", "month", "last_7_days", "custom"]).default("week"),
  custom_periods: z.object({ period1: PeriodBody, period2: PeriodBody }).optional(),
});

/** Most rows a v3 tool endpoint returns (the original had no cap). */
export const TOOL_MAX_ROWS = 10_000;

/** A v3 tool body, or the original's 400 message for what is missing. */
async function toolBody<T extends z.ZodType>(c: Context, schema: T, needsPages: boolean): Promise<z.output<T>> {
  const missing = needsPages ? "Missing required parameters: site and pages" : "Missing required parameter: site";
  const raw = await c.req.json().catch(() => {
    throw new ApiError("invalid_json", "No data provided");
  });
  if (typeof raw !== "object" || raw === null || Object.keys(raw).length === 0) throw new ApiError("validation_failed", "No data provided");
  const o = raw as Record<string, unknown>;
  if (!o.site || (needsPages && !o.pages)) throw new ApiError("validation_failed", missing);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

/**
 * The compatibility routes, mounted at / before the analytics routes: a middleware on ranking-data
 * that answers v2-shaped bodies and gives /daily-data its defaults, and v3's POST /track_pages,
 * /pages_queries and /compare_periods (the MCP tools' reads over HTTP).
 */
export function compatRoutes(plain: Db, bounds: Bounds = defaultBounds) {
  const app = new Hono();
  // Heavy reads: the caller's concurrency, and the request's time limit and caps on every read (bounded
  // Drizzle, docs/security.md#cost-bounds). Counted once when the analytics routes answer after this.
  const db = boundedDb(plain);
  for (const path of ["/api/v1/analytics/ranking-data", "/track_pages", "/pages_queries", "/compare_periods"]) {
    app.post(path, heavyRequest(bounds));
  }

  app.post("/api/v1/analytics/ranking-data", async (c, next) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return next(); // not JSON: the handler's validator answers
    }
    // Terms past the caps are refused before any schema looks at them (v2 and v3 bodies alike).
    checkTermCaps(body, bounds, isV2Body(body));
    if (isV2Body(body)) {
      const parsed = V2RankingBody.safeParse(body);
      if (!parsed.success) throw invalid(parsed.error);
      const b = parsed.data;
      // The term caps of ranking-data (docs/security.md#cost-bounds): v2 matches partial terms with LIKE.
      const most = b.exact_match ? bounds.maxTerms : bounds.maxPartialTerms;
      const setting = b.exact_match ? "ANALYTICS_MAX_TERMS" : "ANALYTICS_MAX_PARTIAL_TERMS";
      for (const field of ["queries", "pages"] as const) {
        const n = b[field]?.length ?? 0;
        if (n > most) {
          throw new ApiError("validation_failed", `invalid body: ${field}: at most ${most} terms per request (${setting}); got ${n}`, [
            { path: field, message: `at most ${most} terms (${setting})` },
          ]);
        }
      }
      const site = await resolveSite(db, b);
      const rows =
        b.date_from > b.date_to
          ? { data: [], total: 0, aggregations: { clicks: 0, impressions: 0, ctr: 0, position: 0, unique_queries: 0, unique_pages: 0 } }
          : await findRankingDataV2(db, {
              siteId: site.id,
              start: b.date_from,
              end: b.date_to,
              groupBy: b.group_by,
              queries: b.queries ?? null,
              pages: b.pages ?? null,
              exact: b.exact_match,
              limit: b.limit,
            });
      return c.json({ site_id: site.id, date_from: b.date_from, date_to: b.date_to, group_by: b.group_by, ...rows }, 200);
    }
    if (askedPath(c) === "/api/v1/daily-data" && typeof body === "object" && body !== null) {
      // v1's DailyDataRequest: per-day rows, 365 of them unless asked otherwise.
      const o = body as Record<string, unknown>;
      // The handler's validator reads the body from this cache (Hono caches the text it parsed).
      (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(
        JSON.stringify({ aggregation_mode: "daily", max_results: 365, ...o }),
      );
    }
    return next();
  });

  // v2's page-keyword-performance body: `url_filter` and `limit` for v1's `query` and `max_results`.
  app.post("/api/v1/page-keyword-performance", async (c, next) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return next();
    }
    if (typeof body === "object" && body !== null && !Array.isArray(body) && ("url_filter" in body || "limit" in body)) {
      const { url_filter, limit, ...rest } = body as Record<string, unknown>;
      const mapped = {
        ...rest,
        ...(url_filter !== undefined ? { query: url_filter } : {}),
        ...(limit !== undefined ? { max_results: limit } : {}),
      };
      (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(JSON.stringify(mapped));
    }
    return next();
  });

  app.post("/track_pages", async (c) => {
    const b = await toolBody(c, TrackPagesBody, true);
    const site = await resolveSite(db, { hostname: b.site });
    const pages = await resolvePages(db, site.id, b.pages);
    const since = addDays(dayOf(new Date()), -b.days);
    return c.json(
      await trackPages(db, { siteId: site.id, searchType: "web", since, pages, keywords: b.keywords, limit: TOOL_MAX_ROWS }),
      200,
    );
  });

  app.post("/pages_queries", async (c) => {
    const b = await toolBody(c, PagesQueriesBody, true);
    const site = await resolveSite(db, { hostname: b.site });
    const pages = await resolvePages(db, site.id, b.pages);
    return c.json(await findPagesQueries(db, { siteId: site.id, searchType: "web", pages, limit: TOOL_MAX_ROWS }), 200);
  });

  app.post("/compare_periods", async (c) => {
    const b = await toolBody(c, ComparePeriodsBody, false);
    const site = await resolveSite(db, { hostname: b.site });
    const scope = { siteId: site.id, searchType: "web" };
    const [period1, period2] = await periodsOf(db, scope, b.period_type, b.custom_periods);
    const totals = await comparePeriodTotals(db, { ...scope, period1, period2 });
    return c.json(
      {
        period1_start: period1.start,
        period1_end: period1.end,
        period2_start: period2.start,
        period2_end: period2.end,
        ...totals,
      },
      200,
    );
  });

  return app;
}
