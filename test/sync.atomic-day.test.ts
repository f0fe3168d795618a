// A day × type's switch is atomic for readers (issue 17): its query detail goes in with its totals in one
// transaction, straight for a day of at most SYNC_ATOMIC_DAY_ROWS detail rows, staged (gsc_staged_detail)
// then switched for a bigger one. A real sync worker process is SIGKILLed while it fetches a day's new
// detail; a reader polling the day all along (one statement: one snapshot on both engines) only ever sees
// the old day or the new one, never new totals with old or partial detail. On the suite's engine.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { Subprocess } from "bun";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { setLogLevel } from "../src/log.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { dayNumber } from "../src/sync/grains.ts";
import { cancelJob, createTask, findJob } from "../src/sync/queries.ts";
import { reapExpiredLeases } from "../src/sync/lease.ts";
import { startWorker } from "../src/sync/worker.ts";
import { asSqlite, tempDb } from "./helpers/db.ts";
import { isDetailRequest, startFakeGsc, type FakeGsc, type UniverseRow } from "./helpers/fake-gsc.ts";
import { insertSites, waitFor } from "./helpers/sync.ts";
import { serviceFile } from "./helpers/server.ts";

// The sync worker as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceSyncWorker = await serviceFile("sync/worker-main.ts");

setLogLevel("silent");
setDefaultTimeout(180_000);
const root = join(import.meta.dir, "..");
// The day's version Google serves: v1 3,000 query rows; v2 2,500 of them (every even one with a click more,
// the odd ones equal) and 300 new ones. No anonymized queries: the totals equal the detail's sum in both.
let version = 1;
const ROW_LIMIT = 250;

function universe(v: number): UniverseRow[] {
  const ids =
    v === 1
      ? Array.from({ length: 3000 }, (_, i) => i)
      : [...Array.from({ length: 2500 }, (_, i) => i), ...Array.from({ length: 300 }, (_, i) => 3000 + i)];
  return ids.map((i) => ({
    page: `https://s0.atomic.example/p/${i % 50}`,
    query: `q${i}`,
    country: "usa",
    device: ["DESKTOP", "MOBILE", "TABLET"][i % 3]!,
    appearance: "",
    anonymized: false,
    clicks: 1 + (i % 5) + (v === 2 && i % 2 === 0 ? 1 : 0),
    impressions: 100,
    position: 3,
  }));
}
const versionOf = (v: number) => {
  const clicks = universe(v).reduce((s, r) => s + r.clicks, 0);
  return { totals: clicks, rows: v === 1 ? 3000 : 2800, clicks, rollup: clicks };
};

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let site: number;
const procs: Subprocess[] = [];

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc({ universe: (_s, _d, type) => (type === "web" ? universe(version) : []) });
  [site] = (await insertSites(t.db, 1, "atomic.example")) as [number];
});
afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  fake.stop();
  await t.cleanup();
});

/** The day as one statement sees it: web property-total clicks, detail rows, detail clicks and rollup clicks. */
async function observeDay(day: string) {
  const D = dayNumber(day);
  const [r] = await t.db.q
    .select({
      totals:
        sql<number>`(select coalesce(sum(clicks), 0) from gsc_property_totals where site_id = ${site} and day = ${D} and type = 1)`.mapWith(
          Number,
        ),
      // Rows and clicks of the detail from one scan of it: "rows:clicks".
      detail: sql<string>`(select count(*) || ':' || coalesce(sum(clicks), 0) from gsc_query_detail where site_id = ${site} and day = ${D} and type = 1)`,
      rollup:
        sql<number>`(select coalesce(sum(clicks), 0) from gsc_day_query_totals where site_id = ${site} and day = ${D} and type = 1)`.mapWith(
          Number,
        ),
    })
    .from(t.db.t.sites)
    .where(eq(t.db.t.sites.id, site));
  const [rows, clicks] = r!.detail.split(":").map(Number) as [number, number];
  return { totals: r!.totals, rows, clicks, rollup: r!.rollup };
}

/**
 * What moves whenever another transaction commits: SQLite's PRAGMA data_version on the reader (every other
 * connection's commit, this process's writer and other processes alike), PostgreSQL's current snapshot (a commit
 * anywhere on the server). The same mark twice: nothing was committed in between, so the day reads as it did then.
 */
async function commitMark(): Promise<string> {
  if (t.db.engine === "pg") return (await t.db.pg!.pool.query<{ s: string }>("select pg_current_snapshot()::text as s")).rows[0]!.s;
  return String(asSqlite(t.db).raw.reader.query<{ data_version: number }, []>("pragma data_version").get()!.data_version);
}

