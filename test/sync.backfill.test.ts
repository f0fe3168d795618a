import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { tempDir } from "./helpers/db.ts";

// Migration 0002 backfills gsc_synced_days from the rows stored before the markers existed.

const dir = tempDir();
afterAll(() => dir.cleanup());

/** A copy of the migrations folder whose journal stops after the migration tagged `lastTag`. */
function folderUpTo(lastTag: string): string {
  const folder = join(dir.dir, "up-to");
  cpSync(migrationsFolder, folder, { recursive: true });
  const journalPath = join(folder, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
  const end = journal.entries.findIndex((e) => e.tag === lastTag);
  expect(end).toBeGreaterThanOrEqual(0);
  journal.entries = journal.entries.slice(0, end + 1);
  writeFileSync(journalPath, JSON.stringify(journal, null, 2));
  return folder;
}

test("rows stored before the markers existed get one marker per (site, day, search type), with their row count", () => {
  const path = join(dir.dir, "app.db");
  expect(migrate(path, undefined, folderUpTo("0001_sync_synced_days"))).toBe(2);
  const conn = new Database(path, { strict: true });
  try {
    conn.run("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
    const ins = conn.query(
      "insert into gsc_performance_data (site_id, date, page, query, device, search_type) values (?, ?, ?, ?, 'DESKTOP', ?)",
    );
    for (let i = 0; i < 3; i++) ins.run(1, "2026-03-01", "/", `q${i}`, "web");
    ins.run(1, "2026-03-01", "/", "q", "image");
    for (let i = 0; i < 2; i++) ins.run(2, "2026-03-02", "/", `q${i}`, "web");
    // A day already marked keeps its marker as it was.
    conn.run(
      "insert into gsc_synced_days (site_id, date, search_type, row_count, synced_at) values (2, '2026-03-02', 'web', 7, '2026-03-03T00:00:00.000Z')",
    );

    expect(migrate(path)).toBeGreaterThanOrEqual(1);
    const markers = conn
      .query("select site_id, date, search_type, row_count from gsc_synced_days order by site_id, date, search_type")
      .all();
    expect(markers).toEqual([
      { site_id: 1, date: "2026-03-01", search_type: "image", row_count: 1 },
      { site_id: 1, date: "2026-03-01", search_type: "web", row_count: 3 },
      { site_id: 2, date: "2026-03-02", search_type: "web", row_count: 7 },
    ]);
  } finally {
    conn.close();
  }
});
