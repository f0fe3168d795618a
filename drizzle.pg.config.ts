import { defineConfig } from "drizzle-kit";

// drizzle-kit for the PostgreSQL schema (issue 11): `bun run generate:pg` writes migrations/pg/.
// `bunx drizzle-kit migrate --config drizzle.pg.config.ts` applies them to DATABASE_URL (a postgres:// URL);
// `bun run migrate:pg` does the same under an advisory lock.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/pg/schema.ts",
  out: "./migrations/pg",
  dbCredentials: { url: process.env.DATABASE_URL || "postgres://localhost/sitesync" },
});
