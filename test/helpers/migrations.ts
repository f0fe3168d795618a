import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { migratePg, pgMigrationsFolder } from "../../src/db/pg/migrate.ts";

/**
 * A copy of a migrations folder (in `intoDir`) whose journal stops before the migration tagged `tag`: the
 * layout an older version left, to migrate a fixture to before running the migration under test.
 */
export function migrationsBefore(folder: string, tag: string, intoDir: string): string {
  const out = mkdtempSync(join(intoDir, `before-${tag}-`));
  cpSync(folder, out, { recursive: true });
  const path = join(out, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(path, "utf8")) as { entries: { tag: string }[] };
  const at = journal.entries.findIndex((e) => e.tag === tag);
  if (at <= 0) throw new Error(`migration ${tag} is not in ${folder} (or is the first one)`);
  journal.entries = journal.entries.slice(0, at);
  writeFileSync(path, JSON.stringify(journal, null, 2));
  return out;
}

/**
 * A PostgreSQL database at `url` migrated to just before `tag` and filled by `fixture`'s statements, on a
 * connected client (the caller ends it): the older version's database with data, before the migration under test.
 */
export async function pgFixtureBefore(url: string, tag: string, fixture: string[], intoDir: string): Promise<pg.Client> {
  await migratePg(url, migrationsBefore(pgMigrationsFolder, tag, intoDir));
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const s of fixture) await c.query(s);
  } catch (err) {
    await c.end();
    throw err;
  }
  return c;
}
