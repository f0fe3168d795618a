import { and, eq, inArray, isNull, notExists, sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import type { NewSyncTask } from "../db/model.ts";
import { log } from "../log.ts";
import { findSyncedDays } from "./data.ts";
import { addDays, atTimeOfDay, dayOf, dayRange, daysBetween, FINAL_LAG_DAYS, newestDataDay } from "./dates.ts";
import { findCompleteness } from "./grain-writes.ts";
import { typeCode } from "./grains.ts";
import { hourlyWindow, resolveRange } from "./range.ts";
import { searchTypes } from "./search-types.ts";

export type SchedulerOptions = {
  /** `HH:MM`, UTC. */
  dailyAt: string;
  /** How far back a scheduled sync looks for days not yet synced. */
  catchupDays: number;
  maxAttempts: number;
  /** Final days a daily `recheck` asks Google again for corrections (0 or unset: none). */
  recheckDays?: number;
};

const DAILY = "daily_sync";
const RECHECK = "recheck";
const HOURLY = "hourly_sync";
const INSERT_BATCH = 500;

/** Active, unarchived sites without a `type` task scheduled for `slot`, and without any pending or running one. */
async function sitesDue(db: Db, type: string, slot: string) {
  const { sites, syncTasks } = db.t;
  const scheduledToday = db.q
    .select({ one: sql`1` })
    .from(syncTasks)
    .where(and(eq(syncTasks.site_id, sites.id), eq(syncTasks.task_type, type), eq(syncTasks.scheduled_for, slot)));
  const active = db.q
    .select({ one: sql`1` })
    .from(syncTasks)
    .where(and(eq(syncTasks.site_id, sites.id), eq(syncTasks.task_type, type), inArray(syncTasks.status, ["pending", "running"])));
  return (
    db.q
      .select({ id: sites.id })
      .from(sites)
      .where(and(eq(sites.is_active, true), isNull(sites.archived_at), notExists(scheduledToday), notExists(active)))
      // One order for every process: racing schedulers then insert the same keys in the same order and
      // wait for each other instead of deadlocking (PostgreSQL).
      .orderBy(sites.id)
  );
}

/**
 * Once today's `dailyAt` has passed, gives every active site that lacks one a daily_sync with
 * scheduled_for = today, covering the oldest day in the catch-up window that is not fully synced up
 * to the newest day Search Console has. A day × type is fully synced when it has its sync marker (a
 * final day) and a completeness row fetched at the grains (gsc_day_completeness, not derived): totals
 * marked but never fetched at the grains, or derived by the migration, are fetched again. The unique index on (site, type, scheduled_for) and the one
 * on active tasks make this exactly once per site and day, however many processes run it at once.
 * Returns the number of tasks created.
 */
export async function scheduleDailySyncs(db: Db, opts: SchedulerOptions, now = new Date()): Promise<number> {
  const today = dayOf(now);
  if (now < atTimeOfDay(today, opts.dailyAt)) return 0;
  const due = await sitesDue(db, DAILY, today);
  if (due.length === 0) return 0;

  const end = newestDataDay(now);
  const windowStart = addDays(end, -(opts.catchupDays - 1));
  const tasks: NewSyncTask[] = [];
  for (const { id } of due) {
    const markers = await findSyncedDays(db, id, windowStart, end);
    const complete = await findCompleteness(db, id, windowStart, end);
    // A day × type is done when it is marked synced (final) AND its grains were fetched from Search Console
    // (a completeness row not derived from old detail by the migration): a marker alone is not enough.
    const missing = dayRange(windowStart, end).find((d) =>
      searchTypes.some((t) => !markers.has(`${d}|${t}`) || complete.get(`${d}|${typeCode(t)}`)?.derived !== false),
    );
    // Nothing missing: still one (quick, all-skipped) task, so the day's schedule is visibly done.
    const start = missing ?? end;
    tasks.push({
      site_id: id,
      task_type: DAILY,
      start_date: start,
      end_date: end,
      progress_total: daysBetween(start, end),
      params: { sync_mode: "skip" },
      max_attempts: opts.maxAttempts,
      scheduled_for: today,
      run_at: now.toISOString(),
    });
  }
  const created = await insertScheduled(db, tasks);
  if (created > 0) log("info", "daily syncs scheduled", { day: today, created });
  return created;
}

/**
 * Once today's `dailyAt` has passed, gives every active site that lacks one a `recheck` of its last
 * `recheckDays` final days (ending today minus FINAL_LAG_DAYS), scheduled_for = today: exactly once per
 * site and day, as the daily sync. Returns the number of tasks created.
 */
export async function scheduleRechecks(db: Db, opts: SchedulerOptions, now = new Date()): Promise<number> {
  const days = opts.recheckDays ?? 0;
  const today = dayOf(now);
  if (days <= 0 || now < atTimeOfDay(today, opts.dailyAt)) return 0;
  const due = await sitesDue(db, RECHECK, today);
  if (due.length === 0) return 0;
  const end = addDays(today, -FINAL_LAG_DAYS);
  const start = addDays(end, -(days - 1));
  const created = await insertScheduled(
    db,
    due.map(({ id }) => ({
      site_id: id,
      task_type: RECHECK,
      start_date: start,
      end_date: end,
      progress_total: daysBetween(start, end),
      params: { sync_mode: "skip" },
      max_attempts: opts.maxAttempts,
      scheduled_for: today,
      run_at: now.toISOString(),
    })),
  );
  if (created > 0) log("info", "rechecks scheduled", { day: today, created });
  return created;
}

/**
 * Inserts scheduled tasks in short writes (one multi-row INSERT each) however many there are; returns
 * how many were new. Without a conflict target, DO NOTHING covers both unique indexes (the slot's task
 * exists; the site has a pending or running task of that type) on both engines; on PostgreSQL a racing
 * insert of the same key waits for the other transaction and then does nothing.
 */
async function insertScheduled(db: Db, tasks: NewSyncTask[]): Promise<number> {
  let created = 0;
  for (let i = 0; i < tasks.length; i += INSERT_BATCH) {
    const chunk = tasks.slice(i, i + INSERT_BATCH);
    const { syncTasks } = db.t;
    created += await db.tx(
      async (tx) => (await tx.insert(syncTasks).values(chunk).onConflictDoNothing().returning({ id: syncTasks.id })).length,
      "scheduling of sync tasks",
    );
  }
  return created;
}

export type HourlySchedulerOptions = {
  /** How often each active site gets an hourly_sync (SYNC_HOURLY_EVERY). */
  everyMs: number;
  maxAttempts: number;
};

/**
 * Once per `everyMs` slot (slots counted from the Unix epoch), gives every active site an hourly_sync
 * of the days Search Console keeps hourly data for (the last ~10, up to today UTC; skip mode, so only
 * the recent and incomplete days are fetched again). scheduled_for holds the slot's start (an ISO
 * moment), so the same unique index as the daily schedule makes it exactly once per site and slot.
 * Returns the number of tasks created.
 */
export async function scheduleHourlySyncs(db: Db, opts: HourlySchedulerOptions, now = new Date()): Promise<number> {
  const slot = new Date(Math.floor(now.getTime() / opts.everyMs) * opts.everyMs).toISOString();
  const due = await sitesDue(db, HOURLY, slot);
  if (due.length === 0) return 0;
  const { start, end } = resolveRange({}, now, hourlyWindow);
  const created = await insertScheduled(
    db,
    due.map(({ id }) => ({
      site_id: id,
      task_type: HOURLY,
      start_date: start,
      end_date: end,
      progress_total: daysBetween(start, end),
      params: { sync_mode: "skip" },
      max_attempts: opts.maxAttempts,
      scheduled_for: slot,
      run_at: now.toISOString(),
    })),
  );
  if (created > 0) log("info", "hourly syncs scheduled", { slot, created });
  return created;
}

/**
 * Once per UTC day, gives every active site a sitemaps_sync (Search Console's sitemaps list, stored with
 * its history); the same unique index makes it once per site and day. Returns the number created.
 */
export async function scheduleSitemapsSyncs(db: Db, opts: { maxAttempts: number }, now = new Date()): Promise<number> {
  const today = dayOf(now);
  const due = await sitesDue(db, "sitemaps_sync", today);
  if (due.length === 0) return 0;
  const created = await insertScheduled(
    db,
    due.map(({ id }) => ({
      site_id: id,
      task_type: "sitemaps_sync",
      start_date: today,
      end_date: today,
      progress_total: 1,
      params: {},
      max_attempts: opts.maxAttempts,
      scheduled_for: today,
      run_at: now.toISOString(),
    })),
  );
  if (created > 0) log("info", "sitemaps syncs scheduled", { day: today, created });
  return created;
}

/** Runs scheduleDailySyncs, scheduleRechecks (and scheduleHourlySyncs when `hourlyEveryMs` > 0, scheduleSitemapsSyncs with `sitemapsDaily`) now and every `intervalMs` (jittered) until stopped. */
export function startScheduler(db: Db, opts: SchedulerOptions & { intervalMs: number; hourlyEveryMs?: number; sitemapsDaily?: boolean }) {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  const tick = async () => {
    try {
      await scheduleDailySyncs(db, opts);
      await scheduleRechecks(db, opts);
      if (opts.hourlyEveryMs) await scheduleHourlySyncs(db, { everyMs: opts.hourlyEveryMs, maxAttempts: opts.maxAttempts });
      if (opts.sitemapsDaily) await scheduleSitemapsSyncs(db, { maxAttempts: opts.maxAttempts });
    } catch (err) {
      log("error", "scheduler tick failed", { error: String(err) });
    }
    if (!stopped) timer = setTimeout(tick, opts.intervalMs * (0.75 + Math.random() / 2));
  };
  void tick();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
