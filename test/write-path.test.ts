import { Database } from "bun:sqlite";
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { count, eq } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import type { Orm } from "../src/db/index.ts";
import { sites } from "../src/db/sqlite/schema.ts";
import { ApiError, isBusyError, isUniqueViolation } from "../src/errors.ts";
import { tempSqliteDb } from "./helpers/db.ts";
import { holdLock } from "./helpers/lock.ts";

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(30_000);

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function setup(opts: Parameters<typeof tempSqliteDb>[0] = {}) {
  const t = tempSqliteDb(opts);
  cleanups.push(t.cleanup);
  return t;
}

/** A write callback inserting one site; returns its id. */
const insertSite = (domain: string) => (tx: Orm) => tx.insert(sites).values({ domain, name: domain }).returning({ id: sites.id }).get()!.id;

function siteCount(conn: Database) {
  return (conn.query("select count(*) as n from sites").get() as { n: number }).n;
}

/** Counts event-loop ticks (a 5 ms interval) until stopped: proof the loop was not blocked. */
function tickCounter() {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  return {
    get ticks() {
      return ticks;
    },
    stop: () => clearInterval(timer),
  };
}

describe("group commit", () => {
  test("writes queued in one turn share few commits, resolve after COMMIT, and are visible to other connections", async () => {
    const t = setup();
    const other = new Database(t.path, { readonly: true });
    cleanups.push(() => other.close());
    const before = { ...t.db.stats };

    const N = 200;
    const ownRowSeen: boolean[] = [];
    const countAtResolve: number[] = [];
    const promises = Array.from({ length: N }, (_, i) =>
      t.db.write(insertSite(`sc-domain:g${i}.example`)).then((id) => {
        // Another connection already sees the caller's own row when it hears back: it was committed.
        ownRowSeen.push(other.query("select id from sites where id = ?").get(id) !== null);
        countAtResolve.push(siteCount(other));
        return id;
      }),
    );
    // Nothing is committed before the event loop turns.
    expect(siteCount(other)).toBe(0);
    const ids = await Promise.all(promises);

    expect(new Set(ids).size).toBe(N);
    expect(siteCount(other)).toBe(N);
    // All N were queued in one turn and fit one batch (maxBatch 256): exactly one transaction.
    expect(t.db.stats.commits - before.commits).toBe(1);
    expect(t.db.stats.writes - before.writes).toBe(N);
    expect(ownRowSeen).toEqual(Array(N).fill(true));
    // One commit: every caller, even the first answered, saw all N rows at once.
    expect(countAtResolve).toEqual(Array(N).fill(N));
  });

  test("writes in separate turns are separate transactions; maxBatch caps a group", async () => {
    const t = setup({ maxBatch: 10 });
    const c0 = t.db.stats.commits;
    await t.db.write(insertSite("sc-domain:a.example"));
    await t.db.write(insertSite("sc-domain:b.example"));
    expect(t.db.stats.commits - c0).toBe(2);

    const c1 = t.db.stats.commits;
    await Promise.all(Array.from({ length: 35 }, (_, i) => t.db.write(insertSite(`sc-domain:m${i}.example`))));
    expect(t.db.stats.commits - c1).toBe(4);
  });

  test("the callback's value is returned; reads inside the transaction see its earlier writes", async () => {
    const t = setup();
    const [first, second] = await Promise.all([
      t.db.write(insertSite("sc-domain:one.example")),
      t.db.write((tx) => tx.select({ n: count() }).from(sites).get()!.n),
    ]);
    expect(first).toBeGreaterThan(0);
    expect(second).toBe(1);
  });
});

