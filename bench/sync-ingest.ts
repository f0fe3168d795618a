// `bun bench/sync-ingest.ts [--days 30] [--rows 2000] [--runs 3] [--batch 250] [--bulk 5000] [--atomic 10000] [--database postgres://…]`: the ingest
// speed of the sync engine. One site, one daily_sync of `days` days from the demo source (`rows` rows per
// day and search type, so days × rows × 4 rows in all), run by one worker in this process; prints rows/s
// per run and the median. Default: a fresh SQLite file in a temp dir; with --database, an EMPTY
// PostgreSQL database (migrated here, its tables truncated before each run).
import { dlopen, ptr } from "bun:ffi";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, getPriority, loadavg, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { spawnUntilReady } from "../scripts/spawn-ready.ts";
import { freePort } from "../src/free-port.ts";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { cpuList, defaults } from "../src/config.ts";
import { keepThreadsTo } from "../src/sync/cpus.ts";
import { demoSource } from "../src/sync/demo.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { createGscClient } from "../src/sync/gsc/client.ts";
import { searchTypes, typeRules } from "../src/sync/search-types.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { startWorker } from "../src/sync/worker.ts";
import { BUSY_MS } from "../src/sync/give-way.ts";

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "30" },
    rows: { type: "string", default: "2000" },
    runs: { type: "string", default: "3" },
    batch: { type: "string", default: "250" },
    // SYNC_BULK_BATCH_SIZE: rows per write while the worker writes alone (0: always --batch).
    bulk: { type: "string", default: "5000" },
    // SYNC_ATOMIC_DAY_ROWS: days with at most this many detail rows go in one transaction with their totals (0: all staged,
    // then switched; default: the engine's, src/sync/worker.ts defaultAtomicDayRows).
    atomic: { type: "string" },
    database: { type: "string" },
    // --served: the real service and the fake Search Console as processes (see served() below).
    served: { type: "boolean", default: false },
    web: { type: "string", default: "50000" },
    // The fake's answer time per search-analytics request (ms): Google's latency.
    latency: { type: "string", default: "0" },
    // GETs a second from the other client: 100 gives ~700 busy GETs in a quiet `--days 6 --rounds 3` (p99 = the 7th worst).
    rps: { type: "string", default: "100" },
    "idle-seconds": { type: "string", default: "5" },
    // --served: creates a second (POST /api/v1/sites, paced, beside the GETs) in every idle window and backfill, their
    // latency printed apart: a write waits for the sync's write lock where a GET does not (0: none).
    creates: { type: "string", default: "0" },
    // --served: idle windows and backfills of --days days alternate this many times (then one more idle window).
    rounds: { type: "string", default: "1" },
    // SYNC_NICE of the service (default: the service's own default).
    "sync-nice": { type: "string" },
    // The fake builds and serialises every answer again instead of sending the first day's bytes again.
    "fake-fresh": { type: "boolean", default: false },
    // The same for the fake Search Console (it is not part of a real deployment: Google's CPU is elsewhere).
    "fake-nice": { type: "string" },
    // A custom kernel scheduling slice for the sync / HTTP worker's threads (see setSlice in served()).
    "sync-slice-us": { type: "string" },
    "http-slice-us": { type: "string" },
    // The sync worker's threads' scheduling policy, set from here (chrt -a): "idle" (SCHED_IDLE: a waking thread of
    // any other policy takes its core at once) or "batch"; default: the service's own.
    "sync-policy": { type: "string" },
    // CPUs (taskset list, e.g. "1") every thread of the sync worker / HTTP worker may run on, set from here.
    "sync-cpus": { type: "string" },
    "http-cpus": { type: "string" },
    // --served: CPUs (a list, e.g. "0") this process's own threads (the GETs' client) keep to once the service and the
    // fake have started, as a client on another host would never wait for the sync's core: what the GETs' p99 owes to
    // the client sharing the service's host (default: every CPU, as before).
    "client-cpus": { type: "string" },
    // The sync worker's scheduling group's nice (/proc/<pid>/autogroup; its own session's group, SYNC_NICE > 0), set from
    // here (lowering it needs root): what weight its group has against the host's other busy groups.
    "sync-group-nice": { type: "string" },
    // --served: after a warm-up round, rounds alternate A B B A ... (A: the sync worker on every CPU) and B (the --sync-cpus /
    // --sync-policy / --sync-slice-us / --http-cpus above, set from here before each B round and undone before each A
    // round): before/after in one run, the idle windows shared, so the load of the moment weighs on both alike.
    ab: { type: "boolean", default: false },
    // --served: every GET (ms, start, window, the HTTP worker's and the client's threads' ms on and waiting for a core)
    // and every stall of the meter written to this JSON file, to look at again.
    save: { type: "string" },
  },
});
const days = Number(args.days);
const rowsPerDay = Number(args.rows);
const runs = Number(args.runs);
const rounds = Number(args.rounds);
setLogLevel("warn");
/** Linux x86-64's sched_setattr system call number. */
const SYS_SCHED_SETATTR = 314;
// Issue 18 item 3's targets (--served prints the verdict), and the resamples behind the p99s' spread.
const RATE_TARGET = 100_000;
const RATIO_TARGET = 1.5;
const RESAMPLES = 1000;
/** GETs per resampled block: 1 s at --rps 100. */
const BLOCK = 100;

async function oneRun(db: Db, run: number): Promise<number> {
  const domain = `sc-domain:ingest-${run}-${Date.now()}.bench.example`;
  const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
  // Old enough to be final (marked), like a backfill.
  const end = addDays(dayOf(new Date()), -10);
  const task = await createTask(db, {
    siteId: site,
    taskType: "daily_sync",
    startDate: addDays(end, -(days - 1)),
    endDate: end,
    params: { sync_mode: "overwrite" },
    runAt: new Date(),
    maxAttempts: 1,
  });
  const started = performance.now();
  const worker = startWorker({
    db,
    source: demoSource(rowsPerDay),
    pollMs: 5,
    leaseMs: 60_000,
    retryBaseMs: 1000,
    batchSize: Number(args.batch),
    bulkBatchSize: Number(args.bulk),
    atomicDayRows: args.atomic === undefined ? undefined : Number(args.atomic),
  });
  for (;;) {
    const job = await findJob(db, task.id);
    if (job && job.status !== "pending" && job.status !== "running") {
      if (job.status !== "completed") throw new Error(`task ${job.status}: ${job.error}`);
      break;
    }
    await Bun.sleep(5);
  }
  const seconds = (performance.now() - started) / 1000;
  await worker.stop();
  const rows = days * rowsPerDay * 4;
  const rate = rows / seconds;
  console.log(`run ${run}: ${rows} rows in ${seconds.toFixed(2)} s = ${Math.round(rate)} rows/s`);
  return rate;
}

