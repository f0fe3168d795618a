// `bun run test`: the whole suite, on both engines: every test file on SQLite and the same behavioural
// tests on PostgreSQL (TEST_ENGINE=pg) against TEST_POSTGRES_URL or, when that is unset, a throw-away
// cluster started here from Debian's binaries (scripts/pg-cluster.ts). Test files that are about SQLite
// itself are listed below with the reason and run on SQLite only.
//   bun run test                       both engines, every file
//   bun run test test/sites.api.test.ts   both engines, those files
//   bun run test --engine pg ...       one engine
//   bun run test --plan                the wall each TEST_JOBS would take by scripts/test-times.json (runs nothing)
// Each file runs in its own `bun test` process, TEST_JOBS at a time (default 3 on the 2-core CI machine: the files' CPU
// filled 1.2 cores at 2; `heavy` files never beside each other except two of `heavyPairs`, TEST_HEAVY_PAIRS=0 none), both engines at once;
// with TEST_JOBS > 1 one more lane runs only the `waiting` files (they mostly wait, so they hardly load the cores),
// longest first by the times in scripts/test-times.json; the files in `runAlone` run one at a time in a lane of their
// own with the CPU first (a cgroup's cpu.shares), or, where that cannot be, afterwards with nothing else running. Each file's output is printed whole when it ends (with its engine and wall
// time); the measured times are written to $TMPDIR/sitesync-test-<pid>-times.json (and, for the whole suite,
// $TMPDIR/sitesync-test-times.json), with the PostgreSQL server's CPU per file (scripts/test-pgcpu.ts). PostgreSQL files copy one
// migrated template database made once per run (TEST_PG_TEMPLATE), made ahead of use and dropped in the background by
// the runner (test/helpers/pg-pool.ts; TEST_PG_AHEAD=0: each made and dropped by the test itself, with psql).
// REQUIRE_POSTGRES=1 makes a missing PostgreSQL a failure instead of a skip (.ci/run sets it).
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createMigratedDatabaseAsync, psql } from "../test/helpers/engine.ts";
import { startPgPool } from "../test/helpers/pg-pool.ts";
import { findPgBin, startCluster, stopCluster, type Cluster } from "./pg-cluster.ts";
import { cgroupCpuS, cgroupPids, inCgroup, killCgroup, priorityAvailable, removeCgroup, startCgroups } from "./test-cgroup.ts";
import { machineTicks, startPgCpuSampler } from "./test-pgcpu.ts";
import { makeRunDir, makeUnitDir, removeTestDir } from "./test-tmp.ts";

/** Test files about SQLite itself: file, WAL, pragmas, the single-file lock... (why, for the printed summary). */
export const sqliteOnly: Record<string, string> = {
  "checkpoint.test.ts": "WAL checkpoints of the SQLite file",
  "db-open.test.ts": "SQLite pragmas and WAL mode",
  "write-path.test.ts": "SQLite's group-commit writer (the PostgreSQL write path has its own tests)",
  "file-identity.test.ts": "the SQLite file replaced or deleted under the service",
  "storage.test.ts": "a full disk under the SQLite file",
  "backup.test.ts": "backups copy the SQLite file (PostgreSQL: pg_dump)",
  "migrations.test.ts": "SQLite migration files (PostgreSQL migrations: schema-drift and pg tests)",
  "schema-drift.test.ts": "compares both engines itself",
  "db-copy.test.ts": "copies between both engines itself",
  "bench-copy.test.ts": "runs db:copy between both engines itself",
  "pg-cluster.test.ts": "starts its own clusters",
  "db-faults.test.ts": "crashes and stops a PostgreSQL cluster of its own, and runs SQLite's disk-full case itself",
  "bench.test.ts": "runs the SQLite benchmark",
  "bench-analytics.test.ts": "runs the SQLite benchmark",
  "bench-search.test.ts": "runs the SQLite benchmark",
  "bench-grow.test.ts": "grows an SQLite bench file",
  "fast-path.test.ts": "SQLite's request fast path (PostgreSQL's has pg-fast-path.test.ts)",
  "sync.backfill.test.ts": "an SQLite migration's backfill of old rows (PostgreSQL's schema starts with the markers)",
  "grain-tables-migration.test.ts": "an SQLite migration's table rebuild (WITHOUT ROWID)",
  "read-snapshot.test.ts": "the SQLite reader's shared read transactions",
  "analytics.pool.test.ts": "SQLite's query processes (PostgreSQL runs its reads on the server)",
};

/**
 * Test files that open no database at all (pure functions, documents, imports): the engine changes nothing, so
 * they run once, in the SQLite run; a second `bun test` process would cost its start-up for the same asserts.
 */
export const engineNeutral: Record<string, string> = {
  "analytics.format.test.ts": "number and CSV formatting, no database",
  "auth.net.test.ts": "address matching, no database",
  "auth.test.ts": "Google sign-in through the CLI against the fake Search Console, a file of its own, no database",
  "config.test.ts": "the environment's parsing, no database",
  "cycles.test.ts": "the import graph, no database",
  "day-boundary.test.ts": "the guard against seeding across midnight, no database",
  "db-availability.test.ts": "the availability state with a probe of the test's own, no database",
  "event-loop.test.ts": "the event-loop delay sampler, no database",
  "gsc.client.test.ts": "the Search Console client and its in-memory rate limiter against the fake, no database",
  "openapi-router.test.ts": "the router's validation hook, no database",
  "request-frame.test.ts": "response headers of a bare Hono app, no database",
  "runner-cleanup.test.ts": "the test runner's temp folders, no database",
  "runner-plan.test.ts": "the test runner's lane plan, no database",
  "startup.test.ts": "imports of the app in a fresh process, no database",
  "supervision.test.ts": "the watchdog's arithmetic, no database",
};

