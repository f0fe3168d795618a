// A PostgreSQL bench database with the rows of an SQLite bench file (seeded by bench:analytics, grown by
// grow-analytics.ts): db:copy's table-by-table COPY (ids kept, the same dictionaries, detail and rollups the sync
// wrote), with the session's triggers and foreign-key checks off (session_replication_role = replica: a superuser,
// the bench's cluster; each foreign-key check is a row trigger, about half a copied row's server time), then each
// query's newest day (gsc_query_last_days, which the newest-day triggers would have kept) by its migration's
// statement, every count checked against the file, and VACUUM ANALYZE (statistics and the visibility map, as after
// autovacuum). Seeding through the sync's write path took 42 min for 5 M rows; this, a few minutes.
//   bun bench/copy-seed-pg.ts <seeded.db> <postgres-url of an empty database> [--batch-size 20000]
// Writes the file's seed summary (<seeded.db>.seed.json) to <seeded.db>.pg.seed.json, for --seed-json.
import { copyFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { copyDatabase } from "../src/db/copy/index.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { "batch-size": { type: "string" } },
  allowPositionals: true,
});
const [file, url] = positionals;
if (!file || !url) throw new Error("usage: bun bench/copy-seed-pg.ts <seeded.db> <postgres-url> [--batch-size N]");
const batchSize = z.coerce.number().int().min(1).max(50_000).default(20_000).parse(values["batch-size"]);

const replica = new URL(url);
replica.searchParams.set("options", "-c session_replication_role=replica");
const started = performance.now();
let lastTable = "";
const result = await copyDatabase({
  from: { dialect: "sqlite", path: file },
  to: { dialect: "postgres", url: replica.toString() },
  mode: "fresh",
  batchSize,
  onProgress: (p) => {
    if (p.table !== lastTable && p.total > 0)
      console.log(`${((performance.now() - started) / 1000).toFixed(0)} s: ${p.table} (${p.total} rows)`);
    lastTable = p.table;
  },
});
const copySeconds = (performance.now() - started) / 1000;
const client = new pg.Client({ connectionString: url });
await client.connect();
try {
  await client.query(`insert into gsc_query_last_days (site_id, type, query_id, day, first_day)
    select site_id, type, query_id, max(day), min(day) from gsc_day_query_totals group by site_id, query_id, type`);
  const lastDays = Number((await client.query("select count(*) as n from gsc_query_last_days")).rows[0].n);
  const counts = result.counts.map((c) => (c.table === "gsc_query_last_days" ? { ...c, target: lastDays } : c));
  const wrong = counts.filter((c) => c.source !== c.target);
  if (wrong.length > 0) throw new Error(`counts differ: ${wrong.map((c) => `${c.table} ${c.source} / ${c.target}`).join(", ")}`);
  const v = performance.now();
  await client.query("vacuum analyze");
  const rows = counts.reduce((n, c) => n + c.source, 0);
  console.log(
    `copied ${rows.toLocaleString("en-US")} rows (every table's count checked) in ${copySeconds.toFixed(0)} s (${Math.round(rows / copySeconds).toLocaleString("en-US")} rows/s), vacuum analyze ${((performance.now() - v) / 1000).toFixed(0)} s`,
  );
} finally {
  await client.end();
}
copyFileSync(`${file}.seed.json`, `${file}.pg.seed.json`);
