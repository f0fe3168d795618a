import { afterEach, describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { isUniqueViolation } from "../src/errors.ts";
import { setLogLevel } from "../src/log.ts";
import type { Q } from "../src/db/index.ts";
import { markDaySynced } from "../src/sync/data.ts";
import { replaceDayGrains } from "../src/sync/grain-writes.ts";
import { dayNumber, typeCode } from "../src/sync/grains.ts";
import { scheduleDailySyncs } from "../src/sync/scheduler.ts";
import { searchTypes, type SearchType } from "../src/sync/search-types.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { insertSites } from "./helpers/sync.ts";

// The daily scheduler in this process with a fixed clock. (Several processes at once:
// sync.multiprocess.test.ts.)

setLogLevel("silent");
const opts = { dailyAt: "03:00", catchupDays: 5, maxAttempts: 4 };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A day × type as daily_sync leaves it: its grains (none here) and completeness fetched, and marked synced. */
async function markFetched(tx: Q, site: number, day: string, type: SearchType) {
  await markDaySynced(tx, site, day, type, 1);
  const completeness = {
    property_rows: 0,
    page_rows: 0,
    detail_rows: 0,
    appearance_rows: 0,
    page_truncated: false,
    detail_truncated: false,
    anonymized_share: null,
    data_state: "final" as const,
  };
  await replaceDayGrains(tx, {
    siteId: site,
    day: dayNumber(day),
    type: typeCode(type),
    property: [],
    page: [],
    appearance: [],
    completeness,
  });
}

/**
 * Each test's own file: four sites a, b, c, d on 2026-06-10 — d inactive, b with the three oldest days
 * of the catch-up window complete and the fourth partly, c with the whole window complete.
 */
async function fresh() {
  const t = tempDb();
  cleanups.push(t.cleanup);
  const ids = (await insertSites(t.db, 4, "scheduler.example")) as [number, number, number, number];
  const [, b, c, d] = ids;
  const { sites, syncTasks } = t.db.t;
  await t.db.tx((tx) => tx.update(sites).set({ is_active: false }).where(eq(sites.id, d)));
  await t.db.tx(async (tx) => {
    for (const day of ["2026-06-04", "2026-06-05", "2026-06-06"]) for (const type of searchTypes) await markFetched(tx, b, day, type);
    await markFetched(tx, b, "2026-06-07", "web");
    for (const day of ["2026-06-04", "2026-06-05", "2026-06-06", "2026-06-07", "2026-06-08"])
      for (const type of searchTypes) await markFetched(tx, c, day, type);
  });
  const tasksOf = (site: number) => t.db.q.select().from(syncTasks).where(eq(syncTasks.site_id, site)).orderBy(syncTasks.id);
  const completeAll = () => t.db.tx((tx) => tx.update(syncTasks).set({ status: "completed" }));
  return { t, db: t.db, ids, tasksOf, completeAll, sites, syncTasks };
}

describe("scheduleDailySyncs", () => {
  test("before the daily time: nothing", async () => {
    const { db, ids, tasksOf } = await fresh();
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-10T02:59:59.999Z"))).toBe(0);
    expect(await tasksOf(ids[0])).toEqual([]);
  });

  test("after it: one task per active site for today, covering the catch-up window up to today minus 2", async () => {
    const { db, ids, tasksOf } = await fresh();
    const [a, b, c, d] = ids;
    const now = new Date("2026-06-10T03:00:00.000Z");
    expect(await scheduleDailySyncs(db, opts, now)).toBe(3);
    const base = {
      task_type: "daily_sync",
      status: "pending",
      scheduled_for: "2026-06-10",
      end_date: "2026-06-08",
      max_attempts: 4,
      params: { sync_mode: "skip" },
      run_at: now.toISOString(),
    };
    expect(await tasksOf(a)).toEqual([expect.objectContaining({ ...base, start_date: "2026-06-04", progress_total: 5 })]);
    expect(await tasksOf(b)).toEqual([expect.objectContaining({ ...base, start_date: "2026-06-07", progress_total: 2 })]);
    // Nothing missing: still today's task, one quick all-skipped day.
    expect(await tasksOf(c)).toEqual([expect.objectContaining({ ...base, start_date: "2026-06-08", progress_total: 1 })]);
    expect(await tasksOf(d)).toEqual([]);
  });

  test("a day × type marked synced but never fetched at the grains (no completeness row), or derived by the migration, is missing", async () => {
    const now = new Date("2026-06-10T03:00:00.000Z");
    const one = await fresh();
    const c1 = one.ids[2];
    const k = one.db.t.gscDayCompleteness;
    // c: the whole window marked; 06-07's image completeness gone (a day marked before the grains existed).
    await one.db.tx((tx) => tx.delete(k).where(and(eq(k.site_id, c1), eq(k.day, dayNumber("2026-06-07")), eq(k.type, typeCode("image")))));
    expect(await scheduleDailySyncs(one.db, opts, now)).toBe(3);
    expect(await one.tasksOf(c1)).toEqual([
      expect.objectContaining({ start_date: "2026-06-07", end_date: "2026-06-08", progress_total: 2 }),
    ]);

    const two = await fresh();
    const c2 = two.ids[2];
    // c: 06-05's discover totals derived from the old detail by the migration, not Google's.
    await two.db.tx((tx) =>
      tx
        .update(k)
        .set({ derived: true })
        .where(and(eq(k.site_id, c2), eq(k.day, dayNumber("2026-06-05")), eq(k.type, typeCode("discover")))),
    );
    expect(await scheduleDailySyncs(two.db, opts, now)).toBe(3);
    expect(await two.tasksOf(c2)).toEqual([
      expect.objectContaining({ start_date: "2026-06-05", end_date: "2026-06-08", progress_total: 4 }),
    ]);
  });

  test("an archived site is never scheduled", async () => {
    const { t, db, tasksOf, sites } = await fresh();
    const [archived] = (await insertSites(t.db, 1, "archived.scheduler.example")) as [number];
    await db.tx((tx) => tx.update(sites).set({ archived_at: "2026-06-01T00:00:00.000Z" }).where(eq(sites.id, archived)));
    // The three active sites, not the archived one.
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-10T04:00:00.000Z"))).toBe(3);
    expect(await tasksOf(archived)).toEqual([]);
  });

  test("again the same day: nothing new, even once today's tasks have finished", async () => {
    const { db, ids, tasksOf, completeAll } = await fresh();
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-10T03:00:00.000Z"))).toBe(3);
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-10T09:00:00.000Z"))).toBe(0);
    await completeAll();
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-10T23:59:00.000Z"))).toBe(0);
    expect((await tasksOf(ids[0])).length).toBe(1);
  });

  test("a site with a pending daily_sync gets today's task only after that one is done (catch-up)", async () => {
    const { db, ids, tasksOf, syncTasks } = await fresh();
    const a = ids[0];
    await db.tx((tx) =>
      tx.insert(syncTasks).values({ site_id: a, task_type: "daily_sync", start_date: "2026-01-01", end_date: "2026-01-01" }),
    );
    const morning = new Date("2026-06-11T05:00:00.000Z");
    expect(await scheduleDailySyncs(db, opts, morning)).toBe(2);
    expect((await tasksOf(a)).filter((x) => x.scheduled_for === "2026-06-11")).toEqual([]);
    await db.tx((tx) => tx.update(syncTasks).set({ status: "completed" }).where(eq(syncTasks.site_id, a)));
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-11T06:00:00.000Z"))).toBe(1);
    expect((await tasksOf(a)).filter((x) => x.scheduled_for === "2026-06-11").length).toBe(1);
  });

  test("after downtime: the next run creates today's task once, however late in the day", async () => {
    const { db, ids, tasksOf, completeAll } = await fresh();
    expect(await scheduleDailySyncs(db, opts, new Date("2026-06-11T05:00:00.000Z"))).toBe(3);
    const late = new Date("2026-06-14T23:30:00.000Z");
    // Every site still has its pending task of 06-11 (no worker ran them): none gets a second one.
    expect(await scheduleDailySyncs(db, opts, late)).toBe(0);
    await completeAll();
    expect(await scheduleDailySyncs(db, opts, late)).toBe(3);
    expect(await scheduleDailySyncs(db, opts, late)).toBe(0);
    const a = (await tasksOf(ids[0])).find((x) => x.scheduled_for === "2026-06-14")!;
    expect(a).toMatchObject({ start_date: "2026-06-08", end_date: "2026-06-12" });
  });
});

describe("the database rule: one scheduled task per site, type and day", () => {
  test("a second task with the same (site_id, task_type, scheduled_for) after the first completed: unique violation, nothing inserted", async () => {
    const { t, tasksOf, syncTasks } = await fresh();
    const site = (await insertSites(t.db, 1, "unique-rule.example"))[0]!;
    const task = { site_id: site, task_type: "daily_sync", start_date: "2026-06-08", end_date: "2026-06-08", scheduled_for: "2026-06-10" };
    await t.db.tx((tx) => tx.insert(syncTasks).values({ ...task, status: "completed", completed_at: "2026-06-10T03:05:00.000Z" }));
    const err = await t.db.tx((tx) => tx.insert(syncTasks).values(task)).catch((e) => e);
    expect(isUniqueViolation(err)).toBe(true);
    // The index that refused it, in each engine's words.
    expect(`${err} ${err.cause ?? ""}`).toMatch(
      testEngine === "pg"
        ? /duplicate key value violates unique constraint "sync_tasks_scheduled_idx"/
        : /UNIQUE constraint failed: sync_tasks\.site_id, sync_tasks\.task_type, sync_tasks\.scheduled_for/,
    );
    expect((await tasksOf(site)).map((r) => r.status)).toEqual(["completed"]);
    // Another day is allowed.
    await t.db.tx((tx) => tx.insert(syncTasks).values({ ...task, scheduled_for: "2026-06-11" }));
    expect((await tasksOf(site)).length).toBe(2);
  });
});