/** Test files about PostgreSQL itself (several machines on one server, the pool, retried transactions): PostgreSQL run only. */
export const pgOnly: Record<string, string> = {
  "pg-engine.test.ts": "the PostgreSQL write path: retried transactions, lost connections, timeouts",
  "pg-one-statement.test.ts": "PostgreSQL writes of one statement (a site create): one round trip, lost answers",
  "multimachine.test.ts": "two instances (hosts) on one PostgreSQL database; one SQLite file belongs to one machine",
  "sync.rows.plan.test.ts": "the PostgreSQL plan of the sync's dictionary lookup (never the pg_trgm index)",
  "pg-fast-path.test.ts": "PostgreSQL's request fast path (SQLite's has fast-path.test.ts)",
};

/**
 * Behavioural test files that do not pass on PostgreSQL yet (issue 11 open): not run there, printed with the
 * reason on every run so the gap stays visible. Empty when both engines run the whole behavioural suite.
 */
export const notYetOnPg: Record<string, string> = {};

const root = join(import.meta.dir, "..");
const args = process.argv.slice(2);
let engines = ["sqlite", "pg"];
const ei = args.indexOf("--engine");
if (ei >= 0) {
  engines = [args[ei + 1] ?? ""];
  args.splice(ei, 2);
  if (!["sqlite", "pg"].includes(engines[0]!)) {
    console.error("--engine must be sqlite or pg");
    process.exit(2);
  }
}
const planOnly = args.includes("--plan");
if (planOnly) args.splice(args.indexOf("--plan"), 1);
const fileArgs = args.filter((a) => !a.startsWith("-"));
const flagArgs = args.filter((a) => a.startsWith("-"));
const allFiles =
  fileArgs.length > 0
    ? fileArgs
    : readdirSync(join(root, "test"))
        .filter((f) => f.endsWith(".test.ts"))
        .map((f) => `test/${f}`);

/**
 * Test files that must not share the CPU: load or timing-sensitive tests. Where the runner may use cgroup v1's `cpu`
 * controller (root on the CI machine) they run one at a time in a lane of their own beside the others, from the run's
 * start, with the CPU first (scripts/test-cgroup.ts: the largest cpu.shares, so they get what they ask for and the
 * other files only what they leave; TEST_PRIORITY_LANE=0: not so); elsewhere, or with TEST_JOBS=1, after the others
 * with nothing else running. Run one after another at the end they used about one core of two for ~55 s (CI-1).
 */
// The benchmarks' own tests (bench*.test.ts) check only that every figure is reported, never a timing: they run in
// the lanes (bench.test.ts as a heavy file: it loads both sides of a benchmark), not alone.
export const runAlone: Record<string, string> = {
  "stress.test.ts": "load with exact counts under SIGKILL",
  "watchdog.test.ts": "SIGSTOP of the lock holder: stall detection is timing-sensitive",
  "checkpoint.test.ts": "the WAL bound holds only while the checkpointer keeps up: failed at load 12-14 (peaks 17.7-20.0 MiB > 16)",
};

/**
 * With TEST_JOBS > 1, files that load the machine (several server processes with a load of their own, chromium
 * with the live dashboard, clusters crashed and restarted) or whose assertions wait on other processes' progress
 * never run beside each other: each runs beside light files only (files that mostly wait, like supervisor's
 * backoff or instance's starts, are light here: they pair well). Measured CPU per file: docs/testing.md.
 */
export const heavy: Record<string, string> = {
  "sync.multiprocess.test.ts": "a 100,000-row day ingested while 4 workers' requests are timed",
  "db-faults.test.ts": "16 clients through a full disk and a crashed PostgreSQL cluster",
  "bounds.load.test.ts": "attack load on 2 workers, the other client's worst requests measured",
  "ui.browser.test.ts": "chromium over the live dashboard (503s seen beside sync.multiprocess)",
  "ui.defects.browser.test.ts": "chromium",
  "cli.test.ts": "a 1+1-worker server and ~50 CLI processes",
  "edges.test.ts": "4 workers' rate limits and Bun's idle bounds",
  "multimachine.test.ts": "two instances of 2+2 workers on one database",
  "multiprocess.test.ts": "4-worker servers under concurrent writes",
  "bench.test.ts": "a short benchmark: the service and the bare baseline, both loaded (no timing asserted)",
};

/**
 * Heavy files whose assertions wait on their own processes far more than they load the cores (their CPU under half
 * their wall in the fresh-clone runs: scripts/test-cpu.json beside test-times.json): two of these may run at once,
 * never beside a heavy file not listed here (the load makers: multi-worker load, the benchmark, ~50 CLI runs).
 */
export const heavyPairs: Record<string, string> = {
  "multimachine.test.ts": "waits for 150 tasks and a lease's expiry: 25 s of CPU in 86 s (PostgreSQL)",
  "db-faults.test.ts": "waits for a cluster's crash, restart and a full disk: 31 s of CPU in 68 s",
  "ui.browser.test.ts": "waits for chromium's pages and a sync's progress: 19-20 s of CPU in 57-64 s",
  "ui.defects.browser.test.ts": "waits for chromium's pages: 8.5-9.7 s of CPU in 18-27 s",
};

/**
 * Files that mostly wait (a fixed bound, a heartbeat's age, a restart's backoff: their CPU under a third of their
 * wall in a quiet TEST_JOBS=1 run, scripts/test-times.json beside its CPU): with TEST_JOBS > 1 one more lane runs
 * only these, so their waiting no longer holds one of the TEST_JOBS lanes (which keep the cores busy). Key
 * `engine file`: a file may wait on one engine and work on the other.
 */
export const waiting: Record<string, string> = {
  "pg bounds.test.ts":
    "slow bodies held until their time limit or a client's abort, a 6 s lock: 11.9 s of CPU + 8.5 of the server's in 62.9 s (CI-2)",
  "pg supervisor.test.ts": "a PostgreSQL outage's 503s and a supervisor's starts: 8.4 s of CPU in 46 s (load ~8)",
  "sqlite supervisor.test.ts": "a worker's backoff reset (BACKOFF_RESET_MS 3 s) and the give-up's 3.1 s: 5.4 s of CPU in 24 s (load ~12)",
  "pg idempotency.api.test.ts": "a SIGKILLed key holder's heartbeat ageing out: 8 s of CPU in 30 s",
  "pg diagnostics.api.test.ts": "a killed process's heartbeat ageing out, unreachable servers: 3 s of CPU in 22 s",
  "pg pg-engine.test.ts": "timeouts, a held connect, a proxy cutting connections: 2.4 s of CPU in 21 s",
  "pg sync.engine.test.ts": "leases and a 3x-lease slow response: 4.6 s of CPU in 18 s",
  "sqlite sync.engine.test.ts": "leases and a 3x-lease slow response: 2.7 s of CPU in 13 s",
};

