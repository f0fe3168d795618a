import { loadConfigOrExit } from "../../config.ts";
import { migrateOrExit } from "./migrate.ts";
import { describePgTarget, migratePgOrExit } from "../pg/migrate.ts";

// `bun run migrate`: brings DATABASE_URL's database to the current schema, on either engine: an SQLite
// file (migrations/sqlite/) or a postgres:// database (migrations/pg/, under an advisory lock).
const config = loadConfigOrExit();
if (config.database.dialect === "postgres") {
  const applied = await migratePgOrExit(config.database.url);
  console.log(`migrations: ${applied} applied to ${describePgTarget(config.database.url)}`);
} else {
  const applied = await migrateOrExit(config);
  console.log(`migrations: ${applied} applied to ${config.database.path}`);
}
