import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { and, eq, sql } from "drizzle-orm";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { demoRows, demoSource } from "../src/sync/demo.ts";
import { PermanentError } from "../src/sync/errors.ts";
import { createRequestSignal, SIGNAL_SLOTS, WRITE_UNIT, watchRequests } from "../src/sync/give-way.ts";
import { dayNumber } from "../src/sync/grains.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { registerHandler } from "../src/sync/handlers/index.ts";
import { claimNextTask, taskTypesParam } from "../src/sync/claim.ts";
import { lookForWork, reapExpiredLeases } from "../src/sync/lease.ts";
import { cancelJob, createTask, findJob } from "../src/sync/queries.ts";
import type { SearchAnalyticsSource } from "../src/sync/source.ts";
import { loopBackoffMs, startWorker, type Worker, type WorkerOptions } from "../src/sync/worker.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { isDetailRequest, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { storeOldRows } from "./helpers/rows.ts";
import { countRows, insertSites, waitFor } from "./helpers/sync.ts";

// The task engine in this process against the fake Search Console: the handler, retries, cancel,
// graceful stop, lost leases and the reaper. (Races between processes: sync.multiprocess.test.ts.)

setLogLevel("silent");
const DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"];
// Per day: web 120 rows (3 pages of 50), image 30, video 0, news 5.
const perType: Record<string, number> = { web: 120, image: 30, video: 0, news: 5 };
const PER_DAY = 155;

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let sites: number[];
let nextSite = 0;
const workers: Worker[] = [];

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc({ rows: (_s, _d, type) => perType[type] ?? 0 });
  sites = await insertSites(t.db, 40, "engine.example");
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  fake.reset();
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});
const markersOf = (site: number) => t.db.q.select().from(t.db.t.gscSyncedDays).where(eq(t.db.t.gscSyncedDays.site_id, site));

const siteUrl = (id: number) => `sc-domain:s${sites.indexOf(id)}.engine.example`;
const freshSite = () => sites[nextSite++]!;

function source(over: { maxRetries?: number; timeoutMs?: number } = {}): SearchAnalyticsSource {
  return gscSource({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 100_000 }),
    rowLimit: 50,
    maxRetries: over.maxRetries ?? 0,
    retryBaseMs: 5,
    timeoutMs: over.timeoutMs ?? 5000,
  });
}

function worker(over: Partial<WorkerOptions> = {}) {
  const w = startWorker({ db: t.open(), source: source(), pollMs: 20, leaseMs: 2000, retryBaseMs: 100, batchSize: 40, ...over });
  workers.push(w);
  return w;
}

async function queue(
  siteId: number,
  o: { start?: string; end?: string; mode?: "skip" | "overwrite"; type?: string; maxAttempts?: number } = {},
) {
  return (
    await createTask(t.db, {
      siteId,
      taskType: o.type ?? "daily_sync",
      startDate: o.start ?? DAYS[0]!,
      endDate: o.end ?? DAYS[2]!,
      params: { sync_mode: o.mode ?? "skip" },
      runAt: new Date(),
      maxAttempts: o.maxAttempts ?? 3,
    })
  ).id;
}

const job = async (id: number) => (await findJob(t.db, id))!;
const settled = (id: number, timeoutMs = 15_000) =>
  waitFor(
    `task ${id} to finish`,
    async () => {
      const j = await job(id);
      return j.status !== "pending" && j.status !== "running" ? j : null;
    },
    timeoutMs,
  );

