import { Database } from "bun:sqlite";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { migrationsFolder } from "../db/sqlite/migrate.ts";

// What `bun run restore` checks in a backup before it is put in place (issue 21): a file with the right
// tables can still carry a trigger that undoes revocations, a view, an extra table or an admin key someone
// planted. The schema must be exactly what this version's migrations build (up to the ones the file records
// as applied), and the file's active keys are shown for confirmation or revoked.

type SchemaObject = { type: string; name: string; tbl_name: string; sql: string | null };

// Statistics tables SQLite itself creates (ANALYZE, PRAGMA optimize): their content only guides the planner.
const IGNORED = new Set(["sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"]);
const MIGRATIONS_TABLE = "__drizzle_migrations";

const objectsOf = (db: Database): Map<string, SchemaObject> =>
  new Map(
    (db.query("select type, name, tbl_name, sql from sqlite_schema").all() as SchemaObject[])
      .filter((o) => !IGNORED.has(o.name))
      .map((o) => [`${o.type} ${o.name}`, o]),
  );

/**
 * Differences between the file's schema and the one this version's migrations build (the migrations the file
 * records as applied, in order): unknown triggers, views, tables or indexes, missing or altered ones, and a
 * migration history this version does not know. Empty when the file is as the migrations made it.
 */
export function schemaProblems(path: string, folder = migrationsFolder): string[] {
  const db = new Database(path, { readonly: true });
  const ref = new Database(":memory:");
  try {
    const problems: string[] = [];
    const applied = db.query(`select hash, created_at from "${MIGRATIONS_TABLE}" order by created_at`).all() as {
      hash: string;
      created_at: number | string;
    }[];
    const known = readMigrationFiles({ migrationsFolder: folder });
    const byTime = new Map(known.map((m) => [m.folderMillis, m]));
    for (const a of applied) {
      const m = byTime.get(Number(a.created_at));
      if (!m) problems.push(`migration ${a.created_at} is not one of this version's (a newer version's backup?)`);
      else if (m.hash !== a.hash) problems.push(`migration ${m.folderMillis} differs from this version's (hash ${a.hash.slice(0, 12)}…)`);
    }
    if (problems.length > 0) return problems;
    const last = applied.length > 0 ? Number(applied[applied.length - 1]!.created_at) : -1;
    ref.run(`CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
    for (const m of known) {
      if (m.folderMillis > last) break;
      for (const stmt of m.sql) if (stmt.trim()) ref.run(stmt);
    }
    const want = objectsOf(ref);
    const have = objectsOf(db);
    for (const [k, o] of have) {
      const w = want.get(k);
      if (!w) problems.push(`unknown ${o.type} ${o.name}${o.sql ? `: ${o.sql.replace(/\s+/g, " ").slice(0, 200)}` : ""}`);
      // The bookkeeping table may have been made by drizzle-kit's own migrate (same columns, other spelling).
      else if (o.name !== MIGRATIONS_TABLE && norm(o.sql) !== norm(w.sql))
        problems.push(`${o.type} ${o.name} differs from the migrations'`);
      else if (o.tbl_name !== w.tbl_name) problems.push(`${o.type} ${o.name} is on ${o.tbl_name}, not ${w.tbl_name}`);
    }
    for (const [k, w] of want) if (!have.has(k)) problems.push(`missing ${w.type} ${w.name}`);
    return problems;
  } finally {
    ref.close();
    db.close();
  }
}

const norm = (sql: string | null) => (sql ?? "").replace(/\s+/g, " ").trim();

/** A key as restore lists it. */
export type RestoredKey = { id: number; prefix: string; name: string; scope: string; created_at: string; expires_at: string | null };

/** The keys in the file that are neither revoked nor expired. */
export function activeKeysIn(path: string, now = new Date()): RestoredKey[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .query(
        "select id, prefix, name, scope, created_at, expires_at from api_keys where revoked_at is null and (expires_at is null or expires_at > ?) order by id",
      )
      .all(now.toISOString()) as RestoredKey[];
  } finally {
    db.close();
  }
}

/**
 * Revokes every key and dashboard session in the file (restore --revoke-keys) and reads it back: throws when
 * any key is still active afterwards. Returns how many keys it revoked.
 */
export function revokeKeysIn(path: string, now = new Date()): number {
  const before = activeKeysIn(path, now).length;
  const db = new Database(path, { readwrite: true, create: false });
  try {
    const at = now.toISOString();
    db.transaction(() => {
      db.run("update api_keys set revoked_at = ? where revoked_at is null", [at]);
      const sessions = db.query("select 1 from sqlite_schema where type = 'table' and name = 'ui_sessions'").get();
      if (sessions) db.run("update ui_sessions set revoked_at = ? where revoked_at is null", [at]);
    })();
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
  const left = activeKeysIn(path, now);
  if (left.length > 0) throw new Error(`keys still active after revoking them: ${left.map((k) => k.prefix).join(", ")}`);
  return before;
}
