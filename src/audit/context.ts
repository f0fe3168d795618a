import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, MiddlewareHandler } from "hono";
import { actorOf, clientIpOf, principalOf } from "../auth/middleware.ts";
import { isSafeMethod, requiredScope } from "../auth/policy.ts";
import { rideThroughLeft } from "../db/availability.ts";
import type { Db, Orm, Q, SqliteDb } from "../db/index.ts";
import type { WriteFn } from "../db/sqlite/engine.ts";
import { Counter, Gauge } from "../metrics/prom.ts";
import { apiErrorOf, isStorageError } from "../errors.ts";
import { log, logOncePer } from "../log.ts";
import { registry } from "../metrics/registry.ts";
import { insertAuditRow, type AuditedHandle, type AuditInsert, type PendingAudit } from "./queries.ts";

// The audit log of API writes. The middleware opens a context for each state-changing request; every
// db.write made while handling it (through the handle auditedDb returns) inserts its audit row in the
// same transaction, after the change: committed together or not at all. A request that ends in an
// error without having written gets one row of its own afterwards (outcome denied/failed).

type AuditContext = { c: Context; committed: number };
const current = new AsyncLocalStorage<AuditContext>();

/** A handle whose writes (db.write and db.tx) also insert the row `rowOf` describes, in the same transaction (null: no row). */
export function withAuditRows(db: Db, rowOf: (result: unknown) => AuditInsert | null): Db {
  // Synchronous callbacks stay synchronous (SQLite's fast path); async ones get their row after they settle.
  const audited =
    <Tx extends Orm | Q, T>(fn: (tx: Tx) => T | Promise<T>) =>
    (tx: Tx): T | Promise<T> => {
      const after = (result: T): T | Promise<T> => {
        const row = rowOf(result);
        const pending = row ? insertAuditRow(db, tx, row) : undefined;
        return pending ? pending.then(() => result) : result;
      };
      const result = fn(tx);
      return isThenable(result) ? result.then(after) : after(result as T);
    };
  const props: PropertyDescriptorMap = {
    tx: {
      value<T>(fn: (tx: Q) => T | Promise<T>, label?: string): Promise<T> {
        return db.tx(audited(fn), label);
      },
    },
  };
  if (db.engine === "sqlite") {
    const sqlite = db;
    props.write = {
      value<T>(fn: WriteFn<T>, label?: string): Promise<T> {
        return sqlite.write(audited(fn), label);
      },
    };
  }
  return Object.create(db, props);
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

/**
 * For a write of one statement that creates a row (db.pg.oneStatement): the audit row it must insert
 * itself inside a request's audit context (else null), and `done`, to call once it committed (as a
 * db.tx through an auditedDb handle counts). Reached through the handle (AuditedHandle).
 */
function auditTemplate(): PendingAudit | null {
  const ctx = current.getStore();
  if (!ctx) return null;
  // Which fields come from the created row's id: the ones that differ between two ids.
  const one = rowFor(ctx.c, { id: 1 }, "ok", null);
  const two = rowFor(ctx.c, { id: 2 }, "ok", null);
  const targetPrefix = one.target !== two.target ? (one.target ?? "").slice(0, -1) : null;
  if (targetPrefix !== null && (one.target !== `${targetPrefix}1` || two.target !== `${targetPrefix}2`)) {
    throw new Error(`audit target '${one.target}' is not a prefix followed by the created id`);
  }
  return {
    template: { row: one, siteIdFromResult: one.site_id !== two.site_id, targetPrefix },
    done: () => {
      ctx.committed++;
    },
  };
}

/** The handle route handlers write through: inside a request's audit context each write is audited. */
export function auditedDb(db: Db): Db {
  const inContext = <T>(run: (audited: Db) => Promise<T>, plain: () => Promise<T>): Promise<T> => {
    const ctx = current.getStore();
    if (!ctx) return plain();
    return run(withAuditRows(db, (result) => rowFor(ctx.c, result, "ok", null))).then((r) => {
      ctx.committed++;
      return r;
    });
  };
  const props: PropertyDescriptorMap = {
    tx: {
      value<T>(fn: (tx: Q) => T | Promise<T>, label?: string): Promise<T> {
        return inContext(
          (a) => a.tx(fn, label),
          () => db.tx(fn, label),
        );
      },
    },
  };
  if (db.engine === "sqlite") {
    const sqlite = db;
    props.write = {
      value<T>(fn: WriteFn<T>, label?: string): Promise<T> {
        return inContext(
          (a) => (a as SqliteDb).write(fn, label),
          () => sqlite.write(fn, label),
        );
      },
    };
  }
  props.auditTemplate = { value: auditTemplate } satisfies { value: AuditedHandle["auditTemplate"] };
  return Object.create(db, props);
}

const num = (v: unknown) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined);
const idOf = (r: unknown) => (typeof (r as { id?: unknown } | null)?.id === "number" ? (r as { id: number }).id : undefined);

