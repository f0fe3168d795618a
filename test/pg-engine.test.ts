import { afterEach, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import pg from "pg";
import { offerPendingAnswer, withRideThrough } from "../src/db/availability.ts";
import { closeAllConnections, openPgDb, type Db } from "../src/db/index.ts";
import { ApiError, apiErrorOf, isBusyError, isUniqueViolation } from "../src/errors.ts";
import { freePort } from "../src/free-port.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { proxiedPgDb } from "./helpers/tcp-proxy.ts";
import { waitFor } from "./helpers/wait.ts";

// The PostgreSQL write path (src/db/pg/engine.ts) against a real server: what db.tx retries, what it
// gives up on, and how failures are classified for the API (503, never 500). PostgreSQL run only.

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function setup() {
  const t = tempDb();
  cleanups.push(() => t.cleanup());
  return t;
}

/** A database of the test's own, and a pool on it through a TCP proxy (to cut, hold or delay its connections). */
const proxiedDb = (opts: Parameters<typeof proxiedPgDb>[1]) => proxiedPgDb(cleanups, opts);

async function addSite(db: Db, domain: string) {
  const { sites } = db.t;
  const rows = await db.tx(async (tx) => tx.insert(sites).values({ domain, name: domain }).returning());
  return rows[0]!;
}

describe.skipIf(testEngine !== "pg")("PostgreSQL write path", () => {
  test("a deadlock between two transactions is retried: both writes commit, the retry is counted", async () => {
    const t = setup();
    const a = await addSite(t.db, "sc-domain:a.example");
    const b = await addSite(t.db, "sc-domain:b.example");
    const { sites } = t.db.t;
    // Opposite lock order with a pause in between: the server detects the deadlock (deadlock_timeout,
    // 1 s by default) and aborts one transaction with 40P01, which db.tx runs again.
    let attempts = 0;
    const cross = (first: number, second: number, name: string) =>
      t.db.tx(async (tx) => {
        attempts++;
        await tx
          .update(sites)
          .set({ name: `${name} 1` })
          .where(eq(sites.id, first));
        await tx.execute(sql`select pg_sleep(0.3)`);
        await tx
          .update(sites)
          .set({ name: `${name} 2` })
          .where(eq(sites.id, second));
        return name;
      });
    const retries0 = t.db.stats.busyRetries;
    expect(await Promise.all([cross(a.id, b.id, "x"), cross(b.id, a.id, "y")])).toEqual(["x", "y"]);
    expect(attempts).toBe(3);
    expect(t.db.stats.busyRetries - retries0).toBe(1);
    const names = (await t.db.q.select({ name: sites.name }).from(sites).orderBy(sites.id)).map((r) => r.name);
    // Whichever ran last wrote both rows: its two updates are there, the aborted attempt left nothing.
    expect(["x 1,x 2", "y 2,y 1"]).toContain(names.join());
  }, 20_000);

  test("a connection killed in the middle of a transaction: nothing of that attempt stays, the retry commits once", async () => {
    const t = setup();
    const { sites } = t.db.t;
    let attempts = 0;
    const site = await t.db.tx(async (tx) => {
      attempts++;
      const row = (await tx.insert(sites).values({ domain: "sc-domain:killed.example", name: "K" }).returning())[0]!;
      if (attempts === 1) await tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`);
      return row;
    });
    expect(attempts).toBe(2);
    expect(await t.db.q.select({ id: sites.id }).from(sites)).toEqual([{ id: site.id }]);
  });

  test("a server that does not answer: the write gives up with 503 (unavailable) after its retry budget; reads are storage errors", async () => {
    const db = openPgDb({ url: `postgres://postgres@127.0.0.1:${freePort()}/none`, role: "test", rideThroughMs: 300 });
    cleanups.push(() => db.close());
    const t0 = performance.now();
    const err = await db.tx((tx) => tx.select().from(db.t.sites)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(503);
    // The budget is kept on another clock than this one: a millisecond of slack.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(299);
    expect(db.stats.busyRetries).toBeGreaterThan(0);
    const readErr = await db.q
      .select()
      .from(db.t.sites)
      .catch((e: unknown) => e);
    expect(apiErrorOf(readErr)?.status).toBe(503);
    expect(db.availability.downSince).not.toBeNull();
  });

  test("a COMMIT whose answer is lost after the server got it: answered as committed (its commit token), not run again", async () => {
    const { t, proxy, db } = await proxiedDb({ poolSize: 2 });
    const { sites } = db.t;
    await db.q.select().from(sites); // a connection in the pool
    proxy.cutNext((text) => text.includes("COMMIT"), "answer");
    let runs = 0;
    const site = await db.tx(async (tx) => {
      runs++;
      return (await tx.insert(sites).values({ domain: "sc-domain:ambiguous.example", name: "A" }).returning())[0]!;
    });
    // Before: run again on a new connection, it met its own row (23505): a 409 for a create that committed.
    expect(runs).toBe(1);
    expect(db.stats.ambiguousCommits).toEqual({ committed: 1, aborted: 0, unknown: 0 });
    expect(await t.db.q.select({ id: sites.id, domain: sites.domain }).from(sites)).toEqual([{ id: site.id, domain: site.domain }]);
  });

  test("a COMMIT that never reached the server: found aborted, run once more, one row", async () => {
    const { t, proxy, db } = await proxiedDb({ poolSize: 2 });
    const { sites } = db.t;
    await db.q.select().from(sites);
    proxy.cutNext((text) => text.includes("COMMIT"), "drop");
    let runs = 0;
    await db.tx(async (tx) => {
      runs++;
      return (await tx.insert(sites).values({ domain: "sc-domain:dropped.example", name: "D" }).returning())[0]!;
    });
    expect(runs).toBe(2);
    expect(db.stats.ambiguousCommits).toEqual({ committed: 0, aborted: 1, unknown: 0 });
    expect(await t.db.q.select({ domain: sites.domain }).from(sites)).toEqual([{ domain: "sc-domain:dropped.example" }]);
  });

  test("a lost COMMIT whose transaction is still open on the server: the check waits for it, then finds its token burned (aborted), run once more", async () => {
    const { t, proxy, db } = await proxiedDb({ poolSize: 2 });
    const { sites } = db.t;
    await db.q.select().from(sites);
    // The COMMIT never reaches the server, whose side stays open: the transaction (and its token's key) stays open.
    proxy.cutNext((text) => text.includes("COMMIT"), "hold");
    let runs = 0;
    const write = db.tx(async (tx) => {
      runs++;
      return (
        await tx
          .insert(sites)
          .values({ domain: `sc-domain:held-${runs}.example`, name: "H" })
          .returning()
      )[0]!;
    });
    // The check's insert of the burned token waits on the open transaction's key (txid_status would say "in progress").
    const waiting = sql`select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%commit_tokens%burned%'`;
    await waitFor(async () => (await t.db.q.execute(waiting)).rows.length > 0, {
      timeout: 20_000,
      every: 20,
      what: "the outcome check to wait for the open transaction",
    });
    await t.db.q.execute(
      sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and state = 'idle in transaction'`,
    );
    const site = await write;
    expect(runs).toBe(2);
    expect(site.domain).toBe("sc-domain:held-2.example");
    expect(db.stats.ambiguousCommits).toEqual({ committed: 0, aborted: 1, unknown: 0 });
    expect(await t.db.q.select({ domain: sites.domain }).from(sites)).toEqual([{ domain: "sc-domain:held-2.example" }]);
    // The aborted attempt's token is burned: it could never commit now.
    const tokens = (await t.db.q.execute(sql`select burned from commit_tokens order by burned`)).rows.map((r) => r.burned);
    expect(tokens.filter((b) => b === true)).toHaveLength(1);
  }, 40_000);

  test("each write transaction leaves a commit token; the sweep deletes the old ones", async () => {
    const t = setup();
    const db = openPgDb({ url: t.databaseUrl, role: "test" });
    cleanups.push(() => db.close());
    for (let i = 0; i < 3; i++) await addSite(db, `sc-domain:token-${i}.example`);
    const count = async () => Number((await t.db.q.execute(sql`select count(*)::int as n from commit_tokens`)).rows[0]!.n);
    expect(await count()).toBeGreaterThanOrEqual(3);
    expect(await db.pg!.sweepTokens()).toBe(0); // nothing old yet
    expect(await db.pg!.sweepTokens(Date.now() + 60 * 60_000)).toBeGreaterThanOrEqual(3);
    expect(await count()).toBe(0);
  });

  test("closeAllConnections with a write stuck past its drain bound: ends the pool anyway (the stuck connection too), no throw", async () => {
    const t = setup();
    const site = await addSite(t.db, "sc-domain:stuck.example");
    const { sites } = t.db.t;
    // Another session holds the row's lock: the write below waits for it for as long as it is held.
    const holder = new pg.Client({ connectionString: t.databaseUrl });
    holder.on("error", () => {});
    await holder.connect();
    cleanups.push(() => holder.end().catch(() => {}));
    await holder.query("BEGIN; SELECT 1 FROM sites FOR UPDATE");
    const db = openPgDb({ url: t.databaseUrl, role: "test", drainTimeoutMs: 200 });
    const stuck = db.tx((tx) => tx.update(sites).set({ name: "z" }).where(eq(sites.id, site.id))).catch((e: unknown) => e);
    const waiting = sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
    await waitFor(async () => (await t.db.q.execute(waiting)).rows.length > 0, {
      timeout: 20_000,
      every: 20,
      what: "the write to wait for the lock",
    });
    // Before: the drain's warning read db.path (a throwing getter on PostgreSQL), and pool.end() waited for the stuck connection.
    const closed = await Promise.race([closeAllConnections(), Bun.sleep(20_000).then(() => "hung" as const)]);
    expect(closed).not.toBe("hung");
    expect(db.closed).toBe(true);
    expect(db.pg.pool.totalCount).toBe(0);
    // The write's connection was cut: it fails as a retry-later error (503), not a 500.
    expect(apiErrorOf(await stuck)?.status).toBe(503);
    await holder.query("ROLLBACK");
    // Nothing of the stuck write was applied.
    const after = await openPgDb({ url: t.databaseUrl, role: "test" });
    cleanups.push(() => after.close());
    expect((await after.q.select({ name: sites.name }).from(sites)).map((r) => r.name)).toEqual([site.name]);
  }, 40_000);

  test("a read whose pooled connection was terminated is retried once on a new one", async () => {
    const t = setup();
    const db = openPgDb({ url: t.databaseUrl, role: "test", poolSize: 1 });
    cleanups.push(() => db.close());
    const pid = Number((await db.q.execute(sql`select pg_backend_pid() as pid`)).rows[0]!.pid);
    // Terminated while the read runs on it: the read fails mid-query and is run again.
    // Started now (a Drizzle query runs when awaited or then'd, not when built).
    const read = Promise.resolve(db.q.execute(sql`select pg_sleep(0.5), 1 as n`));
    // Only once the server runs it (a fixed pause lost the race on a loaded machine: the read had not started).
    await waitFor(
      async () =>
        Number(
          (await t.db.q.execute(sql`select count(*) as n from pg_stat_activity where pid = ${pid} and query like '%pg_sleep%'`)).rows[0]!.n,
        ) === 1,
      { timeout: 10_000, every: 10, what: "the read to run on the server" },
    );
    await t.db.q.execute(sql`select pg_terminate_backend(${pid})`);
    expect((await read).rows).toHaveLength(1);
    expect(db.stats.readRetries).toBe(1);
    expect(db.availability.downSince).toBeNull();
  });

  test("a read whose retry is terminated too answers 503 (the driver's raw error would be a 500)", async () => {
    const t = setup();
    const db = openPgDb({ url: t.databaseUrl, role: "test", poolSize: 2 });
    cleanups.push(() => db.close());
    await db.q.execute(sql`select 1`);
    const running = async (not: number[]) => {
      const r = await t.db.q.execute(
        sql`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query like '%pg_sleep(0.7)%'`,
      );
      return r.rows.map((x) => Number(x.pid)).filter((pid) => !not.includes(pid));
    };
    const read = Promise.resolve(db.q.execute(sql`select pg_sleep(0.7), 1 as n`)).catch((e: unknown) => e);
    const killed: number[] = [];
    // The read, then its one retry on a new connection: each terminated once the server runs it.
    for (const what of ["the read", "its retry"]) {
      let pids: number[] = [];
      await waitFor(async () => (pids = await running(killed)).length === 1, {
        timeout: 10_000,
        every: 10,
        what: `${what} to run on the server`,
      });
      killed.push(pids[0]!);
      await t.db.q.execute(sql`select pg_terminate_backend(${pids[0]!})`);
    }
    const err = await read;
    expect(db.stats.readRetries).toBe(1);
    expect(apiErrorOf(err)?.status).toBe(503);
  });

  test("a server that accepts connections and never answers (packets dropped): writes and reads 503 within the ride-through, known down", async () => {
    // A listening socket that stays silent: the TCP connect succeeds, the startup message gets no answer.
    const sockets: { end(): void }[] = [];
    const silent = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (sock) => void sockets.push(sock),
        data() {},
      },
    });
    cleanups.push(() => {
      for (const sock of sockets) sock.end();
      silent.stop(true);
    });
    const rideThroughMs = 600;
    // The connect bound (PG_CONNECT_TIMEOUT_MS, 5 s by default) shortened to keep the test short.
    const db = openPgDb({ url: `postgres://postgres@127.0.0.1:${silent.port}/none`, role: "test", rideThroughMs, connectTimeoutMs: 500 });
    cleanups.push(() => db.close());
    // Without a bound on connecting, both would wait for ever (the test's own timeout would end them).
    const [writeErr, readErr] = await Promise.all([
      db.tx((tx) => tx.select().from(db.t.sites)).catch((e: unknown) => e),
      db.q
        .select()
        .from(db.t.sites)
        .catch((e: unknown) => e),
    ]);
    expect(apiErrorOf(writeErr)?.status).toBe(503);
    expect(apiErrorOf(readErr)?.status).toBe(503);
    expect(sockets.length).toBeGreaterThan(0); // it did connect: a silent server, not a refusing one
    // Known down once the probe (same bound) heard nothing either: no other connection got an answer meanwhile.
    await waitFor(() => db.availability.downSince !== null, { timeout: 20_000, every: 20, what: "the state to turn down" });
    expect(db.availability.lastError).toMatch(/Connection terminated|timeout/i);
  }, 30_000);

  test("a slow connect on a busy host (each new connection held 1.5 s before it reaches the server) is not an outage: reads and writes answer, the state stays up", async () => {
    // The default ride-through (2 s). Before: a new connection was bounded to half of it (1 s), so a backend slow
    // to start on a loaded machine failed "timeout expired", the probe (same bound, same delay) confirmed it, and
    // every request answered 503 while the server was up (seen beside sync.multiprocess on the 2-core machine).
    const { proxy, db } = await proxiedDb({ poolSize: 2, rideThroughMs: 2000 });
    proxy.delayNewConnections(1500);
    const { sites } = db.t;
    const [written, read] = await Promise.all([
      db.tx((tx) => tx.insert(sites).values({ domain: "sc-domain:slow.example", name: "S" }).returning()),
      db.q.select({ n: sql<number>`1` }).from(sql`(select 1) as one`),
    ]);
    expect(written).toHaveLength(1);
    expect(read).toHaveLength(1);
    expect(db.availability.outages).toBe(0);
    expect(db.availability.downSince).toBeNull();
    expect(db.stats.storageErrors).toBe(0);
  }, 30_000);

  test("a probe whose new connection times out while another connection of the process gets answers: up (a busy server), not down", async () => {
    // Every new connection held 6 s, past the 3 s connect bound: on its own, that is a silent server.
    const { proxy, db } = await proxiedDb({ poolSize: 1, connectTimeoutMs: 3000 });
    await db.q.execute(sql`select 1`); // the one pooled connection, open before the delay
    proxy.delayNewConnections(6000);
    // The pool's only connection answers (after 0.5 s) while the probe's own connection waits in the proxy.
    const read = Promise.resolve(db.q.execute(sql`select pg_sleep(0.5)`));
    await waitFor(() => db.pg.pool.idleCount === 0, { what: "the read to hold the pool's connection" });
    const up = await db.availability.probe();
    await read;
    expect(up).toBe(true);
    expect(db.availability.downSince).toBeNull();
  }, 30_000);

  test("a server that went away: known down once, requests fail fast within the ride-through, up again when it is back", async () => {
    const { t, proxy, db } = await proxiedDb({ poolSize: 4, rideThroughMs: 400 });
    const { sites } = db.t;
    await db.q.select().from(sites);
    proxy.stop();
    const errs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? db.q.select().from(sites) : db.tx((tx) => tx.insert(sites).values({ domain: `sc-domain:d${i}.example`, name: "x" })))
          .then(() => null)
          .catch((e: unknown) => e),
      ),
    );
    for (const e of errs) {
      expect(apiErrorOf(e)?.status).toBe(503);
      expect(Number(apiErrorOf(e)?.headers["Retry-After"])).toBeGreaterThanOrEqual(1);
    }
    expect(db.availability.downSince).not.toBeNull();
    expect(db.availability.outages).toBe(1);
    await proxy.start();
    expect(await db.availability.waitUp(10_000)).toBe(true);
    await db.tx((tx) => tx.insert(sites).values({ domain: "sc-domain:back.example", name: "B" }));
    expect(await t.db.q.select({ domain: sites.domain }).from(sites)).toEqual([{ domain: "sc-domain:back.example" }]);
  }, 30_000);

  test("the server's return: a request that finds the state down probes at once, and the probe's new connection serves it (no second connect)", async () => {
    const { t, proxy, db } = await proxiedDb({ poolSize: 2, rideThroughMs: 30_000 });
    const { sites } = db.t;
    await db.q.select().from(sites);
    proxy.stop();
    await db.availability.probe();
    expect(db.availability.downSince).not.toBeNull();
    await proxy.start();
    const before = proxy.accepted;
    // Before: the request waited for the next background probe (a fixed pace), whose connection was then
    // closed, and opened one of its own: two new backends in a row before the first answer.
    await db.tx((tx) => tx.insert(sites).values({ domain: "sc-domain:returned.example", name: "R" }));
    expect(db.availability.downSince).toBeNull();
    expect(proxy.accepted - before).toBe(1);
    expect(await t.db.q.select({ domain: sites.domain }).from(sites)).toEqual([{ domain: "sc-domain:returned.example" }]);
  }, 60_000);

  test("a write of a request that met the fault in an earlier step, still running at its ride-through's end: the request's early answer fires; the write goes on and commits", async () => {
    const t = setup();
    const db = openPgDb({ url: t.databaseUrl, role: "test", poolSize: 2, rideThroughMs: 300 });
    cleanups.push(() => db.close());
    let fired = false;
    const done = withRideThrough(300, async () => {
      offerPendingAnswer(() => {
        fired = true;
      });
      // An earlier step lost its connection: the state's probe was asked (the server is up).
      expect(await db.availability.suspect(new Error("Connection terminated unexpectedly"))).toBe(true);
      // This write takes longer than what is left of the ride-through (a starved host, a lock).
      return db.tx(async (tx) => {
        await tx.execute(sql`select pg_sleep(0.8)`);
        return "committed";
      });
    });
    await waitFor(() => fired, { timeout: 5_000, what: "the early answer at the ride-through" });
    expect(await done).toBe("committed");
    // A request that met no fault is never answered early: a slow write there is load, not an outage.
    let early = false;
    await withRideThrough(300, async () => {
      offerPendingAnswer(() => {
        early = true;
      });
      await db.tx((tx) => tx.execute(sql`select pg_sleep(0.6)`));
    });
    expect(early).toBe(false);
  });

  test("statement_timeout (PG_STATEMENT_TIMEOUT_MS) stops a runaway query; the error is the retry-later kind (503), not a 500", async () => {
    const t = setup();
    const db = openPgDb({ url: t.databaseUrl, role: "test", statementTimeoutMs: 200 });
    cleanups.push(() => db.close());
    const t0 = performance.now();
    const err = await db.q.execute(sql`select pg_sleep(60)`).catch((e: unknown) => e);
    // Stopped long before the query's own end (a generous bound: a loaded machine is slow, never 60 s slow).
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(isBusyError(err)).toBe(true);
  });

  test("the pool's sessions run with JIT off and random_page_cost 1.1 (the reports read cached pages), a URL's own options kept", async () => {
    const t = setup();
    const u = new URL(t.databaseUrl);
    u.searchParams.set("options", "-c work_mem=5MB");
    for (const url of [t.databaseUrl, u.toString()]) {
      const db = openPgDb({ url, role: "test" });
      cleanups.push(() => db.close());
      const [row] = (
        await db.q.execute(
          sql`select current_setting('jit') as jit, current_setting('random_page_cost') as rpc, current_setting('work_mem') as work_mem`,
        )
      ).rows as { jit: string; rpc: string; work_mem: string }[];
      expect(row!.jit).toBe("off");
      expect(row!.rpc).toBe("1.1");
      if (url !== t.databaseUrl) expect(row!.work_mem).toBe("5MB");
    }
  });

  test("a duplicate key inside db.tx is a unique violation (the API's 409), not retried", async () => {
    const t = setup();
    await addSite(t.db, "sc-domain:dup.example");
    const retries0 = t.db.stats.busyRetries;
    const err = await addSite(t.db, "sc-domain:dup.example").catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect(t.db.stats.busyRetries).toBe(retries0);
  });

  test("writes from many callers at once on a pool of 4 connections: every one commits exactly once", async () => {
    const t = setup();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => addSite(t.db, `sc-domain:many-${i}.example`)));
    expect(new Set(results.map((r) => r.id)).size).toBe(200);
    const { sites } = t.db.t;
    const n = await t.db.q.$count(sites);
    expect(n).toBe(200);
  });
});
