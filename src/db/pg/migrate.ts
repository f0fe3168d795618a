import { join } from "node:path";
import type pg from "pg";
import { drizzlePg, pgDriver } from "./driver.ts";
import { checkPostgresUrl } from "./open.ts";

export const pgMigrationsFolder = join(import.meta.dir, "../../../migrations/pg");

// Any fixed number: every process migrating a database waits on this one session-level advisory lock.
const MIGRATE_LOCK = 5_171_511_011;

/**
 * Applies pending drizzle-kit migrations (migrations/pg) to the PostgreSQL database at `url`; returns how
 * many ran. Same bookkeeping as `drizzle-kit migrate` (drizzle.__drizzle_migrations), so either tool can be
 * used. The whole run holds an advisory lock, so processes or machines starting at once serialize instead
 * of racing (the others wait, then find nothing to do).
 */
export async function migratePg(url: string, folder = pgMigrationsFolder): Promise<number> {
  const { migrate } = await import("drizzle-orm/node-postgres/migrator");
  const client = new (pgDriver().Client)({ connectionString: checkPostgresUrl(url) });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATE_LOCK]);
    try {
      const before = await appliedCount(client);
      await migrate(drizzlePg().drizzle({ client }), { migrationsFolder: folder });
      return (await appliedCount(client)) - before;
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATE_LOCK]);
    }
  } finally {
    await client.end();
  }
}

/** migratePg for a command line: a failure prints one line (the server's reason, no stack) and exits 1. */
export async function migratePgOrExit(url: string): Promise<number> {
  try {
    return await migratePg(url);
  } catch (err) {
    // Drizzle wraps the server's error in "Failed query: <the whole migration>"; the cause says what went wrong.
    const cause = (err as Error).cause;
    console.error(
      `fatal: migrations failed on ${describePgTarget(url)}: ${cause instanceof Error ? cause.message : (err as Error).message}`,
    );
    process.exit(1);
  }
}

/** host:port/database of a postgres:// URL, without its user or password (for messages). */
export function describePgTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname}`;
  } catch {
    return "the database";
  }
}

async function appliedCount(client: pg.Client): Promise<number> {
  const exists = await client.query("select to_regclass('drizzle.__drizzle_migrations') is not null as e");
  if (!exists.rows[0]?.e) return 0;
  const r = await client.query<{ n: string }>("select count(*) as n from drizzle.__drizzle_migrations");
  return Number(r.rows[0]?.n ?? 0);
}
