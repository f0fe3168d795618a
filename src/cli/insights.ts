import { type Command, Option } from "commander";
import type { Api } from "./api.ts";
import { type Out, table } from "./output.ts";
import { resolveSite } from "./sites.ts";

// `bun run cli insights <site> <kind>`: the API's insight answers (GET /api/v1/sites/{id}/insights/<kind>)
// as tables, or as the API's JSON with --json, so the numbers are the dashboard's and the MCP tools'.

export const insightKinds = ["overview", "top", "compare", "decay", "cannibalization", "brand", "index"] as const;
type Kind = (typeof insightKinds)[number];

type Opts = {
  start?: string;
  end?: string;
  days?: string;
  device?: string;
  country?: string;
  searchType?: string;
  by?: string;
  limit?: string;
  weeks?: string;
  contains?: string;
};

type M = { clicks: number; impressions: number; ctr: number | null; position: number | null };
const pct = (v: number | null) => (v === null ? "-" : `${(v * 100).toFixed(2)}%`);
const pos = (v: number | null) => (v === null ? "-" : v.toFixed(1));
const signed = (n: number) => `${n > 0 ? "+" : ""}${n}`;

/** The query string of an insight request from the options given. */
export function insightQuery(kind: Kind, o: Opts): string {
  const q = new URLSearchParams();
  const set = (k: string, v: string | undefined) => v !== undefined && q.set(k, v);
  if (kind === "compare") {
    set("current_start", o.start);
    set("current_end", o.end);
  } else if (kind !== "decay") set("start", o.start);
  if (kind !== "compare") set("end", o.end);
  set("days", o.days);
  set("device", o.device);
  if (kind !== "cannibalization" && kind !== "brand") set("country", o.country);
  set("search_type", o.searchType);
  if (kind === "top" || kind === "compare") set("by", o.by);
  if (kind !== "overview" && kind !== "brand") set("limit", o.limit);
  if (kind === "decay") set("weeks", o.weeks);
  if (kind === "top") set("contains", o.contains);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Registers `insights <site> <kind>`. */
export function addInsightsCommand(program: Command, ctx: () => { out: Out; api: Api }) {
  program
    .command("insights <site>")
    .description(
      "what the data says: overview, top queries/pages, winners and losers, decaying pages, cannibalization, brand split, index status",
    )
    .addOption(new Option("--kind <kind>", "which insight").choices(insightKinds).default("overview"))
    .option("--start <day>", "first day (compare: of the current period)")
    .option("--end <day>", "last day (default: the newest day with data)")
    .option("--days <n>", "window length (default 28; compare: each period)")
    .addOption(new Option("--device <device>", "only this device").choices(["DESKTOP", "MOBILE", "TABLET"]))
    .option("--country <iso3>", "only this country (ISO alpha-3, lower case; totals and pages: query reports have no country)")
    .option("--search-type <type>", "web (default), image, video, news, discover, googleNews")
    .addOption(new Option("--by <what>", "top/compare: query or page").choices(["query", "page"]))
    .option("--limit <n>", "rows")
    .option("--weeks <n>", "decay: weeks (default 8)")
    .option("--contains <text>", "top: only keys containing this")
    .action(async (ref: string, o: Opts & { kind: Kind }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const r = await api.get<Record<string, unknown>>(`/api/v1/sites/${site.id}/insights/${o.kind}${insightQuery(o.kind, o)}`);
      out.result(r, (v) => out.line(render(o.kind, v)));
    });

  program
    .command("trends <site>")
    .description("daily totals as Search Console counts them (property totals), newest day first")
    .option("--days <n>", "days with data (default 30)")
    .option("--search-type <type>", "web (default), image, video, news, discover, googleNews")
    .option("--country <iso3>", "only this country (ISO alpha-3, lower case)")
    .addOption(new Option("--device <device>", "only this device").choices(["DESKTOP", "MOBILE", "TABLET"]))
    .option("--appearance <type>", "only this search appearance (alone: no country or device)")
    .action(async (ref: string, o: { days?: string; searchType?: string; country?: string; device?: string; appearance?: string }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const q = new URLSearchParams({ site_id: String(site.id) });
      for (const [k, v] of [
        ["days", o.days],
        ["search_type", o.searchType],
        ["country", o.country],
        ["device", o.device],
        ["search_appearance", o.appearance],
      ] as const) {
        if (v !== undefined) q.set(k, v);
      }
      const r = await api.get<Record<string, unknown>>(`/api/v1/analytics/performance-trends?${q}`);
      out.result(r, (v) => out.line(renderTrends(v)));
    });
}

/** A performance-trends answer as text. */
function renderTrends(v: Record<string, unknown>): string {
  type Day = { date: string; total_clicks: number; total_impressions: number; ctr: number; avg_position: number; derived: boolean };
  const t = v as {
    data: Day[];
    summary: { total_clicks: number; total_impressions: number; ctr: number; avg_position: number; anonymized_clicks_share: number | null };
  };
  if (t.data.length === 0) return "No data.";
  return [
    table(
      ["DATE", "CLICKS", "IMPRESSIONS", "CTR", "POSITION", ""],
      t.data.map((d) => [d.date, d.total_clicks, d.total_impressions, pct(d.ctr), pos(d.avg_position), d.derived ? "derived" : ""]),
    ),
    `Total: ${t.summary.total_clicks} clicks, ${t.summary.total_impressions} impressions, ctr ${pct(t.summary.ctr)}, position ${pos(t.summary.avg_position)}`,
    anonymizedLine(t.summary.anonymized_clicks_share),
  ].join("\n");
}

/** The anonymized share beside totals, in words. */
function anonymizedLine(share: number | null): string {
  return share === null
    ? "Share of clicks from queries Google does not name: unknown."
    : `${(share * 100).toFixed(1)} % of clicks come from queries Google does not name.`;
}

/** An insight answer as text. */
function render(kind: Kind, v: Record<string, unknown>): string {
  const lines: string[] = [];
  if (kind === "overview") {
    const o = v as unknown as M & {
      start: string;
      end: string;
      queries: number | null;
      pages: number;
      days: number;
      days_with_data: number;
      derived_days: number;
      anonymized_clicks_share: number | null;
    };
    lines.push(`${o.start} .. ${o.end} (${o.days_with_data}/${o.days} days with data)`);
    lines.push(
      table(
        ["CLICKS", "IMPRESSIONS", "CTR", "POSITION", "QUERIES", "PAGES"],
        [[o.clicks, o.impressions, pct(o.ctr), pos(o.position), o.queries ?? "-", o.pages]],
      ),
    );
    lines.push(anonymizedLine(o.anonymized_clicks_share));
    if (o.derived_days > 0)
      lines.push(`${o.derived_days} day(s) summed from the named queries (synced before Search Console's totals were stored).`);
  } else if (kind === "top") {
    const t = v as { by: "query" | "page"; start: string; end: string; rows: (M & Record<string, string>)[] };
    lines.push(`Top ${t.by === "page" ? "pages" : "queries"}, ${t.start} .. ${t.end}`);
    lines.push(
      table(
        [t.by.toUpperCase(), "CLICKS", "IMPRESSIONS", "CTR", "POSITION"],
        t.rows.map((r) => [r[t.by], r.clicks, r.impressions, pct(r.ctr), pos(r.position)]),
        80,
      ),
    );
  } else if (kind === "compare") {
    type Row = { previous: M; current: M; clicks_change: number; position_change: number | null } & Record<string, unknown>;
    const c = v as {
      by: string;
      previous: M & { start: string; end: string };
      current: M & { start: string; end: string };
      clicks_change: number;
      winners: Row[];
      losers: Row[];
    };
    lines.push(
      `${c.current.start} .. ${c.current.end} vs ${c.previous.start} .. ${c.previous.end}: clicks ${c.previous.clicks} -> ${c.current.clicks} (${signed(c.clicks_change)})`,
    );
    for (const [title, rows] of [
      ["Winners", c.winners],
      ["Losers", c.losers],
    ] as const) {
      lines.push("", title);
      lines.push(
        rows.length === 0
          ? "  none"
          : table(
              [c.by.toUpperCase(), "BEFORE", "NOW", "CHANGE", "POSITION"],
              rows.map((r) => [
                String(r[c.by]),
                r.previous.clicks,
                r.current.clicks,
                signed(r.clicks_change),
                `${pos(r.previous.position)} -> ${pos(r.current.position)}`,
              ]),
              80,
            ),
      );
    }
  } else if (kind === "decay") {
    const d = v as {
      end: string;
      weeks: unknown[];
      pages: { page: string; weekly_clicks: number[]; clicks_lost: number; change_pct: number }[];
    };
    lines.push(`Decaying pages, ${d.weeks.length} weeks to ${d.end}`);
    lines.push(
      d.pages.length === 0
        ? "  none"
        : table(
            ["PAGE", "WEEKLY CLICKS", "LOST", "CHANGE"],
            d.pages.map((p) => [p.page, p.weekly_clicks.join(" "), p.clicks_lost, `${p.change_pct}%`]),
            80,
          ),
    );
  } else if (kind === "cannibalization") {
    const c = v as {
      queries: { query: string; impressions: number; pages: { page: string; impressions_share: number; position: number | null }[] }[];
    };
    if (c.queries.length === 0) lines.push("No query is shared by several pages.");
    for (const q of c.queries) {
      lines.push(`${q.query} (${q.impressions} impressions)`);
      for (const p of q.pages) lines.push(`  ${(p.impressions_share * 100).toFixed(1).padStart(5)}%  pos ${pos(p.position)}  ${p.page}`);
    }
  } else if (kind === "index") {
    type Page = M & { page: string; verdict: string | null; coverage_state: string | null; inspected_at: string };
    const x = v as {
      start: string;
      end: string;
      inspected_pages: number;
      not_passing_pages: number;
      not_passing_clicks: number;
      by_coverage: { coverage_state: string | null; verdict: string | null; pages: number }[];
      pages: Page[];
      top_pages_checked: number;
      top_pages_uninspected: number;
    };
    if (x.inspected_pages === 0) return "No pages inspected yet (bun run cli index-status <site> --inspect clicks).";
    lines.push(
      `${x.inspected_pages} pages inspected, ${x.not_passing_pages} not passing (${x.not_passing_clicks} clicks ${x.start} .. ${x.end})`,
    );
    lines.push(
      table(
        ["COVERAGE STATE", "VERDICT", "PAGES"],
        x.by_coverage.map((r) => [r.coverage_state ?? "-", r.verdict ?? "-", r.pages]),
        60,
      ),
    );
    lines.push("", "Not indexed (verdict not PASS), most clicks first");
    lines.push(
      x.pages.length === 0
        ? "  none"
        : table(
            ["PAGE", "CLICKS", "IMPRESSIONS", "VERDICT", "COVERAGE"],
            x.pages.map((p) => [p.page, p.clicks, p.impressions, p.verdict ?? "-", p.coverage_state ?? "-"]),
            60,
          ),
    );
    if (x.top_pages_uninspected > 0)
      lines.push(`${x.top_pages_uninspected} of the ${x.top_pages_checked} pages with the most clicks were never inspected.`);
  } else {
    const b = v as {
      terms: string[];
      brand: M & { queries: number };
      non_brand: M & { queries: number };
      brand_clicks_share: number | null;
    };
    lines.push(`Brand terms: ${b.terms.join(", ") || "(none: PUT /api/v1/sites/{id}/brand-terms)"}`);
    lines.push(
      table(
        ["", "CLICKS", "IMPRESSIONS", "CTR", "POSITION", "QUERIES"],
        [
          ["brand", b.brand.clicks, b.brand.impressions, pct(b.brand.ctr), pos(b.brand.position), b.brand.queries],
          ["non-brand", b.non_brand.clicks, b.non_brand.impressions, pct(b.non_brand.ctr), pos(b.non_brand.position), b.non_brand.queries],
        ],
      ),
    );
  }
  return lines.join("\n");
}
