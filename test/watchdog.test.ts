import { Database } from "bun:sqlite";
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { testEngine } from "./helpers/db.ts";
import { withDb } from "./helpers/observe.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

// The watchdog: a worker stopped while it holds the write lock (SIGSTOP, a debugger, a stuck system
// call) would freeze every write of every process; the supervisor kills it and the others go on.
// On PostgreSQL there is no single write lock to freeze: the others' writes never stop, and the
// watchdog still kills and restarts the silent worker.

setDefaultTimeout(90_000);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const WATCHDOG_MS = 2000;

/** Writers creating sites as fast as they are answered (or `gapMs` apart); each ack is recorded with its time. */
function writeLoad(url: string, clients: number, gapMs = 0) {
  const acks: { domain: string; at: number }[] = [];
  let stop = false;
  let n = 0;
  // pause(): each client parks before its next request until resume().
  let gate: PromiseWithResolvers<void> | null = null;
  let parked = 0;
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      if (gate) {
        parked++;
        await gate.promise;
        parked--;
        continue;
      }
      const domain = `sc-domain:w${n++}.example`;
      const r = await request(url, "POST", "/api/v1/sites", { domain, name: "W" }).catch(() => null);
      if (r?.status === 201) acks.push({ domain, at: performance.now() });
      else if (r === null) await Bun.sleep(5);
      if (gapMs > 0) await Bun.sleep(gapMs);
    }
  });
  return {
    acks,
    /** Stops sending; resolves once every client's request in flight is answered. */
    async pause() {
      gate ??= Promise.withResolvers<void>();
      while (parked < clients) await Bun.sleep(5);
    },
    resume() {
      gate?.resolve();
      gate = null;
    },
    async stop() {
      stop = true;
      this.resume();
      await Promise.all(loops);
    },
  };
}

/** True when the write lock stays taken for `ms` (probed without waiting from this process). */
function lockStaysTaken(path: string, ms: number): boolean {
  const probe = new Database(path);
  probe.run("PRAGMA busy_timeout = 0");
  try {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      try {
        probe.run("BEGIN IMMEDIATE");
        probe.run("ROLLBACK");
        return false;
      } catch {
        Bun.sleepSync(1);
      }
    }
    return true;
  } finally {
    probe.close();
  }
}

/**
 * The pid holding the write lock of the SQLite file at `path` (in WAL mode: a POSIX lock on byte 120 of its -shm
 * file, which /proc/locks lists with its owner), or null (none, or no /proc/locks).
 */
function writeLockOwner(path: string): number | null {
  try {
    const ino = statSync(`${path}-shm`).ino;
    const m = new RegExp(`^\\d+: POSIX +ADVISORY +WRITE (\\d+) [0-9a-f]+:[0-9a-f]+:${ino} 120 120$`, "m").exec(
      readFileSync("/proc/locks", "utf8"),
    );
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The one of `pids` seen holding the write lock within `ms` (looked up without waiting for the lock), or null. */
async function untilHeldByOneOf(path: string, pids: number[], ms: number): Promise<number | null> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const owner = writeLockOwner(path);
    if (owner !== null && pids.includes(owner)) return owner;
    await Bun.sleep(1);
  }
  return null;
}

/**
 * SIGSTOPs one of `pids` at a moment it holds the write lock; returns its pid and the stop time. Each try stops the
 * one seen holding it (/proc/locks), waiting up to `waitMs` for that, else the next in turn; holds are short (a group
 * commit), so a try may still miss.
 */
async function stopLockHolder(s: RunningServer, pids: number[], attempts: number, role: string, waitMs: number) {
  for (let i = 0; i < attempts; i++) {
    const pid = (await untilHeldByOneOf(s.dbPath, pids, waitMs)) ?? pids[i % pids.length]!;
    try {
      process.kill(pid, "SIGSTOP");
    } catch {
      // On a loaded machine the short stops of earlier tries can add up to a silence the watchdog (rightly)
      // ended: that worker was restarted under a new pid. Try the current ones.
      pids = await pidsOf(s, role);
      continue;
    }
    const at = performance.now();
    // The probe blocks this event loop: answers read right after it may have been sent before the stop.
    if (lockStaysTaken(s.dbPath, 300)) return { pid, at, probedUntil: performance.now() + 50, attempts: i + 1 };
    process.kill(pid, "SIGCONT");
    // Let it answer a ping (every WATCHDOG_MS/5) before it is stopped again, or these short stops add
    // up to a silence the watchdog (rightly) ends.
    await Bun.sleep(pids.length === 1 ? WATCHDOG_MS / 5 + 300 : 30 + Math.random() * 40);
  }
  return null;
}

