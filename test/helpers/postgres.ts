import { afterAll, beforeAll } from "bun:test";
import pg from "pg";
import { migratePg } from "../../src/db/pg/migrate.ts";
import { findPgBin, startCluster, stopCluster, type Cluster } from "../../scripts/pg-cluster.ts";
import { claimPgDatabase, dbTag, releasePgDatabase } from "./pg-pool.ts";

// A real PostgreSQL for tests: TEST_POSTGRES_URL when set (.ci/run starts one cluster for the whole run),
// else a throw-away cluster of this test file's own from Debian's binaries. Each test gets fresh databases.
const envUrl = process.env.TEST_POSTGRES_URL || undefined;

/**
 * A SQLite run of the suite whose PostgreSQL run also runs this file (scripts/test.ts sets TEST_PG_RUNS_TOO for the
 * SQLite processes when both engines run): a file run on both engines skips its real-server describes here, the
 * PostgreSQL run runs them (files run on SQLite only, `sqliteOnly` in scripts/test.ts, must not use this).
 */
export const pgRunsToo = process.env.TEST_ENGINE !== "pg" && process.env.TEST_PG_RUNS_TOO === "1";

/** Why PostgreSQL tests cannot run here, or null when they can. */
export const postgresSkipReason: string | null =
  envUrl || findPgBin() ? null : "no TEST_POSTGRES_URL and no PostgreSQL under /usr/lib/postgresql (apt-get install -y postgresql)";

/**
 * Registers beforeAll/afterAll hooks for a PostgreSQL server (TEST_POSTGRES_URL's, or a cluster started
 * here and removed afterwards); newDatabase() creates an empty database, dropped in afterAll.
 * Use inside `describe.skipIf(postgresSkipReason !== null)`.
 */
export function usePostgres() {
  let cluster: Cluster | null = null;
  let adminUrl = envUrl ?? "";
  const created: string[] = [];
  beforeAll(() => {
    if (!envUrl) {
      cluster = startCluster();
      adminUrl = cluster.url;
    }
  });
  afterAll(async () => {
    try {
      // The runner's (test/helpers/pg-pool.ts) are dropped by it, in the background.
      const mine = created.filter((d) => !releasePgDatabase(d));
      if (envUrl && mine.length > 0) {
        await admin(
          adminUrl,
          mine.map((d) => `drop database if exists "${d}" with (force)`),
        );
      }
    } finally {
      if (cluster) stopCluster(cluster.dir);
    }
  });
  return {
    /** The server's maintenance database URL. */
    adminUrl: () => adminUrl,
    /** A new database at the current schema: a copy of the run's template when there is one, else migrated here; its URL. */
    async newMigratedDatabase(): Promise<string> {
      const claimed = envUrl && process.env.TEST_PG_TEMPLATE ? claimPgDatabase("migrated") : null;
      if (!claimed) {
        const url = await this.newDatabase();
        await migratePg(url);
        return url;
      }
      created.push(claimed);
      const u = new URL(adminUrl);
      u.pathname = `/${claimed}`;
      return u.toString();
    },
    /** A new empty database; its URL. */
    async newDatabase(): Promise<string> {
      // One made ahead by the runner when it has one ready (test/helpers/pg-pool.ts), else made here.
      const claimed = envUrl ? claimPgDatabase("empty") : null;
      const name = claimed ?? `sitesync_test_${dbTag ? `${dbTag}_` : ""}${process.pid}_${created.length}_${Date.now().toString(36)}`;
      if (!claimed) await admin(adminUrl, [`create database "${name}"`]);
      created.push(name);
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      return u.toString();
    },
  };
}

/** Runs statements on one connection to `url`. */
async function admin(url: string, statements: string[]) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

if (postgresSkipReason) console.warn(`PostgreSQL tests skipped: ${postgresSkipReason}`);
