import { loadMigrateCommand, orExit } from "../config.ts";
import { migrateOrExit } from "./migrate.ts";
import { describePgTarget, migratePgOrExit } from "./pg/migrate.ts";

// `bun run migrate`: brings DATABASE_URL's database to the current schema, on either engine: an SQLite
// file (migrations/sqlite/) or a postgres:// database (migrations/pg/, under an advisory lock).
const target = orExit(() => loadMigrateCommand());
if (target.engine === "postgresql") {
  const applied = await migratePgOrExit(target.url);
  console.log(`migrations: ${applied} applied to ${describePgTarget(target.url)}`);
} else {
  const applied = migrateOrExit(target.config);
  console.log(`migrations: ${applied} applied to ${target.config.database.path}`);
}

