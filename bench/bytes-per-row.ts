// Bytes per stored query-detail row of an SQLite file, per table and index (dbstat), after `VACUUM INTO` a
// temporary copy (so page slack from the order rows arrived in is not counted), and optionally after
// migrating that copy to the current schema first (`--migrate`: the in-place move an upgrade does). With
// `--rowid-twins` it also stores the same totals rows in rowid tables as they were before migration 0021
// (a rowid table plus its key's unique index) and measures them beside the current ones.
//   bun bench/bytes-per-row.ts <file.db> [--migrate] [--rowid-twins]
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate } from "../src/db/sqlite/migrate.ts";

const [path, ...flags] = process.argv.slice(2);
if (!path) throw new Error("usage: bun bench/bytes-per-row.ts <file.db> [--migrate]");
const dir = mkdtempSync(join(tmpdir(), "sitesync-bytes-"));
try {
  const copy = join(dir, "copy.db");
  const src = new Database(path, { readonly: true });
  src.run(`vacuum into '${copy}'`);
  src.close();
  if (flags.includes("--migrate")) console.log(`migrations applied to the copy: ${migrate(copy)}`);
  const db = new Database(copy);
  if (flags.includes("--rowid-twins")) {
    const keys: Record<string, string> = {
      gsc_property_totals: "site_id, day, type, country, device",
      gsc_page_totals: "site_id, day, type, page_id, country, device",
      gsc_appearance_totals: "site_id, day, type, appearance",
    };
    for (const [t, key] of Object.entries(keys)) {
      const cols = db
        .query<{ name: string; type: string }, []>(`select name, type from pragma_table_info('${t}')`)
        .all()
        .map((c) => `${c.name} ${c.type}`);
      db.run(`create table rowid_twin_${t} (${cols.join(", ")}, primary key (${key}))`);
      db.run(`insert into rowid_twin_${t} select * from ${t} order by ${key}`);
    }
  }
  db.run("vacuum");
  const rows = db.query<{ n: number }, []>("select count(*) as n from gsc_query_detail").get()!.n;
  const size = statSync(copy).size;
  console.log(
    `${rows.toLocaleString("en-US")} detail rows; file ${(size / 1e6).toFixed(1)} MB: ${(size / rows).toFixed(1)} bytes per detail row`,
  );
  for (const r of db
    .query<{ name: string; bytes: number }, []>("select name, sum(pgsize) as bytes from dbstat group by name order by bytes desc limit 14")
    .all())
    console.log(`  ${r.name.padEnd(44)} ${(r.bytes / 1e6).toFixed(1).padStart(7)} MB  ${(r.bytes / rows).toFixed(1).padStart(5)} B/row`);
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
