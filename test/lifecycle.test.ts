import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { getPriority, release } from "node:os";
import { join } from "node:path";
import { portLockPath } from "../src/db/instance-lock.ts";
import { count, eq } from "drizzle-orm";
import { first } from "../src/db/index.ts";
import { tempDb } from "./helpers/db.ts";
import { startFakeGsc } from "./helpers/fake-gsc.ts";
import { withDb } from "./helpers/observe.ts";
import { childPids, running } from "./helpers/procs.ts";
import { request, serviceFile, startServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/sync.ts";

// The sync worker as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceSyncWorker = await serviceFile("sync/worker-main.ts");

// Promises of the README about the processes' lives, each checked with real processes: SIGINT,
// the supervisor's SIGTERM handing a running task back, orphaned sync workers, SYNC_SCHEDULER=false,
// SYNC_SOURCE=auto choosing Search Console.

setDefaultTimeout(90_000);
const root = join(import.meta.dir, "..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const events = (out: string) =>
  out.split("\n").flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, any>];
    } catch {
      return [];
    }
  });

describe("supervisor signals", () => {
  test("SIGINT (Ctrl-C): workers drain, locks are released, exit 0, the data is there", async () => {
    const s = await startServer({ workers: 2, env: { LOG_LEVEL: "info" } });
    cleanups.push(s.cleanup);
    const workers = childPids(s.proc.pid);
    expect(workers).toHaveLength(2);
    expect((await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:sigint.example", name: "I" })).status).toBe(201);
    s.proc.kill("SIGINT");
    expect(await s.proc.exited).toBe(0);
    const e = events(s.output());
    expect(e).toContainEqual(expect.objectContaining({ msg: "shutting down", signal: "SIGINT" }));
    expect(e.filter((x) => x.msg === "http worker draining")).toHaveLength(2);
    expect(workers.filter(running)).toEqual([]);
    expect(existsSync(`${s.dbPath}.lock`)).toBe(false);
    expect(existsSync(portLockPath("127.0.0.1", s.port))).toBe(false);
    expect(
      await fetch(`${s.url}/health`).then(
        () => "answered",
        () => "refused",
      ),
    ).toBe("refused");
    expect(await withDb(s.dbPath, async (db) => db.q.select({ n: count() }).from(db.t.sites))).toEqual([{ n: 1 }]);
  });

  test("the supervisor's SIGTERM hands a running sync task back to the queue without spending an attempt", async () => {
    const fake = startFakeGsc();
    cleanups.push(() => fake.stop());
    fake.setDelay(150);
    const s = await startServer({
      workers: 1,
      syncWorkers: 1,
      env: {
        LOG_LEVEL: "info",
        SYNC_SOURCE: "gsc",
        GSC_ACCESS_TOKEN: "test-token",
        GSC_API_BASE_URL: fake.url,
        SYNC_POLL_MS: "50",
        SYNC_SCHEDULER: "false",
      },
    });
    cleanups.push(s.cleanup);
    const site = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:handback.example", name: "H" });
    const trig = await request(s.url, "POST", `/api/v1/sync/trigger/${site.body.id}?days=5`);
    expect(trig.status).toBe(202);
    const runningJob = await waitFor("the task to run", async () => {
      const j = (await request(s.url, "GET", trig.body.status_url)).body;
      return j.status === "running" ? j : null;
    });
    expect(runningJob.attempts).toBe(1);
    s.proc.kill("SIGTERM");
    expect(await s.proc.exited).toBe(0);
    const task = await withDb(s.dbPath, async (db) =>
      first(await db.q.select().from(db.t.syncTasks).where(eq(db.t.syncTasks.id, trig.body.job_id))),
    );
    expect(task).toMatchObject({ status: "pending", attempts: 0, worker_pid: null, locked_until: null });
    expect(events(s.output())).toContainEqual(expect.objectContaining({ msg: "task handed back to the queue", task_id: trig.body.job_id }));
  });

  test("sync workers exit on their own when the supervisor is SIGKILLed", async () => {
    // Production's SYNC_NICE: each sync worker in a session of its own, where the runner's group kill does not reach it.
    const s = await startServer({ workers: 1, syncWorkers: 2, env: { SYNC_SCHEDULER: "false", SYNC_NICE: "10" } });
    cleanups.push(s.cleanup);
    const children = childPids(s.proc.pid);
    expect(children).toHaveLength(3);
    s.proc.kill("SIGKILL");
    await s.proc.exited;
    cleanups.push(() => {
      for (const w of children) if (running(w)) process.kill(w, "SIGKILL");
    });
    await waitFor("orphaned sync and HTTP workers to exit", () => children.every((w) => !running(w)), 15_000);
  });
});

/** Runs `bun run sync-worker` alone on DATABASE_URL `url` until it logged that it started. */
async function syncWorker(url: string, env: Record<string, string>) {
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([process.execPath, serviceSyncWorker], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "info", SYNC_POLL_MS: "50", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  void (async () => {
    for await (const c of proc.stderr) out += new TextDecoder().decode(c);
  })();
  cleanups.push(async () => {
    proc.kill("SIGTERM");
    await proc.exited;
  });
  const started = await waitFor("the sync worker to start", () => events(out).find((e) => e.msg === "sync worker started"));
  return { proc, started, output: () => out };
}

describe("sync worker settings", () => {
  /** daily_sync tasks (the scheduler also queues a daily recheck per site beside them). */
  const scheduled = (url: string) =>
    withDb(
      url,
      async (db) => (await db.q.select({ n: count() }).from(db.t.syncTasks).where(eq(db.t.syncTasks.task_type, "daily_sync")))[0]!.n,
    );
  /** Inserts `n` active sites `sc-domain:s<i>.<suffix>`; returns their ids. */
  const insertSites = (url: string, n: number, suffix: string) =>
    withDb(url, async (db) => {
      const { sites } = db.t;
      const rows = Array.from({ length: n }, (_, i) => ({ domain: `sc-domain:s${i}.${suffix}`, name: `Site ${i}` }));
      return (await db.tx((tx) => tx.insert(sites).values(rows).returning({ id: sites.id }))).map((r) => r.id);
    });

  test("SYNC_NICE: the sync worker lowers its own CPU priority (background work); 0 leaves it as started", async () => {
    const t = tempDb();
    cleanups.push(t.cleanup);
    // nice is field 19 of /proc/<pid>/stat (the 17th after the command's closing parenthesis).
    const niceOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
    const own = getPriority();
    const low = await syncWorker(t.databaseUrl, { SYNC_NICE: "7", SYNC_SCHEDULER: "false", SYNC_SOURCE: "demo" });
    expect(niceOf(low.proc.pid)).toBe(Math.max(7, own));
    // Every thread, not the main one alone (Bun's pool and JIT threads start before the worker's code runs).
    const threads: number[] = [];
    for (const tid of readdirSync(`/proc/${low.proc.pid}/task`)) {
      try {
        threads.push(Number(readFileSync(`/proc/${low.proc.pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]));
      } catch {
        // A thread that ended meanwhile.
      }
    }
    expect(threads.length).toBeGreaterThan(1);
    expect(threads.filter((n) => n < Math.max(7, own))).toEqual([]);
    const same = await syncWorker(t.databaseUrl, { SYNC_NICE: "0", SYNC_SCHEDULER: "false", SYNC_SOURCE: "demo" });
    expect(niceOf(same.proc.pid)).toBe(own);
    // SYNC_POLICY's default with SYNC_NICE above 0: SCHED_IDLE (policy 5, field 41 of /proc/<pid>/stat); 0 leaves the class.
    const policyOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[38]);
    expect(policyOf(low.proc.pid)).toBe(5);
    expect(policyOf(same.proc.pid)).toBe(policyOf(process.pid));
    // SYNC_SLICE_US with SYNC_NICE above 0: the threads' scheduling slice, shown (ns) by Linux >= 6.12's /proc/<pid>/sched
    // for the default class (SYNC_POLICY=other); its default (0) and SYNC_NICE 0 leave the kernel's.
    const [major, minor] = release().split(".").map(Number);
    const sliceOf = (pid: number) => /se\.slice\s*:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/sched`, "utf8"))?.[1];
    if (major! * 1000 + minor! >= 6012 && sliceOf(process.pid) !== undefined) {
      const other = await syncWorker(t.databaseUrl, { SYNC_NICE: "7", SYNC_POLICY: "other", SYNC_SCHEDULER: "false", SYNC_SOURCE: "demo" });
      expect(policyOf(other.proc.pid)).toBe(0);
      expect(sliceOf(other.proc.pid)).toBe(sliceOf(process.pid));
      const custom = await syncWorker(t.databaseUrl, {
        SYNC_NICE: "7",
        SYNC_POLICY: "other",
        SYNC_SLICE_US: "250",
        SYNC_SCHEDULER: "false",
        SYNC_SOURCE: "demo",
      });
      expect(sliceOf(custom.proc.pid)).toBe("250000");
      const off = await syncWorker(t.databaseUrl, { SYNC_NICE: "0", SYNC_SLICE_US: "250", SYNC_SCHEDULER: "false", SYNC_SOURCE: "demo" });
      expect(sliceOf(off.proc.pid)).toBe(sliceOf(process.pid));
    }
  });

  test("SYNC_NICE above 0: a supervised sync worker runs in a session (scheduling group) of its own and still stops with the supervisor; 0 (or SYNC_OWN_SESSION=false) keeps the supervisor's", async () => {
    // The session id is field 6 of /proc/<pid>/stat (the 4th after the command's closing parenthesis).
    const sessionOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[3]);
    const isSync = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("worker-main");
    const workersOf = async (nice: string, env: Record<string, string> = {}) => {
      const s = await startServer({
        workers: 1,
        syncWorkers: 1,
        env: { LOG_LEVEL: "info", SYNC_NICE: nice, SYNC_SCHEDULER: "false", ...env },
      });
      cleanups.push(s.cleanup);
      await waitFor("the sync worker to start", () => events(s.output()).some((e) => e.msg === "sync worker started"));
      const children = childPids(s.proc.pid);
      return { s, sync: children.find(isSync)!, http: children.find((p) => !isSync(p))! };
    };
    const niced = await workersOf("10");
    expect(sessionOf(niced.sync)).toBe(niced.sync);
    expect(sessionOf(niced.http)).toBe(sessionOf(niced.s.proc.pid));
    if (existsSync("/proc/self/autogroup")) {
      // "/autogroup-<id> nice <n>": a group apart, weighing as SYNC_GROUP_NICE (0) against the host's other groups.
      const group = (pid: number) => readFileSync(`/proc/${pid}/autogroup`, "utf8").trim().split(" nice ");
      expect(group(niced.sync)[0]).not.toBe(group(niced.http)[0]);
      expect(group(niced.sync)[1]).toBe("0");
    }
    // SYNC_POLICY's default: every sync thread SCHED_IDLE (policy 5, field 41 of /proc/<pid>/task/<tid>/stat), the HTTP
    // worker's main thread not.
    const policyOf = (pid: number, tid: number) =>
      Number(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[38]);
    const syncPolicies: number[] = [];
    for (const tid of readdirSync(`/proc/${niced.sync}/task`)) {
      try {
        syncPolicies.push(policyOf(niced.sync, Number(tid)));
      } catch {
        // A thread that ended meanwhile.
      }
    }
    expect(syncPolicies.length).toBeGreaterThan(1);
    expect(syncPolicies.filter((p) => p !== 5)).toEqual([]);
    expect(policyOf(niced.http, niced.http)).toBe(0);
    niced.s.proc.kill("SIGTERM");
    expect(await niced.s.proc.exited).toBe(0);
    expect(running(niced.sync)).toBe(false);
    const same = await workersOf("0");
    expect(sessionOf(same.sync)).toBe(sessionOf(same.s.proc.pid));
    // SYNC_OWN_SESSION=false: niced and SCHED_IDLE, in the supervisor's session (one group with the HTTP workers).
    const shared = await workersOf("10", { SYNC_OWN_SESSION: "false" });
    expect(sessionOf(shared.sync)).toBe(sessionOf(shared.s.proc.pid));
    expect(policyOf(shared.sync, shared.sync)).toBe(5);
  });

  test("SYNC_SCHEDULER=false: no daily_sync is created, though sites are due; the same worker with it on creates them", async () => {
    const t = tempDb();
    cleanups.push(t.cleanup);
    await insertSites(t.databaseUrl, 3, "sched-off.example");
    const env = { SYNC_DAILY_AT: "00:00", SYNC_SCHEDULER_INTERVAL_MS: "50", SYNC_SOURCE: "demo", DEMO_ROWS_PER_DAY: "1" };
    const off = await syncWorker(t.databaseUrl, { ...env, SYNC_SCHEDULER: "false" });
    expect(off.started.scheduler).toBe(false);
    // Twenty scheduler intervals.
    await Bun.sleep(1000);
    expect(await scheduled(t.databaseUrl)).toBe(0);
    off.proc.kill("SIGTERM");
    expect(await off.proc.exited).toBe(0);

    const on = await syncWorker(t.databaseUrl, { ...env, SYNC_SCHEDULER: "true" });
    expect(on.started.scheduler).toBe(true);
    await waitFor("the scheduler to create one task per site", async () => (await scheduled(t.databaseUrl)) === 3);
  });

  test("SYNC_SOURCE=auto (the default) with credentials syncs from Search Console, not the demo source", async () => {
    const fake = startFakeGsc({ rows: (_s, _d, type) => (type === "web" ? 30 : 0) });
    cleanups.push(() => fake.stop());
    const t = tempDb();
    cleanups.push(t.cleanup);
    const [siteId] = await insertSites(t.databaseUrl, 1, "auto.example");
    const w = await syncWorker(t.databaseUrl, {
      GSC_ACCESS_TOKEN: "test-token",
      GSC_API_BASE_URL: fake.url,
      SYNC_SCHEDULER: "false",
      SYNC_SOURCE: "",
    });
    expect(w.started.source).toBe("gsc");
    const { syncTasks, gscPerformanceData } = t.db.t;
    await t.db.tx((tx) =>
      tx
        .insert(syncTasks)
        .values({ site_id: siteId!, task_type: "daily_sync", start_date: "2026-03-01", end_date: "2026-03-01", progress_total: 1 }),
    );
    await waitFor(
      "the task to complete",
      async () => (await t.db.q.select({ status: syncTasks.status }).from(syncTasks))[0]?.status === "completed",
    );
    // Every row came from the fake Search Console (its query strings), none from the demo generator.
    const queries = (await t.db.q.select({ query: gscPerformanceData.query }).from(gscPerformanceData)).map((r) => r.query);
    expect(queries).toHaveLength(30);
    expect(queries.every((q) => q.startsWith("fake query web "))).toBe(true);
    expect(fake.requests.filter((r) => r.site === "sc-domain:s0.auto.example").length).toBeGreaterThanOrEqual(4);
  });
});