if (args.served) {
  await served();
  process.exit(0);
}

let db: Db;
let cleanup: () => Promise<void> | void;
if (args.database) {
  await migratePg(args.database);
  db = openPgDb({ url: args.database, role: "test" });
  await db.tx((tx) =>
    tx.execute(
      sql`truncate sites, sync_tasks, gsc_query_detail, gsc_day_query_totals, gsc_pages, gsc_synced_days, gsc_queries restart identity cascade`,
    ),
  );
  cleanup = () => db.close();
} else {
  const dir = mkdtempSync(join(tmpdir(), "sitesync-ingest-"));
  const path = join(dir, "app.db");
  migrate(path);
  db = openDb({ path, role: "test" });
  cleanup = () => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  };
}
console.log(
  `${db.engine}: daily_sync of ${days} days × ${rowsPerDay} rows × 4 search types, batches of ${args.batch} (${args.bulk} while alone)`,
);
const rates: number[] = [];
for (let i = 1; i <= runs; i++) rates.push(await oneRun(db, i));
rates.sort((a, b) => a - b);
console.log(`median: ${Math.round(rates[Math.floor(rates.length / 2)]!)} rows/s`);
await cleanup();
process.exit(0);

// --served: the real service (`bun src/main.ts`, one HTTP worker and one sync worker process) on a fresh
// SQLite file, the fake Search Console in a process of its own (`--web` rows per day in pages of 25,000;
// its CPU is not the sync's), and this process as the other client: paced GETs (`--rps`) for
// `--idle-seconds` before each backfill and all through it, `--rounds` times, and once more after the last, so the
// API's p50/p99 idle and during ingest come from the same run, windows alternating (a 3-4 s backfill gives
// ~200 busy GETs, its p99 the 2nd worst: take --rounds 4 or more for a ratio). The sync worker's CPU is read
// from /proc (user + system), per stored row.
async function served(): Promise<void> {
  const root = join(import.meta.dir, "..");
  const web = Number(args.web);
  const dir = mkdtempSync(join(tmpdir(), "sitesync-ingest-served-"));
  const procs: { stop: () => Promise<number | null> }[] = [];
  try {
    const fake = await spawnUntilReady([process.execPath, join(root, "test/helpers/fake-gsc.ts")], {
      cwd: root,
      env: {
        ...process.env,
        LOG_LEVEL: "warn",
        FAKE_GSC_ROWS: JSON.stringify({ web }),
        FAKE_GSC_DAILY_ROW_CAP: String(Math.max(50_000, web * 2)),
        // Each answer page serialised once, sent again for every day (--fake-fresh: built for each request).
        ...(args["fake-fresh"] ? {} : { FAKE_GSC_REUSE_BODIES: "1" }),
        FAKE_GSC_DELAY_MS: args.latency,
      },
      ready: "fake gsc listening",
      timeoutMs: 60_000,
      name: "fake gsc",
    });
    procs.push(fake);
    const gscUrl = /fake gsc listening on (\S+)/.exec(fake.output())![1]!;
    const backfillDomain = "sc-domain:backfill.bench.example";
    // Every answer of one day asked once before the clock starts (the same requests as the sync's: the fake keeps
    // their bytes for the other days), so the backfill measures the sync, not the fake building its answers.
    if (!args["fake-fresh"]) await warmFake(gscUrl, backfillDomain, addDays(dayOf(new Date()), -10));
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = await spawnUntilReady([process.execPath, join(root, "src/main.ts"), "--workers", "1", "--sync-workers", "1"], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: join(dir, "app.db"),
        PORT: String(port),
        HOST: "127.0.0.1",
        LOG_LEVEL: "warn",
        SYNC_SOURCE: "gsc",
        GSC_ACCESS_TOKEN: "test-token",
        GSC_API_BASE_URL: gscUrl,
        SYNC_POLL_MS: "50",
        SYNC_SCHEDULER: "false",
        SYNC_BATCH_SIZE: args.batch,
        SYNC_BULK_BATCH_SIZE: args.bulk,
        ...(args.atomic !== undefined ? { SYNC_ATOMIC_DAY_ROWS: args.atomic } : {}),
        ...(args["sync-nice"] !== undefined ? { SYNC_NICE: args["sync-nice"] } : {}),
      },
      ready: "sitesync listening",
      timeoutMs: 60_000,
      name: "server",
    });
    procs.push(server);
    const children = (pid: number) =>
      readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const syncPid = children(server.proc.pid).find((p) => cmdline(p).includes("worker-main"))!;
    const httpPid = children(server.proc.pid).find((p) => !cmdline(p).includes("worker-main"))!;
    // --sync-slice-us / --http-slice-us: a custom EEVDF slice (sched_setattr's sched_runtime, Linux >= 6.12; 100-100,000
    // µs) for every thread of the sync / HTTP worker, set from here (threads started later keep the default): whether
    // the length of the slice the sync worker may keep the core for changes the GETs' wait for a core.
    const setSlice = (pid: number, us: number) => {
      const libc = dlopen("libc.so.6", { syscall: { args: ["i64", "i64", "ptr", "i64"], returns: "i64" } });
      for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
        // struct sched_attr (SCHED_ATTR_SIZE_VER0): size, policy (SCHED_OTHER), flags, nice (kept), priority, runtime.
        const attr = new DataView(new ArrayBuffer(48));
        attr.setUint32(0, 48, true);
        attr.setInt32(16, getPriority(tid), true);
        attr.setBigUint64(24, BigInt(us * 1000), true);
        if (libc.symbols.syscall(SYS_SCHED_SETATTR, tid, ptr(attr), 0) !== 0n) console.warn(`sched_setattr of thread ${tid} refused`);
      }
      libc.close();
    };
    const run = (cmd: string[]) => {
      const r = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe" });
      if (r.exitCode !== 0) console.warn(`${cmd.join(" ")}: ${r.stderr.toString().trim()}`);
    };
    const allCpus = `0-${availableParallelism() - 1}`;
    // The sync worker's group's nice as the service set it (undo() puts it back).
    const groupNice = (pid: number) => /nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, "utf8"))?.[1] ?? "0";
    const serviceGroupNice = groupNice(syncPid);
    const setGroupNice = (nice: string) => {
      try {
        writeFileSync(`/proc/${syncPid}/autogroup`, nice);
      } catch (err) {
        console.warn(`the sync worker's group nice ${nice} refused: ${err}`);
      }
    };
    // --ab, an A round: the sync (and HTTP) worker back on every CPU, the sync worker's threads SCHED_OTHER (their
    // nice kept) with the kernel's slice.
    const undo = () => {
      if (args["sync-slice-us"] !== undefined) setSlice(syncPid, 0);
      if (args["http-slice-us"] !== undefined) setSlice(httpPid, 0);
      if (args["sync-policy"] !== undefined) run(["chrt", "-a", "-p", "--other", "0", String(syncPid)]);
      if (args["sync-cpus"] !== undefined) run(["taskset", "-a", "-p", "-c", allCpus, String(syncPid)]);
      if (args["http-cpus"] !== undefined) run(["taskset", "-a", "-p", "-c", allCpus, String(httpPid)]);
      if (args["sync-group-nice"] !== undefined) setGroupNice(serviceGroupNice);
    };
    const slices = () => {
      if (args["sync-slice-us"] !== undefined) setSlice(syncPid, Number(args["sync-slice-us"]));
      if (args["http-slice-us"] !== undefined) setSlice(httpPid, Number(args["http-slice-us"]));
      if (args["sync-policy"] !== undefined) run(["chrt", "-a", "-p", `--${args["sync-policy"]}`, "0", String(syncPid)]);
      if (args["sync-cpus"] !== undefined) run(["taskset", "-a", "-p", "-c", args["sync-cpus"], String(syncPid)]);
      if (args["http-cpus"] !== undefined) run(["taskset", "-a", "-p", "-c", args["http-cpus"], String(httpPid)]);
      if (args["sync-group-nice"] !== undefined) setGroupNice(args["sync-group-nice"]);
    };
    slices();
    // Every thread of the fake (Linux keeps a nice per thread; its pool threads do the sending).
    if (args["fake-nice"] !== undefined)
      for (const tid of readdirSync(`/proc/${fake.proc.pid}/task`)) setPriority(Number(tid), Number(args["fake-nice"]));
    // utime + stime in clock ticks (100 per second on Linux): CPU milliseconds of one process.
    const cpuMs = (pid: number) => {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    // The whole machine's busy CPU time so far (/proc/stat's first line: all but idle and iowait), in ms.
    const machineTicks = () => {
      const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
      return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) * 10;
    };
    // Time the process's threads spent runnable but waiting for a core (/proc/<pid>/task/*/schedstat, 2nd field, ns):
    // whether a slow GET waited for the CPU (this grows) or for something else (a lock, I/O: it does not). A
    // snapshot per thread; waitedMs sums the threads' growth since one (a thread gone meanwhile counts nothing).
    const runDelays = (pid: number) => {
      const ns = new Map<string, number>();
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        try {
          ns.set(t, Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[1]));
        } catch {
          // A thread gone meanwhile.
        }
      }
      return ns;
    };
    const waitedMs = (pid: number, since: Map<string, number>) => {
      let ns = 0;
      for (const [t, v] of runDelays(pid)) ns += v - (since.get(t) ?? 0);
      return ns / 1e6;
    };
    // The main thread's [on a core, waiting for one] in ms (/proc/<pid>/task/<pid>/schedstat).
    const mainThread = (pid: number) => {
      const f = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ");
      return [Number(f[0]) / 1e6, Number(f[1]) / 1e6] as const;
    };
    // The CPU a thread last ran on (field 39 of /proc/<pid>/task/<tid>/stat).
    const lastCpu = (pid: number, tid = pid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[36]);
    };
    // CPU ms of each thread name (the 2nd field of /proc/<pid>/task/<tid>/stat: "HTTP Client", "Heap Helper", "JIT Worker"...)
    // of one process, summed over the threads of that name: what its threads do besides the main one (named by the pid's).
    const threadCpu = (pid: number) => {
      const byName = new Map<string, number>();
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        try {
          const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
          const name = Number(t) === pid ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")).replace(/[0-9]+$/, "#");
          const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
          byName.set(name, (byName.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * 10);
        } catch {
          // A thread gone meanwhile.
        }
      }
      return byName;
    };
    // Per process (supervisor, HTTP worker, sync worker, fake) and thread name: CPU ms summed over the idle windows and over
    // the backfills (the difference of two snapshots around each window; threads that came and went in between are missed).
    const watched = (): [string, number][] => [
      ["supervisor", server.proc.pid],
      ["http", httpPid],
      ["sync", syncPid],
      ["fake", fake.proc.pid],
    ];
    const threadSnap = () => new Map(watched().map(([k, pid]) => [k, threadCpu(pid)] as const));
    const threadSums = { idle: new Map<string, number>(), busy: new Map<string, number>() };
    const addThreads = (into: Map<string, number>, before: ReturnType<typeof threadSnap>) => {
      for (const [k, now] of threadSnap())
        for (const [name, ms] of now) into.set(`${k} ${name}`, (into.get(`${k} ${name}`) ?? 0) + ms - (before.get(k)?.get(name) ?? 0));
    };
    const post = async (path: string, body: unknown) => {
      const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as any;
    };
    // The sync worker's pauses for requests in flight (SYNC_GIVE_WAY) so far, from the service's metrics (all processes).
    const gaveWay = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const sum = (name: string) =>
        text
          .split("\n")
          .filter((l) => l.startsWith(name))
          .reduce((a, l) => a + Number(l.split(" ").at(-1)), 0);
      // Per series (name and labels): checkpoints by mode and outcome and their time, writes' busy retries by role.
      const series = new Map<string, number>();
      for (const l of text.split("\n"))
        if (
          /^sitesync_(checkpoint_runs_total|checkpoint_duration_seconds_(sum|count)|write_busy_retries_total|write_commits_total)\b/.test(l)
        )
          series.set(l.slice(0, l.lastIndexOf(" ")), Number(l.split(" ").at(-1)));
      return { pauses: sum("sitesync_sync_give_way_pauses_total"), ms: sum("sitesync_sync_give_way_seconds_total") * 1000, series };
    };
    const seriesGrowth = new Map<string, number>();
    const site = await post("/api/v1/sites", { domain: backfillDomain, name: "Backfill" });
    for (let i = 0; i < 20; i++) await post("/api/v1/sites", { domain: `sc-domain:other${i}.bench.example`, name: `Other ${i}` });

    // The other client: GETs paced at --rps (each waits its turn; a slow answer delays the next, no pile-up).
    // Per GET, where its time went: the HTTP worker's main thread [on a core, waiting for one] and this process's
    // (main thread and Bun's fetch thread) the same, in ms over the GET (schedstat read before and after it).
    // cpu: the CPU the HTTP worker's main thread served the GET on (the last it ran on once the answer came).
    // at: when the GET started (performance.timeOrigin + performance.now(), the stall meter's clock); win: its window
    // (the idle windows and the backfills each counted from 1).
    // onSync: whether any of the client's threads last ran on a CPU the sync worker keeps to (syncCpus) once the GET ended.
    type Parts = {
      http: readonly [number, number];
      client: readonly [number, number];
      sync: number;
      cpu: number;
      onSync: boolean;
      at: number;
      win: number;
    };
    let clientThreads: number[] = [process.pid];
    // The CPUs the sync worker keeps to (its own affinity: SYNC_CPUS), read after the warm-up GETs.
    let syncCpus = new Set<number>();
    const clientTimes = () => {
      let on = 0;
      let wait = 0;
      for (const t of clientThreads) {
        const f = readFileSync(`/proc/${process.pid}/task/${t}/schedstat`, "utf8").split(" ");
        on += Number(f[0]) / 1e6;
        wait += Number(f[1]) / 1e6;
      }
      return [on, wait] as const;
    };
    let win = 0;
    const gets = async (until: () => boolean, parts?: Parts[]) => {
      const ms: number[] = [];
      const gap = 1000 / Number(args.rps);
      let next = performance.now();
      let k = 0;
      while (!until()) {
        const h0 = parts ? mainThread(httpPid) : null;
        const c0 = parts ? clientTimes() : null;
        const s0 = parts ? mainThread(syncPid)[0] : 0;
        const t0 = performance.now();
        const path = k++ % 2 === 0 ? "/api/v1/sites?limit=20" : `/api/v1/sites/${site.id}`;
        const res = await fetch(url + path);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
        ms.push(performance.now() - t0);
        if (parts) {
          const h1 = mainThread(httpPid);
          const c1 = clientTimes();
          parts.push({
            http: [h1[0] - h0![0], h1[1] - h0![1]],
            client: [c1[0] - c0![0], c1[1] - c0![1]],
            sync: mainThread(syncPid)[0] - s0,
            cpu: lastCpu(httpPid),
            onSync: clientThreads.some((t) => syncCpus.has(lastCpu(process.pid, t))),
            at: performance.timeOrigin + t0,
            win,
          });
        }
        next += gap;
        const wait = next - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        else next = performance.now();
      }
      return ms;
    };
    // --creates: writes paced at that rate while `until()` is false (each waits its turn, as the GETs), their ms into `into`.
    let created = 0;
    const createRate = Number(args.creates);
    const creates = async (until: () => boolean, into: number[]) => {
      if (!(createRate > 0)) return;
      const gap = 1000 / createRate;
      let next = performance.now();
      while (!until()) {
        const t0 = performance.now();
        await post("/api/v1/sites", { domain: `sc-domain:create${created++}.bench.example`, name: "Create" });
        into.push(performance.now() - t0);
        next += gap;
        const wait = next - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        else next = performance.now();
      }
    };
    const idleCreates: number[] = [];
    const busyCreates: number[] = [];
    const pct = (xs: number[], p: number) => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
    };
    const summary = (xs: number[]) =>
      `n ${xs.length}, p50 ${pct(xs, 50).toFixed(2)} ms, p90 ${pct(xs, 90).toFixed(2)}, p99 ${pct(xs, 99).toFixed(2)}, p99.9 ${pct(xs, 99.9).toFixed(2)}, max ${Math.max(...xs).toFixed(1)} ms`;

    // Warm the HTTP worker.
    await gets(
      (
        (end) => () =>
          performance.now() > end
      )(performance.now() + 1000),
    );
    syncCpus = new Set(cpuList(/Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${syncPid}/status`, "utf8"))?.[1] ?? ""));
    if (args["client-cpus"] !== undefined) {
      const refused = keepThreadsTo(cpuList(args["client-cpus"]));
      if (refused) throw new Error(`--client-cpus ${args["client-cpus"]}: ${refused}`);
    }
    // Bun's fetch runs on a thread of its own ("HTTP Client"), started by the first fetch.
    clientThreads = [
      process.pid,
      ...readdirSync(`/proc/${process.pid}/task`)
        .map(Number)
        .filter((t) => readFileSync(`/proc/${process.pid}/task/${t}/comm`, "utf8").startsWith("HTTP Client")),
    ];
    // The stall meter (bench/stall-meter.ts): a thread of this process that wakes every 2 ms and notes each wake-up 2 ms
    // or more late, and whether its thread waited for a core meanwhile (the cores taken) or not (nothing in the VM ran it:
    // the host had the virtual CPU). A GET overlapping such a stall was slowed by something outside the service.
    const stallBuf = new SharedArrayBuffer(8 * (1 + 3 * 100_000));
    const stalls = new Float64Array(stallBuf);
    const meter = new Worker(join(import.meta.dir, "stall-meter.ts"));
    await new Promise<void>((resolve) => {
      meter.onmessage = () => resolve();
      meter.postMessage(stallBuf);
    });
    /** The stall meter's stalls overlapping [from, to] (ms, its clock): how many, and how many with no wait for a core. */
    const stallsIn = (from: number, to: number) => {
      let n = 0;
      let unseen = 0;
      for (let i = 0; i < stalls[0]!; i++) {
        const start = stalls[1 + i * 3]!;
        const late = stalls[2 + i * 3]!;
        if (start + late < from || start > to) continue;
        n++;
        if (stalls[3 + i * 3]! < late / 2) unseen++;
      }
      return { n, unseen };
    };
    // When each window began (the meter's clock), by kind and number: where in its window a slow GET came.
    const windowStarts = { idle: [] as number[], busy: [] as number[] };
    // The slowest 1% of GETs (at least 5): their mean time and where it went.
    const tail = (xs: number[], parts: Parts[], kind: keyof typeof windowStarts) => {
      const order = xs.map((_, i) => i).sort((a, b) => xs[b]! - xs[a]!);
      const slow = order.slice(0, Math.max(5, Math.ceil(xs.length / 100)));
      const mean = (f: (i: number) => number) => slow.reduce((a, i) => a + f(i), 0) / slow.length;
      const http = [mean((i) => parts[i]!.http[0]), mean((i) => parts[i]!.http[1])];
      const client = [mean((i) => parts[i]!.client[0]), mean((i) => parts[i]!.client[1])];
      const all = parts.reduce((a, p) => a + p.http[0], 0) / parts.length;
      // Where the HTTP worker's main thread served them: the share on each CPU, the slowest against all GETs.
      const cpus = [...new Set(parts.map((p) => p.cpu))].sort((a, b) => a - b);
      const share = (ps: Parts[], cpu: number) => `${Math.round((100 * ps.filter((p) => p.cpu === cpu).length) / ps.length)}%`;
      const placed = cpus
        .map(
          (c) =>
            `CPU ${c} ${share(
              slow.map((i) => parts[i]!),
              c,
            )} (all ${share(parts, c)})`,
        )
        .join(", ");
      // Which of them overlapped a stall of the meter, seen by the VM (its thread waited for a core) or not.
      let waitedStall = 0;
      let hostStall = 0;
      for (const i of slow) {
        const st = stallsIn(parts[i]!.at, parts[i]!.at + xs[i]!);
        if (st.unseen > 0) hostStall++;
        else if (st.n > 0) waitedStall++;
      }
      // The slowest 25 in time order: window #number:seconds into it, ms, and the HTTP worker's main thread's and the
      // client's time on a core over it (h, c): a GET whose threads ran far longer than a GET's ~0.5 ms did work
      // besides the GET (a GC, a compile, an affinity change) rather than wait.
      const where = slow
        .slice(0, 25)
        .sort((a, b) => parts[a]!.at - parts[b]!.at)
        .map((i) => {
          const p = parts[i]!;
          return `#${p.win}:${((p.at - windowStarts[kind][p.win - 1]!) / 1000).toFixed(1)} ${xs[i]!.toFixed(1)}(h${p.http[0].toFixed(1)} c${p.client[0].toFixed(1)})`;
        })
        .join(" ");
      // The client's threads (this process) last on the sync's CPUs after the GET: the slowest against all GETs.
      const onSync = (ps: Parts[]) => `${Math.round((100 * ps.filter((p) => p.onSync).length) / ps.length)}%`;
      const clientOnSync = `the client's threads last on the sync's CPU${syncCpus.size === 1 ? "" : "s"} ${onSync(slow.map((i) => parts[i]!))} (all ${onSync(parts)})`;
      // Every GET whose HTTP worker's main thread was on a core 2 ms or more (load does not make that; waits do not count).
      const heavy = parts.filter((p) => p.http[0] >= 2).length;
      // The parts overlap (the client's two threads, the client and the server can wait at once): they do not add up.
      return `slowest ${slow.length}: ${mean((i) => xs[i]!).toFixed(2)} ms; over them the HTTP worker's main thread on a core ${http[0]!.toFixed(2)}, waiting for one ${http[1]!.toFixed(2)}; the client's main and fetch threads on a core ${client[0]!.toFixed(2)}, waiting ${client[1]!.toFixed(2)} (every GET: HTTP main thread on a core ${all.toFixed(3)} ms); served on ${placed}; ${clientOnSync}; ${hostStall} overlapped a stall of the meter unseen by the VM (the host's), ${waitedStall} one it waited for a core through; ${heavy} of all ${xs.length} had the HTTP worker's main thread on a core >= 2 ms; #window:second ms(h, c ms on a core) ${where}`;
    };
    // --rounds rounds of an idle window then a backfill of --days days (each round the days before the last
    // round's, as a newest-first backfill goes), then a last idle window: idle and busy GETs alternate in time, so
    // what else the machine runs meanwhile weighs on both alike. Sums over the rounds.
    const idle: number[] = [];
    const idleParts: Parts[] = [];
    const busyParts: Parts[] = [];
    const busy: number[] = [];
    // --ab: the busy GETs of the A and B rounds apart.
    const sides: [number[], number[]] = [[], []];
    const sideRows = [0, 0];
    const sideSeconds = [0, 0];
    let idleSeconds = 0;
    // The machine's busy CPU ticks (every process's, this one's too) over the idle windows and over the backfills.
    let idleBusyCores = 0;
    let busyBusyCores = 0;
    const idleGrowth = new Map<string, number>();
    let httpIdleCpu = 0;
    let httpIdleWait = 0;
    let statusUrl: string | null = null;
    const idleWindow = async () => {
      // After a backfill the HTTP worker keeps off the sync's CPUs for BUSY_MS more (src/sync/give-way.ts): GETs not
      // counted until it is back on all of them, so the idle figures are the service's without a backfill.
      if (rows > 0)
        await gets(
          (
            (end) => () =>
              performance.now() > end
          )(performance.now() + BUSY_MS + 500),
        );
      const metrics0 = await gaveWay();
      const machine0 = machineTicks();
      const cpu0 = cpuMs(httpPid);
      const wait0 = runDelays(httpPid);
      const threads0 = threadSnap();
      const t0 = performance.now();
      const idleEnd = t0 + Number(args["idle-seconds"]) * 1000;
      win = windowStarts.idle.push(performance.timeOrigin + t0);
      // The same status poll as a backfill's (every 100 ms, below) all through the idle window, so both kinds of window
      // carry the same other requests from this client: the last backfill's task (its finished status), or before the
      // first the site.
      let polling = true;
      const poller = (async () => {
        while (polling) {
          await (await fetch(`${url}${statusUrl ?? `/api/v1/sites/${site.id}`}`)).arrayBuffer();
          await Bun.sleep(100);
        }
      })();
      const writer = creates(() => performance.now() > idleEnd, idleCreates);
      const ms = await gets(() => performance.now() > idleEnd, idleParts);
      polling = false;
      await poller;
      await writer;
      idleSeconds += (performance.now() - t0) / 1000;
      idleBusyCores += machineTicks() - machine0;
      addThreads(threadSums.idle, threads0);
      const metrics1 = await gaveWay();
      for (const [k, v] of metrics1.series) idleGrowth.set(k, (idleGrowth.get(k) ?? 0) + v - (metrics0.series.get(k) ?? 0));
      httpIdleCpu += cpuMs(httpPid) - cpu0;
      httpIdleWait += waitedMs(httpPid, wait0);
      idle.push(...ms);
      return ms;
    };
    let rows = 0;
    let seconds = 0;
    let syncCpu = 0;
    let syncWait = 0;
    let mainCpu = 0;
    let mainWait = 0;
    let httpCpu = 0;
    let httpWait = 0;
    let fakeCpu = 0;
    let pauses = 0;
    let pausedMs = 0;
    const loads: number[] = [];
    const perRound: string[] = [];
    const newest = addDays(dayOf(new Date()), -10);
    for (let round = 0; round < rounds; round++) {
      // --ab: round 1 warms up (new texts, the JIT; counted in neither side), then A B B A A B B A ...: neither side
      // always comes first after a warm-up, and a steady drift in the machine's load weighs on both alike.
      const side = args.ab ? (round === 0 ? -1 : [0, 1, 1, 0][(round - 1) % 4]!) : 1;
      if (side === 1) slices();
      else undo();
      const idleMs = await idleWindow();
      const end = addDays(newest, -round * days);
      const syncCpu0 = cpuMs(syncPid);
      const syncWait0 = runDelays(syncPid);
      const syncMain0 = mainThread(syncPid);
      const httpCpu0 = cpuMs(httpPid);
      const fakeCpu0 = cpuMs(fake.proc.pid);
      const httpWait0 = runDelays(httpPid);
      const gave0 = await gaveWay();
      const threads0 = threadSnap();
      const machine0 = machineTicks();
      const t0 = performance.now();
      win = windowStarts.busy.push(performance.timeOrigin + t0);
      const task = await post(`/api/v1/sites/${site.id}/sync-tasks`, {
        task_type: "daily_sync",
        start_date: addDays(end, -(days - 1)),
        end_date: end,
        sync_mode: "overwrite",
      });
      statusUrl = task.status_url;
      let job: any = null;
      const poll = (async () => {
        while (!job || job.status === "pending" || job.status === "running") {
          job = await (await fetch(`${url}${task.status_url}`)).json();
          await Bun.sleep(100);
        }
      })();
      const finished = () => job !== null && job.status !== "pending" && job.status !== "running";
      const writer = creates(finished, busyCreates);
      const busyMs = await gets(finished, busyParts);
      await writer;
      // The CPUs the HTTP worker may use as the backfill ends (it keeps off the sync's while the sync works: give-way.ts).
      const httpCpus = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${httpPid}/status`, "utf8"))?.[1];
      await poll;
      const s = (performance.now() - t0) / 1000;
      busyBusyCores += machineTicks() - machine0;
      addThreads(threadSums.busy, threads0);
      const gave1 = await gaveWay();
      pauses += gave1.pauses - gave0.pauses;
      pausedMs += gave1.ms - gave0.ms;
      for (const [k, v] of gave1.series) seriesGrowth.set(k, (seriesGrowth.get(k) ?? 0) + v - (gave0.series.get(k) ?? 0));
      if (job.status !== "completed") throw new Error(`task ${job.status}: ${job.error}`);
      const n = Number(job.total_records);
      const cpu = cpuMs(syncPid) - syncCpu0;
      rows += n;
      seconds += s;
      syncCpu += cpu;
      syncWait += waitedMs(syncPid, syncWait0);
      const syncMain1 = mainThread(syncPid);
      mainCpu += syncMain1[0] - syncMain0[0];
      mainWait += syncMain1[1] - syncMain0[1];
      httpCpu += cpuMs(httpPid) - httpCpu0;
      httpWait += waitedMs(httpPid, httpWait0);
      fakeCpu += cpuMs(fake.proc.pid) - fakeCpu0;
      busy.push(...busyMs);
      if (side >= 0) {
        sides[side]!.push(...busyMs);
        sideRows[side]! += n;
        sideSeconds[side]! += s;
      }
      loads.push(loadavg()[0]!);
      perRound.push(
        `  round ${round + 1}${args.ab ? [" (warm-up)", " (A)", " (B)"][side + 1] : ""}: ${n} rows in ${s.toFixed(2)} s = ${Math.round(n / s)} rows/s, sync ${((cpu * 1000) / n).toFixed(1)} µs a row, GET p99 idle ${pct(idleMs, 99).toFixed(1)} → backfill ${pct(busyMs, 99).toFixed(1)} ms (n ${idleMs.length} / ${busyMs.length}), HTTP worker's CPUs ${httpCpus}, load ${loads.at(-1)!.toFixed(1)}`,
      );
    }
    undo();
    const lastIdle = await idleWindow();
    perRound.push(`  last idle window: GET p99 ${pct(lastIdle, 99).toFixed(1)} ms (n ${lastIdle.length})`);
    meter.terminate();
    if (args.save) {
      const rowsOf = (xs: number[], ps: Parts[]) => xs.map((ms, i) => ({ ms, ...ps[i] }));
      const meterStalls = Array.from({ length: stalls[0]! }, (_, i) => ({
        at: stalls[1 + i * 3],
        late: stalls[2 + i * 3],
        waited: stalls[3 + i * 3],
      }));
      writeFileSync(
        args.save,
        JSON.stringify({ windowStarts, idle: rowsOf(idle, idleParts), busy: rowsOf(busy, busyParts), stalls: meterStalls }),
      );
    }
    const us = (ms: number) => ((ms * 1000) / rows).toFixed(1);
    console.log(
      `sqlite, served: backfill of ${rounds} × ${days} days × ${web} web rows (+10% anonymized) through the fake Search Console (${args.latency} ms an answer), SYNC_ATOMIC_DAY_ROWS ${args.atomic}, SYNC_FETCH_AHEAD ${process.env.SYNC_FETCH_AHEAD ?? "default"}, SYNC_GIVE_WAY ${process.env.SYNC_GIVE_WAY ?? "default"}, sync worker nice ${getPriority(syncPid)} (its group's ${serviceGroupNice}${args["sync-group-nice"] === undefined ? "" : `, B ${args["sync-group-nice"]}`}), slice (µs) sync ${args["sync-slice-us"] ?? "default"} HTTP ${args["http-slice-us"] ?? "default"}, sync policy ${args["sync-policy"] ?? "default"}, CPUs sync ${args["sync-cpus"] ?? "all"} HTTP ${args["http-cpus"] ?? "all"} client ${args["client-cpus"] ?? "all"}`,
    );
    for (const line of perRound) console.log(line);
    console.log(
      `  ${rows} rows in ${seconds.toFixed(2)} s wall = ${Math.round(rows / seconds)} rows/s (load ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)})`,
    );
    console.log(
      `  CPU µs per row: sync worker ${us(syncCpu)} (= ${Math.round((rows / syncCpu) * 1000)} rows per CPU-second), HTTP worker ${us(httpCpu)}, fake Search Console ${us(fakeCpu)}`,
    );
    // The sync worker's wall: on a core (its CPU, all threads summed, so it can pass the wall), runnable without one, the rest blocked.
    console.log(
      `  sync worker's main thread over ${(seconds * 1000).toFixed(0)} ms wall: on a core ${mainCpu.toFixed(0)} ms, waiting for one ${mainWait.toFixed(0)} ms, blocked (fetch, timers, lock) ${(seconds * 1000 - mainCpu - mainWait).toFixed(0)} ms; all threads' wait for a core ${syncWait.toFixed(0)} ms`,
    );
    console.log(
      `  API GETs (${args.rps}/s, another process) idle:   ${summary(idle)}; HTTP worker CPU ${((httpIdleCpu * 1000) / idle.length).toFixed(0)} µs, waiting for a core ${((httpIdleWait * 1000) / idle.length).toFixed(0)} µs per GET`,
    );
    console.log(
      `  API GETs during the backfill:              ${summary(busy)}; HTTP worker CPU ${((httpCpu * 1000) / busy.length).toFixed(0)} µs, waiting for a core ${((httpWait * 1000) / busy.length).toFixed(0)} µs per GET`,
    );
    if (createRate > 0)
      console.log(
        `  API creates (${createRate}/s, POST /api/v1/sites) idle: ${summary(idleCreates)}; during the backfill: ${summary(busyCreates)}; p99 busy / idle ${(pct(busyCreates, 99) / pct(idleCreates, 99)).toFixed(2)}x`,
      );
    // Whether the sync worker keeps off the cores while a GET is in flight (SYNC_GIVE_WAY): its main thread's time on a
    // core during the busy GETs, as a share of their time, against its share of the backfill's wall. Read by this
    // process around each GET, so it counts the client's own time too; a share well under the backfill's: it gave way.
    const busyMsSum = busy.reduce((a, b) => a + b, 0);
    const syncDuring = busyParts.reduce((a, p) => a + p.sync, 0);
    console.log(
      `  sync worker's main thread on a core during the busy GETs: ${((syncDuring * 1000) / busy.length).toFixed(0)} µs a GET, ${((100 * syncDuring) / busyMsSum).toFixed(1)}% of their time (${((100 * mainCpu) / (seconds * 1000)).toFixed(1)}% of the backfill's wall)`,
    );
    console.log(
      `  the sync worker gave way (SYNC_GIVE_WAY) ${pauses} times, ${pausedMs.toFixed(0)} ms in all (${((100 * pausedMs) / (seconds * 1000)).toFixed(1)}% of the backfill's wall)`,
    );
    console.log(`  idle GETs' ${tail(idle, idleParts, "idle")}`);
    console.log(`  busy GETs' ${tail(busy, busyParts, "busy")}`);
    // The stall meter over the whole run, and the machine's busy CPUs (all processes) in each kind of window.
    let hostStalls = 0;
    let hostStallMs = 0;
    for (let i = 0; i < stalls[0]!; i++)
      if (stalls[3 + i * 3]! < stalls[2 + i * 3]! / 2) {
        hostStalls++;
        hostStallMs += stalls[2 + i * 3]!;
      }
    console.log(
      `  stall meter: ${stalls[0]} wake-ups >= 2 ms late, ${hostStalls} of them (${hostStallMs.toFixed(0)} ms) with no wait for a core (the host's); the machine's busy CPUs: idle windows ${(idleBusyCores / 1000 / idleSeconds).toFixed(2)}, backfills ${(busyBusyCores / 1000 / seconds).toFixed(2)} (of ${availableParallelism()}; every process's)`,
    );
    console.log(
      `  metrics' growth over the idle windows: ${[...idleGrowth]
        .filter(([, v]) => v !== 0)
        .map(([k, v]) => `${k.replace(/^sitesync_/, "")} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
        .join(", ")}`,
    );
    // Each thread name's CPU a second of wall, idle windows against backfills (largest growth first; 10 ms ticks).
    const names = [...new Set([...threadSums.idle.keys(), ...threadSums.busy.keys()])];
    const perSecond = (m: Map<string, number>, name: string, wall: number) => (m.get(name) ?? 0) / wall;
    names.sort(
      (a, b) =>
        perSecond(threadSums.busy, b, seconds) -
        perSecond(threadSums.idle, b, idleSeconds) -
        (perSecond(threadSums.busy, a, seconds) - perSecond(threadSums.idle, a, idleSeconds)),
    );
    // What each thread did in proportion to the ingest: its CPU over the backfills less its idle rate over as long, per
    // 1,000 rows stored (the work a backfill adds to the machine's cores, whatever the load let the sync reach).
    const extra = (n: string) => (threadSums.busy.get(n) ?? 0) - perSecond(threadSums.idle, n, idleSeconds) * seconds;
    console.log(
      `  threads' extra CPU ms per 1,000 rows during the backfills: ${names
        .filter((n) => Math.abs(extra(n)) >= rows / 1e5)
        .sort((a, b) => extra(b) - extra(a))
        .map((n) => `${n} ${((extra(n) * 1000) / rows).toFixed(2)}`)
        .join(", ")}`,
    );
    console.log(
      `  metrics' growth over the backfills: ${[...seriesGrowth]
        .filter(([, v]) => v !== 0)
        .map(([k, v]) => `${k.replace(/^sitesync_/, "")} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
        .join(", ")}`,
    );
    console.log(
      `  threads' CPU ms a second, idle → backfill: ${names
        .filter((n) => perSecond(threadSums.busy, n, seconds) + perSecond(threadSums.idle, n, idleSeconds) >= 1)
        .map((n) => `${n} ${perSecond(threadSums.idle, n, idleSeconds).toFixed(1)} → ${perSecond(threadSums.busy, n, seconds).toFixed(1)}`)
        .join(", ")}`,
    );
    if (args.ab)
      for (const [k, xs] of sides.entries())
        console.log(
          `  ${k ? "B" : "A"} rounds: ${Math.round(sideRows[k]! / sideSeconds[k]!)} rows/s; busy GETs ${summary(xs)}; p99 / idle ${(pct(xs, 99) / pct(idle, 99)).toFixed(2)}, p99.9 / idle ${(pct(xs, 99.9) / pct(idle, 99.9)).toFixed(2)}`,
        );
    console.log(
      `  p99 ratio busy/idle: ${(pct(busy, 99) / pct(idle, 99)).toFixed(2)} (p50 ${(pct(busy, 50) / pct(idle, 50)).toFixed(2)}, p99.9 ${(pct(busy, 99.9) / pct(idle, 99.9)).toFixed(2)})`,
    );
    // Issue 18 item 3: >= 100,000 rows/s, and the busy GETs' p99 within 1.5x of the idle GETs'. The p99 of a few hundred
    // GETs is one of their few slowest: the spread of each p99 and of the ratio from resampling each side's GETs.
    const rate = rows / seconds;
    const b = bootstrapP99(busy, idle);
    const ratio = pct(busy, 99) / pct(idle, 99);
    const p99Verdict =
      b.ratio[1] <= RATIO_TARGET ? "met" : b.ratio[0] > RATIO_TARGET ? "NOT MET" : "not decided (the interval spans it: more --rounds)";
    const f2 = ([lo, hi]: readonly [number, number]) => `${lo.toFixed(2)}-${hi.toFixed(2)}`;
    console.log(
      `  verdict: ingest ${Math.round(rate)} rows/s (>= ${RATE_TARGET}: ${rate >= RATE_TARGET ? "met" : "NOT MET"}); GET p99 busy / idle ${ratio.toFixed(2)}x, ${f2(b.ratio)}x in 95% of ${RESAMPLES} resamples in blocks of ${BLOCK} GETs (<= ${RATIO_TARGET}x: ${p99Verdict}); p99 busy ${pct(busy, 99).toFixed(2)} ms (${f2(b.busy)}, n ${busy.length}), idle ${pct(idle, 99).toFixed(2)} ms (${f2(b.idle)}, n ${idle.length}); load ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`,
    );
  } finally {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The spread of the busy and idle GETs' p99 and of their ratio: each side resampled with replacement RESAMPLES times
 * (a fixed seed, so a run's figures can be printed again), the 2.5th and 97.5th percentiles of each. Resampled in
 * blocks of BLOCK consecutive GETs (a moving-block bootstrap, circular within each side): GETs close in time share the
 * machine's moment (a burst of other load slows several in a row), which resampling single GETs would count as luck.
 */
function bootstrapP99(busy: number[], idle: number[]) {
  let seed = 0x9e3779b9;
  // mulberry32: a small seeded generator.
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p99Of = (xs: number[], into: Float64Array) => {
    for (let i = 0; i < into.length; ) {
      const from = Math.floor(random() * xs.length);
      for (let j = 0; j < BLOCK && i < into.length; j++) into[i++] = xs[(from + j) % xs.length]!;
    }
    into.sort();
    return into[Math.min(into.length - 1, Math.floor(0.99 * into.length))]!;
  };
  const b = new Float64Array(busy.length);
  const i = new Float64Array(idle.length);
  const busyP99: number[] = [];
  const idleP99: number[] = [];
  const ratios: number[] = [];
  for (let k = 0; k < RESAMPLES; k++) {
    busyP99.push(p99Of(busy, b));
    idleP99.push(p99Of(idle, i));
    ratios.push(busyP99[k]! / idleP99[k]!);
  }
  const interval = (xs: number[]) => {
    xs.sort((x, y) => x - y);
    return [xs[Math.floor(0.025 * xs.length)]!, xs[Math.ceil(0.975 * xs.length) - 1]!] as const;
  };
  return { busy: interval(busyP99), idle: interval(idleP99), ratio: interval(ratios) };
}

/** Asks the fake Search Console for every grain of one day and each search type, as the sync does (answers discarded). */
async function warmFake(baseUrl: string, domain: string, day: string): Promise<void> {
  const client = createGscClient({
    baseUrl,
    auth: staticToken("test-token"),
    limiter: { acquire: async () => {} },
    rowLimit: defaults.GSC_ROW_LIMIT,
    maxRetries: 0,
    retryBaseMs: 1,
    timeoutMs: 600_000,
  });
  const signal = new AbortController().signal;
  for (const type of searchTypes) {
    const rules = typeRules(type);
    if ((await client.totals(domain, day, type, "property", signal)).length === 0) continue;
    await client.totals(domain, day, type, "page", signal);
    if (rules.appearance) await client.totals(domain, day, type, "appearance", signal);
    if (!rules.query) continue;
    for await (const _ of client.pages(domain, day, type, signal)) {
      // Each page fetched, nothing kept.
    }
  }
}