describe("daily_sync", () => {
  test("stores every row of every day and search type, paging by startRow, with progress and stats", async () => {
    const site = freshSite();
    const id = await queue(site);
    worker();
    const j = await settled(id);
    expect(j).toMatchObject({
      status: "completed",
      attempts: 1,
      progress_done: 3,
      progress_total: 3,
      stats_synced: 3,
      stats_failed: 0,
      stats_skipped: 0,
      total_records: 3 * PER_DAY,
      error: null,
    });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
    // Query detail per day: web 3 pages (50, 50, 20), image 1 (30 < 50), news 1; video has no data (its
    // empty property totals say so: nothing more is asked), nor have discover and googleNews.
    const detail = fake.requests.filter(isDetailRequest);
    expect(detail.length).toBe(3 * 5);
    expect(detail.filter((r) => r.type === "web").map((r) => r.startRow)).toEqual([0, 50, 100, 0, 50, 100, 0, 50, 100]);
    for (const type of ["video", "discover", "googleNews"]) {
      expect(fake.requests.filter((r) => r.type === type).map((r) => r.aggregationType)).toEqual([
        "byProperty",
        "byProperty",
        "byProperty",
      ]);
    }
    const markers = await markersOf(site);
    expect(markers.length).toBe(3 * 6);
    expect(markers.find((m) => m.date === DAYS[1] && m.search_type === "web")?.row_count).toBe(120);
  });

  test("bulk writes while alone: SYNC_BULK_BATCH_SIZE rows per write, every row stored once; short ones while an HTTP request that may write is in flight", async () => {
    // The row writes of a task (ctx.write's transactions), counted on the worker's handle.
    const rowWrites = async (bulkBatchSize: number | undefined) => {
      const db = t.open();
      let writes = 0;
      const tx = db.tx.bind(db);
      db.tx = ((fn: never, label?: string) => {
        if (label?.endsWith(": rows")) writes++;
        return tx(fn, label);
      }) as typeof db.tx;
      const site = freshSite();
      const id = await queue(site, { start: DAYS[0], end: DAYS[0] });
      // atomicDayRows 0: every day in batches (a day this small is otherwise switched in one transaction).
      const w = startWorker({
        db,
        source: source(),
        pollMs: 20,
        leaseMs: 2000,
        retryBaseMs: 100,
        batchSize: 7,
        bulkBatchSize,
        atomicDayRows: 0,
      });
      try {
        expect((await settled(id)).status).toBe("completed");
      } finally {
        // Stopped before the next task is queued, so only this worker's writes are counted.
        await w.stop();
      }
      expect(await countRows(t.db, site)).toBe(PER_DAY);
      return writes;
    };
    const short = await rowWrites(undefined);
    const bulk = await rowWrites(100);
    // Pages of 50 (web 50+50+20, image 30, news 5): batches of 7 make 8+8+3+5+1 upserts, bulk ones 1 per page.
    expect(short - bulk).toBe(25 - 5);
    // An HTTP worker's create in flight all along (its slot in the supervisor's file, src/sync/give-way.ts): it would
    // wait for the write lock, so the worker writes short batches as when it finds the lock taken.
    const signal = createRequestSignal(`engine-${process.pid}`)!;
    try {
      const bytes = Bun.mmap(signal.path);
      new Int32Array(bytes.buffer, bytes.byteOffset, SIGNAL_SLOTS)[0] = WRITE_UNIT;
      expect(watchRequests(signal.path)).toBe(true);
      expect(await rowWrites(100)).toBe(short);
    } finally {
      // Unwatched (a missing file maps nothing), so later tests never pause.
      watchRequests(`${signal.path}-missing`);
      signal.remove();
    }
  });

  test("skip: days already synced are not fetched again", async () => {
    const site = freshSite();
    worker();
    await settled(await queue(site));
    fake.reset();
    const id = await queue(site, { mode: "skip" });
    const j = await settled(id);
    expect(j).toMatchObject({ status: "completed", stats_synced: 0, stats_skipped: 3, total_records: 0, progress_done: 3 });
    expect(fake.requests.length).toBe(0);
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
  });

  test("overwrite: a day's rows are replaced (changed rows restored, rows the source dropped removed)", async () => {
    const site = freshSite();
    worker();
    await settled(await queue(site));
    const g = t.db.t.gscPerformanceData;
    const d = t.db.t.gscQueryDetail;
    await t.db.tx(async (tx) => {
      await tx
        .update(d)
        .set({ clicks: 999_999 })
        .where(and(eq(d.site_id, site), eq(d.day, dayNumber(DAYS[0]!))));
    });
    await storeOldRows(t.db, [{ site_id: site, date: DAYS[0]!, page: "https://gone.example/", query: "stale", device: "MOBILE" }]);
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY + 1);
    fake.reset();
    const j = await settled(await queue(site, { start: DAYS[0], end: DAYS[0], mode: "overwrite" }));
    expect(j).toMatchObject({ status: "completed", stats_synced: 1, total_records: PER_DAY });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
    const max = (await t.db.q.select({ m: sql<number>`max(clicks)` }).from(g).where(eq(g.site_id, site)))[0]!.m;
    expect(max).toBeLessThan(999_999);
    expect(fake.requests.filter(isDetailRequest).length).toBe(5);
  });

  test("overwrite whose page 2 fails permanently: the old rows stay (none deleted), the day stays marked", async () => {
    const site = freshSite();
    worker();
    await settled(await queue(site));
    await storeOldRows(t.db, [{ site_id: site, date: DAYS[0]!, page: "https://gone.example/", query: "stale", device: "MOBILE" }]);
    fake.reset();
    fake.inject({ status: 400, match: (r) => isDetailRequest(r) && r.type === "web" && r.startRow === 50 });
    const j = await settled(await queue(site, { start: DAYS[0], end: DAYS[0], mode: "overwrite" }));
    expect(j).toMatchObject({ status: "failed", attempts: 1, error: expect.stringMatching(/400 INJECTED/) });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY + 1);
    const marker = (await markersOf(site)).find((m) => m.date === DAYS[0] && m.search_type === "web");
    expect(marker?.row_count).toBe(120);
  });

  test("skip refetches a day cut short (rows stored, no completion marker)", async () => {
    const site = freshSite();
    worker();
    await settled(await queue(site));
    const { gscSyncedDays: m, gscQueryDetail: d } = t.db.t;
    await t.db.tx(async (tx) => {
      await tx.delete(m).where(and(eq(m.site_id, site), eq(m.date, DAYS[1]!), eq(m.search_type, "web")));
      await tx.delete(d).where(and(eq(d.site_id, site), eq(d.day, dayNumber(DAYS[1]!)), eq(d.type, 1), sql`query_id % 2 = 0`));
    });
    fake.reset();
    const j = await settled(await queue(site));
    expect(j).toMatchObject({ status: "completed", stats_synced: 1, stats_skipped: 2, total_records: 120 });
    expect(new Set(fake.requests.map((r) => `${r.startDate}/${r.type}`))).toEqual(new Set([`${DAYS[1]}/web`]));
    expect(fake.requests.filter(isDetailRequest).length).toBe(3);
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
  });

  test("days newer than today minus 4 are stored but not marked final, so skip fetches them again", async () => {
    const site = freshSite();
    const today = dayOf(new Date());
    const [d4, d3, d2] = [addDays(today, -4), addDays(today, -3), addDays(today, -2)];
    worker();
    const first = await settled(await queue(site, { start: d4, end: d2 }));
    expect(first).toMatchObject({ status: "completed", stats_synced: 3, total_records: 3 * PER_DAY });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
    const marked = await markersOf(site);
    expect([...new Set(marked.map((m) => m.date))]).toEqual([d4]);
    fake.reset();
    const again = await settled(await queue(site, { start: d4, end: d2, mode: "skip" }));
    expect(again).toMatchObject({ status: "completed", stats_synced: 2, stats_skipped: 1, total_records: 2 * PER_DAY });
    expect([...new Set(fake.requests.map((r) => r.startDate))].sort()).toEqual([d3, d2]);
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
  });

  test("the demo source is deterministic and syncs end to end", async () => {
    expect(demoRows("sc-domain:a.example", "2026-03-01", "web", 50)).toEqual(demoRows("sc-domain:a.example", "2026-03-01", "web", 50));
    expect(demoRows("sc-domain:a.example", "2026-03-01", "web", 50)).not.toEqual(demoRows("sc-domain:a.example", "2026-03-02", "web", 50));
    const rows = demoRows("sc-domain:a.example", "2026-03-01", "web", 2000);
    expect(new Set(rows.map((r) => `${r.page}|${r.query}|${r.device}`)).size).toBe(2000);
    const site = freshSite();
    worker({ source: demoSource(25, 10) });
    const j = await settled(await queue(site));
    expect(j).toMatchObject({ status: "completed", total_records: 3 * 4 * 25 });
    expect(await countRows(t.db, site)).toBe(3 * 4 * 25);
  });
});

