import { defineConfig } from "drizzle-kit";

// drizzle-kit for the PostgreSQL schema: `bun run generate:pg` writes migrations/pg/ (no database needed).
// drizzle.config.ts uses this same configuration whenever DATABASE_URL is a postgres:// URL, so
// `bunx drizzle-kit migrate` picks it by itself; `bun run migrate` does the same under an advisory lock.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/pg/schema.ts",
  out: "./migrations/pg",
  dbCredentials: { url: process.env.DATABASE_URL || "postgres://localhost/sitesync" },
});