/** What a request did, to whom: the audit row for it. */
function rowFor(c: Context, result: unknown, outcome: AuditInsert["outcome"], status: number | null): AuditInsert {
  const route = c.req.routePath;
  const params = c.req.param() as Record<string, string | undefined>;
  const principal = principalOf(c);
  let siteId = num(params.site_id) ?? (route.startsWith("/api/v1/sites/:id") ? num(params.id) : undefined);
  let target: string | undefined;
  if (params.job_id !== undefined) target = `job:${params.job_id}`;
  else if (route.startsWith("/api/v1/keys")) target = `key:${params.id ?? idOf(result) ?? ""}`;
  else if (/\/(sync-tasks|sync\/trigger\/)/.test(route) && idOf(result) !== undefined) target = `job:${idOf(result)}`;
  else if (route === "/api/v1/sites" && c.req.method === "POST") siteId = idOf(result);
  if (target === undefined && siteId !== undefined) target = `site:${siteId}`;
  const purge = c.req.method === "DELETE" && c.req.query("purge") === "true";
  return {
    actor: actorOf(principal),
    key_id: principal?.kind === "key" ? principal.key.id : null,
    ip: clientIpOf(c),
    method: c.req.method,
    // Before routing (e.g. refused by the auth middleware) routePath is the middleware's pattern.
    action: `${c.req.method} ${route === "*" || route === "/*" ? c.req.path : route}${purge ? " (purge)" : ""}`,
    target: target ?? null,
    site_id: siteId ?? null,
    request_id: (c.get("requestId" as never) as string | undefined) ?? null,
    outcome,
    status,
  };
}

/** Opens the audit context of each state-changing request and records the ones refused or failed. */
export function auditMiddleware(db: Db): MiddlewareHandler {
  // Reads pass straight through, without an async frame of their own.
  return (c, next) => (isSafeMethod(c.req.method) ? next() : audited(c, next));
  async function audited(c: Context, next: () => Promise<void>) {
    const ctx: AuditContext = { c, committed: 0 };
    await current.run(ctx, next);
    const status = c.res.status;
    // 401 (no identity) and 429 (nothing attempted) would only let anyone fill the table; reads sent
    // as POST (analytics queries, MCP) are not writes.
    if (ctx.committed > 0 || status < 400 || status === 401 || status === 429 || !c.req.path.startsWith("/api/")) return;
    if (requiredScope(c.req.method, c.req.path) === "read") return;
    await recordRefusal(db, rowFor(c, undefined, status === 403 ? "denied" : "failed", status));
  }
}

// The row of a refused or failed request must never hold its answer: the request may have failed
// precisely because the database is unreachable. When it is known down the row is buffered at once;
// otherwise its write is awaited at most what is left of the request's ride-through (DB_RIDE_THROUGH_MS),
// and finishes (or is buffered) in the background.
// Buffered rows (with the time of the request) are written when the database is back, or every
// FLUSH_RETRY_MS; past MAX_BUFFERED the oldest are dropped and counted.
const FLUSH_RETRY_MS = 5000;
const MAX_BUFFERED = 1000;

