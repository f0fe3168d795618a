// bench/grow-analytics.ts for PostgreSQL: grows a seeded bench database in place, inside the server (INSERT ...
// SELECT, no rows through a client), by the same statements in the same order, so a database copied from the
// SQLite seed (`bun run db:copy --from seed.db --to postgres://…`) and grown N times holds the rows of the SQLite
// file that grow-analytics.ts made from that seed: the same 100 newest days behind a longer history, the same ids.
// An already grown database (e.g. a copy of g20m.db: 4 copies) grows on to N copies (--from 4 --times 10).
//   bun bench/grow-analytics-pg.ts <postgres-url> <seed.json> --times N [--from K] [--out grown.seed.json]
// <seed.json>: the database's seed summary (the SQLite file's .seed.json beside it); writes the grown one to --out.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { addDays } from "../src/sync/dates.ts";
import { DAY_TABLES, STEP_DAYS } from "./grow-tables.ts";
import type { SeedResult } from "./seed-analytics.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { times: { type: "string" }, from: { type: "string" }, out: { type: "string" } },
  allowPositionals: true,
});
const [url, seedFile] = positionals;
if (!url || !seedFile)
  throw new Error("usage: bun bench/grow-analytics-pg.ts <postgres-url> <seed.json> --times N [--from K] [--out file]");
const times = z.coerce.number().int().min(2).max(20).parse(values.times);
const from = z.coerce.number().int().min(1).max(19).default(1).parse(values.from);
const seed = JSON.parse(readFileSync(seedFile, "utf8")) as SeedResult;
// The seed's own days: the newest block of `seed.days / from` days.
const blockDays = seed.days / from;

const client = new pg.Client({ connectionString: url });
await client.connect();
const started = performance.now();
const columns = async (table: string) =>
  (
    await client.query<{ name: string }>(
      "select column_name as name from information_schema.columns where table_schema = current_schema() and table_name = $1 order by ordinal_position",
      [table],
    )
  ).rows.map((r) => r.name);
const { maxDay } = (await client.query<{ maxDay: number }>(`select max(day) as "maxDay" from gsc_query_detail`)).rows[0]!;
const minDay = maxDay - blockDays + 1;
// No trigger: as grow-analytics.ts drops them, older days never raise a query's newest day (gsc_query_last_days stays as
// it is); and no foreign-key check, each a row-level trigger (half of a copied detail row's time, measured): every
// copied row's site is there already. Needs a superuser (the bench's cluster).
await client.query("set session_replication_role = replica");
// The day × query rollup's key and its by-query index take each copied row at a random place (keyed by query first):
// with the server's small shared_buffers most of the time went there. Dropped, and built again (sorted) after the copies.
const rebuilt = "gsc_day_query_totals";
const key = (
  await client.query<{ name: string; def: string }>(
    "select conname as name, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1::regclass and contype = 'p'",
    [rebuilt],
  )
).rows[0]!;
const indexes = (
  await client.query<{ name: string; def: string }>(
    "select indexname as name, indexdef as def from pg_indexes where schemaname = current_schema() and tablename = $1 and indexname <> $2",
    [rebuilt, key.name],
  )
).rows;
await client.query(`alter table ${rebuilt} drop constraint "${key.name}"`);
for (const i of indexes) await client.query(`drop index "${i.name}"`);
try {
  for (let k = from; k < times; k++) {
    const shift = k * STEP_DAYS;
    await client.query("begin");
    for (const t of DAY_TABLES) {
      const cols = await columns(t);
      const select = cols.map((c) => (c === "day" ? `day - ${shift}` : c)).join(", ");
      await client.query(`insert into ${t} (${cols.join(", ")}) select ${select} from ${t} where day between ${minDay} and ${maxDay}`);
    }
    const week = await columns("gsc_week_page_totals");
    const key = ["site_id", "week", "type", "page_id"];
    const sums = week.filter((c) => !key.includes(c)).map((c) => `${c} = gsc_week_page_totals.${c} + excluded.${c}`);
    await client.query(
      `insert into gsc_week_page_totals (${week.join(", ")}) select ${week.map((c) => (c === "week" ? `week - ${shift / 7}` : c)).join(", ")} ` +
        `from gsc_week_page_totals where week between ${Math.floor(minDay / 7)} and ${Math.floor(maxDay / 7)} ` +
        `on conflict (${key.join(", ")}) do update set ${sums.join(", ")}`,
    );
    const synced = await columns("gsc_synced_days");
    const start = addDays(seed.end, -(blockDays - 1));
    await client.query(
      `insert into gsc_synced_days (${synced.join(", ")}) select ${synced.map((c) => (c === "date" ? `to_char(date::date - ${shift}, 'YYYY-MM-DD')` : c)).join(", ")} ` +
        `from gsc_synced_days where date between '${start}' and '${seed.end}'`,
    );
    await client.query("commit");
    console.log(
      `copy ${k} of ${times - 1}: days ${minDay - shift}..${maxDay - shift} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
  }
} finally {
  await client.query("set maintenance_work_mem = '1GB'");
  const t = performance.now();
  await client.query(`alter table ${rebuilt} add constraint "${key.name}" ${key.def}`);
  for (const i of indexes) await client.query(i.def);
  console.log(`${rebuilt}: key and ${indexes.length} indexes built in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  await client.query("set session_replication_role = origin");
}
// The older copies make each query's oldest stored day older (no trigger ran): from the grown rollup.
await client.query(`update gsc_query_last_days l set first_day = m.first_day
  from (select site_id, type, query_id, min(day) as first_day from gsc_day_query_totals group by site_id, type, query_id) m
  where l.site_id = m.site_id and l.type = m.type and l.query_id = m.query_id`);
for (const t of [...DAY_TABLES, "gsc_week_page_totals", "gsc_synced_days"]) await client.query(`vacuum analyze ${t}`);
const rows = Number((await client.query<{ n: string }>("select count(*) as n from gsc_query_detail")).rows[0]!.n);
await client.end();

const grown: SeedResult = { ...seed, rows, days: blockDays * times, start: addDays(seed.end, -(blockDays - 1) - (times - 1) * STEP_DAYS) };
const out = values.out ?? seedFile.replace(/(\.seed)?\.json$/, `-x${times}.seed.json`);
writeFileSync(out, JSON.stringify(grown));
console.log(
  `${rows.toLocaleString("en-US")} detail rows, ${grown.start} to ${grown.end} (${times} copies of ${blockDays} days) in ${((performance.now() - started) / 1000).toFixed(0)} s; wrote ${out}`,
);
