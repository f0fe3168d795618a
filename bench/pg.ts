import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { startCluster, stopCluster } from "../scripts/pg-cluster.ts";

// The PostgreSQL server of `bun run bench --database postgres[://…]`: a throw-away cluster started here
// from Debian's binaries, or the server a URL names; one fresh database per bench server on it, dropped at
// the end; the cluster's own CPU time, so a request's cost includes the database's work (as it does on
// SQLite, where the database runs inside the service's processes).

/**
 * Settings of the cluster the bench starts. Unlike the test clusters (fsync off), crash-safe: fsync and
 * full-page writes on. synchronous_commit=off is the durability of the SQLite side (WAL with
 * synchronous=NORMAL): a crash may lose the last commits, never corrupts. PostgreSQL's default
 * shared_buffers; room for both sides' pools (4 processes x PG_POOL_SIZE 10 each, plus the supervisors).
 */
export const benchClusterSettings = {
  fsync: "on",
  full_page_writes: "on",
  synchronous_commit: "off",
  shared_buffers: "128MB",
  max_connections: 300,
};

/** The settings reported with the results (whoever started the server). */
const reportedSettings = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections"];

export type PgServer = {
  /** "started by the bench" or the URL given (without its password). */
  origin: string;
  /** The server's settings that matter for the figures. */
  settings: Record<string, string>;
  /** The postmaster of the cluster the bench started (its process tree does all the server's work); null for a given URL. */
  serverPid: number | null;
  /** Creates an empty database (the servers migrate it when they start) and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Rows of a table in a database made by createDatabase (a connection per database, kept until close). */
  countRows(url: string, table: string): Promise<number>;
  /** Drops the databases made here and stops the cluster if the bench started it. */
  close(): Promise<void>;
};

/** Where the password of a postgres:// URL was, for printing. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://…";
  }
}

function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Opens the bench's PostgreSQL server: `url` (a server URL; its database is only used to create others),
 * or a throw-away cluster when `url` is null. `tag` makes the database names of this run unique.
 */
export async function openPgServer(url: string | null, tag: string): Promise<PgServer> {
  const cluster = url === null ? startCluster({ settings: benchClusterSettings }) : null;
  const adminUrl = url ?? cluster!.url;
  const admin = new pg.Client({ connectionString: adminUrl });
  const counters = new Map<string, pg.Client>();
  const created: string[] = [];
  try {
    await admin.connect();
    const settings: Record<string, string> = {};
    for (const name of reportedSettings) {
      settings[name] = (await admin.query<{ v: string }>("select current_setting($1) as v", [name])).rows[0]!.v;
    }
    const serverPid = cluster ? Number(readFileSync(join(cluster.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]) : null;
    return {
      origin: cluster ? `a throw-away cluster started by the bench in ${cluster.dir} (${cluster.url})` : withoutPassword(adminUrl),
      settings,
      serverPid,
      async createDatabase(name) {
        const db = `sitesync_bench_${tag}_${name.replace(/[^a-z0-9_]/gi, "_")}`.toLowerCase();
        await admin.query(`create database "${db}"`);
        created.push(db);
        return databaseUrl(adminUrl, db);
      },
      async countRows(dbUrl, table) {
        let c = counters.get(dbUrl);
        if (!c) {
          c = new pg.Client({ connectionString: dbUrl });
          await c.connect();
          counters.set(dbUrl, c);
        }
        return Number((await c.query<{ n: string }>(`select count(*) as n from "${table}"`)).rows[0]!.n);
      },
      async close() {
        for (const c of counters.values()) await c.end().catch(() => {});
        counters.clear();
        try {
          for (const db of created.splice(0)) await admin.query(`drop database if exists "${db}" with (force)`);
        } finally {
          await admin.end().catch(() => {});
          if (cluster) stopCluster(cluster.dir);
        }
      },
    };
  } catch (err) {
    await admin.end().catch(() => {});
    if (cluster) stopCluster(cluster.dir);
    throw err;
  }
}
