import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import type { Engine } from "../src/db/engine.ts";
import { treeCpuSeconds } from "./cpu.ts";
import { runLoad, type LoadOptions, type LoadRequest, type LoadResult } from "./load.ts";
import { openPgServer, type PgServer } from "./pg.ts";
import { startBaseline, startService, type RunningServer } from "./processes.ts";
import {
  checkTargets,
  combineRounds,
  crossEngineTable,
  formatTable,
  ratiosOf,
  roundsNote,
  vsOtherEngine,
  type ScenarioResult,
} from "./report.ts";
import { scenarioNames, scenarios, type Side } from "./scenarios.ts";
import { hasSyncApi, seedSites } from "./seed.ts";
import { hasWrk, runWrk } from "./wrk.ts";

// `bun run bench`: the service and the textbook baseline (bench/baseline/), each on a fresh temp
// database with the same seeded sites, driven alternately by the same load, scenario by scenario.
// Prints a table with the ratios and their targets and writes bench/results/latest.json.
// --database picks the engine: sqlite (default), postgres (a throw-away cluster started here), a
// postgres:// server URL (a fresh database is made on it), or a list (sqlite,postgres): one table per
// engine, each against its own textbook baseline, plus the engines side by side, all from this one run.
//
//   bun run bench [--duration 10] [--warmup 3] [--prewarm 0] [--workers 4] [--connections 64] [--seed 1000]
//                 [--scenarios get_one,list,...] [--rounds 1] [--demo-rows 25000] [--ingest-days 7]
//                 [--database sqlite|postgres|postgres://…|sqlite,postgres]
//                 [--generator wrk|autocannon] [--out bench/results/latest.json] [--check] [--quick] [--self]

/** One engine the run measures: SQLite files in the temp dir, or databases on a PostgreSQL server (null: start one). */
type DatabaseChoice = { engine: "sqlite" } | { engine: "pg"; url: string | null };

function parseDatabases(list: string, ctx: z.RefinementCtx): DatabaseChoice[] {
  const out: DatabaseChoice[] = [];
  for (const item of list
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)) {
    let choice: DatabaseChoice;
    if (item === "sqlite") choice = { engine: "sqlite" };
    else if (item === "postgres" || item === "postgresql") choice = { engine: "pg", url: null };
    else if (/^postgres(ql)?:\/\/./i.test(item)) choice = { engine: "pg", url: item };
    else {
      ctx.addIssue({ code: "custom", message: `'${item}' is not sqlite, postgres or a postgres:// URL` });
      return z.NEVER;
    }
    if (out.some((c) => c.engine === choice.engine)) {
      ctx.addIssue({ code: "custom", message: "each engine at most once" });
      return z.NEVER;
    }
    out.push(choice);
  }
  if (out.length === 0) {
    ctx.addIssue({ code: "custom", message: "name at least one database" });
    return z.NEVER;
  }
  return out;
}

const posInt = (max: number) => z.coerce.number().int().min(1).max(max);
const flagsSchema = z.object({
  duration: z.coerce.number().positive().max(3600).default(10),
  warmup: z.coerce.number().min(0).max(600).default(3),
  // Seconds each side serves the selected scenarios' traffic once, before the first measurement: a
  // long-running server has compiled its hot code; a few seconds of warm-up per scenario leave the JIT
  // still compiling the service's larger code base (cold figures). 0: cold only.
  prewarm: z.coerce.number().min(0).max(3600).default(0),
  workers: posInt(64).default(4),
  connections: posInt(10_000).default(64),
  seed: posInt(1_000_000).default(1000),
  rounds: posInt(100).default(1),
  scenarios: z
    .string()
    .default(scenarioNames.join(","))
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(scenarioNames as [string, ...string[]])).min(1)),
  "demo-rows": posInt(1_000_000).default(25_000),
  "ingest-days": posInt(365).default(7),
  database: z.string().default("sqlite").transform(parseDatabases),
  // wrk (C, its own process: the generator of issue 19's measurements) when installed, else autocannon in this
  // process, whose JavaScript parses every answer's headers (~11 µs a get_one more for the service's 8 extra).
  generator: z.enum(["wrk", "autocannon"]).default(() => (hasWrk() ? "wrk" : "autocannon")),
  out: z
    .string()
    .min(1)
    .default(join(import.meta.dir, "results/latest.json")),
  check: z.boolean().default(false),
  // A/A: the baseline side is a second copy of the service (same tree, same settings), so every ratio should be
  // 1.00x and its spread over runs is the method's own noise.
  self: z.boolean().default(false),
  // A short run for CI: the ratios printed, no pass/fail (a shared, noisy machine).
  quick: z.boolean().default(false),
});
type Flags = z.infer<typeof flagsSchema>;