/**
 * The day's named-query counts kept at ingest (src/sync/rollups.ts) beside the same counts taken from its
 * detail must be equal: [type, device, queries] rows (device 0: every device).
 */
async function dayQueryCounts(day: string) {
  const where = `site_id = ${site} and day = ${dayNumber(day)}`;
  const rows = async (q: string) => {
    const r =
      t.db.engine === "pg"
        ? (await t.db.pg!.pool.query<{ type: number; device: number; n: string }>(q)).rows
        : t.db.raw.reader.query<{ type: number; device: number; n: number }, []>(q).all();
    return r.map((x) => [Number(x.type), Number(x.device), Number(x.n)]);
  };
  const kept = await rows(`select type, device, queries as n from gsc_day_query_counts where ${where} order by 1, 2`);
  const fromDetail = await rows(
    `select type, 0 as device, count(distinct query_id) as n from gsc_query_detail where ${where} group by type order by 1, 2`,
  );
  expect(kept.length).toBeGreaterThan(0);
  expect(kept).toEqual(fromDetail);
}

/** Rows in the staging tables (every task's). */
async function stagedRows() {
  const [r] = await t.db.q
    .select({ n: sql<number>`(select count(*) from gsc_staged_detail) + (select count(*) from gsc_staged_query_totals)`.mapWith(Number) })
    .from(t.db.t.sites)
    .where(eq(t.db.t.sites.id, site));
  return r!.n;
}

async function queueDay(day: string) {
  const { id } = await createTask(t.db, {
    siteId: site,
    taskType: "daily_sync",
    startDate: day,
    endDate: day,
    params: { sync_mode: "overwrite" },
    runAt: new Date(),
    maxAttempts: 3,
  });
  return id;
}

const finished = (id: number) => async () => {
  const j = (await findJob(t.db, id))!;
  return j.status !== "pending" && j.status !== "running" ? j : null;
};

function inProcessWorker(atomicDayRows: number) {
  const source = gscSource({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 100_000 }),
    rowLimit: ROW_LIMIT,
    maxRetries: 0,
    retryBaseMs: 5,
    timeoutMs: 30_000,
  });
  return startWorker({ db: t.open(), source, pollMs: 20, leaseMs: 2000, retryBaseMs: 50, batchSize: 100, atomicDayRows });
}

// 10,000: the 3,000-row day in one transaction; 1,000: staged in batches of 100, then switched.
for (const [path, ATOMIC, DAY] of [
  ["in one transaction", 10_000, "2026-03-10"],
  ["staged, then switched", 1000, "2026-03-11"],
] as const) {
  test(`SIGKILL of the sync process mid-day (${path}): readers see the old day, then the new one, never a mix`, async () => {
    const observe = () => observeDay(DAY);
    const queue = () => queueDay(DAY);
    const staged = ATOMIC < 3000;
    // v1 stored.
    version = 1;
    fake.reset();
    const first = inProcessWorker(ATOMIC);
    expect(await waitFor("v1", finished(await queue()), 60_000)).toMatchObject({ status: "completed" });
    await first.stop();
    const v1 = versionOf(1);
    const v2 = versionOf(2);
    expect(await observe()).toEqual(v1);
    expect(await stagedRows()).toBe(0);
    await dayQueryCounts(DAY);

    // A reader polls the day from now on; every observation must be exactly v1 or v2.
    const seen: { totals: number; rows: number; clicks: number }[] = [];
    let reading = true;
    const reader = (async () => {
      let mark: string | null = null;
      while (reading) {
        // Read again only after a commit (the mark taken before the read: the read sees at least that much).
        const now = await commitMark();
        seen.push(now === mark ? seen.at(-1)! : await observe());
        mark = now;
        await Bun.sleep(5);
      }
    })();

    // Google now serves v2, slowly (10 detail pages of 250 rows); a real worker process starts fetching it.
    version = 2;
    fake.reset();
    fake.setDelay(150);
    const proc = Bun.spawn([process.execPath, serviceSyncWorker], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: t.databaseUrl,
        LOG_LEVEL: "warn",
        SYNC_SOURCE: "gsc",
        GSC_ACCESS_TOKEN: "test-token",
        GSC_API_BASE_URL: fake.url,
        GSC_ROW_LIMIT: String(ROW_LIMIT),
        GSC_MAX_RETRIES: "0",
        SYNC_SCHEDULER: "false",
        SYNC_POLL_MS: "20",
        SYNC_LEASE_MS: "2000",
        SYNC_BATCH_SIZE: "100",
        SYNC_WRITE_GAP_MS: "0",
        SYNC_ATOMIC_DAY_ROWS: String(ATOMIC),
      },
      stdout: "ignore",
      stderr: "ignore",
    });
    procs.push(proc);
    const id = await queue();
    // Mid-day: several of the new detail's pages fetched (and, staged, written: the pages are read ahead of the writes,
    // so the staging itself is waited for).
    await waitFor(
      "the worker process half-way through the day's detail",
      async () => fake.requests.filter(isDetailRequest).length >= 6 && (!staged || (await stagedRows()) >= 1000),
      60_000,
    );
    proc.kill("SIGKILL");
    await proc.exited;
    const afterKill = seen.length;
    await waitFor("a few more reads after the kill", () => seen.length >= afterKill + 20, 30_000);
    // Nothing of v2 was committed: the old day, whole (a staged day: its first pages wait in the staging).
    expect(await observe()).toEqual(v1);
    if (staged) expect(await stagedRows()).toBeGreaterThanOrEqual(1000);
    // Rows a task that is gone left in the staging: swept when a task next stages a day.
    await t.db.tx((tx) =>
      tx
        .insert(t.db.t.gscStagedDetail)
        .values({ task_id: 1_000_000, page_id: 1, query_id: 1, device: 0, clicks: 1, impressions: 1, sum_position: 1 }),
    );

    // Another worker takes the task over once its lease has expired and stores v2, whole.
    fake.setDelay(0);
    const second = inProcessWorker(ATOMIC);
    expect(await waitFor("the task taken over", finished(id), 90_000)).toMatchObject({ status: "completed" });
    await second.stop();
    reading = false;
    await reader;
    expect(await observe()).toEqual(v2);
    await dayQueryCounts(DAY);
    // The takeover cleared the killed attempt's staging, and its own after the switch; the gone task's rows
    // were swept when the worker started (and by the staged day too).
    expect(await stagedRows()).toBe(0);

    const mixed = seen.filter(
      (s) =>
        !(s.totals === v1.totals && s.rows === v1.rows && s.clicks === v1.clicks) &&
        !(s.totals === v2.totals && s.rows === v2.rows && s.clicks === v2.clicks),
    );
    expect(seen.length).toBeGreaterThan(40);
    expect(mixed).toEqual([]);
  });
}

