import { migratePg } from "./migrate.ts";

// `bun run migrate:pg postgres://…`: brings a PostgreSQL database to the current schema (migrations/pg).
// The service itself does not run on PostgreSQL yet (issue 11), so the URL is an argument, not DATABASE_URL.
const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: bun run migrate:pg postgres://user:password@host:5432/database");
  process.exit(2);
}
try {
  const applied = await migratePg(url);
  console.log(`migrations: ${applied} applied to ${new URL(url).host}${new URL(url).pathname}`);
} catch (err) {
  // Drizzle wraps the server's error in "Failed query: <the whole migration>"; the cause says what went wrong.
  const cause = (err as Error).cause;
  console.error(`migrate:pg failed: ${cause instanceof Error ? cause.message : (err as Error).message}`);
  process.exit(1);
}