const jobs = Math.max(1, Number(process.env.TEST_JOBS) || 3);
/** Two `heavyPairs` files at once, unless TEST_HEAVY_PAIRS=0. */
const pairsOn = process.env.TEST_HEAVY_PAIRS !== "0";
/** The extra lane for `waiting` files: with TEST_JOBS > 1, unless TEST_WAIT_LANE=0. */
const waitLane = jobs > 1 && process.env.TEST_WAIT_LANE !== "0";
/**
 * JavaScriptCore's optimizing JIT (DFG, and FTL above it) off in every process a file starts, unless the caller
 * set BUN_JSC_useDFGJIT: nearly all of the suite's CPU is processes starting and running their code once, where the
 * DFG's compiles (on their own threads) cost more than they save. Same code and semantics, the interpreter and the
 * baseline JIT run it; docs/testing.md has the measured CPU (about -13% per file, both engines).
 */
const jitEnv: Record<string, string> = {
  ...(process.env.BUN_JSC_useDFGJIT === undefined ? { BUN_JSC_useDFGJIT: "0" } : {}),
  ...gcTimerEnv(),
};

/**
 * Bun's own garbage-collection timer off in every process a file starts (BUN_GC_TIMER_DISABLE), unless the caller
 * set BUN_GC_TIMER_DISABLE or BUN_GC_TIMER_INTERVAL: Bun 1.4's asks JavaScriptCore for a collection after each
 * event-loop tick in which the heap changed and every second besides, so an idle server's timers (the supervisor's
 * file watch and watchdog, the workers' event-loop sampler and heartbeats) each came with a collection. JavaScriptCore
 * still collects by what is allocated, as it does without Bun's timer. Idle SQLite servers of 2 HTTP workers, three of
 * each side by side: medians 18.0 -> 16.3 and 15.3 -> 13.7 ms of CPU a second (load 20, 41); docs/testing.md.
 */
function gcTimerEnv(): Record<string, string> {
  return process.env.BUN_GC_TIMER_DISABLE === undefined && process.env.BUN_GC_TIMER_INTERVAL === undefined
    ? { BUN_GC_TIMER_DISABLE: "1" }
    : {};
}
/**
 * Files that must not share a `bun test` process with other files (TEST_GROUPS below), with the reason. A file that
 * fails grouped and passes alone leaks state into its neighbours or depends on a fresh process: mend the leak if
 * you can (the assertion stays), list it here if you cannot.
 */
export const ungrouped: Record<string, string> = {};

/**
 * Small files share `bun test` processes: each process loads the app's modules once (~0.5 s of CPU for ~470 modules)
 * instead of once per file. A file joins a group when its CPU in scripts/test-cpu.json is at most
 * TEST_GROUP_CPU seconds (default 2) and it is none of runAlone, heavy, waiting or ungrouped; a group is cut at about
 * TEST_GROUP_WALL recorded seconds (default 20), files in name order. On by default for the whole suite; with files
 * named on the command line only with TEST_GROUPS=1 (TEST_GROUPS=0: every file alone).
 */
const groupCpu = Number(process.env.TEST_GROUP_CPU ?? 2);
const groupWall = Number(process.env.TEST_GROUP_WALL ?? 20);
const groupsOn = process.env.TEST_GROUPS === "1" || (process.env.TEST_GROUPS !== "0" && fileArgs.length === 0);
/** May the `runAlone` files run in the priority lane (see runAlone): TEST_JOBS > 1, unless TEST_PRIORITY_LANE=0. */
const priorityWanted = jobs > 1 && process.env.TEST_PRIORITY_LANE !== "0";

/** A JSON file of seconds per "engine file" beside this script ({} when missing). */
function recorded(name: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(join(import.meta.dir, name), "utf8"));
  } catch {
    return {};
  }
}
const expected = recorded("test-times.json");
/** Each file's CPU (its process tree) in the same run as test-times.json: --plan's floor of CPU over the cores. */
const expectedCpu = recorded("test-cpu.json");

/** One `bun test` process: one file, or a group of small files (`files`; `file` is the first, for the lane rules). */
type Unit = { engine: "sqlite" | "pg"; file: string; files: string[]; env: Record<string, string> };
type Counts = { pass: number; fail: number; skip: number };
/**
 * `cpuMs`: the CPU of every process the unit started (its cgroup, scripts/test-cgroup.ts; without cgroups its reaped
 * process tree, `treeMs`). `pgCpuS`: the PostgreSQL backends' CPU charged to the unit's databases (scripts/test-pgcpu.ts;
 * 0 when not sampled).
 */
type Done = Unit & { code: number; ms: number; cpuMs: number; treeMs: number; pgCpuS: number; counts: Counts; failures: string[] };

/**
 * Bun's own totals (" 12 pass") and the names of the failed tests ("(fail) ...") in one process's output; in a group,
 * each failed test is followed by its file (Bun prints a "test/x.test.ts:" line before each file's results).
 */
function parseOutput(text: string, grouped = false): { counts: Counts; failures: string[] } {
  const count = (k: string) => Number(text.match(new RegExp(`^\\s*(\\d+) ${k}$`, "m"))?.[1] ?? 0);
  const failures: string[] = [];
  let file = "";
  for (const l of text.split("\n")) {
    if (/^test\/\S+\.test\.tsx?:$/.test(l)) file = l.slice(0, -1);
    // Bun repeats the failed tests at the end of its output: each is named once, under its own file.
    else if (l.startsWith("(fail) ") && !failures.some((f) => f === l || f.startsWith(`${l} [`)))
      failures.push(grouped && file ? `${l} [${file}]` : l);
  }
  return { counts: { pass: count("pass"), fail: count("fail"), skip: count("skip") }, failures };
}