describe("failures stay with their write", () => {
  test("a failing write in a group rolls back alone; the others commit", async () => {
    const t = setup();
    const c0 = t.db.stats.commits;
    const results = await Promise.allSettled([
      t.db.write(insertSite("sc-domain:ok1.example")),
      t.db.write((tx) => {
        insertSite("sc-domain:half-done.example")(tx);
        throw new ApiError("validation_failed", "changed my mind");
      }),
      t.db.write(insertSite("sc-domain:ok1.example")), // duplicate of the first, same transaction
      t.db.write(insertSite("sc-domain:ok2.example")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ApiError);
    expect(isUniqueViolation((results[2] as PromiseRejectedResult).reason)).toBe(true);
    expect(t.db.stats.commits - c0).toBe(1);
    const domains = t.db.read
      .select({ d: sites.domain })
      .from(sites)
      .orderBy(sites.domain)
      .all()
      .map((r) => r.d);
    expect(domains).toEqual(["sc-domain:ok1.example", "sc-domain:ok2.example"]);
  });

  test("the group's first write runs without a savepoint: failing, it rolls back alone and the others commit next", async () => {
    const t = setup();
    const c0 = t.db.stats.commits;
    const results = await Promise.allSettled([
      t.db.write((tx) => {
        insertSite("sc-domain:first-half-done.example")(tx);
        throw new ApiError("validation_failed", "changed my mind");
      }),
      t.db.write(insertSite("sc-domain:next1.example")),
      t.db.write(insertSite("sc-domain:next2.example")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(ApiError);
    // The failed first write's transaction is rolled back; the others go into the next one, in order.
    expect(t.db.stats.commits - c0).toBe(1);
    const domains = t.db.read
      .select({ d: sites.domain })
      .from(sites)
      .orderBy(sites.id)
      .all()
      .map((r) => r.d);
    expect(domains).toEqual(["sc-domain:next1.example", "sc-domain:next2.example"]);
  });

  test("async callbacks (the engine-neutral code) run inside the transaction; one failing after an await rolls back alone", async () => {
    const t = setup();
    const good = t.db.write(async (tx) => {
      insertSite("sc-domain:before.example")(tx);
      await Promise.resolve();
      insertSite("sc-domain:after.example")(tx);
      return 1;
    });
    const bad = t.db.write(async (tx) => {
      insertSite("sc-domain:doomed.example")(tx);
      await Promise.resolve();
      throw new Error("changed my mind");
    });
    const sync = t.db.write(insertSite("sc-domain:sync.example"));
    expect(await good).toBe(1);
    await expect(bad).rejects.toThrow(/changed my mind/);
    await sync;
    const domains = t.db.read
      .select({ d: sites.domain })
      .from(sites)
      .orderBy(sites.domain)
      .all()
      .map((r) => r.d);
    expect(domains).toEqual(["sc-domain:after.example", "sc-domain:before.example", "sc-domain:sync.example"]);
    expect(t.db.stats.commits).toBe(1);
  });

  test("a callback awaiting a real timer keeps the connection to itself: writes queued meanwhile commit after it", async () => {
    const t = setup();
    const order: string[] = [];
    const slow = t.db.write(async (tx) => {
      insertSite("sc-domain:slow.example")(tx);
      await Bun.sleep(30);
      order.push("slow");
      return "slow";
    });
    await Bun.sleep(5);
    const next = t.db.write((tx) => {
      insertSite("sc-domain:next.example")(tx);
      order.push("next");
      return "next";
    });
    expect(await Promise.all([slow, next])).toEqual(["slow", "next"]);
    expect(order).toEqual(["slow", "next"]);
    expect(t.db.read.select().from(sites).all()).toHaveLength(2);
  });

  test("a Drizzle builder returned without .run() executes inside the transaction, before COMMIT", async () => {
    const t = setup();
    await t.db.write((tx) => tx.insert(sites).values({ domain: "sc-domain:builder.example", name: "F" }));
    expect(t.db.read.select({ d: sites.domain }).from(sites).all()).toEqual([{ d: "sc-domain:builder.example" }]);
  });
});

describe("waiting for another process's write lock", () => {
  test("the write waits without blocking the event loop, reads go on, then it commits; retries are counted", async () => {
    const t = setup();
    const holder = await holdLock(t.path, { mode: "write" });
    cleanups.push(() => holder.release());
    const retries0 = t.db.stats.busyRetries;
    const ticks = tickCounter();
    cleanups.push(ticks.stop);

    let settled = false;
    const t0 = performance.now();
    const pending = t.db.write(insertSite("sc-domain:waited.example")).finally(() => (settled = true));

    await Bun.sleep(300);
    expect(settled).toBe(false);
    // The loop kept turning (a 5 ms interval ticked many times) and WAL reads were not blocked.
    expect(ticks.ticks).toBeGreaterThan(10);
    expect(t.db.read.select({ n: count() }).from(sites).get()!.n).toBe(0);
    expect(t.db.stats.busyRetries - retries0).toBeGreaterThan(5);

    await holder.release();
    const id = await pending;
    expect(performance.now() - t0).toBeGreaterThan(250);
    expect(t.db.read.select().from(sites).where(eq(sites.id, id)).get()?.domain).toBe("sc-domain:waited.example");
  });

  test("a reader holding an old snapshot does not block writes (WAL)", async () => {
    const t = setup();
    const reader = await holdLock(t.path, { mode: "read" });
    cleanups.push(() => reader.release());
    const retries0 = t.db.stats.busyRetries;
    await t.db.write(insertSite("sc-domain:while-reading.example"));
    expect(t.db.stats.busyRetries - retries0).toBe(0);
  });

  test("a lock held past lockTimeoutMs fails the write with ApiError unavailable (503), never 'database is locked'", async () => {
    const t = setup({ lockTimeoutMs: 200 });
    const holder = await holdLock(t.path, { mode: "write" });
    cleanups.push(() => holder.release());
    const timeouts0 = t.db.stats.timeouts;

    const t0 = performance.now();
    const err = await t.db.write(insertSite("sc-domain:gave-up.example")).catch((e) => e);
    const waited = performance.now() - t0;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe("unavailable");
    expect(err.status).toBe(503);
    expect(isBusyError(err)).toBe(false);
    expect(String(err.message)).not.toMatch(/locked/i);
    expect(waited).toBeGreaterThanOrEqual(190);
    // The holder never lets go: any bound is a hang guard (generous for a loaded machine).
    expect(waited).toBeLessThan(30_000);
    expect(t.db.stats.timeouts - timeouts0).toBe(1);

    // Over HTTP the same is a 503 with Retry-After and the JSON error shape.
    const app = createApp(t.db);
    const res = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:http.example", name: "Http" }),
    });
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = JSON.parse(text);
    expect(body).toEqual({ error: { code: "unavailable", message: expect.any(String) }, detail: body.error.message });
    expect(text).not.toMatch(/database is locked|SQLITE/);

    // Once the lock is gone the queue works again, and nothing of the failed writes was applied.
    await holder.release();
    await t.db.write(insertSite("sc-domain:after.example"));
    const domains = t.db.read
      .select({ d: sites.domain })
      .from(sites)
      .all()
      .map((r) => r.d);
    expect(domains).toEqual(["sc-domain:after.example"]);
  });

  test("writes queued while waiting all go into the first transaction once the lock is free", async () => {
    const t = setup();
    const holder = await holdLock(t.path, { mode: "write" });
    cleanups.push(() => holder.release());
    const c0 = t.db.stats.commits;
    const pending: Promise<number>[] = [];
    for (let i = 0; i < 20; i++) {
      pending.push(t.db.write(insertSite(`sc-domain:q${i}.example`)));
      await Bun.sleep(5);
    }
    await holder.release();
    expect((await Promise.all(pending)).length).toBe(20);
    expect(t.db.stats.commits - c0).toBeLessThanOrEqual(2);
  });
});

describe("backpressure for the checkpointer", () => {
  test("past walYieldBytes each transaction first leaves the lock free; below it, none does", async () => {
    const t = setup({ walYieldBytes: 256 * 1024 });
    await t.db.write(insertSite("sc-domain:first.example"));
    expect(t.db.stats.yields).toBe(0); // a fresh WAL is small

    const big = "x".repeat(400_000); // about 100 pages of frames
    await t.db.write((tx) => tx.update(sites).set({ name: big }).run());
    await Bun.sleep(15); // the WAL size is sampled at most once every 10 ms (engine.ts WAL_CHECK_MS)
    const y0 = t.db.stats.yields;
    for (let i = 0; i < 5; i++) await t.db.write(insertSite(`sc-domain:y${i}.example`));
    expect(t.db.stats.yields - y0).toBe(5);

    // Once a checkpoint resets the WAL, writes go straight in again.
    expect(t.db.raw.reader.query("PRAGMA wal_checkpoint(TRUNCATE)").get()).toEqual({ busy: 0, log: 0, checkpointed: 0 });
    await Bun.sleep(15);
    const y1 = t.db.stats.yields;
    for (let i = 0; i < 5; i++) await t.db.write(insertSite(`sc-domain:z${i}.example`));
    expect(t.db.stats.yields - y1).toBe(0);
  });

  test("the further past walYieldBytes the WAL is, the longer each transaction leaves the lock free", async () => {
    const t = setup({ walYieldBytes: 16 * 1024 });
    await t.db.write(insertSite("sc-domain:first.example"));
    await t.db.write((tx) =>
      tx
        .update(sites)
        .set({ name: "x".repeat(400_000) })
        .run(),
    ); // ~25x the yield size
    await Bun.sleep(15);
    const y0 = t.db.stats.yields;
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await t.db.write(insertSite(`sc-domain:far${i}.example`));
    // Each yield is at least 16 x 1 ms at that distance (the cap); a 1-3 ms gap would take a fifth of it.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(5 * 16);
    expect(t.db.stats.yields - y0).toBe(5);
  });
});
