import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { cpuList } from "../src/config.ts";
import { allowedCpus, keepThreadsTo, threadIds } from "../src/sync/cpus.ts";
import { DayRows } from "../src/sync/keyed-rows.ts";
import {
  BUSY_MS,
  countRequests,
  createRequestSignal,
  giveWay,
  giveWayStats,
  holdingLock,
  SIGNAL_SLOTS,
  WRITE_UNIT,
  watchRequests,
} from "../src/sync/give-way.ts";
import { tempDb } from "./helpers/db.ts";
import { childPids } from "./helpers/procs.ts";
import { request, serviceFile, startServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/sync.ts";

// The sync worker as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceSyncWorker = await serviceFile("sync/worker-main.ts");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fresh shared file and a view of its slots as another process would map it. */
function signalFile(name: string) {
  const s = createRequestSignal(`test-${process.pid}-${name}`)!;
  cleanups.push(s.remove);
  const bytes = Bun.mmap(s.path);
  return { path: s.path, slots: new Int32Array(bytes.buffer, bytes.byteOffset, SIGNAL_SLOTS) };
}

describe("requests in flight shared with the sync workers (SYNC_GIVE_WAY)", () => {
  test("an HTTP worker's slot holds its requests in flight: up while a handler runs, down when it answers, rejects or throws", async () => {
    const { path, slots } = signalFile("count");
    slots[3] = 7; // left by a crashed predecessor in the same slot
    const pending: (() => void)[] = [];
    const fetch = countRequests(path, 3, (req: Request) => {
      if (req.url.endsWith("/throw")) throw new Error("boom");
      if (req.url.endsWith("/sync")) return new Response("now");
      if (req.url.endsWith("/reject")) return Promise.reject(new Error("no"));
      return new Promise<Response>((resolve) => pending.push(() => resolve(new Response("later"))));
    });
    expect(slots[3]).toBe(0);
    const a = fetch(new Request("http://x/a"));
    const b = fetch(new Request("http://x/b"));
    expect(slots[3]).toBe(2);
    expect(await (fetch(new Request("http://x/sync")) as Response).text()).toBe("now");
    expect(slots[3]).toBe(2);
    expect(() => fetch(new Request("http://x/throw"))).toThrow("boom");
    await expect(fetch(new Request("http://x/reject"))).rejects.toThrow("no");
    expect(slots[3]).toBe(2);
    pending.shift()!();
    await a;
    expect(slots[3]).toBe(1);
    pending.shift()!();
    expect(await (await b).text()).toBe("later");
    expect(slots[3]).toBe(0);
    // Other slots untouched; a slot out of range or a missing file: the handler itself, nothing counted.
    expect([...slots].filter((n, i) => i !== 3 && n !== 0)).toEqual([]);
    const own = (req: Request) => new Response(req.url);
    expect(countRequests(path, SIGNAL_SLOTS, own)).toBe(own);
    expect(countRequests(`${path}-missing`, 0, own)).toBe(own);
  });

  test("a request that may write counts WRITE_UNIT in its slot, a read 1", async () => {
    const { path, slots } = signalFile("writes");
    const pending: (() => void)[] = [];
    const fetch = countRequests(path, 2, () => new Promise<Response>((resolve) => pending.push(() => resolve(new Response("ok")))));
    const reads = ["GET", "HEAD", "OPTIONS"].map((method) => fetch(new Request("http://x/", { method })));
    expect(slots[2]).toBe(3);
    const writes = ["POST", "PUT", "PATCH", "DELETE"].map((method) => fetch(new Request("http://x/", { method })));
    expect(slots[2]).toBe(3 + 4 * WRITE_UNIT);
    for (const p of pending.splice(0, 3)) p();
    await Promise.all(reads);
    expect(slots[2]).toBe(4 * WRITE_UNIT);
    for (const p of pending.splice(0)) p();
    await Promise.all(writes);
    expect(slots[2]).toBe(0);
  });

  test("holding the write lock, the sync worker does not pause while a request that may write is in flight (it waits for that lock); reads only: it does", async () => {
    const { path, slots } = signalFile("holding");
    expect(watchRequests(path)).toBe(true);
    // Past any pause a test before left to work off (WORK_MS).
    Bun.sleepSync(5);
    const before = giveWayStats.pauses;
    slots[5] = WRITE_UNIT;
    await holdingLock(() => giveWay());
    expect(giveWayStats.pauses).toBe(before);
    // Outside the lock a write in flight is waited for like a read (the write may take the lock meanwhile).
    giveWay();
    expect(giveWayStats.pauses).toBe(before + 1);
    Bun.sleepSync(5);
    // Holding the lock with reads alone in flight: a pause, as before.
    slots[5] = 1;
    await holdingLock(async () => {
      await Promise.resolve();
      giveWay();
    });
    expect(giveWayStats.pauses).toBe(before + 2);
    slots[5] = 0;
  });

  test("a day's rows put in key order (DayRows.keyed: sorts, tens of ms at 50,000 rows) give way between their parts", () => {
    const { path, slots } = signalFile("keyed");
    expect(watchRequests(path)).toBe(true);
    // Past any pause a test before left to work off (WORK_MS).
    Bun.sleepSync(5);
    const day = new DayRows();
    for (let i = 0; i < 100; i++) day.push(i % 7, i, i % 3, 1, 2, 3);
    const before = giveWayStats.pauses;
    slots[9] = 1;
    const keyed = day.keyed();
    slots[9] = 0;
    expect(keyed.n).toBe(100);
    expect(giveWayStats.pauses).toBeGreaterThan(before);
  });

  test("a new supervisor's file replaces those of supervisors gone without removing theirs (SIGKILL), not a live one's", () => {
    const dir = dirname(signalFile("dir").path);
    const gone = join(dir, `sitesync-requests-${Bun.spawnSync(["true"]).pid}`);
    const live = join(dir, `sitesync-requests-${process.pid}`);
    writeFileSync(gone, new Uint8Array(1024));
    writeFileSync(live, new Uint8Array(1024));
    cleanups.push(
      () => rmSync(gone, { force: true }),
      () => rmSync(live, { force: true }),
    );
    signalFile("sweep");
    expect(existsSync(gone)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  test("the sync worker pauses while any slot has a request in flight, and a slot that never drops does not stop it", () => {
    const { path, slots } = signalFile("watch");
    const before = giveWayStats.pauses;
    // Not watching yet: never pauses.
    slots[0] = 1;
    giveWay();
    expect(giveWayStats.pauses).toBe(before);
    expect(watchRequests(path)).toBe(true);
    // Past any pause a test before left to work off (WORK_MS): the keyed test's pauses can reach MAX_PAUSE_MS, and
    // then giveWay does not pause again for WORK_MS (CI-6 of stop 41: no pause counted here).
    Bun.sleepSync(5);
    // A request in flight in any slot: one pause (bounded: the slot never drops here, and giveWay returns).
    slots[0] = 0;
    slots[200] = 1;
    giveWay();
    expect(giveWayStats.pauses).toBe(before + 1);
    expect(giveWayStats.ms).toBeGreaterThan(0);
    // Nothing in flight for longer than the grace: no pause.
    slots[200] = 0;
    Bun.sleepSync(5);
    giveWay();
    expect(giveWayStats.pauses).toBe(before + 1);
    expect(watchRequests(`${path}-missing`)).toBe(false);
  });

  test.skipIf(process.platform !== "linux" || allowedCpus().length < 2)(
    "while a sync worker works, every thread of an HTTP worker keeps off the sync's CPUs; once its stamp is old, back on all of them",
    () => {
      const { path } = signalFile("cpus");
      const bytes = Bun.mmap(path);
      const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
      const own = allowedCpus();
      const sync = own.at(-1)!;
      // Every thread's allowed CPUs (a thread that ended meanwhile left out).
      const threadsCpus = () =>
        threadIds().flatMap((t) => {
          try {
            return [cpuList(/Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${t}/status`, "utf8"))![1]!)];
          } catch {
            return [];
          }
        });
      cleanups.push(() => keepThreadsTo(own));
      const fetch = countRequests(path, 1, () => new Response("ok"));
      expect(watchRequests(path, [sync])).toBe(true);
      // No sync worker has worked yet: all CPUs.
      fetch(new Request("http://x/"));
      expect(allowedCpus()).toEqual(own);
      // The sync worker works (its check point stamps the file): the next request moves every thread off its CPU.
      giveWay();
      fetch(new Request("http://x/"));
      expect(allowedCpus()).toEqual(own.filter((c) => c !== sync));
      const threads = threadsCpus();
      expect(threads.length).toBeGreaterThan(1);
      for (const cpus of threads) expect(cpus).not.toContain(sync);
      // Its last stamp older than BUSY_MS (it stopped, or died): back on all of them at the next request.
      words[SIGNAL_SLOTS] = (Date.now() - BUSY_MS - 1000) & 0x7fffffff;
      fetch(new Request("http://x/"));
      expect(allowedCpus()).toEqual(own);
      for (const cpus of threadsCpus()) expect(cpus).toEqual(own);
    },
  );

  test("the supervisor makes the file for its HTTP and sync workers (each HTTP worker its slot; the sync worker marks its CPUs, none with SYNC_KEEP_OFF=false) and removes it when it stops; SYNC_GIVE_WAY=false: none", async () => {
    const environOf = (pid: number) =>
      Object.fromEntries(
        readFileSync(`/proc/${pid}/environ`, "utf8")
          .split("\0")
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
    const s = await startServer({ workers: 2, syncWorkers: 1, env: { SYNC_SCHEDULER: "false" } });
    cleanups.push(s.cleanup);
    expect((await request(s.url, "GET", "/api/v1/sites")).status).toBe(200);
    const envs = childPids(s.proc.pid).map(environOf);
    expect(envs).toHaveLength(3);
    const path = envs[0]!.SITESYNC_REQUEST_SIGNAL!;
    expect(path).toContain(`sitesync-requests-${s.proc.pid}`);
    expect(existsSync(path)).toBe(true);
    expect(envs.every((e) => e.SITESYNC_REQUEST_SIGNAL === path)).toBe(true);
    expect(
      envs
        .filter((e) => e.SITESYNC_ROLE === "http")
        .map((e) => e.SITESYNC_SLOT)
        .sort(),
    ).toEqual(["0", "1"]);
    // The sync worker (kept to the last CPU: SYNC_CPUS auto) marked its CPU in the file for the HTTP workers to keep off.
    const words = () => {
      const bytes = Bun.mmap(path);
      return [...new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2).slice(SIGNAL_SLOTS + 1)];
    };
    const own = allowedCpus();
    if (own.length >= 2) {
      const last = own.at(-1)!;
      await waitFor("the sync worker to mark its CPU", () => words().some((w) => w !== 0) || null);
      expect(words()[last >> 5]).toBe(1 << (last & 31));
    }
    await s.stop();
    expect(existsSync(path)).toBe(false);

    // SYNC_KEEP_OFF=false: the file, but no CPU marked (the HTTP workers keep to every CPU).
    const keepOn = await startServer({
      workers: 1,
      syncWorkers: 1,
      env: { SYNC_SCHEDULER: "false", SYNC_KEEP_OFF: "false", LOG_LEVEL: "info" },
    });
    cleanups.push(keepOn.cleanup);
    await waitFor("the sync worker to start", () => keepOn.output().includes("sync worker started") || null);
    const keepOnPath = environOf(childPids(keepOn.proc.pid)[0]!).SITESYNC_REQUEST_SIGNAL!;
    const bytes = Bun.mmap(keepOnPath);
    expect([...new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2).slice(SIGNAL_SLOTS + 1)].every((w) => w === 0)).toBe(
      true,
    );
    await keepOn.stop();

    const off = await startServer({ workers: 1, syncWorkers: 1, env: { SYNC_SCHEDULER: "false", SYNC_GIVE_WAY: "false" } });
    cleanups.push(off.cleanup);
    expect(childPids(off.proc.pid).map((p) => environOf(p).SITESYNC_REQUEST_SIGNAL)).toEqual([undefined, undefined]);
  });
});

describe("SYNC_CPUS", () => {
  const cpusOf = (pid: number, tid: number) =>
    /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8"))![1]!;
  /** Every thread's CPU list (a thread that ended meanwhile left out). */
  const threadCpus = (pid: number) =>
    readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        return [cpusOf(pid, Number(tid))];
      } catch {
        return [];
      }
    });

  test("every thread of the sync worker keeps to the listed CPUs; all, or auto run alone: every CPU it may use", async () => {
    const own = cpusOf(process.pid, process.pid);
    const t = tempDb();
    cleanups.push(t.cleanup);
    const pinned = await syncWorkerAlone(t.databaseUrl, { SYNC_CPUS: "0" });
    const lists = threadCpus(pinned);
    expect(lists.length).toBeGreaterThan(1);
    expect(new Set(lists)).toEqual(new Set(["0"]));
    for (const SYNC_CPUS of ["all", "auto"]) {
      const free = await syncWorkerAlone(t.databaseUrl, { SYNC_CPUS });
      expect(cpusOf(free, free)).toBe(own);
    }
  });

  test("auto (the default): a supervised sync worker keeps to the last CPU it may use, the HTTP workers to all of them", async () => {
    const own = cpuList(cpusOf(process.pid, process.pid));
    const s = await startServer({ workers: 1, syncWorkers: 1, env: { SYNC_SCHEDULER: "false", LOG_LEVEL: "info" } });
    cleanups.push(s.cleanup);
    await waitFor("the sync worker to start", () => s.output().includes("sync worker started") || null);
    const isSync = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("worker-main");
    const children = childPids(s.proc.pid);
    const sync = children.find(isSync)!;
    const http = children.find((p) => !isSync(p))!;
    expect(new Set(threadCpus(sync))).toEqual(new Set([own.length < 2 ? cpusOf(process.pid, process.pid) : String(own.at(-1))]));
    expect(cpusOf(http, http)).toBe(cpusOf(process.pid, process.pid));
  });
});

/** Runs the sync worker alone (`src/sync/worker-main.ts`) on `url` until it logged that it started; returns its pid. */
async function syncWorkerAlone(url: string, env: Record<string, string>): Promise<number> {
  const proc = Bun.spawn([process.execPath, serviceSyncWorker], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "info", SYNC_SCHEDULER: "false", SYNC_SOURCE: "demo", ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  cleanups.push(async () => {
    proc.kill("SIGTERM");
    await proc.exited;
  });
  let out = "";
  void (async () => {
    for await (const c of proc.stderr) out += new TextDecoder().decode(c);
  })();
  await waitFor("the sync worker to start", () => out.includes("sync worker started") || null, 30_000);
  return proc.pid;
}
