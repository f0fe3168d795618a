import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { count } from "drizzle-orm";
import { portLockPath } from "../src/db/instance-lock.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { newPgDatabase } from "./helpers/engine.ts";
import { withDb } from "./helpers/observe.ts";
import { childPids } from "./helpers/procs.ts";
import { serviceFile, startServer } from "./helpers/server.ts";
import { tcpProxy } from "./helpers/tcp-proxy.ts";
import { freePort, request } from "./helpers/server.ts";

// The supervisor as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceMain = await serviceFile("main.ts");

setDefaultTimeout(60_000);
const root = join(import.meta.dir, "..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function supervisor(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, serviceMain, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  return proc;
}

describe("supervisor", () => {
  test("--database-url reaches the workers: they serve the database the supervisor migrated", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const pgdb = testEngine === "pg" ? newPgDatabase({ migrated: false }) : null;
    if (pgdb) cleanups.push(pgdb.drop);
    const db = pgdb?.url ?? join(tmp.dir, "flag.db");
    const port = freePort();
    const proc = supervisor(
      ["--database-url", db, "--port", String(port), "--host", "127.0.0.1", "--workers", "2", "--sync-workers", "0"],
      {
        DATABASE_URL: "",
      },
    );
    const base = `http://127.0.0.1:${port}`;
    let created;
    for (let i = 0; i < 200; i++) {
      created = await request(base, "POST", "/api/v1/sites", { domain: "sc-domain:flag.example", name: "Flag" }).catch(() => null);
      if (created) break;
      await Bun.sleep(50);
    }
    expect(created?.status).toBe(201);
    expect(await withDb(db, async (h) => h.q.select({ n: count() }).from(h.t.sites))).toEqual([{ n: 1 }]);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });

  /** A supervisor of one HTTP worker and no sync worker on a new SQLite file, its events watched. */
  const oneWorker = (env: Record<string, string> = {}) => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const args = ["--workers", "1", "--sync-workers", "0", "--host", "127.0.0.1", "--port", String(freePort())];
    return watched(args, { DATABASE_URL: join(tmp.dir, "app.db"), LOG_LEVEL: "info", ...env });
  };

  // The backoff is the supervisor's own (its database is an SQLite file on both engines): run once, with SQLite.
  test.skipIf(testEngine === "pg")(
    "a worker that keeps dying before it is ready is restarted after 100, 200, 400, 800, 1600 ms, then the supervisor gives up with exit 1",
    async () => {
      const sup = oneWorker();
      // Kill every HTTP worker the moment the supervisor reports it started, before it can listen.
      const killed = new Set<number>();
      const t0 = performance.now();
      while (sup.proc.exitCode === null && performance.now() - t0 < 30_000) {
        for (const e of sup.events()) {
          if (e.msg === "worker started" && !killed.has(e.worker_pid)) {
            killed.add(e.worker_pid);
            try {
              process.kill(e.worker_pid, "SIGKILL");
            } catch {
              // Already gone.
            }
          }
        }
        await Bun.sleep(5);
      }
      expect(await sup.proc.exited).toBe(1);
      const delays = sup
        .events()
        .filter((e) => e.msg === "worker exited; restarting")
        .map((e) => e.restart_in_ms);
      expect(delays).toEqual([100, 200, 400, 800, 1600]);
      expect(sup.events().some((e) => e.msg === "worker keeps failing before it is ready; giving up" && e.attempts === 6)).toBe(true);
      expect(performance.now() - t0).toBeGreaterThan(3100);
      expect(sup.stderr()).not.toMatch(/\n\s+at /);
    },
  );

  // Engine-neutral (the environment of the processes): run once, with SQLite.
  test.skipIf(testEngine === "pg")(
    "sync workers start with mimalloc's purge delay of SYNC_MALLOC_PURGE_DELAY (default -1: freed memory kept); HTTP workers with HTTP_MALLOC_PURGE_DELAY (default 10000) and holes not purged, and JSC's top tier off unless HTTP_JIT_TOP_TIER=on",
    async () => {
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      const env: Record<string, string> = {
        DATABASE_URL: join(tmp.dir, "app.db"),
        LOG_LEVEL: "info",
        SYNC_SCHEDULER: "false",
        SYNC_SOURCE: "demo",
      };
      const purgeDelays = async (extra: Record<string, string>) => {
        const sup = watched(["--workers", "1", "--sync-workers", "1", "--host", "127.0.0.1", "--port", String(freePort())], {
          ...env,
          ...extra,
        });
        const deadline = performance.now() + 30_000;
        let started: Record<string, any>[] = [];
        while (started.length < 2 && performance.now() < deadline) {
          started = sup.events().filter((e) => e.msg === "worker started");
          await Bun.sleep(20);
        }
        // The child's environment as exec'd (SITESYNC_ROLE is in it once the worker's own program runs).
        const environ = async (pid: number) => {
          for (let v = ""; performance.now() < deadline; await Bun.sleep(20)) {
            v = readFileSync(`/proc/${pid}/environ`, "utf8");
            if (v.includes("SITESYNC_ROLE=")) return v.split("\0");
          }
          throw new Error(`worker ${pid} did not start:\n${sup.stderr()}`);
        };
        const out: Record<string, string | undefined> = {};
        for (const e of started) {
          const vars = await environ(e.worker_pid);
          out[e.role] = vars.find((v) => v.startsWith("MIMALLOC_PURGE_DELAY="))?.slice(21);
          out[`${e.role} ftl`] = vars.find((v) => v.startsWith("BUN_JSC_useFTLJIT="))?.slice(18);
          out[`${e.role} holes`] = vars.find((v) => v.startsWith("MIMALLOC_PURGE_HOLES="))?.slice(21);
        }
        sup.proc.kill("SIGTERM");
        expect(await sup.proc.exited).toBe(0);
        return out;
      };
      // Sync workers get this process's holes setting and JSC's top tier (normally nothing: the defaults).
      const holes = process.env.MIMALLOC_PURGE_HOLES;
      const ftl = process.env.BUN_JSC_useFTLJIT;
      expect(await purgeDelays({})).toEqual({
        http: "10000",
        sync: "-1",
        "http ftl": "0",
        "sync ftl": ftl,
        "http holes": "0",
        "sync holes": holes,
      });
      expect(await purgeDelays({ SYNC_MALLOC_PURGE_DELAY: "25", HTTP_MALLOC_PURGE_DELAY: "-1", HTTP_JIT_TOP_TIER: "on" })).toEqual({
        http: "-1",
        sync: "25",
        "http ftl": ftl,
        "sync ftl": ftl,
        "http holes": "0",
        "sync holes": holes,
      });
    },
  );

  // Run once, with SQLite, as above. The two young workers are killed the moment they are started (as above, not
  // once they listen): their lives stay a few milliseconds at any load, so BACKOFF_RESET_MS (default 10 s) can be
  // short here, 3 s, and the third worker outlives it by the wait below.
  test.skipIf(testEngine === "pg")(
    "the backoff doubles for a worker that dies young and resets once it lived over BACKOFF_RESET_MS",
    async () => {
      const sup = oneWorker({ BACKOFF_RESET_MS: "3000" });
      const readyPid = async (notPid?: number) => {
        const deadline = performance.now() + 20_000;
        while (performance.now() < deadline) {
          const e = sup.events().findLast((x) => x.msg === "http worker listening");
          if (e && e.pid !== notPid) return e.pid as number;
          await Bun.sleep(20);
        }
        throw new Error(`no worker got ready:\n${sup.stderr()}`);
      };
      /** Kills the n-th started worker the moment the supervisor reports it started. */
      const killStarted = async (n: number) => {
        const deadline = performance.now() + 20_000;
        while (performance.now() < deadline) {
          const e = sup.events().filter((x) => x.msg === "worker started")[n];
          if (e) return process.kill(e.worker_pid, "SIGKILL");
          await Bun.sleep(5);
        }
        throw new Error(`worker ${n} never started:\n${sup.stderr()}`);
      };
      const restarts = () =>
        sup
          .events()
          .filter((e) => e.msg === "worker exited; restarting")
          .map((e) => e.restart_in_ms);
      await killStarted(0);
      await killStarted(1);
      const pid = await readyPid();
      expect(restarts()).toEqual([100, 200]);
      await Bun.sleep(3_500);
      process.kill(pid, "SIGKILL");
      await readyPid(pid);
      expect(restarts()).toEqual([100, 200, 0]);
      sup.proc.kill("SIGTERM");
      expect(await sup.proc.exited).toBe(0);
    },
  );
});

