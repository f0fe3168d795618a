// Issue 18 (<= 60 B per detail row): the day x query rollup's candidate layouts, measured on VACUUMed copies of
// a seeded file (docs/benchmarks/analytics-sizes.md "Layouts measured for <= 60 B/row"). Per layout: bytes per
// detail row after VACUUM, then query search's SQL CPU against today's covering-index search, alternated in one
// process, the same rows checked.
//   bun bench/rollup-layouts.ts <file.db> [term:days ...]     e.g. renka:30 renka:90 ka:90
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SEARCH_INDEXED_SQL, SEARCH_SHORT_SQL, ftsTrigrams } from "../src/db/sqlite/search.ts";

const [path, ...rest] = process.argv.slice(2);
if (!path) throw new Error("usage: bun bench/rollup-layouts.ts <file.db> [term:days ...]");
// The layouts are built from the rollup as it was before migration 0028 (keyed by day, with a covering by-query
// index); a file migrated to 0028 already has the query-keyed layout this script measured.
{
  const probe = new Database(path, { readonly: true });
  const before0028 = probe.query("select 1 from sqlite_master where name = 'gsc_day_query_totals_site_query_idx'").get();
  probe.close();
  if (!before0028) {
    console.error(`${path}: the rollup is already keyed by query (migration 0028); run this on a file migrated only to 0027`);
    process.exit(2);
  }
}
const cases = (rest.length ? rest : ["renka:30", "renka:90", "ka:90"]).map((c) => {
  const [term, days] = c.split(":");
  return { term: term!, days: Number(days) };
});

const rollupCols = "clicks integer not null, impressions integer not null, sum_position integer not null";
// The matched queries of src/db/sqlite/search.ts (3+ characters: the FTS index; 1-2: LIKE over the dictionary), in id order.
const MATCHED_INDEXED = `select q.id, q.query from gsc_queries_fts f join gsc_queries q on q.id = f.rowid
   where gsc_queries_fts match $fts and q.site_id = $site_id and q.query like $pattern escape '\\'
  union all
  select q.id, q.query from gsc_queries q
   where q.id > (select indexed_through from gsc_queries_indexed where id = 1)
     and +q.site_id = $site_id and q.query like $pattern escape '\\'
   order by 1`;
const MATCHED_SHORT = `select q.id, q.query from gsc_queries q where q.site_id = $site_id and q.query like $pattern escape '\\' order by 1`;

/** The search's totals (as src/db/sqlite/search.ts sums them) over the rollup rows `g` that `join` reaches from matched `m`. */
const totals = (matched: string, ctes: string, join: string) => `with recursive matched(id, query) as materialized (${matched})${ctes}
select m.query,
       sum(g.clicks) as total_clicks,
       sum(g.impressions) as total_impressions,
       coalesce(cast(sum(g.clicks) as real) / nullif(sum(g.impressions), 0), 0) as avg_ctr,
       coalesce(sum(g.sum_position) / 100.0 / nullif(sum(g.impressions), 0), 0) as avg_position,
       count(distinct g.day) as days_appeared,
       count(*) over () as found
  from matched m
 ${join}
 where g.day >= $start_day and g.day <= $end_day
 group by m.id
 order by total_impressions desc, m.query
 limit $limit`;