describe("failures", () => {
  test("5xx: retried with growing backoff, the error kept meanwhile, then completed", async () => {
    const site = freshSite();
    fake.inject({ status: 503, times: 2 });
    const id = await queue(site, { start: DAYS[0], end: DAYS[0] });
    worker({ retryBaseMs: 300 });
    const between = await waitFor("the first retry to be scheduled", async () => {
      const j = await job(id);
      return j.status === "pending" && j.attempts === 1 ? j : null;
    });
    expect(between.error).toMatch(/1 of 1 days failed; last error: Search Console kept failing for .* \(503 INJECTED/);
    expect(new Date(between.run_at).getTime()).toBeGreaterThan(Date.now() - 100);
    const j = await settled(id);
    expect(j).toMatchObject({ status: "completed", attempts: 3, error: null, total_records: PER_DAY });
    const firsts = fake.requests.filter((r) => r.type === "web" && r.startRow === 0 && r.aggregationType === "byProperty").map((r) => r.at);
    expect(firsts.length).toBe(3);
    // run_at = now + 300 ms * 2^(attempt-1) * [0.5, 1.5)
    expect(firsts[1]! - firsts[0]!).toBeGreaterThanOrEqual(140);
    expect(firsts[2]! - firsts[1]!).toBeGreaterThanOrEqual(290);
  });

  test("a handler that keeps failing: failed after max_attempts, with its last error", async () => {
    const calls: number[] = [];
    registerHandler({
      type: "always_fails",
      async run() {
        calls.push(Date.now());
        throw new Error(`boom ${calls.length}`);
      },
    });
    const id = await queue(freshSite(), { type: "always_fails", maxAttempts: 3 });
    worker({ retryBaseMs: 100 });
    const j = await settled(id);
    expect(j).toMatchObject({ status: "failed", attempts: 3, max_attempts: 3, error: "boom 3", completed_at: expect.any(String) });
    expect(calls.length).toBe(3);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(45);
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(95);
    await Bun.sleep(300);
    expect(calls.length).toBe(3);
  });

  test("a PermanentError fails the task at once", async () => {
    registerHandler({ type: "permanent_fail", run: async () => Promise.reject(new PermanentError("no way")) });
    const j = await settled(await queue(freshSite(), { type: "permanent_fail" }).then((id) => (worker(), id)));
    expect(j).toMatchObject({ status: "failed", attempts: 1, error: "no way" });
  });

  test("403 from Search Console: failed at the first attempt with a clear message", async () => {
    const site = freshSite();
    fake.forbid(siteUrl(site));
    worker();
    const j = await settled(await queue(site));
    expect(j.status).toBe("failed");
    expect(j.attempts).toBe(1);
    expect(j.error).toMatch(
      /refused access to sc-domain:s\d+\.engine\.example \(403 PERMISSION_DENIED.*check that the credentials are valid/,
    );
    expect(fake.requests.length).toBe(1);
  });

  test("the loop's own errors back off: doubling from the poll, to 30 s while the database is unavailable, 5 s for any other", () => {
    const walk = (unavailable: boolean) => {
      const pauses: number[] = [];
      let ms = 0;
      for (let i = 0; i < 12; i++) pauses.push((ms = loopBackoffMs(ms, 50, unavailable)));
      return pauses;
    };
    // A plain error (e.g. PostgreSQL's "database does not exist") was retried every poll: now it backs off too, capped lower
    // than an outage, whose pause the database coming back cuts short.
    expect(walk(false)).toEqual([50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000]);
    expect(walk(true)).toEqual([50, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
  });
});

describe("cancel, stop, leases", () => {
  test("cancelling a running task stops it at its next checkpoint", async () => {
    const site = freshSite();
    fake.setDelay(100);
    const id = await queue(site);
    worker();
    await waitFor("the first day done", async () => (await job(id)).progress_done >= 1);
    await cancelJob(t.db, id);
    const j = await settled(id);
    expect(j.status).toBe("cancelled");
    expect(j.progress_done).toBeLessThan(3);
    const n = fake.requests.length;
    await Bun.sleep(400);
    expect(fake.requests.length).toBe(n);
  });

  test("a cancel requested after the last checkpoint ends the task cancelled, not completed", async () => {
    registerHandler({
      type: "cancelled_at_end",
      async run(ctx) {
        await cancelJob(ctx.db, ctx.task.id);
      },
    });
    const id = await queue(freshSite(), { type: "cancelled_at_end" });
    const w = worker();
    const j = await settled(id);
    expect(j).toMatchObject({ status: "cancelled", attempts: 1, cancel_requested: true, completed_at: expect.any(String) });
    expect(w.counts).toEqual({ cancelled: 1 });
  });

  test("graceful stop hands the running task back without spending an attempt; another worker finishes it", async () => {
    const site = freshSite();
    fake.setDelay(100);
    const id = await queue(site);
    const a = worker();
    await waitFor("task running", async () => (await job(id)).status === "running");
    await a.stop();
    expect(a.counts.released).toBe(1);
    expect(await job(id)).toMatchObject({ status: "pending", attempts: 0, worker_pid: null, locked_until: null });
    fake.setDelay(0);
    worker();
    const j = await settled(id);
    expect(j).toMatchObject({ status: "completed", attempts: 1, total_records: 3 * PER_DAY });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
  });

  test("after a graceful stop, ctx.write writes nothing more", async () => {
    const wrote: string[] = [];
    registerHandler({
      type: "write_after_stop",
      async run(ctx) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        await ctx.write(() => wrote.push("after stop"));
      },
    });
    const id = await queue(freshSite(), { type: "write_after_stop" });
    const a = worker();
    await waitFor("task running", async () => (await job(id)).status === "running");
    await a.stop();
    expect(wrote).toEqual([]);
    expect(a.counts).toEqual({ released: 1 });
    expect(await job(id)).toMatchObject({ status: "pending", attempts: 0 });
    await t.db.tx((tx) => tx.update(t.db.t.syncTasks).set({ status: "cancelled" }).where(eq(t.db.t.syncTasks.id, id)));
  });

  test("a worker whose lease was taken writes nothing more; the task is re-run once, without duplicates", async () => {
    const site = freshSite();
    fake.setDelay(150);
    const id = await queue(site);
    // Nothing fetched ahead: the later days' slow answers keep the task running after its first day.
    const a = worker({ leaseMs: 60_000, fetchAhead: 0 });
    await waitFor("some progress", async () => (await job(id)).progress_done >= 1);
    // As if A had hung past its lease: expire it, and let the reaper re-queue the task.
    await t.db.tx((tx) => tx.update(t.db.t.syncTasks).set({ locked_until: "2000-01-01T00:00:00.000Z" }).where(eq(t.db.t.syncTasks.id, id)));
    expect(await reapExpiredLeases(t.db)).toEqual([{ id, status: "pending" }]);
    await waitFor("A to notice", () => a.counts.lost === 1);
    fake.setDelay(0);
    worker();
    const j = await settled(id);
    expect(j).toMatchObject({ status: "completed", attempts: 2, total_records: 3 * PER_DAY });
    expect(await countRows(t.db, site)).toBe(3 * PER_DAY);
  });

  test("heartbeat: a response taking 3x the lease keeps the task (attempt 1, never reaped); a cancel meanwhile is noticed", async () => {
    // 1 s, renewed every 333 ms: a shorter lease expired under a loaded machine's pauses (reaped, attempt 2),
    // and a fixed sleep before the mid-way look could land after the slow answer.
    const LEASE = 1000;
    const site = freshSite();
    fake.setDelay(3 * LEASE);
    const id = await queue(site, { start: DAYS[0], end: DAYS[0] });
    // Two workers: whichever does not run the task keeps reaping expired leases. Their requests wait up to a
    // minute (the slow answers below must come, or be aborted by the cancel, never time out).
    const slow = () => worker({ leaseMs: LEASE, source: source({ timeoutMs: 60_000 }) });
    const ws = [slow(), slow()];
    await waitFor("the first request", () => fake.requests.length >= 1);
    fake.setDelay(0);
    // Mid-way (the slow answer still on its way): the lease was renewed after the first one ran out.
    const mid = await waitFor("a renewal past the first lease", async () => {
      const j = await job(id);
      return j.heartbeat_at && Date.parse(j.heartbeat_at) > Date.parse(j.started_at!) + LEASE ? j : null;
    });
    expect(mid).toMatchObject({ status: "running", attempts: 1 });
    expect(mid.locked_until! > new Date().toISOString()).toBe(true);
    const j = await settled(id);
    expect(j).toMatchObject({ status: "completed", attempts: 1, total_records: PER_DAY });
    expect(ws.map((w) => w.counts)).toContainEqual({ completed: 1 });
    expect(ws.every((w) => !w.counts.lost && !w.counts.retry)).toBe(true);

    // The same wait, cancelled: the heartbeat sees the request and aborts the request in flight.
    fake.reset();
    fake.setDelay(30 * LEASE);
    const id2 = await queue(freshSite(), { start: DAYS[0], end: DAYS[0] });
    await waitFor("the first request", () => fake.requests.length >= 1);
    const cancelledAt = Date.now();
    await cancelJob(t.db, id2);
    const j2 = await settled(id2);
    expect(j2).toMatchObject({ status: "cancelled", attempts: 1 });
    // Noticed well before the slow answer (30 s) came: a heartbeat (every 333 ms) saw it; generous under load.
    expect(Date.now() - cancelledAt).toBeLessThan(20 * LEASE);
    expect(fake.requests.length).toBe(1);
  });

  test("the reaper: expired (or missing) leases go back to pending, or failed when out of attempts, or cancelled when asked", async () => {
    const past = "2000-01-01T00:00:00.000Z";
    const future = new Date(Date.now() + 60_000).toISOString();
    const rows = [
      { site_id: freshSite(), attempts: 1, max_attempts: 3, locked_until: past, cancel_requested: false },
      { site_id: freshSite(), attempts: 3, max_attempts: 3, locked_until: past, cancel_requested: false },
      { site_id: freshSite(), attempts: 1, max_attempts: 3, locked_until: past, cancel_requested: true },
      { site_id: freshSite(), attempts: 1, max_attempts: 3, locked_until: future, cancel_requested: false },
      { site_id: freshSite(), attempts: 1, max_attempts: 3, locked_until: null, cancel_requested: false },
    ];
    const st = t.db.t.syncTasks;
    const ids = await t.db.tx(async (tx) => {
      const out: number[] = [];
      for (const r of rows)
        out.push(
          (
            await tx
              .insert(st)
              .values({ ...r, task_type: "reap_test", status: "running", worker_pid: 999_999 })
              .returning()
          )[0]!.id,
        );
      return out;
    });
    // The idle loop's look (one statement on PostgreSQL) sees the expired leases, and no reap_test task due yet.
    const types = taskTypesParam(["reap_test"]);
    expect(await lookForWork(t.db, types)).toEqual({ expired: true, due: false });
    const reaped = await reapExpiredLeases(t.db);
    expect(reaped.filter((r) => ids.includes(r.id))).toEqual([
      { id: ids[0]!, status: "pending" },
      { id: ids[1]!, status: "failed" },
      { id: ids[2]!, status: "cancelled" },
      { id: ids[4]!, status: "pending" },
    ]);
    const after = await Promise.all(ids.map(job));
    expect(after[0]).toMatchObject({
      worker_pid: null,
      locked_until: null,
      completed_at: null,
      error: "worker 999999 stopped renewing its lease during attempt 1",
    });
    expect(after[1]).toMatchObject({ worker_pid: 999_999, completed_at: expect.any(String), error: expect.stringContaining("attempt 3") });
    expect(after[3]).toMatchObject({ status: "running", worker_pid: 999_999 });
    expect(await reapExpiredLeases(t.db)).toEqual([]);
    // Reaped to pending: due now, and nothing expired left.
    expect(await lookForWork(t.db, types)).toEqual({ expired: false, due: true });
  });
});

describe("claims", () => {
  test.skipIf(testEngine !== "pg")(
    "a claim skips the due task another transaction holds, without waiting for it (PostgreSQL: FOR UPDATE SKIP LOCKED)",
    async () => {
      const st = t.db.t.syncTasks;
      const types = taskTypesParam(["lock_probe"]);
      const older = await queue(freshSite(), { type: "lock_probe" });
      const newer = await queue(freshSite(), { type: "lock_probe" });
      await t.db.tx((tx) => tx.update(st).set({ run_at: "2000-01-01T00:00:00.000Z" }).where(eq(st.id, older)));
      // Another connection locks the oldest due task (as a worker mid-claim would) and keeps it locked.
      let release!: () => void;
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const holder = t.open().tx(async (tx) => {
        await tx.select({ id: st.id }).from(st).where(eq(st.id, older)).for("update");
        locked();
        await new Promise<void>((r) => (release = r));
      });
      await isLocked;
      try {
        // Without SKIP LOCKED this claim would wait for the holder, which waits for us: the timeout says so.
        const claimed = await Promise.race([
          claimNextTask(t.db, { types, leaseMs: 60_000, pid: 4343 }),
          Bun.sleep(10_000).then(() => "still waiting" as const),
        ]);
        expect(claimed).toMatchObject({ id: newer, status: "running", worker_pid: 4343, attempts: 1 });
      } finally {
        release();
        await holder;
      }
      // Once free, the skipped task is the next one claimed; then none is left.
      expect(await claimNextTask(t.db, { types, leaseMs: 60_000, pid: 4343 })).toMatchObject({ id: older, attempts: 1 });
      expect(await claimNextTask(t.db, { types, leaseMs: 60_000, pid: 4343 })).toBeUndefined();
      await t.db.tx((tx) => tx.update(st).set({ status: "completed" }).where(eq(st.task_type, "lock_probe")));
    },
  );
});