function readFlags(): Flags {
  let raw;
  try {
    raw = parseArgs({
      options: Object.fromEntries(
        Object.keys(flagsSchema.shape).map((k) => [
          k,
          { type: k === "check" || k === "quick" || k === "self" ? ("boolean" as const) : ("string" as const) },
        ]),
      ),
      strict: true,
    }).values;
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
  // --quick: 1 s of warm-up per scenario and side, then four rounds of 1 s windows, A B B A A B B A (a drift of the
  // machine, or one side's work left over after its load, falls on both sides alike), the request-path scenarios.
  if (raw.quick) raw = { duration: "1", warmup: "1", rounds: "4", scenarios: "get_one,list,create,mixed", ...raw, check: false };
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`--${String(i.path[0])}: ${i.message}`);
    process.exit(1);
  }
  return parsed.data;
}

const flags = readFlags();
/** The selected load generator; both sides of every scenario are driven by the same one. */
const drive: (o: LoadOptions) => Promise<LoadResult> = flags.generator === "wrk" ? runWrk : runLoad;
const tmp = mkdtempSync(join(tmpdir(), "sitesync-bench-"));
const runTag = Date.now().toString(36);
const running = new Set<RunningServer>();
let pgServer: PgServer | null = null;
/** Several engines: their name prefixes the progress lines. */
const tagged = flags.database.length > 1;

/** A started side: its server, the ids of its seeded sites and its database (file path or URL). */
type Instance = { server: RunningServer; ids: number[]; database: string };

/** One engine's part of the run: where its databases live, its servers, its results. */
type EngineRun = {
  engine: Engine;
  label: string;
  /** A fresh database for a server: a file in the temp dir, or a new database on the PostgreSQL server. */
  newDatabase(name: string): Promise<string>;
  storedRows(database: string): Promise<number>;
  /** CPU seconds of the database server's processes (PostgreSQL started by the bench); null when not measured. */
  dbCpuSeconds: (() => number | null) | null;
  service?: Instance;
  baseline?: Instance;
  /** SQLite: the bare group-commit peer, when a selected scenario is measured on it. */
  groupcommit?: Instance;
  results: Map<string, ScenarioResult>;
};

