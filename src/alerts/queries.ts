import { and, asc, desc, eq, gte, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { changedRows, first, type Db } from "../db/index.ts";
import type { AlertChannel } from "../db/model.ts";

// Alerts: channels (where to send), per-site click-drop rules, events (raised once each, by a unique
// dedupe key) and their deliveries (the delivery log: one row per event and channel, retried).

/** The kinds of alerts. */
export const alertKinds = ["sync_failed", "auth_expired", "clicks_drop", "quota_exhausted"] as const;
export type AlertKind = (typeof alertKinds)[number];

export type NewChannel = { kind: "webhook" | "email"; target: string; secret: string | null; events: AlertKind[]; site_id: number | null };

/** Adds a channel. */
export async function createChannel(db: Db, c: NewChannel): Promise<AlertChannel> {
  const t = db.t.alertChannels;
  return db.tx(async (tx) => (await tx.insert(t).values(c).returning())[0]! as AlertChannel);
}

/** Every channel, oldest first. */
export async function listChannels(db: Db): Promise<AlertChannel[]> {
  const t = db.t.alertChannels;
  return (await db.q.select().from(t).orderBy(asc(t.id))) as AlertChannel[];
}

/** Deletes a channel (and its deliveries); false when there was none. */
export async function deleteChannel(db: Db, id: number): Promise<boolean> {
  const t = db.t.alertChannels;
  return db.tx(async (tx) => (await tx.delete(t).where(eq(t.id, id)).returning({ id: t.id })).length > 0);
}

export type NewRule = { site_id: number; scope: "site" | "page"; drop_share: number; min_clicks: number };

/** Sets a site's click-drop rule for a scope (one per site and scope: a second replaces the first). */
export async function upsertRule(db: Db, r: NewRule) {
  const t = db.t.alertRules;
  return db.tx(
    async (tx) =>
      (
        await tx
          .insert(t)
          .values(r)
          .onConflictDoUpdate({ target: [t.site_id, t.scope], set: { drop_share: r.drop_share, min_clicks: r.min_clicks } })
          .returning()
      )[0]!,
  );
}

/** Every rule (of one site when given). */
export async function listRules(db: Db, siteId?: number) {
  const t = db.t.alertRules;
  return db.q
    .select()
    .from(t)
    .where(siteId === undefined ? undefined : eq(t.site_id, siteId))
    .orderBy(asc(t.site_id), asc(t.scope));
}

/** Deletes a rule; false when there was none. */
export async function deleteRule(db: Db, id: number): Promise<boolean> {
  const t = db.t.alertRules;
  return db.tx(async (tx) => (await tx.delete(t).where(eq(t.id, id)).returning({ id: t.id })).length > 0);
}

/**
 * Raises an alert once: the event is stored under its dedupe key (raising it again is a no-op) and a
 * pending delivery is queued for every active channel that takes its kind and site. Returns the event
 * id, or null when it had been raised before.
 */
export async function raiseAlert(
  db: Db,
  e: { kind: AlertKind; siteId: number | null; dedupeKey: string; payload: Record<string, unknown> },
): Promise<number | null> {
  const ev = db.t.alertEvents;
  const ch = db.t.alertChannels;
  const dl = db.t.alertDeliveries;
  return db.tx(async (tx) => {
    const [row] = await tx
      .insert(ev)
      .values({ kind: e.kind, site_id: e.siteId, dedupe_key: e.dedupeKey, payload: e.payload })
      .onConflictDoNothing({ target: ev.dedupe_key })
      .returning({ id: ev.id });
    if (!row) return null;
    const channels = await tx
      .select({ id: ch.id, events: ch.events })
      .from(ch)
      .where(and(eq(ch.active, true), e.siteId === null ? isNull(ch.site_id) : or(isNull(ch.site_id), eq(ch.site_id, e.siteId))));
    const takers = channels.filter((c) => (c.events as string[]).length === 0 || (c.events as string[]).includes(e.kind));
    if (takers.length) await tx.insert(dl).values(takers.map((c) => ({ event_id: row.id, channel_id: c.id })));
    return Number(row.id);
  });
}

export type DueDelivery = {
  id: number;
  attempts: number;
  next_attempt_at: string;
  event_id: number;
  kind: string;
  site_id: number | null;
  payload: Record<string, unknown>;
  created_at: string;
  channel_id: number;
  channel_kind: "webhook" | "email";
  target: string;
  secret: string | null;
};

/** Pending deliveries due at `now`, oldest first. */
export async function findDueDeliveries(db: Db, now: string, limit: number): Promise<DueDelivery[]> {
  const dl = db.t.alertDeliveries;
  const ev = db.t.alertEvents;
  const ch = db.t.alertChannels;
  return (await db.q
    .select({
      id: dl.id,
      attempts: dl.attempts,
      next_attempt_at: dl.next_attempt_at,
      event_id: ev.id,
      kind: ev.kind,
      site_id: ev.site_id,
      payload: ev.payload,
      created_at: ev.created_at,
      channel_id: ch.id,
      channel_kind: ch.kind,
      target: ch.target,
      secret: ch.secret,
    })
    .from(dl)
    .innerJoin(ev, eq(ev.id, dl.event_id))
    .innerJoin(ch, eq(ch.id, dl.channel_id))
    .where(and(eq(dl.status, "pending"), lte(dl.next_attempt_at, now)))
    .orderBy(asc(dl.next_attempt_at), asc(dl.id))
    .limit(limit)) as DueDelivery[];
}

/**
 * Takes a due delivery for one attempt: moves its next attempt to `leaseUntil` only if nobody else
 * did (compare-and-set on next_attempt_at), so two processes never send it at once. True when taken.
 */
export async function claimDelivery(db: Db, d: DueDelivery, leaseUntil: string): Promise<boolean> {
  const dl = db.t.alertDeliveries;
  return db.tx(
    async (tx) =>
      changedRows(
        await tx
          .update(dl)
          .set({ next_attempt_at: leaseUntil })
          .where(and(eq(dl.id, d.id), eq(dl.status, "pending"), eq(dl.next_attempt_at, d.next_attempt_at))),
      ) === 1,
  );
}

/** Records an attempt: delivered, or failed with the next attempt at `retryAt` (null: out of attempts). */
export async function recordAttempt(
  db: Db,
  id: number,
  a: { ok: boolean; status: number | null; error: string | null; at: string; retryAt: string | null },
) {
  const dl = db.t.alertDeliveries;
  await db.tx((tx) =>
    tx
      .update(dl)
      .set({
        attempts: sql`${dl.attempts} + 1`,
        last_status: a.status,
        last_error: a.error,
        ...(a.ok
          ? { status: "delivered" as const, delivered_at: a.at }
          : a.retryAt
            ? { next_attempt_at: a.retryAt }
            : { status: "failed" as const }),
      })
      .where(eq(dl.id, id)),
  );
}

/** The delivery log, newest first: each delivery with its event and channel. */
export async function listDeliveries(db: Db, limit: number, siteId?: number) {
  const dl = db.t.alertDeliveries;
  const ev = db.t.alertEvents;
  const ch = db.t.alertChannels;
  return db.q
    .select({
      id: dl.id,
      status: dl.status,
      attempts: dl.attempts,
      last_status: dl.last_status,
      last_error: dl.last_error,
      next_attempt_at: dl.next_attempt_at,
      delivered_at: dl.delivered_at,
      created_at: dl.created_at,
      event_id: ev.id,
      kind: ev.kind,
      site_id: ev.site_id,
      channel_id: ch.id,
      channel_kind: ch.kind,
      target: ch.target,
    })
    .from(dl)
    .innerJoin(ev, eq(ev.id, dl.event_id))
    .innerJoin(ch, eq(ch.id, dl.channel_id))
    .where(siteId === undefined ? undefined : eq(ev.site_id, siteId))
    .orderBy(desc(dl.id))
    .limit(limit);
}

/** Failed sync tasks that ended at or after `since` (with their site and error), oldest first. */
export async function findFailedTasksSince(db: Db, since: string) {
  const st = db.t.syncTasks;
  const s = db.t.sites;
  return db.q
    .select({
      id: st.id,
      site_id: st.site_id,
      site_name: s.name,
      domain: s.domain,
      task_type: st.task_type,
      error: st.error,
      completed_at: st.completed_at,
      start_date: st.start_date,
      end_date: st.end_date,
    })
    .from(st)
    .innerJoin(s, eq(s.id, st.site_id))
    .where(and(eq(st.status, "failed"), gte(st.completed_at, since)))
    .orderBy(asc(st.id));
}

/** Tasks waiting for a retry after an error (pending, attempted), whose error mentions `pattern`-like text: checked in code. */
export async function findRetryingTasks(db: Db) {
  const st = db.t.syncTasks;
  const s = db.t.sites;
  return db.q
    .select({ id: st.id, site_id: st.site_id, site_name: s.name, domain: s.domain, error: st.error, attempts: st.attempts })
    .from(st)
    .innerJoin(s, eq(s.id, st.site_id))
    .where(and(inArray(st.status, ["pending", "running"]), sql`${st.error} is not null`));
}

/** One channel, or undefined. */
export async function findChannel(db: Db, id: number): Promise<AlertChannel | undefined> {
  const t = db.t.alertChannels;
  return first(await db.q.select().from(t).where(eq(t.id, id))) as AlertChannel | undefined;
}

/** Raises a test alert delivered to one channel only. */
export async function raiseTestAlert(db: Db, ch: AlertChannel): Promise<number> {
  const key = `test:${ch.id}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
  // Raised with no site and a kind no channel filters on, then pointed at this channel alone.
  const ev = db.t.alertEvents;
  const dl = db.t.alertDeliveries;
  return db.tx(async (tx) => {
    const [row] = await tx
      .insert(ev)
      .values({ kind: "test", site_id: ch.site_id, dedupe_key: key, payload: { message: "a test alert from sitesync" } })
      .returning({ id: ev.id });
    await tx.insert(dl).values({ event_id: row!.id, channel_id: ch.id });
    return Number(row!.id);
  });
}