describe("`bun run start`", () => {
  test("SIGKILL of the `bun run` wrapper: the supervisor notices it was orphaned and shuts down cleanly", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const port = freePort();
    const pgdb = testEngine === "pg" ? newPgDatabase({ migrated: false }) : null;
    if (pgdb) cleanups.push(pgdb.drop);
    const dbPath = pgdb?.url ?? join(tmp.dir, "app.db");
    const lockPath = portLockPath("127.0.0.1", port);
    const wrapper = Bun.spawn(
      [process.execPath, "run", "start", "--workers", "1", "--sync-workers", "0", "--port", String(port), "--host", "127.0.0.1"],
      {
        cwd: root,
        env: { ...process.env, DATABASE_URL: dbPath, LOG_LEVEL: "warn" },
        stdout: "ignore",
        stderr: "ignore",
      },
    );
    cleanups.push(() => wrapper.kill("SIGKILL"));
    const base = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 400 && !up; i++) {
      up = (await fetch(`${base}/health`).then(
        (r) => r.status === 200,
        () => false,
      )) as boolean;
      if (!up) await Bun.sleep(50);
    }
    expect(up).toBe(true);
    const supervisorPid = JSON.parse(await Bun.file(lockPath).text()).pid as number;
    expect(supervisorPid).not.toBe(wrapper.pid);
    cleanups.push(() => {
      try {
        process.kill(supervisorPid, "SIGKILL");
      } catch {
        // Gone, as it should be.
      }
    });
    wrapper.kill("SIGKILL");
    await wrapper.exited;
    let alive = true;
    for (let i = 0; i < 300 && alive; i++) {
      await Bun.sleep(50);
      try {
        process.kill(supervisorPid, 0);
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
    expect(
      await fetch(`${base}/health`).then(
        () => "answered",
        () => "refused",
      ),
    ).toBe("refused");
    // It shut down the normal way: its lock files are gone.
    expect(await Bun.file(lockPath).exists()).toBe(false);
    if (!pgdb) expect(await Bun.file(`${dbPath}.lock`).exists()).toBe(false);
  });
});