/** A unit's name in the output: its file, or its group's files. */
function label(u: Unit): string {
  return u.files.length === 1 ? u.file : `group of ${u.files.length}: ${u.files.join(" ")}`;
}

/** A unit's recorded time (scripts/test-times.json; a file not there counts 5 s), or CPU with `cpu`. */
function recordedOf(u: Unit, cpu = false): number {
  const rec = cpu ? expectedCpu : expected;
  return u.files.reduce((a, f) => a + (rec[`${u.engine} ${basename(f)}`] ?? (cpu ? 0 : 5)), 0);
}

/**
 * The small files of `units` (see groupCpu) in groups of one process each, per engine; the others as they were.
 * A file without a recorded CPU stays alone (its first run records it).
 */
function grouped(units: Unit[]): Unit[] {
  const small = (u: Unit) => {
    const f = basename(u.file);
    const cpu = expectedCpu[`${u.engine} ${f}`];
    return cpu !== undefined && cpu <= groupCpu && !runAlone[f] && !heavy[f] && !waiting[`${u.engine} ${f}`] && !ungrouped[f];
  };
  const out = units.filter((u) => !small(u));
  for (const engine of ["sqlite", "pg"] as const) {
    const mine = units.filter((u) => u.engine === engine && small(u)).sort((a, b) => a.file.localeCompare(b.file));
    let group: Unit | null = null;
    for (const u of mine) {
      if (group && recordedOf(group) + recordedOf(u) <= groupWall) {
        group.files.push(u.file);
        continue;
      }
      group = { ...u, files: [u.file] };
      out.push(group);
    }
  }
  return out;
}

// Each run has a temp folder of its own, and each file's run a folder inside it as its TMPDIR (scripts/test-tmp.ts):
// what a test leaves there (killed mid-test, or a cleanup bug: tmpfs mounts, `chattr +i` files, clusters) is
// undone and removed when the file ends, and the whole folder when the run ends or is interrupted.
const runDir = planOnly ? "" : makeRunDir();
/** A cgroup per file where this process may make them (scripts/test-cgroup.ts): its whole CPU, chromium's included; TEST_CGROUPS=0: none. */
const cgroups = planOnly || process.env.TEST_CGROUPS === "0" ? null : startCgroups();
/** The `runAlone` files in a lane of their own with the CPU first (`--plan`: where this machine would allow it). */
const priorityLane = priorityWanted && !!cgroups?.cpuDir;
/** The process groups of the files running now (each file runs in a group of its own). */
const running = new Set<number>();
let unitSeq = 0;

/** SIGKILLs what is left of a file's process group (servers, workers, chromium a test did not stop). */
function killGroup(pid: number): boolean {
  try {
    process.kill(-pid, "SIGKILL");
    return true;
  } catch {
    return false; // ESRCH: nothing left
  }
}

/** A unit whose cgroup used no CPU for this long is hung (every test here polls, serves or computes meanwhile). */
const HUNG_AFTER_S = 120;
/** A unit still running after this long is killed too (where no cgroup measures its CPU). */
const UNIT_WALL_LIMIT_S = 20 * 60;

/**
 * Kills a unit's process group once it is hung: its cgroup's CPU still for HUNG_AFTER_S, or past UNIT_WALL_LIMIT_S.
 * Seen once (stop 40's CI-5): three `bun test` processes that never ran a test, 0.3-0.8 s of CPU, their main thread
 * asleep in epoll for minutes; without this the run waits for them forever. Killed, the unit fails and (in CI) runs
 * once more like any failure. `stop()` ends the watch and says for how long it had been hung (0: it was not).
 */
function watchHung(pid: number, cgroupDir: string | null): { stop(): number } {
  const t0 = performance.now();
  let lastCpu = -1;
  let stillSince = t0;
  let killedAfter = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    if (cgroupDir) {
      const cpu = cgroupCpuS(cgroupDir);
      if (cpu - lastCpu > 0.01) {
        lastCpu = cpu;
        stillSince = now;
      }
    }
    const still = cgroupDir ? (now - stillSince) / 1000 : 0;
    if (still >= HUNG_AFTER_S || (now - t0) / 1000 >= UNIT_WALL_LIMIT_S) {
      killedAfter = Math.round(cgroupDir ? still : (now - t0) / 1000);
      clearInterval(timer);
      killGroup(pid);
    }
  }, 10_000);
  return {
    stop() {
      clearInterval(timer);
      return killedAfter;
    },
  };
}

