import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Engine } from "../../src/db/engine.ts";
import { findPgBin } from "../../scripts/pg-cluster.ts";
import { claimPgDatabase, dbTag, releasePgDatabase } from "./pg-pool.ts";

// Which engine this run of the suite tests: TEST_ENGINE=pg runs the behavioural tests against the
// PostgreSQL server at TEST_POSTGRES_URL (scripts/test.ts starts a throw-away one); default SQLite.

/** The engine the suite runs on. */
export const testEngine: Engine = process.env.TEST_ENGINE === "pg" ? "pg" : "sqlite";

const root = join(import.meta.dir, "../..");

function adminUrl(): string {
  const url = process.env.TEST_POSTGRES_URL;
  if (!url) throw new Error("TEST_ENGINE=pg needs TEST_POSTGRES_URL (run the suite with `bun run test`, which starts a server)");
  return url;
}

/** The psql binary of the PostgreSQL install the tests use. */
export function psqlBin(): string {
  const bin = findPgBin();
  if (bin && existsSync(join(bin, "psql"))) return join(bin, "psql");
  return "psql";
}

/** Connections kept per URL for pgValue(): one idle connection does not keep the test process alive. */
const pgValuePools = new Map<string, import("pg").Pool>();

/**
 * The first column of the first row of `sql` on the server's maintenance database (or `url`), over a connection kept
 * for the test process: for polls, where psql() starts a process and the server a backend (28-40 ms of its CPU on the
 * test machine) every time.
 */
export async function pgValue(sql: string, url = adminUrl()): Promise<string> {
  let pool = pgValuePools.get(url);
  if (!pool) {
    const { default: pg } = await import("pg");
    pool = new pg.Pool({ connectionString: url, max: 1, allowExitOnIdle: true, idleTimeoutMillis: 600_000 });
    // Its database dropped (with force) or the server stopped: the next query opens a new connection.
    pool.on("error", () => {});
    pgValuePools.set(url, pool);
  }
  const r = await pool.query({ text: sql, rowMode: "array" });
  return String(r.rows[0]?.[0] ?? "");
}

/** Runs one statement on the server's maintenance database, synchronously (tests create databases in sync helpers). */
export function psql(sql: string, url = adminUrl()): string {
  const r = Bun.spawnSync([psqlBin(), url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`psql failed: ${r.stderr.toString().trim()} (${sql})`);
  return r.stdout.toString().trim();
}

function urlOf(name: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${name}`;
  return u.toString();
}

let template: string | null = null;
let seq = 0;

/** The steps of making database `name` migrated: two statements, then the migration in a process of its own. */
function templateSteps(name: string): { argv: string[]; env: Record<string, string | undefined>; what: string }[] {
  const sql = (q: string) => ({
    argv: [psqlBin(), adminUrl(), "-v", "ON_ERROR_STOP=1", "-qAtc", q],
    env: process.env,
    what: `psql failed (${q})`,
  });
  return [
    sql(`drop database if exists "${name}" with (force)`),
    sql(`create database "${name}"`),
    {
      argv: [process.execPath, join(root, "src/db/sqlite/migrate-cli.ts")],
      env: { ...process.env, DATABASE_URL: urlOf(name), LOG_LEVEL: "warn" },
      what: "migrating the template database failed",
    },
  ];
}

/** Creates database `name` on the server and migrates it (the template tests copy). */
export function createMigratedDatabase(name: string): void {
  for (const step of templateSteps(name)) {
    const r = Bun.spawnSync(step.argv, { cwd: root, env: step.env, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${step.what}: ${r.stderr.toString().trim()}`);
  }
}

/** createMigratedDatabase without blocking this process's event loop (the runner starts the SQLite files meanwhile). */
export async function createMigratedDatabaseAsync(name: string): Promise<void> {
  for (const step of templateSteps(name)) {
    const p = Bun.spawn(step.argv, { cwd: root, env: step.env, stdout: "ignore", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`${step.what}: ${err.trim()}`);
  }
}

/**
 * A migrated template database (copying it is much faster than migrating): the run's own, made once by
 * scripts/test.ts and named in TEST_PG_TEMPLATE, or else one made once per test process.
 */
function migratedTemplate(): string {
  if (template) return template;
  const shared = process.env.TEST_PG_TEMPLATE;
  if (shared) {
    template = shared;
    return shared;
  }
  const name = `sitesync_tmpl_${process.pid}`;
  createMigratedDatabase(name);
  template = name;
  process.on("exit", () => {
    try {
      psql(`drop database if exists "${name}" with (force)`);
    } catch {
      // The server may already be gone (the runner stops it last).
    }
  });
  return name;
}

/**
 * A fresh migrated (or, with `migrated: false`, empty) PostgreSQL database; its URL and a drop() for cleanup. Under
 * the runner one made ahead is taken from its pool and drop() hands it back to be dropped in the background
 * (test/helpers/pg-pool.ts); else it is made and dropped here, with psql.
 */
export function newPgDatabase(opts: { migrated?: boolean } = {}): { url: string; name: string; drop: () => void } {
  const kind = opts.migrated === false ? "empty" : "migrated";
  const claimed = (kind === "empty" || process.env.TEST_PG_TEMPLATE) && claimPgDatabase(kind);
  const name = claimed || newPgDatabaseName();
  if (!claimed) psql(kind === "empty" ? `create database "${name}"` : `create database "${name}" template "${migratedTemplate()}"`);
  return pgDatabase(name);
}

/** A name for a database this process makes: with the runner's tag for it when there is one (the runner drops what a killed process left). */
export function newPgDatabaseName(): string {
  return `sitesync_t_${dbTag ? `${dbTag}_` : ""}${process.pid}_${++seq}_${Date.now().toString(36)}`;
}

/** Database `name` of the server, with newPgDatabase()'s drop(): handed to the runner's pool, else dropped here. */
export function pgDatabase(name: string): { url: string; name: string; drop: () => void } {
  let dropped = false;
  return {
    url: urlOf(name),
    name,
    drop: () => {
      if (dropped) return;
      dropped = true;
      if (releasePgDatabase(name)) return;
      try {
        psql(`drop database if exists "${name}" with (force)`);
      } catch {
        // Dropped already, or the server is gone.
      }
    },
  };
}