test("a staged day cancelled mid-way: its staging rows go when the task ends; a pending task's leftovers when it is cancelled", async () => {
  const DAY = "2026-03-12";
  version = 1;
  fake.reset();
  fake.setDelay(150);
  const worker = inProcessWorker(1000);
  try {
    const id = await queueDay(DAY);
    // Staging under way: more than the 1,000 rows of an atomic day fetched (and staged in writes of 100).
    await waitFor("the day's detail staged in part", async () => (await stagedRows()) >= 1000, 60_000);
    await cancelJob(t.db, id);
    expect(await waitFor("the task to end", finished(id), 60_000)).toMatchObject({ status: "cancelled" });
    expect(await stagedRows()).toBe(0);
  } finally {
    fake.setDelay(0);
    await worker.stop();
  }
  // A pending task holding an earlier attempt's staging rows (its worker was killed): cancelled, they go with it.
  const pending = await queueDay("2026-03-13");
  await t.db.tx((tx) =>
    tx
      .insert(t.db.t.gscStagedDetail)
      .values({ task_id: pending, page_id: 1, query_id: 1, device: 0, clicks: 1, impressions: 1, sum_position: 1 }),
  );
  await cancelJob(t.db, pending);
  expect(await stagedRows()).toBe(0);
});

test("a reaper ending a dead worker's task for good clears its staging; one it queues again keeps it (the retry restages)", async () => {
  const st = t.db.t.syncTasks;
  // Its worker died mid-day: running, lease expired, a staging row left.
  const deadWorker = async (day: string, attempts: number) => {
    const id = await queueDay(day);
    await t.db.tx(async (tx) => {
      await tx.update(st).set({ status: "running", attempts, locked_until: "2000-01-01T00:00:00.000Z" }).where(eq(st.id, id));
      await tx
        .insert(t.db.t.gscStagedDetail)
        .values({ task_id: id, page_id: 1, query_id: 1, device: 0, clicks: 1, impressions: 1, sum_position: 1 });
    });
    return id;
  };
  // Its 3 attempts used: failed, and its staging goes in the same transaction.
  const failed = await deadWorker("2026-03-14", 3);
  expect(await reapExpiredLeases(t.db)).toEqual([{ id: failed, status: "failed" }]);
  expect(await stagedRows()).toBe(0);
  // 1 of 3 used: pending again, its staging kept (its retry clears it when it stages the day again).
  const retried = await deadWorker("2026-03-15", 1);
  expect(await reapExpiredLeases(t.db)).toEqual([{ id: retried, status: "pending" }]);
  expect(await stagedRows()).toBe(1);
  await cancelJob(t.db, retried);
  expect(await stagedRows()).toBe(0);
});
