import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, platform, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { treeCpuSeconds } from "./cpu.ts";
import { runLoad, type LoadRequest } from "./load.ts";
import { startBaseline, startService, type RunningServer } from "./processes.ts";
import { checkTargets, combineRounds, formatTable, ratiosOf, type ScenarioResult } from "./report.ts";
import { scenarioNames, scenarios, type Side } from "./scenarios.ts";
import { hasSyncApi, seedSites } from "./seed.ts";

// `bun run bench`: the service and the textbook baseline (bench/baseline/), each on a fresh temp
// database with the same seeded sites, driven alternately by the same load, scenario by scenario.
// Prints a table with the ratios and their targets and writes bench/results/latest.json.
//
//   bun run bench [--duration 10] [--warmup 3] [--workers 4] [--connections 64] [--seed 1000]
//                 [--scenarios get_one,list,...] [--rounds 1] [--demo-rows 25000] [--ingest-days 7]
//                 [--out bench/results/latest.json] [--check]

const posInt = (max: number) => z.coerce.number().int().min(1).max(max);
const flagsSchema = z.object({
  duration: z.coerce.number().positive().max(3600).default(10),
  warmup: z.coerce.number().min(0).max(600).default(3),
  workers: posInt(64).default(4),
  connections: posInt(10_000).default(64),
  seed: posInt(1_000_000).default(1000),
  rounds: posInt(100).default(1),
  scenarios: z
    .string()
    .default(scenarioNames.join(","))
    .transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.enum(scenarioNames as [string, ...string[]])).min(1)),
  "demo-rows": posInt(1_000_000).default(25_000),
  "ingest-days": posInt(365).default(7),
  out: z.string().min(1).default(join(import.meta.dir, "results/latest.json")),
  check: z.boolean().default(false),
});
type Flags = z.infer<typeof flagsSchema>;

function readFlags(): Flags {
  let raw;
  try {
    raw = parseArgs({
      options: Object.fromEntries(
        Object.keys(flagsSchema.shape).map((k) => [k, { type: k === "check" ? ("boolean" as const) : ("string" as const) }]),
      ),
      strict: true,
    }).values;
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`--${String(i.path[0])}: ${i.message}`);
    process.exit(1);
  }
  return parsed.data;
}

const flags = readFlags();
const tmp = mkdtempSync(join(tmpdir(), "sitesync-bench-"));
const runTag = Date.now().toString(36);
const running = new Set<RunningServer>();

/** A started side: its server, the ids of its seeded sites and its database file. */
type Instance = { server: RunningServer; ids: number[]; dbPath: string };