function runUnit(u: Unit, priority = false): Promise<Done> {
  const t0 = performance.now();
  const tmp = makeUnitDir(runDir, `${++unitSeq}-${u.engine}-${basename(u.file, ".test.ts")}${u.files.length > 1 ? "-group" : ""}`);
  // PostgreSQL databases made ahead (every process: SQLite files about both engines make some too), named with its tag.
  const tag = pgPool?.tagOf(unitSeq);
  const cg = inCgroup(cgroups, `u${unitSeq}`, [process.execPath, "test", "--timeout", "60000", ...flagArgs, ...u.files], priority);
  const p = Bun.spawn(cg.argv, {
    cwd: root,
    env: { ...process.env, ...jitEnv, ...u.env, ...(tag ? pgPool!.unitEnv(tag) : {}), TMPDIR: tmp },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  running.add(p.pid);
  const hung = watchHung(p.pid, cg.dir);
  return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(async ([o, e, code]) => {
    const hungFor = hung.stop();
    const ms = performance.now() - t0;
    // CPU of the file's whole process tree as far as it was reaped (servers, workers, CLI runs; not the
    // PostgreSQL server's backends, nor chromium's processes that outlive the test).
    const treeMs = Number(p.resourceUsage()?.cpuTime.total ?? 0n) / 1000;
    running.delete(p.pid);
    const leftovers = killGroup(p.pid) ? ["killed processes the file left running"] : [];
    if (hungFor) leftovers.unshift(`killed: no CPU used for ${hungFor} s (hung)`);
    // With a cgroup: what left the file's process group too (chromium runs in a group of its own), then every
    // process's CPU, once the killed ones are gone.
    let cpuMs = treeMs;
    if (cg.dir) {
      const escaped = killCgroup(cg.dir);
      if (escaped > 0) leftovers.push(`killed ${escaped} processes the file left running outside its process group`);
      for (let i = 0; i < 50 && cgroupPids(cg.dir).length > 0; i++) await Bun.sleep(20);
      cpuMs = Math.max(treeMs, cgroupCpuS(cg.dir) * 1000);
      removeCgroup(cg.dir);
      if (cg.cpuDir) removeCgroup(cg.cpuDir);
    }
    // Its databases are dropped in the background (those it left too).
    if (tag) pgPool!.unitEnded(tag);
    const pgCpuS = tag ? (pgCpu?.of(tag) ?? 0) : 0;
    leftovers.push(...removeTestDir(tmp));
    const leaks = leftovers.map((l) => `runner cleanup: ${l}\n`).join("");
    // One file's output at once, never interleaved with another's.
    process.stdout.write(
      `\n--- [${u.engine}] ${label(u)}${cg.cpuDir ? " (CPU first)" : ""}: ${(ms / 1000).toFixed(1)} s, cpu ${(cpuMs / 1000).toFixed(1)} s${cg.dir ? ` (tree ${(treeMs / 1000).toFixed(1)} s)` : ""}${pgCpuS > 0 ? `, pg ${pgCpuS.toFixed(1)} s` : ""}, exit ${code} (started at +${((t0 - started) / 1000).toFixed(1)} s)\n${e}${o}${leaks}`,
    );
    return { ...u, code: code ?? 1, ms, cpuMs, treeMs, pgCpuS, ...parseOutput(`${e}\n${o}`, u.files.length > 1) };
  });
}

/** The units longest expected first (scripts/test-times.json; a file not there counts 5 s). */
function longestFirst(units: Unit[]): Unit[] {
  return [...units].sort((a, b) => recordedOf(b) - recordedOf(a));
}

const isHeavy = (u: Unit) => heavy[basename(u.file)] !== undefined;
const pairs = (u: Unit) => heavyPairs[basename(u.file)] !== undefined;
/** May `u` start beside the heavy units running now: any light file; a heavy one alone, or two of `heavyPairs`. */
const fits = (u: Unit, heavyRunning: Unit[]) =>
  !isHeavy(u) || heavyRunning.length === 0 || (pairsOn && heavyRunning.length === 1 && pairs(u) && pairs(heavyRunning[0]!));
const isWaiting = (u: Unit) => waiting[`${u.engine} ${basename(u.file)}`] !== undefined;
const isAlone = (u: Unit) => runAlone[basename(u.file)] !== undefined;
/** A lane of pool(): one of the TEST_JOBS, the one for `waiting` files, the one for `runAlone` files (CPU first). */
type Lane = "main" | "waiting" | "priority";
/** May `lane` take `u` (with a priority lane in the pool, `priorityOn`, the others never take a `runAlone` file). */
const takes = (lane: Lane, u: Unit, priorityOn: boolean) =>
  lane === "waiting" ? isWaiting(u) : lane === "priority" ? isAlone(u) : !(priorityOn && isAlone(u));

/**
 * The next unit of `queue` to start: the first, but never a heavy one while another heavy one runs; in the
 * waiting lane only a `waiting` file, in the priority lane only a `runAlone` one (-1: none may).
 */
function next(queue: Unit[], heavyRunning: Unit[], lane: Lane = "main", priorityOn = false): number {
  const open = (u: Unit) => pgOpen || u.engine !== "pg";
  if (lane !== "main") return queue.findIndex((u) => takes(lane, u, priorityOn) && open(u));
  return queue.findIndex((u) => open(u) && takes(lane, u, priorityOn) && fits(u, heavyRunning));
}

/** False while the run's PostgreSQL template is being made: the PostgreSQL files wait, the SQLite files start. */
let pgOpen = true;
/** Wakes the lanes of the running pool() that wait for a file to end (the template is there). */
let poke = () => {};

/**
 * Runs the units `n` at a time, longest expected first; a `heavy` file never starts while another heavy file
 * runs (it waits, and a light file takes the free lane meanwhile). With `extra`, one more lane runs only the
 * `waiting` files (they may take a free lane of the `n` too). With `priority`, one more lane runs the `runAlone`
 * files, one at a time with the CPU first (the `n` lanes never take them); without it `units` holds none of them.
 */
async function pool(units: Unit[], n: number, extra = false, priority = false): Promise<Done[]> {
  const queue = longestFirst(units);
  const done: Done[] = [];
  const heavyRunning: Unit[] = [];
  let wake: (() => void) | null = null;
  poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const worker = async (lane: Lane) => {
    while (queue.length > 0) {
      const i = next(queue, heavyRunning, lane, priority);
      if (i < 0 && !queue.some((u) => takes(lane, u, priority))) return; // nothing left this lane may take: it ends
      if (i < 0) {
        // Only heavy files left and one is running, or only PostgreSQL files before the template: wait for a file
        // to end (or the template).
        await new Promise<void>((r) => {
          const prev = wake;
          wake = () => {
            prev?.();
            r();
          };
        });
        continue;
      }
      const [u] = queue.splice(i, 1);
      if (isHeavy(u!)) heavyRunning.push(u!);
      done.push(await runUnit(u!, lane === "priority"));
      if (isHeavy(u!)) heavyRunning.splice(heavyRunning.indexOf(u!), 1);
      const w = wake;
      wake = null;
      w?.();
    }
  };
  const lanes = [
    ...(extra ? [worker("waiting")] : []),
    ...(priority ? [worker("priority")] : []),
    ...Array.from({ length: Math.min(n, units.length) }, () => worker("main")),
  ];
  await Promise.all(lanes);
  return done;
}

/**
 * The wall pool() would take with `n` lanes (and the waiting lane with `extra`, the priority lane with `priority`) if
 * every file took its time in scripts/test-times.json.
 */
function plannedWall(units: Unit[], n: number, extra: boolean, priority = false): number {
  const queue = longestFirst(units);
  const running: { end: number; unit: Unit; lane: Lane }[] = [];
  let t = 0;
  const start = (lane: Lane) => {
    const i = next(queue, running.map((r) => r.unit).filter(isHeavy), lane, priority);
    if (i < 0) return false;
    const [u] = queue.splice(i, 1);
    running.push({ end: t + recordedOf(u!), unit: u!, lane });
    return true;
  };
  while (queue.length > 0 || running.length > 0) {
    if (extra && !running.some((r) => r.lane === "waiting")) start("waiting");
    if (priority && !running.some((r) => r.lane === "priority")) start("priority");
    while (running.filter((r) => r.lane === "main").length < n && start("main")) {}
    running.sort((a, b) => a.end - b.end);
    t = running.shift()!.end;
  }
  return t;
}

// `--plan`: what the lane rules make of scripts/test-times.json (both engines' files, as they would be queued),
// without running anything.
if (planOnly) {
  const units: Unit[] = [
    ...allFiles.filter((f) => !pgOnly[basename(f)]).map((file) => ({ engine: "sqlite" as const, file, files: [file], env: {} })),
    ...allFiles
      .filter((f) => !sqliteOnly[basename(f)] && !engineNeutral[basename(f)] && !notYetOnPg[basename(f)])
      .map((file) => ({ engine: "pg" as const, file, files: [file], env: {} })),
  ].filter((u) => engines.includes(u.engine));
  const sum = (us: Unit[]) => us.reduce((a, u) => a + recordedOf(u), 0);
  const alone = units.filter(isAlone);
  const lanes = groupsOn ? grouped(units.filter((u) => !isAlone(u))) : units.filter((u) => !isAlone(u));
  console.log(
    `${units.length} files${groupsOn ? ` in ${lanes.length + alone.length} processes` : ""}, ${sum(units).toFixed(0)} s one at a time (scripts/test-times.json); runAlone ${sum(alone).toFixed(0)} s, heavy ${sum(lanes.filter(isHeavy)).toFixed(0)} s, the rest ${sum(lanes.filter((u) => !isHeavy(u))).toFixed(0)} s`,
  );
  for (const g of lanes.filter((u) => u.files.length > 1))
    console.log(`[${g.engine}] group of ${g.files.length} (${recordedOf(g).toFixed(0)} s): ${g.files.join(" ")}`);
  const waits = lanes.filter(isWaiting);
  console.log(`waiting files (an extra lane beside TEST_JOBS > 1 unless TEST_WAIT_LANE=0): ${sum(waits).toFixed(0)} s`);
  // The priority lane (TEST_JOBS > 1 where the cpu controller may be used): the runAlone files beside the others.
  const prio = process.env.TEST_PRIORITY_LANE !== "0" && process.env.TEST_CGROUPS !== "0" && priorityAvailable();
  console.log(
    `runAlone files: ${prio ? "a lane of their own with the CPU first, beside TEST_JOBS > 1" : "after the others, one at a time"}`,
  );
  for (const n of [1, 2, 3, 4]) {
    const p = prio && n > 1;
    const w = n > 1 && process.env.TEST_WAIT_LANE !== "0";
    console.log(
      `TEST_JOBS=${n}: ${(p ? plannedWall([...lanes, ...alone], n, w, true) : plannedWall(lanes, n, w) + sum(alone)).toFixed(0)} s`,
    );
  }
  // The lanes cannot beat the CPU: the files' recorded CPU (not chromium's processes that outlive a test) and, when
  // recorded, the PostgreSQL backends' on their databases (scripts/test-pg-cpu.json: a whole run's
  // $TMPDIR/sitesync-test-pg-cpu.json; the server's CPU it could not attribute is not in it) over the cores.
  const cpu = units.reduce((a, u) => a + recordedOf(u, true), 0);
  const pgCpuRec = recorded("test-pg-cpu.json");
  const pgCpu = units.reduce((a, u) => a + u.files.reduce((b, f) => b + (pgCpuRec[`${u.engine} ${basename(f)}`] ?? 0), 0), 0);
  const cores = navigator.hardwareConcurrency;
  if (cpu > 0)
    console.log(
      `CPU ${cpu.toFixed(0)} s recorded (scripts/test-cpu.json, files' process trees)${pgCpu > 0 ? ` + ${pgCpu.toFixed(0)} s of the PostgreSQL backends on their databases (scripts/test-pg-cpu.json)` : ""}: at least ${((cpu + pgCpu) / cores).toFixed(0)} s of wall on ${cores} cores`,
    );
  process.exit(0);
}

const results: string[] = [];
let failed = false;
const units: Unit[] = [];
const started = performance.now();
const machineAtStart = machineTicks();

if (engines.includes("sqlite")) {
  const files = allFiles.filter((f) => !pgOnly[basename(f)]);
  console.log(`\n=== SQLite: ${files.length} test files; PostgreSQL-only, not run here: ===`);
  for (const f of allFiles.filter((f) => pgOnly[basename(f)])) console.log(`  ${basename(f)}: ${pgOnly[basename(f)]}`);
  for (const file of files) units.push({ engine: "sqlite", file, files: [file], env: { TEST_ENGINE: "sqlite" } });
}

let cluster: Cluster | null = null;
let runTemplate: string | null = null;
/** PostgreSQL test databases made ahead of use and dropped in the background (test/helpers/pg-pool.ts). */
let pgPool: ReturnType<typeof startPgPool> | null = null;
/** The PostgreSQL server's CPU by test process, when it runs on this machine (scripts/test-pgcpu.ts). */
let pgCpu: ReturnType<typeof startPgCpuSampler> = null;

/**
 * The test process (its pool tag) a database of this run belongs to: named with the tag, or a pool copy it took (its
 * file under `taken`/<tag>/); "runner" for the maintenance database and the run's template; null for any other.
 */
function ownerOf(taken: string, template: string): (db: string) => string | null {
  const known = new Map<string, string>();
  return (db) => {
    // The maintenance database, the run's template and the seeds shared by files (test/helpers/seeded-pg.ts).
    if (db === "postgres" || db === template || /^sitesync_t_p\d+_seed_/.test(db)) return "runner";
    const named = /^sitesync_(?:t|test)_(r\d+u\d+)_/.exec(db);
    if (named) return named[1]!;
    if (known.has(db)) return known.get(db)!;
    for (const tag of existsSync(taken) ? readdirSync(taken) : []) {
      if (existsSync(join(taken, tag, db))) {
        known.set(db, tag);
        return tag;
      }
    }
    return null;
  };
}
let pgUrl: string | undefined;
// Interrupted (Ctrl-C, CI timeout): the files' process groups are killed and the run's folder removed.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    for (const pid of running) killGroup(pid);
    for (const l of removeTestDir(runDir)) console.error(`runner cleanup: ${l}`);
    if (cgroups) {
      removeCgroup(cgroups.dir);
      if (cgroups.cpuDir) removeCgroup(cgroups.cpuDir);
    }
    if (runTemplate) {
      try {
        // The run's databases: the template, the pool's, the test processes'.
        const mine = psql(
          `select datname from pg_database where datname = '${runTemplate}' or starts_with(datname, 'sitesync_t_p${process.pid}_') or starts_with(datname, 'sitesync_test_p${process.pid}_') or starts_with(datname, 'sitesync_t_r${process.pid}u') or starts_with(datname, 'sitesync_test_r${process.pid}u')`,
        );
        for (const name of mine.split("\n").filter(Boolean)) psql(`drop database if exists "${name}" with (force)`);
      } catch {
        // The server is gone already.
      }
    }
    if (cluster) stopCluster(cluster.dir);
    process.exit(130);
  });
}

