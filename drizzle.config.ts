import { defineConfig } from "drizzle-kit";
import { parseDatabaseUrl } from "./src/config.ts";

// drizzle-kit runs under Node and cannot load bun:sqlite; it talks to the file through @libsql/client.
// The file is found exactly as the app finds it (same parser, same default).
const { path } = parseDatabaseUrl(process.env.DATABASE_URL || "./data/app.db");

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
  dbCredentials: { url: `file:${path}` },
});
