import { z } from "zod";
import type { Db } from "../db/index.ts";
import { siteArgs } from "../mcp/schemas.ts";
import { resolveSite } from "../sites/resolve.ts";
import { isDate } from "../sync/dates.ts";
import * as insights from "./service.ts";

// The insights as MCP tools: the same service functions as the API and the dashboard, so an assistant
// sees the same numbers.

type Register = <S extends z.ZodRawShape>(
  name: string,
  description: string,
  inputSchema: S,
  run: (args: z.output<z.ZodObject<S>>) => Promise<Record<string, unknown>>,
) => unknown;

const day = z.string().refine(isDate, "expected a calendar date YYYY-MM-DD");
const windowArgs = {
  ...siteArgs,
  start: day.optional().describe("First day, YYYY-MM-DD (default: end minus days-1)."),
  end: day.optional().describe("Last day (default: the newest day with data)."),
  days: z.number().int().min(1).max(486).optional().describe("Window length when start is not given (default 28)."),
  search_type: z.enum(["web", "image", "video", "news", "discover", "googleNews"]).optional().describe("Default web."),
  device: z.enum(["DESKTOP", "MOBILE", "TABLET"]).optional(),
  country: z
    .string()
    .regex(/^[a-z]{3}$/)
    .optional()
    .describe("ISO 3166-1 alpha-3, lower case (e.g. usa): totals and pages only; query reports have no country."),
};
const FORMULAS =
  "Totals are Search Console's own (anonymized queries included; anonymized_clicks_share says how much of them no query names); CTR = clicks/impressions summed; position weighted by impressions.";

/** Registers the insight tools with `tool` (createMcpServer's registration helper). */
export function registerInsightTools(tool: Register, db: Db) {
  const siteOf = async (a: { site_id?: number; hostname?: string }) => (await resolveSite(db, a)).id;

  tool(
    "insight_overview",
    `A property's totals (clicks, impressions, ctr, position, queries, pages) and daily trend. ${FORMULAS}`,
    windowArgs,
    async (a) => insights.overviewInsight(db, await siteOf(a), a),
  );
  tool(
    "insight_top",
    `Top queries or pages by clicks (or impressions), with filters. ${FORMULAS}`,
    {
      ...windowArgs,
      by: z.enum(["query", "page"]).default("query"),
      order: z.enum(["clicks", "impressions"]).default("clicks"),
      contains: z.string().min(1).max(200).optional().describe("Only keys containing this text (case-insensitive)."),
      limit: z.number().int().min(1).max(1000).default(50),
    },
    async (a) => insights.topInsight(db, await siteOf(a), a),
  );
  tool(
    "insight_compare",
    "Winners and losers by clicks, and position moves, between two periods per page or query. Default: the last 28 days with data vs the 28 before.",
    {
      ...siteArgs,
      by: z.enum(["query", "page"]).default("page"),
      current_start: day.optional(),
      current_end: day.optional(),
      previous_start: day.optional(),
      previous_end: day.optional(),
      days: z.number().int().min(1).max(243).default(28),
      search_type: windowArgs.search_type,
      device: windowArgs.device,
      country: windowArgs.country,
      limit: z.number().int().min(1).max(500).default(20),
    },
    async (a) => insights.compareInsight(db, await siteOf(a), a),
  );
  tool(
    "insight_decay",
    "Content decay: pages whose weekly clicks fell over the last N weeks (last week at least min_drop below the first, falling trend).",
    {
      ...siteArgs,
      end: windowArgs.end,
      weeks: z.number().int().min(2).max(26).default(8),
      min_drop: z.number().min(0).max(1).default(0.2),
      min_clicks: z.number().int().min(1).default(10),
      search_type: windowArgs.search_type,
      device: windowArgs.device,
      country: windowArgs.country,
      limit: z.number().int().min(1).max(500).default(50),
    },
    async (a) => insights.decayInsight(db, await siteOf(a), a),
  );
  tool(
    "insight_cannibalization",
    "Queries for which two or more pages each hold at least min_share of the impressions, with those pages.",
    {
      ...windowArgs,
      min_share: z.number().min(0).max(1).default(0.1),
      min_impressions: z.number().int().min(1).default(50),
      limit: z.number().int().min(1).max(500).default(50),
    },
    async (a) => insights.cannibalizationInsight(db, await siteOf(a), a),
  );
  tool("insight_brand", `Brand vs non-brand queries, by the site's stored brand terms. ${FORMULAS}`, windowArgs, async (a) =>
    insights.brandInsight(db, await siteOf(a), a),
  );
  tool(
    "insight_index",
    "Index status beside the traffic, from each inspected page's newest URL inspection: pages per verdict and coverage state; the pages whose verdict is not PASS with their clicks and impressions in the window, most clicks first; the window's top pages by clicks never inspected.",
    { ...windowArgs, limit: z.number().int().min(1).max(1000).default(50) },
    async (a) => insights.indexInsight(db, await siteOf(a), a),
  );
}