if (engines.includes("pg")) {
  const once = (f: string) => sqliteOnly[basename(f)] ?? engineNeutral[basename(f)];
  const skipped = allFiles.filter(once);
  const pending = allFiles.filter((f) => notYetOnPg[basename(f)]);
  const files = allFiles.filter((f) => !once(f) && !notYetOnPg[basename(f)]);
  pgUrl = process.env.TEST_POSTGRES_URL;
  const why =
    pgUrl || findPgBin() ? null : "no TEST_POSTGRES_URL and no PostgreSQL under /usr/lib/postgresql (apt-get install -y postgresql)";
  if (why) {
    console.log(`\nPostgreSQL suite skipped: ${why}`);
    results.push(`postgresql: SKIPPED (${why})`);
    if (process.env.REQUIRE_POSTGRES === "1") failed = true;
  } else if (files.length > 0) {
    if (!pgUrl) {
      cluster = startCluster();
      pgUrl = cluster.url;
    }
    process.env.TEST_POSTGRES_URL = pgUrl;
    runTemplate = `sitesync_tmpl_run_${process.pid}`;
    // Made while the SQLite files start; the PostgreSQL files start once it is there (a failure fails them).
    pgOpen = false;
    const templateMade = createMigratedDatabaseAsync(runTemplate).then(
      () => {
        pgOpen = true;
        poke();
      },
      (e) => {
        console.error(`the run's PostgreSQL template: ${e}`);
        failed = true;
        pgOpen = true;
        poke();
      },
    );
    if (process.env.TEST_PG_AHEAD !== "0")
      pgPool = startPgPool({ adminUrl: pgUrl, template: runTemplate, dir: join(runDir, "pg-pool"), templateMade });
    if (pgPool) pgCpu = startPgCpuSampler(pgUrl, ownerOf(join(runDir, "pg-pool", "taken"), runTemplate));
    console.log(
      `\n=== PostgreSQL (${pgUrl}): ${files.length} test files; SQLite-only or engine-neutral (run once, on SQLite), not run here: ===`,
    );
    for (const f of skipped) console.log(`  ${basename(f)}: ${once(f)}`);
    if (pending.length > 0) console.log("NOT YET ON POSTGRESQL (skipped there, issue 11):");
    for (const f of pending) console.log(`  skipped: ${basename(f)}: ${notYetOnPg[basename(f)]}`);
    // The SQLite processes: a file's real-server describes run in its PostgreSQL run only (test/helpers/postgres.ts
    // pgRunsToo). Not the run's template: they start before it is made.
    for (const u of units) Object.assign(u.env, { TEST_PG_RUNS_TOO: "1" });
    for (const file of files)
      units.push({
        engine: "pg",
        file,
        files: [file],
        env: { TEST_ENGINE: "pg", TEST_POSTGRES_URL: pgUrl, TEST_PG_TEMPLATE: runTemplate },
      });
  }
}

