import type { Db } from "../index.ts";
import { pgAll, pgNamedRead } from "./named.ts";

// countPagesByWeeks on PostgreSQL by the site's pages (as SQLite's countPagesBySeeks): the distinct page ids of every
// whole week's rows (20 M rows, 90 days: 240,000 index rows and their heap tuples hashed, ~140 ms of backend CPU) are
// replaced by the newest whole week's pages (one range of the key, ~20,000 rows, hash-joined to gsc_pages) and, for a
// page not among them only, a seek into the other weeks, then into the edge days (~30 ms). A page counts when it has
// clicks or impressions in a whole week or on an edge day: the same pages as the weeks' distinct ids plus the edge
// weeks' pages with some on an edge day (a week's row is the sum of its days; nothing is negative).

// The newest week's rows (A) and the site's pages (N) counted only up to the bound past which the seeks lose (see
// countPagesBySeeksPg): a dictionary of a million pages is not walked to decide.
const sizeSql = `with a as (select floor(count(*) * cast($per_row as float8))::bigint + 1 as cap from gsc_week_page_totals x
    where x.site_id = $site_id and x.week = $w_last and x.type = any(cast($types as integer[])))
select (select cap from a)::float8 as cap,
  (select count(*) from (select 1 from gsc_pages p where p.site_id = $site_id limit (select cap from a)) s)::float8 as pages`;

const countSql = `select count(*)::float8 as n from gsc_pages p
  left join (select distinct l.page_id from gsc_week_page_totals l
              where l.site_id = $site_id and l.week = $w_last and l.type = any(cast($types as integer[]))
                and (l.clicks > 0 or l.impressions > 0)) l on l.page_id = p.id
 where p.site_id = $site_id
   and (l.page_id is not null
     or (select 1 from gsc_week_page_totals x
          where x.site_id = $site_id and x.week = any(cast($weeks as integer[])) and x.type = any(cast($types as integer[]))
            and x.page_id = p.id and (x.clicks > 0 or x.impressions > 0) limit 1) is not null
     or (select 1 from gsc_page_totals d
          where d.site_id = $site_id and d.day = any(cast($edge_days as integer[])) and d.type = any(cast($types as integer[]))
            and d.page_id = p.id and (d.clicks > 0 or d.impressions > 0) limit 1) is not null)`;

/** How countPagesByWeeksPg counts: by the site's pages when cheaper (auto), always, or never (tests: both ways). */
let mode: "auto" | "always" | "never" = "auto";

/** Sets how PostgreSQL's page counts from the weekly rollup read (tests: each way gives the same counts). */
export function setPageCountBySeeksPg(m: "auto" | "always" | "never"): void {
  mode = m;
}

/**
 * The pages of a site with clicks or impressions in the whole weeks `weeks` (ascending, at least one) or on `edgeDays`,
 * by the site's pages; null when the site's pages without data in the newest week would make the seeks dearer than the
 * weeks' rows (per page ~1.5 us with data in it, ~20 us of failed seeks without; a week's row ~0.6 us).
 */
export async function countPagesBySeeksPg(
  db: Db,
  siteId: number,
  types: number[],
  weeks: number[],
  edgeDays: number[],
): Promise<number | null> {
  if (mode === "never") return null;
  const wLast = weeks[weeks.length - 1]!;
  const pgTypes = `{${types.join(",")}}`;
  if (mode === "auto") {
    // Seeks are dearer when 1.5 A + 20 (N - A) > 0.6 A W (W the weeks), that is N > A (0.6 W + 18.5) / 20.
    const perRow = (0.6 * weeks.length + 18.5) / 20;
    const [size] = await pgNamedRead<{ cap: number; pages: number }>(db, sizeSql, {
      site_id: siteId,
      w_last: wLast,
      types: pgTypes,
      per_row: perRow,
    });
    if (Number(size?.pages ?? 0) >= Number(size?.cap ?? 1)) return null;
  }
  const [row] = await pgAll<{ n: number }>(db, countSql, {
    site_id: siteId,
    w_last: wLast,
    types: pgTypes,
    weeks: `{${weeks.slice(0, -1).join(",")}}`,
    edge_days: `{${edgeDays.join(",")}}`,
  });
  return Number(row?.n ?? 0);
}