function sqliteRows(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.query("select count(*) as n from gsc_performance_data").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function openEngine(choice: Flags["database"][number]): Promise<EngineRun> {
  if (choice.engine === "sqlite") {
    return {
      engine: "sqlite",
      label: "SQLite",
      newDatabase: async (name) => join(tmp, `${name}.db`),
      storedRows: async (path) => sqliteRows(path),
      dbCpuSeconds: null,
      results: new Map(),
    };
  }
  const server = await openPgServer(choice.url, runTag);
  pgServer = server;
  const pid = server.serverPid;
  return {
    engine: "pg",
    label: "PostgreSQL",
    newDatabase: (name) => server.createDatabase(name),
    storedRows: (url) => server.countRows(url, "gsc_performance_data"),
    dbCpuSeconds: pid === null ? null : () => treeCpuSeconds(pid, { exitedChildren: true }),
    results: new Map(),
  };
}

const prefix = (e: EngineRun) => (tagged ? `${e.engine} ` : "");

async function start(e: EngineRun, side: Side, name: string, env?: Record<string, string>, syncWorkers = 0): Promise<Instance> {
  const database = await e.newDatabase(name);
  const server =
    side === "service" || (side === "baseline" && flags.self)
      ? await startService({ dbPath: database, workers: flags.workers, syncWorkers, env })
      : await startBaseline({ dbPath: database, workers: flags.workers, groupCommit: side === "groupcommit" });
  running.add(server);
  const t0 = performance.now();
  const ids = await seedSites(server.url, flags.seed);
  console.log(
    `  ${prefix(e)}${name}: ${server.url}, ${flags.workers} processes, seeded ${ids.length} sites in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { server, ids, database };
}

async function stop(t: Instance | undefined) {
  if (!t) return;
  await t.server.stop();
  running.delete(t.server);
}

/**
 * One measured load on one side: optional warmup, then the load, with the CPU time of the side's process
 * tree, plus the database server's when it is measured (PostgreSQL does a request's database work in its
 * own processes; SQLite inside the side's).
 */
async function measure(e: EngineRun, target: Instance, next: () => LoadRequest, warm: boolean) {
  const base = { url: target.server.url, connections: flags.connections, next };
  if (warm && flags.warmup > 0) await drive({ ...base, durationSec: flags.warmup });
  const db0 = e.dbCpuSeconds?.() ?? null;
  const cpu0 = treeCpuSeconds(target.server.pid);
  const gen0 = process.cpuUsage();
  const load = await drive({ ...base, durationSec: flags.duration });
  const gen = process.cpuUsage(gen0);
  const cpu1 = treeCpuSeconds(target.server.pid);
  const db1 = e.dbCpuSeconds?.() ?? null;
  const perReq = (a: number | null, b: number | null) =>
    a === null || b === null || load.requests === 0 ? null : ((b - a) * 1e6) / load.requests;
  const appUs = perReq(cpu0, cpu1);
  // The load generator (this process) shares the cores with the side: its CPU per request is printed beside the side's.
  const loadCpuUsPerReq = perReq(0, load.generatorCpuSec ?? (gen.user + gen.system) / 1e6);
  if (!e.dbCpuSeconds) return { load, cpuUsPerReq: appUs, loadCpuUsPerReq };
  const dbUs = perReq(db0, db1);
  return { load, cpuUsPerReq: appUs === null || dbUs === null ? appUs : appUs + dbUs, dbCpuUsPerReq: dbUs, loadCpuUsPerReq };
}

/**
 * --prewarm: every side serves the selected scenarios' traffic (each scenario an equal share of the
 * seconds, its own generator so created domains never collide with the measured ones) before any
 * measurement, so the figures are a long-running server's (steady state) rather than a fresh one's.
 * A share under a second goes to autocannon: wrk runs whole seconds (bench.test's 0.6 s over two scenarios
 * was five seconds of load, a third of its CPU), and nothing of a prewarm is measured.
 */
async function prewarm(engines: EngineRun[], selected: typeof scenarios) {
  const plain = selected.filter((s) => !s.duringIngest && !s.needsSync);
  if (plain.length === 0) return;
  const t0 = performance.now();
  const share = flags.prewarm / plain.length;
  const warm = share < 1 ? runLoad : drive;
  for (const e of engines) {
    for (const side of ["service", "baseline", "groupcommit"] as const) {
      const target = e[side];
      if (!target) continue;
      for (const sc of plain) {
        if (side === "groupcommit" && !sc.groupCommitPeer) continue;
        const next = sc.generator({ side, siteIds: target.ids, runTag: `${runTag}w` });
        await warm({ url: target.server.url, connections: flags.connections, next, durationSec: share });
      }
    }
  }
  console.log(
    `  prewarmed every side: ${flags.prewarm} s of the selected scenarios each (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
}

type JobSnapshot = { status?: string };

async function job(url: string, id: number): Promise<JobSnapshot> {
  const res = await fetch(`${url}/api/v1/sync/job/${id}`);
  return res.ok ? ((await res.json()) as JobSnapshot) : {};
}

/** Triggers a multi-day sync on the ingest service and waits until its worker is writing rows. */
async function startIngest(e: EngineRun, t: Instance, round: number) {
  const site = t.ids[round % t.ids.length]!;
  const res = await fetch(`${t.server.url}/api/v1/sync/trigger/${site}?days=${flags["ingest-days"]}&sync_mode=overwrite`, {
    method: "POST",
  });
  const body = (await res.json()) as { job_id?: number };
  if (res.status !== 202 || typeof body.job_id !== "number") throw new Error(`sync trigger failed: ${res.status} ${JSON.stringify(body)}`);
  const deadline = Date.now() + 60_000;
  const rows0 = await e.storedRows(t.database);
  while ((await e.storedRows(t.database)) === rows0) {
    const s = await job(t.server.url, body.job_id);
    if (s.status && s.status !== "pending" && s.status !== "running")
      throw new Error(`ingest job ended before the load: ${JSON.stringify(s)}`);
    if (Date.now() > deadline) throw new Error("the sync worker wrote no row within 60 s");
    await Bun.sleep(50);
  }
  return { jobId: body.job_id, rowsBefore: await e.storedRows(t.database) };
}

/** After the load: how much was ingested meanwhile; cancels the job so it cannot disturb the next measurement. */
async function finishIngest(e: EngineRun, t: Instance, ingest: { jobId: number; rowsBefore: number }) {
  const rowsAfter = await e.storedRows(t.database);
  const during = await job(t.server.url, ingest.jobId);
  await fetch(`${t.server.url}/api/v1/sync/job/${ingest.jobId}`, { method: "DELETE" });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const s = await job(t.server.url, ingest.jobId);
    if (s.status !== "pending" && s.status !== "running") break;
    await Bun.sleep(50);
  }
  return { rowsIngestedDuringLoad: rowsAfter - ingest.rowsBefore, jobStatusAtEnd: during.status ?? "unknown" };
}

type Measured = Awaited<ReturnType<typeof measure>>;
type IngestFacts = Awaited<ReturnType<typeof finishIngest>>;

async function main() {
  const startLoad = loadavg();
  const machine = {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    bun: Bun.version,
    os: `${platform()} ${release()}`,
  };
  const selected = scenarios.filter((s) => flags.scenarios.includes(s.name));
  console.log(
    `sitesync bench: ${flags.workers} workers per side, ${flags.connections} connections, ${flags.duration} s per scenario and side` +
      ` (+${flags.warmup} s warmup), ${flags.seed} seeded sites, ${flags.rounds} round(s), ` +
      (flags.prewarm > 0
        ? `steady state: every side prewarmed ${flags.prewarm} s first`
        : "cold: no prewarm, the service's JIT is still compiling (--prewarm 20 for a long-running server's figures)"),
  );
  if (flags.self) console.log("A/A: the baseline side is a second copy of the service (every ratio should be 1.00x)");
  console.log(`load generator: ${flags.generator}${flags.generator === "autocannon" && !hasWrk() ? " (wrk is not installed)" : ""}`);
  console.log(`machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Bun ${machine.bun}, ${machine.os}`);
  console.log(`databases in ${tmp} (removed at exit)`);

  const engines: EngineRun[] = [];
  for (const choice of flags.database) engines.push(await openEngine(choice));
  if (pgServer) {
    const st = pgServer.settings;
    console.log(
      `postgresql: ${pgServer.origin}; PostgreSQL ${st.server_version}, fsync=${st.fsync}, synchronous_commit=${st.synchronous_commit},` +
        ` full_page_writes=${st.full_page_writes}, shared_buffers=${st.shared_buffers}, max_connections=${st.max_connections}` +
        (pgServer.serverPid === null ? "; its CPU is not measured (not started by the bench): cpu µs/req is the servers' own" : ""),
    );
  }

  const needsMain = selected.some((s) => !s.duringIngest);
  for (const e of engines) {
    e.service = needsMain ? await start(e, "service", "service") : undefined;
    e.baseline = await start(e, "baseline", "baseline");
    if (e.engine === "sqlite" && selected.some((s) => s.groupCommitPeer)) e.groupcommit = await start(e, "groupcommit", "groupcommit");
  }
  if (flags.prewarm > 0) await prewarm(engines, selected);

  // Scenarios run in definition order, so create_during_ingest (which replaces the plain service) comes last.
  for (const [index, sc] of selected.entries()) {
    const live: { e: EngineRun; svc: Instance; r: ScenarioResult }[] = [];
    for (const e of engines) {
      const r: ScenarioResult = { name: sc.name, engine: e.engine, description: sc.description, targets: [], notes: [] };
      e.results.set(sc.name, r);
      let svc = e.service;
      if (sc.duringIngest) {
        // A service with a sync worker and a large demo day; the plain one is stopped to free the CPU.
        await stop(e.service);
        e.service = undefined;
        svc = await start(e, "service", "service-ingest", { SYNC_SOURCE: "demo", DEMO_ROWS_PER_DAY: String(flags["demo-rows"]) }, 1);
      }
      if (sc.needsSync && !(await hasSyncApi(svc!.server.url))) {
        r.skipped = "sync API not available";
        console.log(`${prefix(e)}${sc.name}: skipped: ${r.skipped}`);
        if (sc.duringIngest) await stop(svc);
        continue;
      }
      live.push({ e, svc: svc!, r });
    }
    const gens = live.map(({ svc, e }) => ({
      service: sc.generator({ side: "service", siteIds: svc.ids, runTag }),
      baseline: sc.generator({ side: "baseline", siteIds: e.baseline!.ids, runTag }),
      groupcommit: sc.generator({ side: "groupcommit", siteIds: e.groupcommit?.ids ?? [], runTag }),
    }));
    const rounds = live.map(() => ({
      service: [] as Measured[],
      baseline: [] as Measured[],
      groupcommit: [] as Measured[],
      ingest: [] as IngestFacts[],
    }));
    for (let round = 0; round < flags.rounds; round++) {
      // Alternate who goes first, so a slow drift of the machine does not always favour one side (or engine).
      const flip = (index + round) % 2 !== 0;
      const sides: Side[] = flip ? ["baseline", "service", "groupcommit"] : ["groupcommit", "service", "baseline"];
      const engineOrder = live.map((_, i) => i);
      if (flip) engineOrder.reverse();
      for (const i of engineOrder) {
        const { e, svc, r } = live[i]!;
        if (r.failed) continue;
        const instances: Record<Side, Instance | undefined> = { service: svc, baseline: e.baseline, groupcommit: e.groupcommit };
        const order = sides.filter((side) => side !== "groupcommit" || (sc.groupCommitPeer && e.groupcommit));
        try {
          for (const side of order) {
            const ingest = sc.duringIngest && side === "service" ? await startIngest(e, svc, round) : undefined;
            // A side warms up before its first window only: the later rounds' windows follow each other.
            const m = await measure(e, instances[side]!, gens[i]![side], round === 0);
            rounds[i]![side].push(m);
            let extra = "";
            if (ingest) {
              const facts = await finishIngest(e, svc, ingest);
              rounds[i]!.ingest.push(facts);
              extra = `, ${facts.rowsIngestedDuringLoad.toLocaleString("en-US")} rows ingested meanwhile (job ${facts.jobStatusAtEnd})`;
            }
            console.log(
              `  ${prefix(e)}${sc.name} ${side.padEnd(8)} ${Math.round(m.load.rps).toLocaleString("en-US").padStart(8)} req/s` +
                `  p50 ${m.load.p50Ms.toFixed(2)} ms  p99 ${m.load.p99Ms.toFixed(2)} ms${extra}`,
            );
          }
        } catch (err) {
          // This scenario cannot be measured on this engine (e.g. its sync trigger answers 500): the others go on.
          r.failed = (err as Error).message;
          console.log(`  ${prefix(e)}${sc.name}: FAILED: ${r.failed}`);
        }
      }
    }
    for (const [i, { svc, r }] of live.entries()) {
      const got = rounds[i]!;
      if (r.failed) {
        if (sc.duringIngest) await stop(svc);
        continue;
      }
      r.service = combineRounds(got.service);
      r.baseline = combineRounds(got.baseline);
      r.ratios = ratiosOf(r.service, r.baseline);
      const byRound = roundsNote("vs baseline", r.service, r.baseline);
      if (byRound) r.notes.push(byRound);
      if (got.groupcommit.length > 0) {
        r.groupcommit = combineRounds(got.groupcommit);
        r.ratiosGroupCommit = ratiosOf(r.service, r.groupcommit);
        const gcByRound = roundsNote("vs groupcommit", r.service, r.groupcommit);
        if (gcByRound) r.notes.push(gcByRound);
      }
      if (sc.duringIngest) {
        r.extra = { ingest: got.ingest, demoRowsPerDay: flags["demo-rows"], ingestDays: flags["ingest-days"] };
        const rows = got.ingest.reduce((n, f) => n + f.rowsIngestedDuringLoad, 0);
        r.notes.push(
          `service side: the sync worker stored ${rows.toLocaleString("en-US")} rows during the load ` +
            `(a ${flags["ingest-days"]}-day sync of ${(4 * flags["demo-rows"]).toLocaleString("en-US")} demo rows per day)`,
        );
        r.notes.push(
          "baseline side: plain creates (the baseline has no sync engine); the target compares with the service's own create p99",
        );
        if (got.ingest.some((f) => f.jobStatusAtEnd !== "running")) {
          r.notes.push("the ingest job finished before the load did: raise --ingest-days");
        }
        await stop(svc);
      }
    }
  }
  for (const e of engines) {
    for (const sc of selected) {
      const r = e.results.get(sc.name)!;
      r.targets = checkTargets(sc, r, e.results, e.engine === "pg" ? (sc.pgTargets ?? sc.targets) : sc.targets);
    }
  }
  const sqlite = engines.find((e) => e.engine === "sqlite");
  const pgRun = engines.find((e) => e.engine === "pg");
  if (sqlite && pgRun) {
    for (const [name, r] of pgRun.results) {
      const other = sqlite.results.get(name);
      if (other) r.vsSqlite = vsOtherEngine(r, other);
    }
  }

  let notMet = 0;
  let failed = 0;
  for (const e of engines) {
    const list = [...e.results.values()];
    console.log("");
    if (tagged || e.engine === "pg")
      console.log(
        `${e.label}: service and textbook baseline (and the bare group-commit peer for writes) on ${e.engine === "pg" ? "the same PostgreSQL server" : "SQLite files"}`,
      );
    console.log(formatTable(list, { dbCpu: e.engine === "pg" }));
    const checks = list.flatMap((r) => r.targets);
    const missed = checks.filter((t) => t.met === false).length;
    notMet += missed;
    failed += list.filter((r) => r.failed).length;
    console.log("");
    console.log(
      `${tagged ? `${e.label} ` : ""}targets: ${checks.filter((t) => t.met).length} met, ${missed} not met, ${checks.filter((t) => t.met === null).length} n/a`,
    );
  }
  if (sqlite && pgRun) {
    console.log("");
    console.log("PostgreSQL / SQLite, same run (each side on each engine; cpu includes the PostgreSQL server's when measured):");
    console.log(crossEngineTable([...pgRun.results.values()]));
  }

  const list = engines.flatMap((e) => [...e.results.values()]);
  const report = {
    generatedAt: new Date().toISOString(),
    machine,
    options: {
      workers: flags.workers,
      connections: flags.connections,
      durationSec: flags.duration,
      warmupSec: flags.warmup,
      prewarmSec: flags.prewarm,
      seed: flags.seed,
      rounds: flags.rounds,
      self: flags.self,
      // The machine's load average (1, 5, 15 min) when the run started and ended: a ratio means little on a busy machine.
      loadAverage: { start: startLoad, end: loadavg() },
      demoRowsPerDay: flags["demo-rows"],
      ingestDays: flags["ingest-days"],
      loadGenerator: flags.generator === "wrk" ? "wrk (its own process, 1 thread)" : "autocannon 9.0.0 (in-process, under Bun)",
      databases: engines.map((e) => e.engine),
      ...(pgServer
        ? { postgresql: { server: pgServer.origin, settings: pgServer.settings, serverCpuMeasured: pgServer.serverPid !== null } }
        : {}),
    },
    scenarios: list,
    targetsMet: notMet === 0 && failed === 0,
  };
  mkdirSync(dirname(flags.out), { recursive: true });
  writeFileSync(flags.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${flags.out}`);

  for (const e of engines) {
    await stop(e.service);
    await stop(e.baseline);
    await stop(e.groupcommit);
  }
  if (failed > 0) console.log(`${failed} scenario run(s) failed: see FAILED above`);
  return failed > 0 || (flags.check && notMet > 0) ? 1 : 0;
}

async function cleanup() {
  for (const s of running) await s.stop();
  running.clear();
  if (pgServer) {
    const server = pgServer;
    pgServer = null;
    try {
      await server.close();
    } catch (err) {
      console.error(`cleaning up PostgreSQL: ${(err as Error).message}`);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

// Interrupted: the servers, the databases made on a given PostgreSQL server and the cluster go too.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
} finally {
  await cleanup();
}
process.exit(code);