const done: Done[] = [];
const flaky: Done[] = [];
const firstFailures: Done[] = [];
try {
  const alone = units.filter(isAlone);
  const lanes = units.filter((u) => !isAlone(u));
  const processes = groupsOn ? grouped(lanes) : lanes;
  console.log(
    `\n${lanes.length} files ${groupsOn ? `(${processes.length} processes: small files in groups) ` : ""}${jobs} at a time${waitLane ? " (and the waiting files in a lane of their own)" : ""}, ${priorityLane ? `${alone.length} beside them one at a time with the CPU first (runAlone)` : `then ${alone.length} alone`}`,
  );
  if (priorityLane) done.push(...(await pool([...processes, ...alone], jobs, waitLane, true)));
  else {
    done.push(...(await pool(processes, jobs, waitLane)));
    done.push(...(await pool(alone, 1)));
  }
  // CI only (TEST_RETRY_FAILED=1, set by .ci/run): a file that failed runs once more, alone on a quieter
  // machine. A pass there is printed as FLAKY with the first attempt's failures, never hidden; a file that
  // fails twice fails the run.
  const failedFirst = done.filter((d) => d.code !== 0);
  if (process.env.TEST_RETRY_FAILED === "1" && failedFirst.length > 0 && failedFirst.length <= 6) {
    console.log(`\n=== ${failedFirst.length} failed files: each run once more, alone ===`);
    // A group runs again whole: a file that fails only beside its neighbours fails twice (mend the leak, or list
    // it in `ungrouped`).
    for (const first of failedFirst) {
      const again = await runUnit(first);
      if (again.code === 0) flaky.push(first);
      done[done.indexOf(first)] = again;
    }
  }
  firstFailures.push(...failedFirst);
} finally {
  if (pgPool) {
    const t = performance.now();
    const { taken, madeByTests, errors } = await pgPool.stop();
    console.log(
      `PostgreSQL databases: ${taken} made ahead and taken, ${madeByTests} made by the tests (none ready); the last dropped in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    if (errors.length > 0) console.log(`PostgreSQL pool: ${errors.length} errors (retried), the first: ${errors[0]}`);
  }
  if (pgCpu) {
    const c = pgCpu.stop();
    console.log(
      `PostgreSQL server CPU ${c.total.toFixed(1)} s: ${c.units.toFixed(1)} s charged to the files' databases, ${c.runner.toFixed(1)} s to the runner's (copies, drops, the template, shared seeds), ${c.server.toFixed(1)} s its own processes (${c.own.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}), ${c.other.toFixed(1)} s not attributed (short-lived backends, other databases)`,
    );
  }
  if (runTemplate) {
    try {
      psql(`drop database if exists "${runTemplate}" with (force)`);
    } catch {
      // The server is gone already.
    }
  }
  if (cluster) stopCluster(cluster.dir);
  for (const l of removeTestDir(runDir)) console.log(`runner cleanup: ${l}`);
  if (cgroups) {
    removeCgroup(cgroups.dir);
    if (cgroups.cpuDir) removeCgroup(cgroups.cpuDir);
  }
}

for (const engine of ["sqlite", "pg"] as const) {
  const mine = done.filter((d) => d.engine === engine);
  if (mine.length === 0) continue;
  const bad = mine.filter((d) => d.code !== 0);
  const name = engine === "pg" ? "postgresql" : "sqlite";
  results.push(
    bad.length === 0 ? `${name}: passed` : `${name}: FAILED (${bad.flatMap((d) => d.files.map((f) => basename(f))).join(", ")})`,
  );
  failed ||= bad.length > 0;
}
// A group's wall and CPU are shared among its files in proportion to their recorded times (equal shares without).
const perFile = done.flatMap((d) => {
  if (d.files.length === 1) return [{ key: `${d.engine} ${basename(d.file)}`, ms: d.ms, cpuMs: d.cpuMs, pgCpuS: d.pgCpuS }];
  const one = (f: string) => ({ ...d, file: f, files: [f] });
  const wall = recordedOf(d) || 1;
  const cpu = recordedOf(d, true) || 1;
  return d.files.map((f) => ({
    key: `${d.engine} ${basename(f)}`,
    ms: (d.ms * (recordedOf(one(f)) || wall / d.files.length)) / wall,
    cpuMs: (d.cpuMs * (recordedOf(one(f), true) || cpu / d.files.length)) / cpu,
    pgCpuS: (d.pgCpuS * (recordedOf(one(f), true) || cpu / d.files.length)) / cpu,
  }));
});
/**
 * The run's records: $TMPDIR/sitesync-test-<runner pid>-<name> for every run, and for a run of the whole suite also
 * $TMPDIR/sitesync-test-<name> (what CI and a rebalance read: a run of a few files no longer overwrites those).
 */
const record = (name: string, text: string) => {
  const mine = join(tmpdir(), `sitesync-test-${process.pid}-${name}`);
  writeFileSync(mine, text);
  if (fileArgs.length === 0) writeFileSync(join(tmpdir(), `sitesync-test-${name}`), text);
  return mine;
};
const json = (by: (d: (typeof perFile)[number]) => number) =>
  `${JSON.stringify(Object.fromEntries(perFile.sort((a, b) => by(b) - by(a)).map((d) => [d.key, Math.round(by(d) * 10) / 10])), null, 0).replaceAll(",", ",\n")}\n`;
const [wallOf, cpuOf, pgOf] = [json((d) => d.ms / 1000), json((d) => d.cpuMs / 1000), json((d) => d.pgCpuS)];
const timesFile = record("times.json", wallOf);
record("cpu.json", cpuOf);
if (pgCpu) record("pg-cpu.json", pgOf);
const sum = (k: "ms" | "cpuMs" | "treeMs") => (done.reduce((a, d) => a + d[k], 0) / 1000).toFixed(1);
const wallS = (performance.now() - started) / 1000;
/** This process's CPU and its reaped children's other than the files' (psql runs), in seconds. */
function runnerCpuS(): number {
  const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  return ticks / 100 - done.reduce((a, d) => a + d.treeMs, 0) / 1000;
}
const machine = machineTicks();
const busyCores = ((machine.busy - machineAtStart.busy) / (machine.total - machineAtStart.total)) * navigator.hardwareConcurrency;
console.log(
  `\nwall ${wallS.toFixed(1)} s for ${perFile.length} files in ${done.length} processes; sum of file times ${sum("ms")} s, of their CPU ${sum("cpuMs")} s${cgroups ? ` (their process trees ${sum("treeMs")} s, the rest in processes that left them: chromium's, orphans)` : ""}, the runner's ${runnerCpuS().toFixed(1)} s${pgCpu ? `, of their databases' PostgreSQL CPU ${done.reduce((a, d) => a + d.pgCpuS, 0).toFixed(1)} s` : ""}; the machine's cores ${busyCores.toFixed(2)} of ${navigator.hardwareConcurrency} busy on average (every process, not only the suite's) (per-file times: ${timesFile}, CPU: -cpu.json beside it)`,
);
// The summary goes last (CI records keep the tail of the output): failed tests by name, flaky files, totals.
const summary: string[] = [];
for (const d of firstFailures) {
  const verdict = flaky.includes(d) ? "FLAKY (failed, then passed alone)" : "FAILED";
  summary.push(`${verdict}: [${d.engine}] ${d.files.join(" ")} (exit ${d.code}, ${(d.ms / 1000).toFixed(1)} s)`);
  for (const f of d.failures.slice(0, 8)) summary.push(`  ${f}`);
  if (d.failures.length === 0) summary.push("  (no test named as failed: the file's process itself failed; its output is above)");
}
const total = (k: keyof Counts) => done.reduce((a, d) => a + d.counts[k], 0);
summary.push(`tests: ${total("pass")} passed, ${total("fail")} failed, ${total("skip")} skipped (both engines)`);
summary.push(`suite: ${results.join("; ")}${flaky.length > 0 ? `; ${flaky.length} flaky` : ""}`);
record("summary.txt", `${summary.join("\n")}\n`);
console.log(`\n${summary.join("\n")}`);
process.exit(failed ? 1 : 0);
