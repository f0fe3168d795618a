import type { Site } from "../db/model.ts";
import type * as insights from "../insights/service.ts";
import { searchTypeCodes } from "../db/enums.ts";
import { dayRange } from "../sync/dates.ts";
import { LineChart } from "./chart.tsx";
import { num } from "./format.ts";
import { DayRangeFields, MetricHeads, SiteField } from "./layout.tsx";

type Overview = Awaited<ReturnType<typeof insights.overviewInsight>>;
type Compare = Awaited<ReturnType<typeof insights.compareInsight>>;
type Decay = Awaited<ReturnType<typeof insights.decayInsight>>;
type Cannibalization = Awaited<ReturnType<typeof insights.cannibalizationInsight>>;
type Brand = Awaited<ReturnType<typeof insights.brandInsight>>;
type Top = Awaited<ReturnType<typeof insights.topInsight>>;
type Index = Awaited<ReturnType<typeof insights.indexInsight>>;

export type InsightsForm = {
  site_id?: number;
  start: string;
  end: string;
  device: string;
  country: string;
  search_type: string;
  compare_by: "page" | "query";
};

/** Said where a query report would be, under a country filter or for a search type without queries. */
function NoQueries({ id, title, form }: { id: string; title: string; form: InsightsForm }) {
  const byCountry = form.country !== "";
  return (
    <section aria-labelledby={id} data-insight-unavailable={byCountry ? "country" : "search_type"}>
      <h2 id={id}>{title}</h2>
      <p class="muted">
        {byCountry
          ? "Not available with a country filter: Search Console's query rows are stored without country (its 50,000-row cap per day), so only totals and page reports can be split by country."
          : `Not available for ${form.search_type}: Search Console gives it no query dimension, only totals and pages.`}
      </p>
    </section>
  );
}

/** A page URL as its path (the site is known on this page); anything else as it is. */
function short(key: string): string {
  try {
    const u = new URL(key);
    return u.pathname + u.search;
  } catch {
    return key;
  }
}

const pct = (ctr: number | null) => (ctr === null ? "—" : `${num(ctr * 100, 2)}%`);
const signed = (n: number | null, digits = 0) => (n === null ? "—" : `${n > 0 ? "+" : ""}${num(n, digits)}`);