/** An epoch layout: the window's epochs present (one seek each), then one key range per matched query and epoch. */
const epochLayout = (shift: number) => ({
  build: [
    "drop index gsc_day_query_totals_site_query_idx",
    `create table e2 (site_id integer not null, epoch integer not null, query_id integer not null, day integer not null, type integer not null, ${rollupCols}, primary key (site_id, epoch, query_id, day, type)) without rowid`,
    `insert into e2 select site_id, day >> ${shift}, query_id, day, type, clicks, impressions, sum_position from gsc_day_query_totals order by 1, 2, 3, 4, 5`,
    "drop table gsc_day_query_totals",
    "alter table e2 rename to gsc_day_query_totals",
  ],
  search: (matched: string) =>
    totals(
      matched,
      `,
ep(e) as (
  select (select g.epoch from gsc_day_query_totals g where g.site_id = $site_id and g.epoch >= ($start_day >> ${shift}) order by g.epoch limit 1)
  union all
  select (select g.epoch from gsc_day_query_totals g where g.site_id = $site_id and g.epoch >= ep.e + 1 order by g.epoch limit 1)
    from ep where ep.e < ($end_day >> ${shift})
),
epochs(e) as materialized (select e from ep where e is not null and e <= ($end_day >> ${shift}))`,
      "cross join epochs x cross join gsc_day_query_totals g on g.site_id = $site_id and g.epoch = x.e and g.query_id = m.id",
    ),
});
type Layout = { build: string[]; search: ((matched: string) => string) | null };
const layouts: Record<string, Layout> = {
  today: { build: [], search: null },
  "today, matched queries in id order": {
    build: [],
    search: (matched) =>
      totals(
        matched,
        "",
        "cross join gsc_day_query_totals g indexed by gsc_day_query_totals_site_query_idx on g.site_id = $site_id and g.query_id = m.id",
      ),
  },
  "no covering index (PK seek per matched query, day, type)": {
    build: ["drop index gsc_day_query_totals_site_query_idx"],
    search: (matched) =>
      totals(
        matched,
        `,
days(day) as (select $start_day union all select day + 1 from days where day < $end_day),
types(type) as (values (1), (2), (3), (4), (5), (6))`,
        "cross join days cross join types cross join gsc_day_query_totals g on g.site_id = $site_id and g.day = days.day and g.type = types.type and g.query_id = m.id",
      ),
  },
  "epoch = day >> 5": epochLayout(5),
  "epoch = day >> 7": epochLayout(7),
};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const dir = mkdtempSync(join(tmpdir(), "sitesync-layouts-"));
try {
  const src = new Database(path, { readonly: true });
  const end = src.query<{ d: number }, []>("select max(day) as d from gsc_day_query_totals").get()!.d;
  const dbs: Record<string, Database> = {};
  for (const [name, l] of Object.entries(layouts)) {
    const file = join(dir, `${Object.keys(dbs).length}.db`);
    src.run(`vacuum into '${file}'`);
    const db = new Database(file);
    for (const s of l.build) db.run(s);
    db.run("vacuum");
    const rows = db.query<{ n: number }, []>("select count(*) as n from gsc_query_detail").get()!.n;
    const rollup = db.query<{ b: number }, []>("select sum(pgsize) as b from dbstat where name like 'gsc_day_query_totals%'").get()!.b;
    console.log(
      `${name}: ${(statSync(file).size / rows).toFixed(1)} B per detail row (rollup and its index ${(rollup / rows).toFixed(1)})`,
    );
    dbs[name] = db;
  }
  src.close();
  for (const { term, days } of cases) {
    const short = [...term].length < 3;
    const today = short ? SEARCH_SHORT_SQL : SEARCH_INDEXED_SQL;
    const p = {
      site_id: 1,
      start_day: end - days + 1,
      end_day: end,
      limit: 100,
      pattern: `%${term}%`,
      ...(short ? {} : { fts: ftsTrigrams(term) }),
    };
    const times: Record<string, number[]> = {};
    let ref: string | null = null;
    for (let rep = 0; rep < 4; rep++)
      for (const [name, l] of rep % 2 ? Object.entries(layouts).reverse() : Object.entries(layouts)) {
        const sql = l.search ? l.search(short ? MATCHED_SHORT : MATCHED_INDEXED) : today;
        const t = cpuMs();
        const out = JSON.stringify(dbs[name]!.query(sql).all(p));
        const ms = cpuMs() - t;
        if (name === "today") ref ??= out;
        else if (ref !== null && out !== ref) throw new Error(`${name}: other rows than today's for ${term}`);
        if (rep > 0) (times[name] ??= []).push(ms);
      }
    console.log(
      `'${term}', ${days} days: ${Object.entries(times)
        .map(([k, v]) => `${k} ${v.map((x) => x.toFixed(0)).join("/")} ms`)
        .join("; ")}`,
    );
  }
  for (const db of Object.values(dbs)) db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
