import { sql } from "drizzle-orm";
import { pgDriver } from "./driver.ts";
import type { Db } from "../index.ts";

// Diagnostics of a PostgreSQL database: the server's own facts (version, connections, locks, size)
// and this process's pool, where SQLite has pragmas, a WAL file and one write lock.

/** This process's pg.Pool: connections open, idle, and requests waiting for one. */
export function poolUsage(db: Db) {
  const pool = db.pg!.pool;
  return { max: pool.options.max ?? 10, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

/** True when the server answers and the database is migrated (has the sites table). */
export async function pingPg(db: Db): Promise<boolean> {
  const rows = await db.q.execute<{ ok: boolean }>(sql`select to_regclass('sites') is not null as ok`);
  return rows.rows[0]?.ok === true;
}

/** The server's facts about this database: version, limits, size, connections and lock waits. */
export async function serverFacts(db: Db) {
  const { rows } = await db.q.execute<Record<string, string | number | null>>(sql`
    select current_setting('server_version') as version,
           current_setting('server_version_num')::int as version_num,
           current_setting('max_connections')::int as max_connections,
           current_setting('statement_timeout') as statement_timeout,
           current_database() as database,
           pg_database_size(current_database())::bigint as database_size_bytes,
           (select count(*) from pg_stat_activity where datname = current_database())::int as connections,
           -- Waits of this database's backends: a row lock's wait is on a transaction id (database null), so
           -- "database is null" counted every other database's row-lock waits on the server too.
           (select count(*) from pg_locks l
              where not l.granted
                and l.pid in (select pid from pg_stat_activity where datname = current_database()))::int as locks_waiting,
           (select coalesce(extract(epoch from clock_timestamp() - min(xact_start)) * 1000, 0)
              from pg_stat_activity where datname = current_database() and xact_start is not null
                and pid <> pg_backend_pid())::float8 as oldest_transaction_ms`);
  const r = rows[0]!;
  return {
    version: String(r.version),
    version_num: Number(r.version_num),
    max_connections: Number(r.max_connections),
    statement_timeout: String(r.statement_timeout),
    database: String(r.database),
    database_size_bytes: Number(r.database_size_bytes),
    connections: Number(r.connections),
    locks_waiting: Number(r.locks_waiting),
    oldest_transaction_ms: Math.round(Number(r.oldest_transaction_ms)),
  };
}

/** Opens a fresh connection to the server (as a new process would), runs `select 1` and closes it. */
export async function connectOnce(db: Db, timeoutMs: number): Promise<void> {
  const client = new (pgDriver().Client)({ connectionString: db.pg!.url, connectionTimeoutMillis: timeoutMs });
  // A connection lost later must not surface as an unhandled 'error' event.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
  } finally {
    await client.end().catch(() => {});
  }
}
