import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { startCluster, stopCluster } from "../scripts/pg-cluster.ts";
import { treeCpuSeconds } from "./cpu.ts";
import { runLoad } from "./load.ts";
import { benchClusterSettings } from "./pg.ts";
import { startBaseline, startService, type RunningServer } from "./processes.ts";
import { scenarios, type Side } from "./scenarios.ts";
import { seedSites } from "./seed.ts";

// `bun bench/pg-profile.ts [--scenarios get_one,list,create,mixed] [--duration 5] [--workers 1] [--connections 16]
//   [--root <another checkout>]`:
// where a request's work goes on PostgreSQL, the service beside the node-postgres baseline (bench/baseline/pg-server.ts).
// A throw-away cluster with pg_stat_statements; per scenario and side: the side's process CPU per request, its
// backends' CPU per request (the database's own processes, /proc), and every statement the side ran per request
// (pg_stat_statements, utility statements such as BEGIN/COMMIT/SET included: a statement sent on its own is a round
// trip). Sides run one after the other, so nothing else runs on their database.

const { values: args } = parseArgs({
  options: {
    scenarios: { type: "string", default: "get_one,list,create,mixed" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    workers: { type: "string", default: "1" },
    connections: { type: "string", default: "16" },
    seed: { type: "string", default: "200" },
    // The service of another checkout (a before/after comparison, each against the baseline of its run).
    root: { type: "string" },
  },
  strict: true,
});
const names = args.scenarios.split(",").map((s) => s.trim());
const selected = scenarios.filter((s) => names.includes(s.name));
const duration = Number(args.duration);

const cluster = startCluster({
  settings: { ...benchClusterSettings, shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" },
});
const running: RunningServer[] = [];
const admin = new pg.Client({ connectionString: cluster.url });
await admin.connect();
await admin.query("create extension pg_stat_statements");

const urlOf = (db: string) => {
  const u = new URL(cluster.url);
  u.pathname = `/${db}`;
  return u.toString();
};

/** CPU seconds of the backends connected to `db` (pg_stat_activity, then /proc). */
async function backends(db: string): Promise<{ cpu: number; n: number }> {
  const pids = (await admin.query<{ pid: number }>("select pid from pg_stat_activity where datname = $1", [db])).rows.map((r) => r.pid);
  let cpu = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      cpu += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // The backend ended meanwhile.
    }
  }
  return { cpu, n: pids.length };
}

type SideRun = { side: Side; db: string; server: RunningServer; ids: number[] };
const sides: SideRun[] = [];
try {
  for (const side of ["baseline", "service"] as const) {
    const db = `profile_${side}`;
    await admin.query(`create database ${db}`);
    const server =
      side === "service"
        ? await startService({ dbPath: urlOf(db), workers: Number(args.workers), syncWorkers: 0, root: args.root })
        : await startBaseline({ dbPath: urlOf(db), workers: Number(args.workers) });
    running.push(server);
    sides.push({ side, db, server, ids: await seedSites(server.url, Number(args.seed)) });
  }
  const load = Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "0");
  console.log(
    `pg-profile: ${args.workers} process(es) per side, ${args.connections} connections, ${duration} s per scenario and side, load ${load}`,
  );
  for (const sc of selected) {
    const out: string[] = [];
    const perSide: Record<string, { app: number; backend: number; stmts: number }> = {};
    for (const s of sides) {
      const next = sc.generator({ side: s.side, siteIds: s.ids, runTag: Date.now().toString(36) });
      await runLoad({ url: s.server.url, connections: Number(args.connections), durationSec: Number(args.warmup), next });
      await admin.query("select pg_stat_statements_reset()");
      const b0 = await backends(s.db);
      const a0 = treeCpuSeconds(s.server.pid)!;
      const r = await runLoad({ url: s.server.url, connections: Number(args.connections), durationSec: duration, next });
      const a1 = treeCpuSeconds(s.server.pid)!;
      const b1 = await backends(s.db);
      const n = r.requests;
      const stmts = (
        await admin.query<{ query: string; calls: string }>(
          "select query, calls from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1 order by calls desc",
          [s.db],
        )
      ).rows;
      const total = stmts.reduce((t, x) => t + Number(x.calls), 0);
      perSide[s.side] = { app: ((a1 - a0) * 1e6) / n, backend: ((b1.cpu - b0.cpu) * 1e6) / n, stmts: total / n };
      out.push(
        `  ${s.side.padEnd(8)} ${n} requests (${Math.round(r.rps)} req/s, 5xx ${r.server5xx}, statuses ${JSON.stringify(r.statuses)}), backends ${b1.n}`,
      );
      for (const x of stmts) {
        const per = Number(x.calls) / n;
        if (per < 0.001) continue;
        out.push(`      ${per.toFixed(3).padStart(7)}  ${x.query.replace(/\s+/g, " ").slice(0, 150)}`);
      }
    }
    const sv = perSide.service!;
    const bl = perSide.baseline!;
    console.log(`\n${sc.name}: µs CPU per request, service / baseline`);
    console.log(
      `  process ${sv.app.toFixed(0)} / ${bl.app.toFixed(0)} (${(sv.app / bl.app).toFixed(2)}x); backends ${sv.backend.toFixed(0)} / ${bl.backend.toFixed(0)}` +
        ` (${(sv.backend / bl.backend).toFixed(2)}x); both ${(sv.app + sv.backend).toFixed(0)} / ${(bl.app + bl.backend).toFixed(0)}` +
        ` (${((sv.app + sv.backend) / (bl.app + bl.backend)).toFixed(2)}x)`,
    );
    console.log(`  statements per request ${sv.stmts.toFixed(2)} / ${bl.stmts.toFixed(2)}`);
    for (const line of out) console.log(line);
  }
} finally {
  for (const s of running) await s.stop();
  await admin.end().catch(() => {});
  stopCluster(cluster.dir);
}
process.exit(0);
