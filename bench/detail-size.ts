// Bytes per query-detail row (issue 18): seeds `rows` demo rows through the sync write path into a fresh file
// (bench/seed-analytics.ts), VACUUMs it and lists dbstat sizes per table and index, then the same rows in
// WITHOUT ROWID twins of the detail and rollup. `bun bench/detail-size.ts [rows] [path]`.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import { seedAnalytics } from "./seed-analytics.ts";
const rows = Number(process.argv[2] ?? 1_000_000);
const path = process.argv[3] ?? join(mkdtempSync(join(tmpdir(), "sitesync-detail-size-")), "a.db");
const t = performance.now();
const seed = await seedAnalytics(path, { rows, days: 100 });
const secs = (performance.now() - t) / 1000;
console.log(
  `seeded ${seed.rows} rows in ${secs.toFixed(1)} s: ${Math.round(seed.rows / secs)} rows/s (upsertRows + rollup rebuild, one day per transaction)`,
);
const db = new Database(path);
db.run("vacuum");
const size = statSync(path).size;
console.log(`file ${(size / 1e6).toFixed(1)} MB: ${(size / seed.rows).toFixed(1)} bytes per detail row (all tables and indexes)`);
const per = db
  .query<{ name: string; bytes: number }, []>("select name, sum(pgsize) as bytes from dbstat group by name order by bytes desc limit 12")
  .all();
for (const p of per) console.log(`  ${p.name.padEnd(48)} ${(p.bytes / 1e6).toFixed(1)} MB  ${(p.bytes / seed.rows).toFixed(1)} B/row`);
// WITHOUT ROWID variants of the two fact tables, measured on the same rows.
db.run(
  `create table wr_detail (site_id integer not null, day integer not null, type integer not null, page_id integer not null, query_id integer not null, device integer not null default 0, clicks integer not null default 0, impressions integer not null default 0, sum_position integer not null default 0, primary key (site_id, day, type, page_id, query_id, device)) without rowid`,
);
db.run(
  "insert into wr_detail select site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position from gsc_query_detail order by 1,2,3,4,5,6",
);
db.run(
  `create table wr_dq (site_id integer not null, day integer not null, type integer not null, query_id integer not null, clicks integer not null default 0, impressions integer not null default 0, sum_position integer not null default 0, primary key (site_id, day, type, query_id)) without rowid`,
);
db.run(
  "insert into wr_dq select site_id, day, type, query_id, clicks, impressions, sum_position from gsc_day_query_totals order by 1,2,3,4",
);
db.run("create index wr_dq_q on wr_dq (site_id, query_id, day, clicks, impressions, sum_position)");
db.run("vacuum");
const per2 = db
  .query<{ name: string; bytes: number }, []>(
    "select name, sum(pgsize) as bytes from dbstat where name like 'wr_%' or name like 'gsc_query_detail%' or name like 'gsc_day_query%' or name like 'sqlite_autoindex_gsc_query_detail%' or name like 'sqlite_autoindex_gsc_day_query%' group by name order by name",
  )
  .all();
for (const p of per2) console.log(`  ${p.name.padEnd(48)} ${(p.bytes / 1e6).toFixed(1)} MB  ${(p.bytes / seed.rows).toFixed(1)} B/row`);
db.close();