async function pidsOf(s: RunningServer, role: string): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const c = await request(s.url, "GET", "/api/v1/diagnostics/connections");
    const pids = (c.body.processes as { pid: number; role: string }[]).filter((p) => p.role === role).map((p) => p.pid);
    if (pids.length > 0) return pids;
    await Bun.sleep(50);
  }
  throw new Error(`no ${role} process registered`);
}

/**
 * The load goes on until the supervisor has logged the killed worker's restart, at least 200 ms and at most 1 s
 * (it ran a fixed 1 s of 16 clients creating flat out: this file runs alone, so its wall is the suite's).
 */
async function untilRestarted(s: RunningServer) {
  const t0 = performance.now();
  await Bun.sleep(200);
  while (performance.now() - t0 < 1000 && !/"msg":"worker exited; restarting".*"signalCode":"SIGKILL"/.test(s.output()))
    await Bun.sleep(20);
}

/** How long after the stop the first write was acknowledged (counting only answers read after the probe). */
function stallAfter(acks: { at: number }[], stop: { at: number; probedUntil: number }) {
  const first = Math.min(...acks.map((a) => a.at).filter((t) => t > stop.probedUntil));
  return first - stop.at;
}

describe("watchdog", () => {
  const holders = [
    { role: "sync", name: "a sync worker in the middle of a large ingest batch", attempts: 30 },
    { role: "http", name: "an HTTP worker in the middle of a group commit", attempts: 200 },
  ];
  for (const h of holders) {
    test.skipIf(testEngine === "pg")(
      `SIGSTOP of ${h.name} that holds the write lock: killed within the bound, the others' writes resume, no acknowledged write lost`,
      async () => {
        const s = await startServer({
          workers: 3,
          syncWorkers: h.role === "sync" ? 1 : 0,
          env: {
            WATCHDOG_TIMEOUT_MS: String(WATCHDOG_MS),
            WRITE_LOCK_TIMEOUT_MS: "30000",
            SYNC_SOURCE: "demo",
            DEMO_ROWS_PER_DAY: "20000",
            SYNC_BATCH_SIZE: "10000",
            SYNC_WRITE_GAP_MS: "0",
            SYNC_SCHEDULER: "false",
          },
        });
        cleanups.push(s.cleanup);
        if (h.role === "sync") {
          const site = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:big.example", name: "Big" });
          expect((await request(s.url, "POST", `/api/v1/sync/trigger/${site.body.id}?days=30`)).status).toBe(202);
        }
        const pids = await pidsOf(s, h.role);
        const load = writeLoad(s.url, 16);
        cleanups.push(() => load.stop());
        while (load.acks.length < 100) await Bun.sleep(10);

        // The sync worker is caught with the writers paused (their load is not needed to catch it, and a sync gives
        // way to requests in flight: it took 3-11 tries of 0.7 s each under 16 writers); they resume at once, so
        // their writes meet the stopped holder's lock as before. An HTTP worker holds the lock only for the load's commits.
        if (h.role === "sync") await load.pause();
        const stopped = await stopLockHolder(s, pids, h.attempts, h.role, h.role === "sync" ? 5000 : 200);
        load.resume();
        if (!stopped) {
          // Lock holds are short and the machine is shared: say so rather than pass without checking.
          throw new Error(`never caught a ${h.role} worker holding the write lock in ${h.attempts} tries`);
        }
        cleanups.push(() => {
          try {
            process.kill(stopped.pid, "SIGCONT");
          } catch {
            // Killed by the watchdog, as expected.
          }
        });
        // The others' writes wait (they retry up to WRITE_LOCK_TIMEOUT_MS), then go on once it is killed.
        const deadline = stopped.at + WATCHDOG_MS + 10_000;
        while (performance.now() < deadline && !load.acks.some((a) => a.at > stopped.probedUntil)) await Bun.sleep(20);
        await untilRestarted(s);
        await load.stop();

        const out = s.output();
        const killed = out
          .split("\n")
          .filter((l) => l.includes('"msg":"worker not answering; killing it"'))
          .map((l) => JSON.parse(l));
        expect(killed.map((k) => k.worker_pid)).toContain(stopped.pid);
        const stall = stallAfter(load.acks, stopped);
        console.log(
          `${h.role} holder pid ${stopped.pid} caught after ${stopped.attempts} tries; writes stalled ${Math.round(stall)} ms after its SIGSTOP ` +
            `(watchdog ${WATCHDOG_MS} ms); ${load.acks.length} writes acknowledged`,
        );
        // Writes really stood still until the watchdog acted (the stopped worker held the lock): its silence
        // counts from its last answer, up to one ping interval (WATCHDOG_MS/5) before the stop, so the stall
        // is at least about WATCHDOG_MS - WATCHDOG_MS/5; far longer than any normal write anyway.
        expect(stall).toBeGreaterThan(WATCHDOG_MS / 2);
        // ...and resumed within the bound: silence past WATCHDOG_MS, pings every WATCHDOG_MS/5, plus a shared machine's noise.
        expect(stall).toBeLessThan(WATCHDOG_MS + WATCHDOG_MS / 5 + 3000);

        // Restarted: the supervisor is still up and every acknowledged write is in the file.
        expect(out).toMatch(/"msg":"worker exited; restarting".*"signalCode":"SIGKILL"/);
        const have = await domainsIn(s.dbPath);
        expect(load.acks.filter((a) => !have.has(a.domain))).toEqual([]);
        expect((await request(s.url, "GET", "/health")).status).toBe(200);
      },
    );
  }

  test.skipIf(testEngine === "sqlite")(
    "SIGSTOP of an HTTP worker under a write load (PostgreSQL: no single write lock): the others' writes go on, it is killed within the bound and restarted, no acknowledged write lost",
    async () => {
      const s = await startServer({ workers: 3, env: { WATCHDOG_TIMEOUT_MS: String(WATCHDOG_MS), WRITE_LOCK_TIMEOUT_MS: "30000" } });
      cleanups.push(s.cleanup);
      const pids = await pidsOf(s, "http");
      const [pid] = pids;
      // 16 writers (some on the stopped worker's connections), each 20 ms apart: flat out they sent ~3,000 writes
      // while it was stopped where the check needs 20, all of them CPU (this process's, the workers', the server's).
      const load = writeLoad(s.url, 16, 20);
      cleanups.push(() => load.stop());
      while (load.acks.length < 100) await Bun.sleep(10);
      process.kill(pid!, "SIGSTOP");
      const at = performance.now();
      cleanups.push(() => {
        try {
          process.kill(pid!, "SIGCONT");
        } catch {
          // Killed by the watchdog, as expected.
        }
      });
      const killedLine = () =>
        s
          .output()
          .split("\n")
          .find((l) => l.includes('"msg":"worker not answering; killing it"') && l.includes(`"worker_pid":${pid}`));
      while (performance.now() < at + WATCHDOG_MS + 10_000 && !killedLine()) await Bun.sleep(20);
      const killedAt = performance.now();
      await untilRestarted(s);
      await load.stop();
      expect(killedLine()).toBeDefined();
      // Silence past WATCHDOG_MS, pings every WATCHDOG_MS/5, plus a shared machine's noise.
      expect(killedAt - at).toBeLessThan(WATCHDOG_MS + WATCHDOG_MS / 5 + 3000);
      // The other workers' writes went on while it was stopped: the server locks rows, not the database.
      const during = load.acks.filter((a) => a.at > at + 200 && a.at < killedAt - 200).length;
      console.log(
        `http worker ${pid} stopped; killed after ${Math.round(killedAt - at)} ms; ${during} writes acknowledged meanwhile by the others; ${load.acks.length} in all`,
      );
      expect(during).toBeGreaterThan(20);
      expect(s.output()).toMatch(/"msg":"worker exited; restarting".*"signalCode":"SIGKILL"/);
      const have = await domainsIn(s.dbPath);
      expect(load.acks.filter((a) => !have.has(a.domain))).toEqual([]);
      expect((await request(s.url, "GET", "/health")).status).toBe(200);
      // The restarted worker registered; the killed one drops out of the registry once its heartbeat is old.
      let fresh: number[] = [];
      for (let i = 0; i < 100 && fresh.length === 0; i++) {
        fresh = (await pidsOf(s, "http")).filter((p) => !pids.includes(p));
        if (fresh.length === 0) await Bun.sleep(100);
      }
      expect(fresh).toHaveLength(1);
    },
  );

  test("WATCHDOG_TIMEOUT_MS=0 turns the watchdog off: a stopped worker is left alone", async () => {
    const s = await startServer({ workers: 1, env: { WATCHDOG_TIMEOUT_MS: "0" } });
    cleanups.push(s.cleanup);
    const [pid] = await pidsOf(s, "http");
    process.kill(pid!, "SIGSTOP");
    await Bun.sleep(2500);
    process.kill(pid!, "SIGCONT");
    expect((await request(s.url, "GET", "/health")).status).toBe(200);
    expect(s.output()).not.toContain("worker not answering");
  });
});

/** The domains of every site in the database (either engine). */
async function domainsIn(url: string): Promise<Set<string>> {
  return withDb(url, async (db) => new Set((await db.q.select({ domain: db.t.sites.domain }).from(db.t.sites)).map((r) => r.domain)));
}
