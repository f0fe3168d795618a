import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import { drizzlePg, pgDriver, pgSchema } from "./driver.ts";
import type * as Schema from "./schema.ts";

export type PgOrm = NodePgDatabase<typeof Schema>;

/** Checks that `url` is a postgres:// or postgresql:// URL; returns it, or throws saying what is expected. */
export function checkPostgresUrl(url: string): string {
  if (!/^postgres(ql)?:\/\/./i.test(url)) throw new Error(`expected a postgres:// or postgresql:// URL, got '${url}'`);
  return url;
}

/** A pool of connections to the server at `url` with Drizzle over it; close() ends the pool. */
export function openPg(url: string, opts: { max?: number } = {}) {
  const pool = new (pgDriver().Pool)({ connectionString: checkPostgresUrl(url), max: opts.max ?? 4 });
  // An idle client that loses its connection (server restart) emits 'error'; unhandled it would kill the process.
  pool.on("error", () => {});
  const orm: PgOrm = drizzlePg().drizzle({ client: pool, schema: pgSchema() });
  return { pool, orm, close: () => pool.end() };
}
