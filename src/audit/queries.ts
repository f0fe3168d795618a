import type { Database } from "bun:sqlite";
import { and, desc, eq, getTableColumns, gte, lt, lte, sql, type SQL } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
import type { Db, Orm, Q } from "../db/index.ts";
import { pgSchema } from "../db/pg/driver.ts";
import { clientOf, namedStatement, perPgHandle } from "../db/pg/prepared.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { auditLog } from "../db/sqlite/schema.ts";

export type AuditInsert = typeof auditLog.$inferInsert;

const columns = ["actor", "key_id", "ip", "method", "action", "target", "site_id", "request_id", "outcome", "status"] as const;

// One audit row per API write, inside its transaction: prepared once per connection as a bare bun:sqlite
// statement from Drizzle's SQL (the Drizzle builder cost ~180 µs a write, its prepared query ~13 µs
// more than the bare statement). On SQLite `at` is bound (the row's own, else now, in the column default's
// format) rather than left to the default's strftime (~1 µs a row).
const sqliteColumns = ["at", ...columns] as const;
const insertStatement = perConnection((orm) => {
  const placeholders = Object.fromEntries(sqliteColumns.map((c) => [c, sql.placeholder(c)])) as unknown as AuditInsert;
  const { sql: text } = orm.insert(auditLog).values(placeholders).toSQL();
  // The ?s follow the table's column order: it must be the order `sqliteColumns` binds them in.
  const named = [...text.slice(0, text.indexOf(")")).matchAll(/"(\w+)"/g)].map((m) => m[1]).filter((c) => c !== "audit_log" && c !== "id");
  if (named.join() !== sqliteColumns.join()) throw new Error(`audit insert: columns (${named}) differ from (${sqliteColumns})`);
  return (orm as Orm & { $client: Database }).$client.prepare<unknown, (string | number | null)[]>(text);
});

// On PostgreSQL the same insert as a named statement (parsed and planned once per connection).
const pgInsertStatement = perPgHandle((q) =>
  namedStatement(
    "audit_log_insert",
    q.insert(pgSchema().auditLog).values(Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as unknown as AuditInsert),
  ),
);

/**
 * The audit row of a write whose statement creates the row it is about: the row's fields, with the two that
 * depend on the created row's id (src/audit/context.ts rowFor) marked: site_id is that id, target is a
 * prefix followed by it.
 */
export type AuditTemplate = { row: AuditInsert; siteIdFromResult: boolean; targetPrefix: string | null };

/** An audit row a one-statement write inserts itself, and what to call once it committed. */
export type PendingAudit = { template: AuditTemplate; done: () => void };

/** A handle made by auditedDb (src/audit/context.ts): inside a request's audit context, the audit row a one-statement write owes. */
export type AuditedHandle = { auditTemplate?: () => PendingAudit | null };

/**
 * An insert of one row into `table` (placeholders named after `columns`; the others take their defaults; an
 * integer `id` column) as one PostgreSQL statement for db.pg.oneStatement: a data-modifying WITH that inserts
 * the write's commit token first (placeholders `token_at`, `token`; the row is selected from it, so the token's
 * key is held from the start, as a transaction's is) and, with `audited`, its audit row (placeholders from
 * pgAuditParams) from the inserted row's id. One round trip, no BEGIN or COMMIT; returns the inserted rows.
 */
export function pgOneStatementInsert(
  q: Q,
  table: PgTable,
  columns: string[],
  audited: boolean,
): { toSQL(): { sql: string; params: unknown[] } } {
  const p = (name: string) => sql.placeholder(name);
  const cols = getTableColumns(table);
  const col = (name: string) => {
    const c = cols[name];
    if (!c) throw new Error(`pgOneStatementInsert: no column ${name}`);
    return c;
  };
  const token = sql`insert into commit_tokens (at, token) values (${p("token_at")}::bigint, ${p("token")}::bigint) returning 1`;
  const insert = sql`insert into ${table} (${sql.join(
    columns.map((n) => sql.identifier(col(n).name)),
    sql`, `,
  )}) select ${sql.join(
    columns.map((n) => sql`${p(n)}::${sql.raw(col(n).getSQLType())}`),
    sql`, `,
  )} from commit_token returning *`;
  const audit = sql`insert into audit_log (actor, key_id, ip, method, action, target, site_id, request_id, outcome, status)
    select ${p("actor")}::text, ${p("key_id")}::integer, ${p("ip")}::text, ${p("method")}::text, ${p("action")}::text,
      case when ${p("target_prefix")}::text is null then ${p("target")}::text else ${p("target_prefix")}::text || w.id end,
      case when ${p("site_from_result")}::boolean then w.id else ${p("site_id")}::integer end,
      ${p("request_id")}::text, ${p("outcome")}::text, ${p("status")}::integer
    from w`;
  const statement = audited
    ? sql`with commit_token as (${token}), w as (${insert}), audit as (${audit}) select * from w`
    : sql`with commit_token as (${token}) ${insert}`;
  const dialect = (q as unknown as { dialect: { sqlToQuery(s: SQL): { sql: string; params: unknown[] } } }).dialect;
  return { toSQL: () => dialect.sqlToQuery(statement) };
}

/** The placeholders' values of an audited pgOneStatementInsert. */
export function pgAuditParams(a: AuditTemplate): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = { target_prefix: a.targetPrefix, site_from_result: a.siteIdFromResult };
  for (const c of columns) out[c] = a.row[c] ?? null;
  return out;
}

/**
 * Inserts one audit row on the given transaction (the one that made the change it records): on SQLite
 * synchronously with the prepared statement, on PostgreSQL a promise to await inside the transaction.
 */
export function insertAuditRow(db: Db, tx: Orm | Q, row: AuditInsert): undefined | Promise<unknown> {
  if (db.engine === "sqlite") {
    // In the order of `sqliteColumns` (checked against the statement when it is prepared), without an array per row.
    insertStatement(tx as Orm).run(
      row.at ?? new Date().toISOString(),
      row.actor,
      row.key_id ?? null,
      row.ip ?? null,
      row.method,
      row.action,
      row.target ?? null,
      row.site_id ?? null,
      row.request_id ?? null,
      row.outcome,
      row.status ?? null,
    );
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
