import type { Site } from "../db/model.ts";
import { DayRangeFields, MetricHeads, SiteField } from "./layout.tsx";
import type { QueryStats } from "../search/schemas.ts";
import { num } from "./format.ts";

export type QueryForm = { site_id?: number; q: string; start: string; end: string };
export type TopQueryRow = { query: string; clicks: number; impressions: number; ctr: number | null; position: number | null };

/** The query search form (GET) and its results with totals. */
export function QueriesPage(props: {
  sites: Site[];
  form: QueryForm;
  result: { total: number; queries: QueryStats[] } | null;
  top?: { start: string; end: string; rows: TopQueryRow[] } | null;
}) {
  const f = props.form;
  return (
    <>
      <form method="get" action="/ui/queries" class="filters">
        <SiteField sites={props.sites} selected={f.site_id} />
        <label>
          Query contains
          <input type="search" name="q" value={f.q} maxlength={200} />
        </label>
        <DayRangeFields start={f.start} end={f.end} />
        <button type="submit">Search</button>
      </form>
      {props.result ? <Results result={props.result} /> : null}
      {props.top ? <TopQueries top={props.top} /> : null}
    </>
  );
}

/** The top queries by clicks (shown before any search): ctr = Σclicks/Σimpressions, impression-weighted position. */
function TopQueries({ top }: { top: { start: string; end: string; rows: TopQueryRow[] } }) {
  return (
    <section aria-labelledby="h-top">
      <h2 id="h-top">
        Top queries by clicks, {top.start} – {top.end}
      </h2>
      {top.rows.length === 0 ? (
        <p>No query data stored for these days yet: sync the site first.</p>
      ) : (
        <div class="scroll">
          <table class="top-queries">
            <thead>
              <tr>
                <th scope="col">Query</th>
                <MetricHeads />
              </tr>
            </thead>
            <tbody>
              {top.rows.map((q) => (
                <tr>
                  <td>{q.query}</td>
                  <td class="n">{num(q.clicks)}</td>
                  <td class="n">{num(q.impressions)}</td>
                  <td class="n">{q.ctr === null ? "—" : `${num(q.ctr * 100, 2)}%`}</td>
                  <td class="n">{num(q.position, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Results({ result }: { result: { total: number; queries: QueryStats[] } }) {
  const clicks = result.queries.reduce((n, q) => n + q.total_clicks, 0);
  const impressions = result.queries.reduce((n, q) => n + q.total_impressions, 0);
  return (
    <section aria-labelledby="h-results">
      <h2 id="h-results">
        {num(result.total)} matching quer{result.total === 1 ? "y" : "ies"}
      </h2>
      {result.queries.length === 0 ? null : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Query</th>
                <th scope="col">Clicks</th>
                <th scope="col">Impressions</th>
                <th scope="col">CTR</th>
                <th scope="col">Avg. position</th>
                <th scope="col">Days</th>
              </tr>
            </thead>
            <tbody>
              {result.queries.map((q) => (
                <tr>
                  <td>{q.query}</td>
                  <td class="n">{num(q.total_clicks)}</td>
                  <td class="n">{num(q.total_impressions)}</td>
                  <td class="n">{num(q.avg_ctr * 100, 2)}%</td>
                  <td class="n">{num(q.avg_position, 1)}</td>
                  <td class="n">{q.days_appeared}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Shown ({result.queries.length})</th>
                <td class="n" data-total="clicks">
                  {num(clicks)}
                </td>
                <td class="n">{num(impressions)}</td>
                <td colspan={3}></td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </section>
  );
}