async function start(side: Side, name: string, env?: Record<string, string>, syncWorkers = 0): Promise<Instance> {
  const dbPath = join(tmp, `${name}.db`);
  const server =
    side === "service"
      ? await startService({ dbPath, workers: flags.workers, syncWorkers, env })
      : await startBaseline({ dbPath, workers: flags.workers });
  running.add(server);
  const t0 = performance.now();
  const ids = await seedSites(server.url, flags.seed);
  console.log(`  ${name}: ${server.url}, ${flags.workers} processes, seeded ${ids.length} sites in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { server, ids, dbPath };
}

async function stop(t: Instance | undefined) {
  if (!t) return;
  await t.server.stop();
  running.delete(t.server);
}

/** One measured load on one side: optional warmup, then the load, with the process tree's CPU time. */
async function measure(target: Instance, next: () => LoadRequest) {
  const base = { url: target.server.url, connections: flags.connections, next };
  if (flags.warmup > 0) await runLoad({ ...base, durationSec: flags.warmup });
  const cpu0 = treeCpuSeconds(target.server.pid);
  const load = await runLoad({ ...base, durationSec: flags.duration });
  const cpu1 = treeCpuSeconds(target.server.pid);
  const cpuUsPerReq = cpu0 === null || cpu1 === null || load.requests === 0 ? null : ((cpu1 - cpu0) * 1e6) / load.requests;
  return { load, cpuUsPerReq };
}

type JobSnapshot = { status?: string };

async function job(url: string, id: number): Promise<JobSnapshot> {
  const res = await fetch(`${url}/api/v1/sync/job/${id}`);
  return res.ok ? ((await res.json()) as JobSnapshot) : {};
}

function storedRows(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.query("select count(*) as n from gsc_performance_data").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Triggers a multi-day sync on the ingest service and waits until its worker is writing rows. */
async function startIngest(t: Instance, round: number) {
  const site = t.ids[round % t.ids.length]!;
  const res = await fetch(`${t.server.url}/api/v1/sync/trigger/${site}?days=${flags["ingest-days"]}&sync_mode=overwrite`, { method: "POST" });
  const body = (await res.json()) as { job_id?: number };
  if (res.status !== 202 || typeof body.job_id !== "number") throw new Error(`sync trigger failed: ${res.status} ${JSON.stringify(body)}`);
  const deadline = Date.now() + 60_000;
  const rows0 = storedRows(t.dbPath);
  while (storedRows(t.dbPath) === rows0) {
    const s = await job(t.server.url, body.job_id);
    if (s.status && s.status !== "pending" && s.status !== "running") throw new Error(`ingest job ended before the load: ${JSON.stringify(s)}`);
    if (Date.now() > deadline) throw new Error("the sync worker wrote no row within 60 s");
    await Bun.sleep(50);
  }
  return { jobId: body.job_id, rowsBefore: storedRows(t.dbPath) };
}

/** After the load: how much was ingested meanwhile; cancels the job so it cannot disturb the next measurement. */
async function finishIngest(t: Instance, ingest: { jobId: number; rowsBefore: number }) {
  const rowsAfter = storedRows(t.dbPath);
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

async function main() {
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
      ` (+${flags.warmup} s warmup), ${flags.seed} seeded sites, ${flags.rounds} round(s)`,
  );
  console.log(`machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Bun ${machine.bun}, ${machine.os}`);
  console.log(`databases in ${tmp} (removed at exit)`);

  const needsMain = selected.some((s) => !s.duringIngest);
  let service = needsMain ? await start("service", "service") : undefined;
  const baseline = await start("baseline", "baseline");

  const results = new Map<string, ScenarioResult>();
  // Scenarios run in definition order, so create_during_ingest (which replaces the plain service) comes last.
  for (const [index, sc] of selected.entries()) {
    const r: ScenarioResult = { name: sc.name, description: sc.description, targets: [], notes: [] };
    results.set(sc.name, r);
    let svc = service;
    if (sc.duringIngest) {
      // A service with a sync worker and a large demo day; the plain one is stopped to free the CPU.
      await stop(service);
      service = undefined;
      svc = await start("service", "service-ingest", { SYNC_SOURCE: "demo", DEMO_ROWS_PER_DAY: String(flags["demo-rows"]) }, 1);
    }
    if (sc.needsSync && !(await hasSyncApi(svc!.server.url))) {
      r.skipped = "sync API not available";
      console.log(`${sc.name}: skipped: ${r.skipped}`);
      if (sc.duringIngest) await stop(svc);
      continue;
    }
    const instances: Record<Side, Instance> = { service: svc!, baseline };
    const gens = {
      service: sc.generator({ side: "service", siteIds: svc!.ids, runTag }),
      baseline: sc.generator({ side: "baseline", siteIds: baseline.ids, runTag }),
    };
    const rounds: Record<Side, Awaited<ReturnType<typeof measure>>[]> = { service: [], baseline: [] };
    const ingestFacts: Awaited<ReturnType<typeof finishIngest>>[] = [];
    for (let round = 0; round < flags.rounds; round++) {
      // Alternate who goes first, so a slow drift of the machine does not always favour one side.
      const order: Side[] = (index + round) % 2 === 0 ? ["service", "baseline"] : ["baseline", "service"];
      for (const side of order) {
        const ingest = sc.duringIngest && side === "service" ? await startIngest(svc!, round) : undefined;
        const m = await measure(instances[side], gens[side]);
        rounds[side].push(m);
        let extra = "";
        if (ingest) {
          const facts = await finishIngest(svc!, ingest);
          ingestFacts.push(facts);
          extra = `, ${facts.rowsIngestedDuringLoad.toLocaleString("en-US")} rows ingested meanwhile (job ${facts.jobStatusAtEnd})`;
        }
        console.log(
          `  ${sc.name} ${side.padEnd(8)} ${Math.round(m.load.rps).toLocaleString("en-US").padStart(8)} req/s` +
            `  p50 ${m.load.p50Ms.toFixed(2)} ms  p99 ${m.load.p99Ms.toFixed(2)} ms${extra}`,
        );
      }
    }
    r.service = combineRounds(rounds.service);
    r.baseline = combineRounds(rounds.baseline);
    r.ratios = ratiosOf(r.service, r.baseline);
    if (sc.duringIngest) {
      r.extra = { ingest: ingestFacts, demoRowsPerDay: flags["demo-rows"], ingestDays: flags["ingest-days"] };
      const rows = ingestFacts.reduce((n, f) => n + f.rowsIngestedDuringLoad, 0);
      r.notes.push(
        `service side: the sync worker stored ${rows.toLocaleString("en-US")} rows during the load ` +
          `(a ${flags["ingest-days"]}-day sync of ${(4 * flags["demo-rows"]).toLocaleString("en-US")} demo rows per day)`,
      );
      r.notes.push("baseline side: plain creates (the baseline has no sync engine); the target compares with the service's own create p99");
      if (ingestFacts.some((f) => f.jobStatusAtEnd !== "running")) {
        r.notes.push("the ingest job finished before the load did: raise --ingest-days");
      }
      await stop(svc);
    }
  }
  for (const sc of selected) {
    const r = results.get(sc.name)!;
    r.targets = checkTargets(sc, r, results);
  }

  const list = [...results.values()];
  console.log("");
  console.log(formatTable(list));
  const checks = list.flatMap((r) => r.targets);
  const notMet = checks.filter((t) => t.met === false).length;
  console.log("");
  console.log(`targets: ${checks.filter((t) => t.met).length} met, ${notMet} not met, ${checks.filter((t) => t.met === null).length} n/a`);

  const report = {
    generatedAt: new Date().toISOString(),
    machine,
    options: {
      workers: flags.workers,
      connections: flags.connections,
      durationSec: flags.duration,
      warmupSec: flags.warmup,
      seed: flags.seed,
      rounds: flags.rounds,
      demoRowsPerDay: flags["demo-rows"],
      ingestDays: flags["ingest-days"],
      loadGenerator: "autocannon 9.0.0 (in-process, under Bun)",
    },
    scenarios: list,
    targetsMet: notMet === 0,
  };
  mkdirSync(dirname(flags.out), { recursive: true });
  writeFileSync(flags.out, JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${flags.out}`);

  await stop(service);
  await stop(baseline);
  return flags.check && notMet > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
} finally {
  for (const s of running) await s.stop();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
