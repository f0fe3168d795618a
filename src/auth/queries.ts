import type { Database } from "bun:sqlite";
import { and, desc, eq, gt, isNull, or, sql } from "drizzle-orm";
import { first, type Db, type Orm, type Q, type SqliteDb } from "../db/index.ts";
import { pgSchema } from "../db/pg/driver.ts";
import { namedStatement, perPgHandle } from "../db/pg/prepared.ts";
import { compileSelect, perConnection } from "../db/sqlite/prepared.ts";
import { sharedSnapshotOf } from "../db/sqlite/read-snapshot.ts";
import { apiKeys } from "../db/sqlite/schema.ts";
import type { ApiKey, KeyScope } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { generateKey, keyMatches, keyPrefix } from "./keys.ts";

// Engine-neutral (db.q / db.t / db.tx), except the two checks asked on every request: on SQLite they
// run synchronously (no async frame on the request path) as bare bun:sqlite statements compiled once
// per connection (a Drizzle prepared get cost ~10 µs); on PostgreSQL they return a promise.

const p = sql.placeholder;

const readStatements = perConnection((orm) => ({
  byPrefix: compileSelect(
    orm,
    orm
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.prefix, p("prefix"))),
  ),
  anyActive: compileSelect(
    orm,
    orm
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(isNull(apiKeys.revoked_at), or(isNull(apiKeys.expires_at), gt(apiKeys.expires_at, p("now")))))
      .limit(1),
  ),
}));

// The same two checks on PostgreSQL as named statements (parsed and planned once per connection).
const pgStatements = perPgHandle((q) => {
  const { apiKeys: pgApiKeys } = pgSchema();
  return {
    byPrefix: namedStatement<ApiKey>(
      "api_keys_by_prefix",
      q
        .select()
        .from(pgApiKeys)
        .where(eq(pgApiKeys.prefix, p("prefix"))),
    ),
    anyActive: namedStatement<{ id: number }>(
      "api_keys_any_active",
      q
        .select({ id: pgApiKeys.id })
        .from(pgApiKeys)
        .where(and(isNull(pgApiKeys.revoked_at), or(isNull(pgApiKeys.expires_at), gt(pgApiKeys.expires_at, p("now")))))
        .limit(1),
    ),
  };
});

/** A key as the API and the CLI show it: never its hash. */
export type KeyInfo = Omit<ApiKey, "key_hash">;

/** The identity a valid key proves. */
export type KeyPrincipal = { id: number; name: string; scope: KeyScope };

/** Why a presented key was refused. */
export type KeyRefusal = "malformed" | "unknown" | "revoked" | "expired";

/** What checking a presented key found. */
export type KeyVerdict = { ok: true; key: KeyPrincipal } | { ok: false; reason: KeyRefusal };

/**
 * Checks a presented key against the stored hashes (constant-time) and its revocation and expiry;
 * synchronous on SQLite, a promise on PostgreSQL (await it either way outside the request path).
 * Reads the database each time, so a revoke is seen by every process at its next request.
 */
export function verifyApiKey(db: Db, key: string, now = new Date()): KeyVerdict | Promise<KeyVerdict> {
  const prefix = keyPrefix(key);
  if (!prefix) return { ok: false, reason: "malformed" };
  if (db.engine === "sqlite") return judgeKey(key, readStatements(db.read).byPrefix.get({ prefix }), now);
  return pgStatements(db)
    .byPrefix.run(db.pg.pool, { prefix })
    .then((rows) => judgeKey(key, first(rows), now));
}

function judgeKey(key: string, row: ApiKey | undefined, now: Date): KeyVerdict {
  if (!row || !keyMatches(key, row.key_hash)) return { ok: false, reason: "unknown" };
  if (row.revoked_at !== null) return { ok: false, reason: "revoked" };
  if (row.expires_at !== null && row.expires_at <= now.toISOString()) return { ok: false, reason: "expired" };
  return { ok: true, key: { id: row.id, name: row.name, scope: row.scope } };
}

const dataVersionStatement = perConnection((orm) =>
  (orm as Orm & { $client: Database }).$client.prepare<{ data_version: number }, []>("PRAGMA data_version"),
);

// The version read within the shared read transaction now open (src/db/sqlite/read-snapshot.ts): it
// cannot change until that transaction ends, so the other requests of the same event-loop turn reuse it.
const versionInSnapshot = new WeakMap<Database, { snapshot: number; version: number }>();