type Buffered = { db: Db; rows: AuditInsert[]; timer: Timer | null; flushing: boolean };
const buffers = new Map<Db, Buffered>();

/** Audit rows of refused or failed requests not yet written (buffered), written late, and dropped: this process's counts. */
export const auditBufferStats = { buffered: 0, writtenLate: 0, dropped: 0 };

new Counter({
  name: "sitesync_audit_rows_dropped_total",
  help: "Audit rows of refused or failed requests dropped: the database stayed unreachable while more than 1000 waited",
  registers: [registry],
  collect() {
    this.reset();
    this.inc(auditBufferStats.dropped);
  },
});
new Gauge({
  name: "sitesync_audit_rows_buffered",
  help: "Audit rows of refused or failed requests waiting for the database to come back",
  aggregator: "sum",
  registers: [registry],
  collect() {
    this.set(auditBufferStats.buffered);
  },
});

/** Records the audit row of a refused or failed write, waiting for it at most what is left of the request's ride-through. */
export async function recordRefusal(db: Db, row: AuditInsert) {
  const stamped = { ...row, at: new Date().toISOString() };
  if (db.availability.downSince !== null) return buffer(db, stamped);
  let timer: Timer | undefined;
  const write = db
    .tx((tx) => insertAuditRow(db, tx, row))
    .then(
      () => undefined,
      (err) => {
        if (isDbUnavailable(err)) return buffer(db, stamped);
        // A full disk fails every request's row: one line per interval (with a count), not one per request.
        logOncePer(
          `audit row ${(err as { code?: string }).code ?? String(err)}`,
          10_000,
          "warn",
          "audit row of a failed request not recorded",
          {
            request_id: row.request_id,
            error: String(err),
          },
        );
      },
    );
  // At most what is left of the request's ride-through: a request that already waited it all answers now.
  const wait = Math.max(0, rideThroughLeft(db.availability.rideThroughMs));
  await Promise.race([write, new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
  clearTimeout(timer);
}

function isDbUnavailable(err: unknown): boolean {
  return apiErrorOf(err)?.code === "unavailable" || isStorageError(err);
}

function buffer(db: Db, row: AuditInsert) {
  let b = buffers.get(db);
  if (!b) {
    const created: Buffered = { db, rows: [], timer: null, flushing: false };
    buffers.set(db, created);
    db.availability.onUp(() => void flush(created));
    db.onClose.push(() => {
      if (created.timer) clearTimeout(created.timer);
      buffers.delete(db);
    });
    b = created;
  }
  if (b.rows.length >= MAX_BUFFERED) {
    b.rows.shift();
    auditBufferStats.dropped++;
    auditBufferStats.buffered--;
    logOncePer("audit rows dropped", 60_000, "warn", "audit rows of failed requests dropped: the database stays unreachable", {
      dropped: auditBufferStats.dropped,
    });
  }
  b.rows.push(row);
  auditBufferStats.buffered++;
  retryLater(b);
}

function retryLater(b: Buffered) {
  if (b.timer || b.rows.length === 0) return;
  b.timer = setTimeout(() => {
    b.timer = null;
    void flush(b);
  }, FLUSH_RETRY_MS);
  b.timer.unref?.();
}

async function flush(b: Buffered) {
  if (b.flushing || b.rows.length === 0 || b.db.closed) return;
  b.flushing = true;
  const rows = b.rows.splice(0);
  try {
    // The time of the request, not of the write: a plain insert, not the prepared one (which lets `at` default).
    await b.db.tx((tx) => tx.insert(b.db.t.auditLog).values(rows), "buffered audit rows");
    auditBufferStats.buffered -= rows.length;
    auditBufferStats.writtenLate += rows.length;
    log("info", "buffered audit rows written", { rows: rows.length });
  } catch {
    b.rows.unshift(...rows);
  } finally {
    b.flushing = false;
    retryLater(b);
  }
}

/** Audits a request whose effect is outside the database (e.g. a backup file): a write of just its row. */
export async function recordAction(db: Db): Promise<void> {
  await db.tx(() => null);
}
