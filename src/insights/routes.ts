import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { boundedDb } from "../db/bounded.ts";
import { defaultBounds, heavyRequest, type Bounds } from "../analytics/bounds.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { listBrandTerms, replaceBrandTerms } from "./queries.ts";
import {
  BrandTermsBody,
  CannibalizationQuery,
  CompareQuery,
  DecayQuery,
  IndexInsightQuery,
  OverviewSchema,
  TopQuery,
  WindowQuery,
  WindowSchema,
} from "./schemas.ts";
import * as insights from "./service.ts";

const Answer = (name: string) => z.object({}).passthrough().openapi(name);

/** The insight endpoints, mounted at /api/v1: /sites/{id}/insights/* and /sites/{id}/brand-terms. */
export function insightsRoutes(plain: Db, bounds: Bounds = defaultBounds) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  // Reports are heavy reads: the caller's concurrency, and the request's time limit and caps on every
  // read (bounded Drizzle, docs/security.md#cost-bounds). Brand terms (a short list, a write) are not.
  app.get("/sites/:id/insights/*", heavyRequest(bounds));
  const db = boundedDb(plain);
  const get = (path: string, summary: string, description: string, query: z.ZodObject, response: z.ZodType) =>
    createRoute({
      method: "get",
      path: `/sites/{id}/insights/${path}`,
      tags: ["insights"],
      summary,
      description,
      request: { params: SiteIdParams, query },
      responses: { 200: jsonResponse(response, summary), ...errorResponses(400, 404, 413, 429, 504) },
    });
  const formulas =
    "CTR = Σclicks / Σimpressions; position weighted by impressions. Default window: the 28 days ending at the newest day with data.";

  app.openapi(
    get(
      "overview",
      "Property overview: totals and the daily trend",
      `${formulas} Days without data are absent from \`trend\` (gaps).`,
      WindowQuery,
      WindowSchema.merge(OverviewSchema),
    ),
    async (c) => c.json((await insights.overviewInsight(db, Number(c.req.valid("param").id), c.req.valid("query"))) as never, 200),
  );
  app.openapi(
    get("top", "Top queries or pages", `${formulas} Filters: date range, search type, device, text.`, TopQuery, Answer("InsightTop")),
    async (c) =>
      c.json(await insights.topInsight(db, Number(c.req.valid("param").id), c.req.valid("query") as z.output<typeof TopQuery>), 200),
  );
  app.openapi(
    get(
      "compare",
      "Compare two periods: winners and losers by clicks, position moves",
      "Default: the last 28 days with data vs the 28 before. `position_change` < 0 means it moved up.",
      CompareQuery,
      Answer("InsightCompare"),
    ),
    async (c) =>
      c.json(
        await insights.compareInsight(db, Number(c.req.valid("param").id), c.req.valid("query") as z.output<typeof CompareQuery>),
        200,
      ),
  );
  app.openapi(
    get(
      "decay",
      "Content decay: pages losing clicks over N weeks",
      "Last week at least `min_drop` below the first, and a falling least-squares trend over the weekly clicks.",
      DecayQuery,
      Answer("InsightDecay"),
    ),
    async (c) =>
      c.json(await insights.decayInsight(db, Number(c.req.valid("param").id), c.req.valid("query") as z.output<typeof DecayQuery>), 200),
  );
  app.openapi(
    get(
      "cannibalization",
      "Cannibalization: queries whose impressions several pages share",
      "Queries where two or more pages each hold at least `min_share` of the query's impressions.",
      CannibalizationQuery,
      Answer("InsightCannibalization"),
    ),
    async (c) =>
      c.json(
        await insights.cannibalizationInsight(
          db,
          Number(c.req.valid("param").id),
          c.req.valid("query") as z.output<typeof CannibalizationQuery>,
        ),
        200,
      ),
  );
  app.openapi(
    get(
      "brand",
      "Brand vs non-brand queries",
      "Split by the site's brand terms (PUT /sites/{id}/brand-terms).",
      WindowQuery,
      Answer("InsightBrand"),
    ),
    async (c) => c.json(await insights.brandInsight(db, Number(c.req.valid("param").id), c.req.valid("query")), 200),
  );

  app.openapi(
    get(
      "index",
      "Index status beside the traffic: pages per verdict and coverage state, not-indexed pages by clicks",
      "From each inspected page's newest URL inspection (POST /sites/{id}/inspections stores them): pages per `verdict` and `coverage_state`; `pages`: those whose verdict is not PASS with their clicks and impressions in the window (page totals), most clicks first; `uninspected_top_pages`: of the window's 100 top pages by clicks, those never inspected.",
      IndexInsightQuery,
      Answer("InsightIndex"),
    ),
    async (c) =>
      c.json(
        await insights.indexInsight(db, Number(c.req.valid("param").id), c.req.valid("query") as z.output<typeof IndexInsightQuery>),
        200,
      ),
  );

  const terms = z.object({ site_id: z.number().int(), terms: z.array(z.string()) }).openapi("BrandTermsAnswer");
  app.openapi(
    createRoute({
      method: "get",
      path: "/sites/{id}/brand-terms",
      tags: ["insights"],
      summary: "A site's brand terms",
      request: { params: SiteIdParams },
      responses: { 200: jsonResponse(terms, "Terms"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const id = Number(c.req.valid("param").id);
      if (!(await findSiteById(plain, id))) throw siteNotFound(id);
      return c.json({ site_id: id, terms: await listBrandTerms(plain, id) }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/sites/{id}/brand-terms",
      tags: ["insights"],
      summary: "Replace a site's brand terms (stored lower-case)",
      request: { params: SiteIdParams, body: jsonBody(BrandTermsBody) },
      responses: { 200: jsonResponse(terms, "Terms"), ...errorResponses(400, 404, 413, 415) },
    }),
    async (c) => {
      const id = Number(c.req.valid("param").id);
      if (!(await findSiteById(plain, id))) throw siteNotFound(id);
      return c.json({ site_id: id, terms: await replaceBrandTerms(plain, id, c.req.valid("json").terms) }, 200);
    },
  );
  return app;
}
