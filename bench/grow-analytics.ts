// Grows a seeded bench database (`bun run bench:analytics --db FILE`) to N times its rows without seeding them
// again: the file is copied, then every per-day table gets N-1 copies of the seed's days shifted back in time by
// whole 15-week steps (105 days: the weekly page totals keep their week boundaries; a 5-day gap between copies),
// so the grown file has the same layout, the same dictionary and the same newest 100 days as the seed — a
// property with a longer history. A 90-day report reads the same rows at every size, which is what "flat from
// 5 M to 50 M" asks to show. Seeding 20 M rows through the seeder takes ~30 min on a quiet 2-core machine (hours
// at load); this takes minutes.
//   bun bench/grow-analytics.ts <seeded.db> <grown.db> --times N
// Writes <grown.db>.seed.json (the seed's summary with the grown row and day counts) beside it.
import { Database } from "bun:sqlite";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";
import { addDays } from "../src/sync/dates.ts";
import { DAY_TABLES, STEP_DAYS } from "./grow-tables.ts";
import type { SeedResult } from "./seed-analytics.ts";

const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { times: { type: "string" } }, allowPositionals: true });
const [from, to] = positionals;
const times = z.coerce.number().int().min(2).max(20).parse(values.times);
if (!from || !to) throw new Error("usage: bun bench/grow-analytics.ts <seeded.db> <grown.db> --times N");
if (existsSync(to)) throw new Error(`${to} exists: pick a new file`);
const seed = JSON.parse(readFileSync(`${from}.seed.json`, "utf8")) as SeedResult;

const src = new Database(from, { readonly: true });
src.run(`vacuum into '${to.replaceAll("'", "''")}'`);
src.close();
const db = new Database(to);
db.run("pragma journal_mode = wal");
db.run("pragma synchronous = off");
const started = performance.now();

const columns = (table: string) => db.query<{ name: string; pk: number }, []>(`select name, pk from pragma_table_info('${table}')`).all();
const tables = new Set(
  db
    .query<{ name: string }, []>("select name from sqlite_master where type = 'table'")
    .all()
    .map((r) => r.name),
);
// The newest-day triggers would run once per copied row for nothing (older days never raise a query's newest day).
const triggers = db
  .query<{ name: string; sql: string }, []>(
    "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'gsc_day_query_totals'",
  )
  .all();
for (const t of triggers) db.run(`drop trigger ${t.name}`);

const { minDay, maxDay } = db
  .query<{ minDay: number; maxDay: number }, []>("select min(day) as minDay, max(day) as maxDay from gsc_query_detail")
  .get()!;
for (let k = 1; k < times; k++) {
  const shift = k * STEP_DAYS;
  db.transaction(() => {
    for (const t of DAY_TABLES.filter((x) => tables.has(x))) {
      const cols = columns(t).map((c) => c.name);
      const select = cols.map((c) => (c === "day" ? `day - ${shift}` : c)).join(", ");
      db.run(`insert into ${t} (${cols.join(", ")}) select ${select} from ${t} where day between ${minDay} and ${maxDay}`);
    }
    // Weeks: 105 days is 15 weeks; a week cut by the gap between two copies holds both copies' partial sums.
    const week = columns("gsc_week_page_totals");
    const names = week.map((c) => c.name);
    const sums = week.filter((c) => c.pk === 0).map((c) => `${c.name} = ${c.name} + excluded.${c.name}`);
    const key = week.filter((c) => c.pk > 0).map((c) => c.name);
    db.run(
      `insert into gsc_week_page_totals (${names.join(", ")}) select ${names.map((c) => (c === "week" ? `week - ${shift / 7}` : c)).join(", ")} ` +
        `from gsc_week_page_totals where week between ${Math.floor(minDay / 7)} and ${Math.floor(maxDay / 7)} ` +
        `on conflict (${key.join(", ")}) do update set ${sums.join(", ")}`,
    );
    const synced = columns("gsc_synced_days").map((c) => c.name);
    db.run(
      `insert into gsc_synced_days (${synced.join(", ")}) select ${synced.map((c) => (c === "date" ? `date(date, '-${shift} days')` : c)).join(", ")} ` +
        `from gsc_synced_days where date between '${seed.start}' and '${seed.end}'`,
    );
  })();
  console.log(
    `copy ${k} of ${times - 1}: days ${minDay - shift}..${maxDay - shift} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
}
for (const t of triggers) db.run(t.sql);
// The older copies make each query's oldest stored day older (the triggers were off): from the grown rollup.
db.run(`update gsc_query_last_days set first_day = m.first_day
  from (select site_id, type, query_id, min(day) as first_day from gsc_day_query_totals group by site_id, type, query_id) m
  where gsc_query_last_days.site_id = m.site_id and gsc_query_last_days.type = m.type and gsc_query_last_days.query_id = m.query_id`);
db.run("pragma analysis_limit = 1000");
db.run("analyze");
db.run("pragma wal_checkpoint(truncate)");
const rows = db.query<{ n: number }, []>("select count(*) as n from gsc_query_detail").get()!.n;
db.close();

const grown: SeedResult = { ...seed, rows, days: seed.days * times, start: addDays(seed.start, -(times - 1) * STEP_DAYS) };
writeFileSync(`${to}.seed.json`, JSON.stringify(grown));
console.log(
  `${to}: ${rows.toLocaleString("en-US")} detail rows, ${grown.start} to ${grown.end} (${times} copies of ${seed.days} days, 5-day gaps) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
