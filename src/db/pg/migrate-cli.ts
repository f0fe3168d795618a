import { describePgTarget, migratePgOrExit } from "./migrate.ts";

// `bun run migrate:pg postgres://…`: the URL as an argument instead of DATABASE_URL; otherwise the same as
// `DATABASE_URL=postgres://… bun run migrate`.
const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: bun run migrate:pg postgres://user:password@host:5432/database");
  process.exit(2);
}
const applied = await migratePgOrExit(url);
console.log(`migrations: ${applied} applied to ${describePgTarget(url)}`);
