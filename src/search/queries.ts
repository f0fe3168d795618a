import type { Db } from "../db/index.ts";
import type { QueryStats } from "./schemas.ts";

type Params = { site_id: number; pattern: string; start: string; end: string; limit: number };
type Row = QueryStats & { found: number };

/**
 * The search, in plain SQL: Drizzle cannot say INDEXED BY. It pins the covering index (site_id, query,
 * date, clicks, impressions, ctr, position): the site's entries come in query order, so GROUP BY needs
 * no sort and no row is read from the table. Left to itself the planner takes the unique (site_id,
 * date, ...) index for the date bounds and then reads every row from the table. Should the index go
 * missing, this fails loudly instead of turning slow.
 */
export const SEARCH_SQL = `select query,
       sum(clicks) as total_clicks,
       sum(impressions) as total_impressions,
       avg(ctr) as avg_ctr,
       avg(position) as avg_position,
       count(distinct date) as days_appeared,
       count(*) over () as found
  from gsc_performance_data indexed by gsc_performance_data_site_query_idx
 where site_id = $site_id and query like $pattern escape '\\' and date >= $start and date <= $end
 group by query
 order by total_clicks desc, query
 limit $limit`;

/** A LIKE pattern matching `term` anywhere, with %, _ and the escape character taken literally. */
export function containsPattern(term: string): string {
  return `%${term.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

/**
 * Queries of a site containing `term` (case-insensitive for ASCII, as SQLite's LIKE), with their
 * clicks and impressions summed, ctr and position averaged, and the days they appeared, between two
 * optional days, most clicked first. `total` counts every matching query, before the limit.
 */
export async function searchQueries(
  db: Db,
  opts: { siteId: number; term: string; startDate: string | null; endDate: string | null; limit: number },
): Promise<{ total: number; queries: QueryStats[] }> {
  // Raw connection because of INDEXED BY; no cache of our own: bun:sqlite's query() already compiles
  // a statement once per connection and SQL text and returns the cached one after that.
  const rows = db.raw.reader.query<Row, [Params]>(SEARCH_SQL).all({
    site_id: opts.siteId,
    pattern: containsPattern(opts.term),
    start: opts.startDate ?? "",
    end: opts.endDate ?? "9999-12-31",
    limit: opts.limit,
  });
  return { total: rows[0]?.found ?? 0, queries: rows.map(({ found: _found, ...q }: Row) => q) };
}
