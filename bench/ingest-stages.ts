// `bun bench/ingest-stages.ts [--days 20] [--rows 2000] [--database postgres://…]`: CPU time per detail row of each
// stage of the sync's detail write, in this process (process.cpuUsage, so the machine's load counts less than in
// wall time): the source (demo rows), the atomic day's write (replaceDayDetail: dictionaries, delete, insert,
// rollup, in one transaction with its COMMIT), and the batched path of bigger days (upsertRows in
// SYNC_BULK_BATCH_SIZE batches, then rebuildDayQueryTotals). Days of the demo source, web type, a fresh database.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { setLogLevel } from "../src/log.ts";
import * as data from "../src/sync/data.ts";
import { addDays } from "../src/sync/dates.ts";
import { demoRows } from "../src/sync/demo.ts";

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "20" },
    rows: { type: "string", default: "2000" },
    bulk: { type: "string", default: "5000" },
    database: { type: "string" },
  },
});
const days = Number(args.days);
const rowsPerDay = Number(args.rows);
const bulk = Number(args.bulk);
setLogLevel("warn");

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

let db: Db;
let cleanup: () => Promise<void> | void;
if (args.database) {
  await migratePg(args.database);
  db = openPgDb({ url: args.database, role: "test" });
  await db.tx((tx) =>
    tx.execute(sql`truncate sites, gsc_query_detail, gsc_day_query_totals, gsc_pages, gsc_queries restart identity cascade`),
  );
  cleanup = () => db.close();
} else {
  const dir = mkdtempSync(join(tmpdir(), "sitesync-stages-"));
  migrate(join(dir, "app.db"));
  db = openDb({ path: join(dir, "app.db"), role: "test" });
  cleanup = () => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  };
}
const newSite = async (name: string) =>
  (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain: name, name }).returning())[0]!)).id;
const replaceSite = await newSite("sc-domain:replace.bench.example");
const batchedSite = await newSite("sc-domain:batched.bench.example");

const t = { source: 0, replace: 0, batched: 0, rebuild: 0 };
const w = { source: 0, replace: 0, batched: 0, rebuild: 0 };
let wc = 0;
let n = 0;
for (let i = 0; i < days; i++) {
  const day = addDays("2026-01-01", i);
  let c = cpu();
  wc = performance.now();
  const rows = demoRows("sc-domain:stages.bench.example", day, "web", rowsPerDay);
  t.source += cpu() - c;
  w.source += performance.now() - wc;
  c = cpu();
  wc = performance.now();
  await db.tx((tx) => data.replaceDayDetail(tx, replaceSite, day, "web", rows));
  t.replace += cpu() - c;
  w.replace += performance.now() - wc;
  c = cpu();
  wc = performance.now();
  for (let j = 0; j < rows.length; j += bulk) await db.tx((tx) => data.upsertRows(tx, batchedSite, day, "web", rows.slice(j, j + bulk)));
  t.batched += cpu() - c;
  w.batched += performance.now() - wc;
  c = cpu();
  wc = performance.now();
  await db.tx((tx) => data.rebuildDayQueryTotals(tx, batchedSite, day, "web"));
  t.rebuild += cpu() - c;
  w.rebuild += performance.now() - wc;
  n += rows.length;
}
const us = (ms: number) => ((ms * 1000) / n).toFixed(2);
console.log(`${db.engine}: ${days} days × ${rowsPerDay} rows (web), µs per detail row: CPU of this process / wall`);
const line = (label: string, k: keyof typeof t) => console.log(`${label.padEnd(44)} ${us(t[k]).padStart(7)} / ${us(w[k]).padStart(7)}`);
line("source (demo rows)", "source");
line("atomic day: replaceDayDetail + COMMIT", "replace");
line(`batched: upsertRows (${bulk}/tx) + COMMITs`, "batched");
line("batched: rebuildDayQueryTotals + COMMIT", "rebuild");
await cleanup();
process.exit(0);