/** The insights page: what an SEO reader opens the dashboard for, one section per question. */
export function InsightsPage(props: {
  sites: Site[];
  form: InsightsForm;
  canWrite: boolean;
  data: {
    overview: Overview;
    /** null: by query under a country filter. */
    compare: Compare | null;
    decay: Decay;
    cannibalization: Cannibalization | null;
    brand: Brand | null;
    topQueries: Top | null;
    topPages: Top;
    index: Index;
  } | null;
}) {
  const f = props.form;
  const d = props.data;
  return (
    <>
      <form method="get" action="/ui/insights" class="filters">
        <SiteField sites={props.sites} selected={f.site_id} />
        <DayRangeFields start={f.start} end={f.end} />
        <label>
          Search type
          <select name="search_type">
            {searchTypeCodes.map((v) => (
              <option value={v} selected={f.search_type === v}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          Device
          <select name="device">
            <option value="">all</option>
            {["DESKTOP", "MOBILE", "TABLET"].map((v) => (
              <option value={v} selected={f.device === v}>
                {v.toLowerCase()}
              </option>
            ))}
          </select>
        </label>
        <label>
          Country
          <input
            name="country"
            value={f.country}
            size={5}
            maxlength={3}
            pattern="[A-Za-z]{3}"
            placeholder="all"
            title="ISO 3166-1 alpha-3 code, e.g. usa, deu, fra; empty: all countries"
          />
        </label>
        <label>
          Compare by
          <select name="compare_by">
            <option value="page" selected={f.compare_by === "page"}>
              page
            </option>
            <option value="query" selected={f.compare_by === "query"}>
              query
            </option>
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
      {d ? (
        <>
          <OverviewSection o={d.overview} />
          {d.compare ? <CompareSection c={d.compare} /> : <NoQueries id="h-compare" title="Winners and losers by query" form={f} />}
          <DecaySection d={d.decay} />
          {d.cannibalization ? (
            <CannibalizationSection c={d.cannibalization} />
          ) : (
            <NoQueries id="h-cannibal" title="Cannibalized queries" form={f} />
          )}
          {d.brand ? (
            <BrandSection b={d.brand} canWrite={props.canWrite} />
          ) : (
            <NoQueries id="h-brand" title="Brand vs non-brand" form={f} />
          )}
          <div class="grid">
            {d.topQueries ? (
              <TopSection t={d.topQueries} title="Top queries" />
            ) : (
              <NoQueries id="h-top-queries" title="Top queries" form={f} />
            )}
            <TopSection t={d.topPages} title="Top pages" />
          </div>
          <IndexSection x={d.index} />
        </>
      ) : null}
    </>
  );
}

function OverviewSection({ o }: { o: Overview }) {
  const days = dayRange(o.start, o.end);
  const series = (k: "clicks" | "impressions" | "position") => new Map(o.trend.map((t) => [t.date, t[k] ?? 0]));
  return (
    <section aria-labelledby="h-overview" data-insight="overview" data-clicks={o.clicks} data-impressions={o.impressions}>
      <h2 id="h-overview">
        Overview, {o.start} – {o.end}
      </h2>
      <dl class="cards">
        <div>
          <dt>Clicks</dt>
          <dd data-stat="clicks">{num(o.clicks)}</dd>
        </div>
        <div>
          <dt>Impressions</dt>
          <dd data-stat="impressions">{num(o.impressions)}</dd>
        </div>
        <div>
          <dt>CTR</dt>
          <dd data-stat="ctr">{pct(o.ctr)}</dd>
        </div>
        <div>
          <dt>Avg. position</dt>
          <dd data-stat="position">{num(o.position, 1)}</dd>
        </div>
        <div>
          <dt>Queries</dt>
          <dd>{num(o.queries)}</dd>
        </div>
        <div>
          <dt>Pages</dt>
          <dd>{num(o.pages)}</dd>
        </div>
      </dl>
      <p class="muted">
        {o.days_with_data} of {o.days} days have data.{" "}
        <span data-stat="anonymized">
          {o.anonymized_clicks_share === null
            ? "Share of clicks from queries Google does not name: unknown for this selection."
            : `${num(o.anonymized_clicks_share * 100, 1)} % of clicks come from queries Google does not name (counted in these totals, absent from the query lists).`}
        </span>
        {o.derived_days > 0
          ? ` ${o.derived_days} day${o.derived_days === 1 ? "" : "s"} synced before Search Console's totals were stored: summed from the named queries, so under-counted.`
          : ""}
      </p>
      <LineChart title="Clicks" series="clicks" days={days} values={series("clicks")} />
      <LineChart title="Impressions" series="impressions" days={days} values={series("impressions")} />
    </section>
  );
}

function ChangeTable(props: { rows: Compare["winners"]; by: "page" | "query"; kind: string }) {
  if (props.rows.length === 0) return <p class="muted">None.</p>;
  return (
    <div class="scroll">
      <table class={`changes ${props.kind}`}>
        <thead>
          <tr>
            <th scope="col">{props.by === "page" ? "Page" : "Query"}</th>
            <th scope="col" class="n">
              Clicks before
            </th>
            <th scope="col" class="n">
              Clicks now
            </th>
            <th scope="col" class="n">
              Change
            </th>
            <th scope="col" class="n">
              Position (before → now)
            </th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => {
            const key = String((r as Record<string, unknown>)[props.by]);
            return (
              <tr data-key={key} data-clicks-change={r.clicks_change}>
                <td class="key" title={key}>
                  {short(key)}
                </td>
                <td class="n">{num(r.previous.clicks)}</td>
                <td class="n">{num(r.current.clicks)}</td>
                <td class="n">
                  {signed(r.clicks_change)}
                  {r.clicks_change_pct === null ? "" : ` (${signed(r.clicks_change_pct, 1)}%)`}
                </td>
                <td class="n">
                  {num(r.previous.position, 1)} → {num(r.current.position, 1)}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function CompareSection({ c }: { c: Compare }) {
  return (
    <section aria-labelledby="h-compare" data-insight="compare" data-clicks-change={c.clicks_change}>
      <h2 id="h-compare">
        Winners and losers: {c.current.start} – {c.current.end} vs {c.previous.start} – {c.previous.end}
      </h2>
      <p>
        Clicks {num(c.previous.clicks)} → <strong>{num(c.current.clicks)}</strong> ({signed(c.clicks_change)}
        {c.clicks_change_pct === null ? "" : `, ${signed(c.clicks_change_pct, 1)}%`}); position {num(c.previous.position, 1)} →{" "}
        {num(c.current.position, 1)}.
      </p>
      {c.previous.days_with_data < c.previous.days || c.current.days_with_data < c.current.days ? (
        <p class="warnings" data-partial="true">
          Data on {c.previous.days_with_data} of {c.previous.days} days before and {c.current.days_with_data} of {c.current.days} days now:
          days not synced count as no clicks, so the changes overstate what happened. Sync the missing days for a fair comparison.
        </p>
      ) : null}
      <h3>Gained most clicks</h3>
      <ChangeTable rows={c.winners} by={c.by} kind="winners" />
      <h3>Lost most clicks</h3>
      <ChangeTable rows={c.losers} by={c.by} kind="losers" />
    </section>
  );
}

function DecaySection({ d }: { d: Decay }) {
  return (
    <section aria-labelledby="h-decay" data-insight="decay">
      <h2 id="h-decay">
        Decaying pages: {d.weeks.length} weeks to {d.end}
      </h2>
      <p class="muted">
        Pages whose last week has at least {num(d.min_drop * 100)}% fewer clicks than the first (from {d.min_clicks}+), falling week over
        week overall.
      </p>
      {d.pages.length === 0 ? (
        <p>No page is decaying.</p>
      ) : (
        <div class="scroll">
          <table class="decay">
            <thead>
              <tr>
                <th scope="col">Page</th>
                <th scope="col">Clicks per week</th>
                <th scope="col" class="n">
                  Lost
                </th>
                <th scope="col" class="n">
                  Change
                </th>
              </tr>
            </thead>
            <tbody>
              {d.pages.map((p) => (
                <tr data-key={p.page} data-clicks-lost={p.clicks_lost}>
                  <td class="key" title={p.page}>
                    {short(p.page)}
                  </td>
                  <td>
                    <WeekBars values={p.weekly_clicks} />
                  </td>
                  <td class="n">{num(p.clicks_lost)}</td>
                  <td class="n">{signed(p.change_pct, 1)}%</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Weekly values as small bars (inline SVG), with the numbers for screen readers. */
function WeekBars({ values }: { values: number[] }) {
  const max = Math.max(1, ...values);
  const w = 8;
  return (
    <svg
      class="weekbars"
      viewBox={`0 0 ${values.length * (w + 2)} 24`}
      width={values.length * (w + 2)}
      height="24"
      role="img"
      aria-label={values.join(", ")}
    >
      {values.map((v, i) => (
        <rect x={i * (w + 2)} y={24 - (v / max) * 24} width={w} height={(v / max) * 24} />
      ))}
    </svg>
  );
}

function CannibalizationSection({ c }: { c: Cannibalization }) {
  return (
    <section aria-labelledby="h-cannibal" data-insight="cannibalization">
      <h2 id="h-cannibal">Cannibalized queries</h2>
      <p class="muted">
        Queries for which two or more pages each drew at least {num(c.min_share * 100)}% of the impressions ({c.start} – {c.end}).
      </p>
      {c.queries.length === 0 ? (
        <p>No query is shared by several pages.</p>
      ) : (
        <div class="scroll">
          <table class="cannibal">
            <thead>
              <tr>
                <th scope="col">Query</th>
                <th scope="col">Pages (share of impressions, position)</th>
                <th scope="col" class="n">
                  Impressions
                </th>
              </tr>
            </thead>
            <tbody>
              {c.queries.map((q) => (
                <tr data-key={q.query} data-pages={q.competing_pages}>
                  <td class="key">{q.query}</td>
                  <td>
                    <ul class="plain">
                      {q.pages.map((p) => (
                        <li title={String(p.page)}>
                          {short(String(p.page))}{" "}
                          <span class="muted">
                            ({num((p.impressions_share as number) * 100, 1)}%, pos. {num(p.position as number, 1)})
                          </span>
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td class="n">{num(q.impressions)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function BrandSection({ b, canWrite }: { b: Brand; canWrite: boolean }) {
  return (
    <section aria-labelledby="h-brand" data-insight="brand" data-brand-clicks={b.brand.clicks}>
      <h2 id="h-brand">Brand vs non-brand</h2>
      {b.terms.length === 0 ? (
        <p>No brand terms set for this site: add them below to split its queries.</p>
      ) : (
        <div class="scroll">
          <table class="brand">
            <thead>
              <tr>
                <th scope="col"></th>
                <MetricHeads />
                <th scope="col" class="n">
                  Queries
                </th>
              </tr>
            </thead>
            <tbody>
              {(
                [
                  ["Brand", b.brand],
                  ["Non-brand", b.non_brand],
                ] as const
              ).map(([label, m]) => (
                <tr>
                  <th scope="row">{label}</th>
                  <td class="n">{num(m.clicks)}</td>
                  <td class="n">{num(m.impressions)}</td>
                  <td class="n">{pct(m.ctr)}</td>
                  <td class="n">{num(m.position, 1)}</td>
                  <td class="n">{num(m.queries)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {canWrite ? (
        <form method="post" action={`/ui/sites/${b.site_id}/brand-terms`} class="filters">
          <label>
            Brand terms (comma-separated)
            <input name="terms" value={b.terms.join(", ")} maxlength={2000} size={40} />
          </label>
          <button type="submit">Save terms</button>
        </form>
      ) : (
        <p class="muted">Terms: {b.terms.join(", ") || "none"}</p>
      )}
    </section>
  );
}

function TopSection({ t, title }: { t: Top; title: string }) {
  return (
    <section aria-label={title} data-insight={`top-${t.by}`}>
      <h2>{title}</h2>
      {t.rows.length === 0 ? (
        <p class="muted">No data.</p>
      ) : (
        <div class="scroll">
          <table class={`top-${t.by}`}>
            <thead>
              <tr>
                <th scope="col">{t.by === "page" ? "Page" : "Query"}</th>
                <th scope="col" class="n">
                  Clicks
                </th>
                <th scope="col" class="n">
                  CTR
                </th>
                <th scope="col" class="n">
                  Pos.
                </th>
              </tr>
            </thead>
            <tbody>
              {t.rows.map((r) => (
                <tr data-key={String(r[t.by])} data-clicks={r.clicks}>
                  <td class="key" title={String(r[t.by])}>
                    {short(String(r[t.by]))}
                  </td>
                  <td class="n">{num(r.clicks)}</td>
                  <td class="n">{pct(r.ctr)}</td>
                  <td class="n">{num(r.position, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Index status beside the traffic: pages per coverage state, not-indexed pages by clicks, top pages never inspected. */
function IndexSection({ x }: { x: Index }) {
  return (
    <section
      aria-labelledby="h-index"
      data-insight="index"
      data-inspected={x.inspected_pages}
      data-not-passing={x.not_passing_pages}
      data-not-passing-clicks={x.not_passing_clicks}
    >
      <h2 id="h-index">Index status</h2>
      {x.inspected_pages === 0 ? (
        <p class="muted">
          No pages inspected yet: <code>bun run cli index-status {String(x.site_id)} --inspect clicks</code> (URL inspection of the pages
          with the most clicks, within Google's 2,000 a day).
        </p>
      ) : (
        <>
          <p>
            {num(x.inspected_pages)} page{x.inspected_pages === 1 ? "" : "s"} inspected (newest {x.last_inspected_at?.slice(0, 10)}),{" "}
            <strong>{num(x.not_passing_pages)} not passing</strong>
            {x.not_passing_with_clicks > 0
              ? `: ${num(x.not_passing_with_clicks)} of them had ${num(x.not_passing_clicks)} clicks from ${x.start} to ${x.end}.`
              : "."}
          </p>
          <div class="grid">
            <div class="scroll">
              <table class="coverage-states">
                <caption>Pages by coverage state (each page's newest inspection)</caption>
                <thead>
                  <tr>
                    <th scope="col">Coverage state</th>
                    <th scope="col">Verdict</th>
                    <th scope="col" class="n">
                      Pages
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {x.by_coverage.map((r) => (
                    <tr data-coverage={r.coverage_state ?? ""} data-pages={r.pages}>
                      <td>{r.coverage_state ?? "—"}</td>
                      <td class={r.verdict === "PASS" ? undefined : "bad"}>{r.verdict ?? "—"}</td>
                      <td class="n">{num(r.pages)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {x.top_pages_uninspected > 0 ? (
              <div>
                <p>
                  {num(x.top_pages_uninspected)} of the {num(x.top_pages_checked)} pages with the most clicks were never inspected, e.g.:
                </p>
                <ul class="plain uninspected">
                  {x.uninspected_top_pages.map((p) => (
                    <li title={p.page}>
                      {short(p.page)} <span class="muted">({num(p.clicks)} clicks)</span>
                    </li>
                  ))}
                </ul>
              </div>
            ) : null}
          </div>
          <h3>Not indexed (verdict not PASS), most clicks first</h3>
          {x.pages.length === 0 ? (
            <p class="muted">Every inspected page passes.</p>
          ) : (
            <div class="scroll">
              <table class="not-indexed">
                <thead>
                  <tr>
                    <th scope="col">Page</th>
                    <th scope="col" class="n">
                      Clicks
                    </th>
                    <th scope="col" class="n">
                      Impressions
                    </th>
                    <th scope="col">Verdict</th>
                    <th scope="col">Coverage</th>
                    <th scope="col">Google's canonical</th>
                    <th scope="col">Inspected</th>
                  </tr>
                </thead>
                <tbody>
                  {x.pages.map((p) => (
                    <tr data-key={p.page} data-clicks={p.clicks}>
                      <td class="key" title={p.page}>
                        {short(p.page)}
                      </td>
                      <td class="n">{num(p.clicks)}</td>
                      <td class="n">{num(p.impressions)}</td>
                      <td class="bad">{p.verdict ?? "—"}</td>
                      <td>{p.coverage_state ?? "—"}</td>
                      <td>
                        {p.google_canonical === null
                          ? "—"
                          : p.google_canonical === p.user_canonical
                            ? "same as the page's"
                            : short(p.google_canonical)}
                      </td>
                      <td class="nowrap">{p.inspected_at.slice(0, 10)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
