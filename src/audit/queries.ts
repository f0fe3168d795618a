import { and, desc, eq, gte, lt, lte, type SQL } from "drizzle-orm";
import type { Db, Orm } from "../db/index.ts";
import { auditLog } from "../db/schema.ts";

export type AuditInsert = typeof auditLog.$inferInsert;

/** Inserts one audit row on the given transaction (the one that made the change it records). */
export function insertAuditRow(tx: Orm, row: AuditInsert) {
  tx.insert(auditLog).values(row).run();
}

export type AuditFilter = { keyId?: number; siteId?: number; actor?: string; since?: string; until?: string; outcome?: "ok" | "denied" | "failed" };

/** Audit rows matching the filter, newest first, after an optional cursor (an id). */
export async function listAudit(db: Db, f: AuditFilter & { limit: number; before?: number }) {
  const conds: (SQL | undefined)[] = [
    f.keyId === undefined ? undefined : eq(auditLog.key_id, f.keyId),
    f.siteId === undefined ? undefined : eq(auditLog.site_id, f.siteId),
    f.actor === undefined ? undefined : eq(auditLog.actor, f.actor),
    f.outcome === undefined ? undefined : eq(auditLog.outcome, f.outcome),
    f.since === undefined ? undefined : gte(auditLog.at, f.since),
    f.until === undefined ? undefined : lte(auditLog.at, f.until),
    f.before === undefined ? undefined : lt(auditLog.id, f.before),
  ];
  const rows = db.read
    .select()
    .from(auditLog)
    .where(and(...conds))
    .orderBy(desc(auditLog.id))
    .limit(f.limit + 1)
    .all();
  const more = rows.length > f.limit;
  const entries = more ? rows.slice(0, f.limit) : rows;
  return { entries, next: more ? entries[entries.length - 1]!.id : null };
}