/**
 * The reader connection's `PRAGMA data_version` (SQLite only): it changes whenever any other connection,
 * in this process or another, commits to the file. Read once per shared read snapshot (a served
 * request's statement step cost about as much as reading its site).
 */
export function readerDataVersion(db: SqliteDb): number {
  const reader = db.raw.reader;
  const open = sharedSnapshotOf(reader);
  if (open !== null) {
    const known = versionInSnapshot.get(reader);
    if (known !== undefined && known.snapshot === open) return known.version;
  }
  const version = dataVersionStatement(db.read).get()!.data_version;
  // The read opened the turn's snapshot if none was open.
  const snapshot = sharedSnapshotOf(reader);
  if (snapshot !== null) versionInSnapshot.set(reader, { snapshot, version });
  return version;
}

/**
 * True when at least one key is neither revoked nor expired (protected mode ends then): synchronous
 * on SQLite, a promise on PostgreSQL.
 */
export function hasActiveKey(db: Db, now = new Date()): boolean | Promise<boolean> {
  const at = now.toISOString();
  if (db.engine === "sqlite") return readStatements(db.read).anyActive.get({ now: at }) !== undefined;
  return pgStatements(db)
    .anyActive.run(db.pg.pool, { now: at })
    .then((rows) => rows.length > 0);
}

/**
 * SQLite: true when at least one key is active, read in the write transaction `tx` (a keyless create checks it where it
 * writes: a key committed before that transaction began is seen, and none can commit during it).
 */
export function hasActiveKeyIn(tx: Orm, now = new Date()): boolean {
  return readStatements(tx).anyActive.get({ now: now.toISOString() }) !== undefined;
}

const info = ({ key_hash: _hash, ...rest }: ApiKey): KeyInfo => rest;

/** Creates a key; the clear key is returned here and never again. */
export async function createApiKey(
  db: Db,
  input: { name: string; scope: KeyScope; expiresAt?: Date | null },
): Promise<{ key: string; info: KeyInfo }> {
  const g = generateKey();
  const { apiKeys } = db.t;
  const row = await db.tx(async (tx) =>
    first(
      await tx
        .insert(apiKeys)
        .values({
          name: input.name,
          scope: input.scope,
          prefix: g.prefix,
          key_hash: g.hash,
          expires_at: input.expiresAt?.toISOString() ?? null,
        })
        .returning(),
    ),
  );
  return { key: g.key, info: info(row!) };
}

/** Every key, newest first, without hashes. */
export async function listApiKeys(db: Db): Promise<KeyInfo[]> {
  const { apiKeys } = db.t;
  return (await db.q.select().from(apiKeys).orderBy(desc(apiKeys.id))).map(info);
}

/** Revokes a key by id or prefix (idempotent: revoking twice keeps the first time); 404 when unknown. */
export async function revokeApiKey(db: Db, ref: number | string): Promise<KeyInfo> {
  const { apiKeys } = db.t;
  return db.tx(async (tx) => {
    const where = typeof ref === "number" ? eq(apiKeys.id, ref) : eq(apiKeys.prefix, ref);
    const row = first(
      await tx
        .update(apiKeys)
        .set({ revoked_at: sql`coalesce(${apiKeys.revoked_at}, ${new Date().toISOString()})` })
        .where(where)
        .returning(),
    );
    if (!row) throw new ApiError("not_found", `key ${ref} not found`);
    // RETURNING shows the row before AFTER triggers ran: a trigger planted in a restored file answered 200
    // while setting revoked_at back to null. Read it back; a revocation that did not hold rolls back as 500.
    const back = first(await tx.select({ revoked_at: apiKeys.revoked_at }).from(apiKeys).where(eq(apiKeys.id, row.id)));
    if (!back || back.revoked_at === null) {
      throw new ApiError(
        "internal",
        `key ${row.id} is still active after revoking it: something in the database (a trigger?) undoes the change; check the file's schema`,
      );
    }
    return info({ ...row, revoked_at: back.revoked_at });
  });
}

/** Records when keys were last used, inside a write transaction: one write for many requests (see createKeyTouches). */
export async function touchKeys(db: Db, tx: Q, seen: Map<number, string>): Promise<void> {
  const { apiKeys } = db.t;
  // In id order: two processes flushing at once lock the rows in the same order (no deadlock on PostgreSQL).
  for (const [id, at] of [...seen].sort((a, b) => a[0] - b[0])) {
    await tx
      .update(apiKeys)
      .set({ last_used_at: at })
      .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.last_used_at), sql`${apiKeys.last_used_at} < ${at}`)));
  }
}
