import { defineConfig } from "drizzle-kit";

// drizzle-kit runs under Node and cannot load bun:sqlite; it talks to the file through @libsql/client.
const url = process.env.DATABASE_URL ?? "./data/app.db";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
  dbCredentials: { url: url.startsWith("file:") ? url : `file:${url}` },
});
