import { defineConfig } from "drizzle-kit";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseDatabaseUrl } from "./src/config.ts";

// drizzle-kit runs under Node and cannot load bun:sqlite; it talks to the file through @libsql/client.
// The file is found exactly as the app finds it (same parser, same default).
const { path } = parseDatabaseUrl(process.env.DATABASE_URL || "./data/app.db");
// On a fresh clone ./data does not exist yet, and libsql will not create a folder (the app's migrator does).
mkdirSync(dirname(path), { recursive: true });

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
  dbCredentials: { url: `file:${path}` },
});