/** A supervisor whose JSON log lines on stderr are collected as they come. */
function watched(args: string[], env: Record<string, string>) {
  const proc = supervisor(args, env);
  let err = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) err += dec.decode(chunk);
  })();
  return {
    proc,
    stderr: () => err,
    events: () =>
      err
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, any>),
  };
}

describe.skipIf(testEngine === "sqlite")("the PostgreSQL server goes away under a running instance", () => {
  test("workers answer /health 503 unhealthy and writes 503, the instance stays up and a worker restarted meanwhile starts; back: writes work again", async () => {
    const pgdb = newPgDatabase({ migrated: false });
    cleanups.push(pgdb.drop);
    const proxy = await tcpProxy(new URL(pgdb.url));
    cleanups.push(() => proxy.stop());
    const url = new URL(pgdb.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const s = await startServer({ workers: 2, dbPath: url.toString(), env: { WRITE_LOCK_TIMEOUT_MS: "1500", LOG_LEVEL: "info" } });
    cleanups.push(s.cleanup);
    const fresh = { connection: "close" };
    expect((await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:before.example", name: "Before" })).status).toBe(201);

    proxy.stop();
    const down = await until("/health to say unhealthy", async () => {
      const h = await request(s.url, "GET", "/health", undefined, fresh);
      return h.status === 503 ? h : null;
    });
    expect(down.body).toMatchObject({ status: "unhealthy", database_connected: false, connection_info: null });
    expect(down.body.reasons).toEqual([expect.stringMatching(/^the PostgreSQL server cannot be reached: /)]);
    const refused = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:during.example", name: "During" });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("unavailable");

    // A worker that dies while the server is away is restarted and starts (no connection is needed to start).
    const before = childPids(s.proc.pid);
    expect(before).toHaveLength(2);
    process.kill(before[0]!, "SIGKILL");
    const restarted = await until("a new HTTP worker", () => childPids(s.proc.pid).find((p) => !before.includes(p)));
    await until("the restarted worker to answer /health (503)", async () => {
      const h = await request(s.url, "GET", "/health", undefined, fresh).catch(() => null);
      return h?.status === 503 && h.body.process_id === restarted ? h : null;
    });
    expect(s.proc.exitCode).toBeNull();
    expect(s.output()).not.toContain("giving up");

    await proxy.start();
    const up = await until("/health to answer 200 again", async () => {
      const h = await request(s.url, "GET", "/health", undefined, fresh);
      return h.status === 200 ? h : null;
    });
    // Degraded while the failed writes are recent (30 s), on the worker that saw them; healthy elsewhere.
    expect(["healthy", "degraded"]).toContain(up.body.status);
    // Every process registers again, the restarted worker too (its first registration failed).
    expect(s.output()).toContain("cannot register in db_connections yet");
    const listed = await until("the supervisor and both HTTP workers to be registered", async () => {
      const h = await request(s.url, "GET", "/health", undefined, fresh);
      const pids = ((h.body.connection_info?.processes ?? []) as { pid: number }[]).map((p) => p.pid).sort((a, b) => a - b);
      const want = [s.proc.pid, ...childPids(s.proc.pid)].sort((a, b) => a - b);
      return JSON.stringify(pids) === JSON.stringify(want) ? pids : null;
    });
    expect(listed).toContain(restarted);
    expect((await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:after.example", name: "After" })).status).toBe(201);
    const domains = await withDb(pgdb.url, async (h) => (await h.q.select({ d: h.t.sites.domain }).from(h.t.sites)).map((r) => r.d).sort());
    expect(domains).toEqual(["sc-domain:after.example", "sc-domain:before.example"]);
  });
});

/** Polls `f` until it returns something truthy (20 s at most). */
async function until<T>(what: string, f: () => T | Promise<T>): Promise<NonNullable<T>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}
