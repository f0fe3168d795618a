import type { Database } from "bun:sqlite";
import { and, desc, eq, gte, lt, lte, sql, type SQL } from "drizzle-orm";
import type { Db, Orm, Q } from "../db/index.ts";
import { clientOf, namedStatement, perPgHandle } from "../db/pg/prepared.ts";
import { auditLog as pgAuditLog } from "../db/pg/schema.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { auditLog } from "../db/sqlite/schema.ts";

export type AuditInsert = typeof auditLog.$inferInsert;

const columns = ["actor", "key_id", "ip", "method", "action", "target", "site_id", "request_id", "outcome", "status"] as const;

// One audit row per API write, inside its transaction: prepared once per connection as a bare bun:sqlite
// statement from Drizzle's SQL (the Drizzle builder cost ~180 µs a write, its prepared query ~13 µs
// more than the bare statement).
const insertStatement = perConnection((orm) => {
  const placeholders = Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as unknown as AuditInsert;
  const { sql: text } = orm.insert(auditLog).values(placeholders).toSQL();
  // The ?s follow the table's column order: it must be the order `columns` binds them in.
  const named = [...text.slice(0, text.indexOf(")")).matchAll(/"(\w+)"/g)]
    .map((m) => m[1])
    .filter((c) => c !== "audit_log" && c !== "id" && c !== "at");
  if (named.join() !== columns.join()) throw new Error(`audit insert: columns (${named}) differ from (${columns})`);
  return (orm as Orm & { $client: Database }).$client.prepare<unknown, (string | number | null)[]>(text);
});

// On PostgreSQL the same insert as a named statement (parsed and planned once per connection).
const pgInsertStatement = perPgHandle((q) =>
  namedStatement(
    "audit_log_insert",
    q.insert(pgAuditLog).values(Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as unknown as AuditInsert),
  ),
);

/**
 * Inserts one audit row on the given transaction (the one that made the change it records): on SQLite
 * synchronously with the prepared statement, on PostgreSQL a promise to await inside the transaction.
 */
export function insertAuditRow(db: Db, tx: Orm | Q, row: AuditInsert): void | Promise<unknown> {
  if (db.engine === "sqlite") {
    insertStatement(tx as Orm).run(...columns.map((c) => row[c] ?? null));
    return;
  }
  return pgInsertStatement(db).run(clientOf(tx as Q), Object.fromEntries(columns.map((c) => [c, row[c] ?? null])));
}

export type AuditFilter = {
  keyId?: number;
  siteId?: number;
  actor?: string;
  since?: string;
  until?: string;
  outcome?: "ok" | "denied" | "failed";
};

/** Audit rows matching the filter, newest first, after an optional cursor (an id). */
export async function listAudit(db: Db, f: AuditFilter & { limit: number; before?: number }) {
  const { auditLog } = db.t;
  const conds: (SQL | undefined)[] = [
    f.keyId === undefined ? undefined : eq(auditLog.key_id, f.keyId),
    f.siteId === undefined ? undefined : eq(auditLog.site_id, f.siteId),
    f.actor === undefined ? undefined : eq(auditLog.actor, f.actor),
    f.outcome === undefined ? undefined : eq(auditLog.outcome, f.outcome),
    f.since === undefined ? undefined : gte(auditLog.at, f.since),
    f.until === undefined ? undefined : lte(auditLog.at, f.until),
    f.before === undefined ? undefined : lt(auditLog.id, f.before),
  ];
  const rows = await db.q
    .select()
    .from(auditLog)
    .where(and(...conds))
    .orderBy(desc(auditLog.id))
    .limit(f.limit + 1);
  const more = rows.length > f.limit;
  const entries = more ? rows.slice(0, f.limit) : rows;
  return { entries, next: more ? entries[entries.length - 1]!.id : null };
}
