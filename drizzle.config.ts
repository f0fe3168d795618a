import { defineConfig } from "drizzle-kit";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseDatabaseUrl, sqlitePathOf } from "./src/config.ts";
import pgConfig from "./drizzle.pg.config.ts";

// drizzle-kit picks the engine from DATABASE_URL as the app does: postgres:// or postgresql:// is
// PostgreSQL (schema src/db/pg/schema.ts, migrations/pg/); anything else (a path, file:, sqlite:///) is an
// SQLite file (schema src/db/sqlite/schema.ts, migrations/sqlite/). Unset: ./data/app.db, the app's default.
const url = process.env.DATABASE_URL || "./data/app.db";

/** The SQLite configuration: drizzle-kit runs under Node, so it reaches the file through @libsql/client. */
function sqliteConfig() {
  // The file is found exactly as the app finds it (same parser, same default).
  const path = sqlitePathOf(parseDatabaseUrl(url), "drizzle-kit");
  // On a fresh clone ./data does not exist yet, and libsql will not create a folder (the app's migrator does).
  mkdirSync(dirname(path), { recursive: true });
  return defineConfig({
    dialect: "sqlite",
    schema: "./src/db/sqlite/schema.ts",
    out: "./migrations/sqlite",
    dbCredentials: { url: `file:${path}` },
  });
}

export default /^postgres(ql)?:\/\//i.test(url) ? { ...pgConfig, dbCredentials: { url } } : sqliteConfig();
