import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { children } from "./cpu.ts";
import { runLoad } from "./load.ts";
import { startBaseline, startService, type RunningServer } from "./processes.ts";
import { scenarios } from "./scenarios.ts";
import { seedSites } from "./seed.ts";

// `bun bench/attribute.ts`: CPU per request of one scenario on several variants of the server side by
// side (each its own process tree and database), measured in alternating rounds, medians reported.
// A variant is `name` or `name:K=V,K=V` (env for that service); `baseline` is the textbook baseline,
// `groupcommit` its group-commit peer;
// `name@/other/checkout` runs the service of another work tree (e.g. main, to compare a change).
// Per process CPU (supervisor and each worker apart) is printed for every round.
//
//   bun bench/attribute.ts [--variant service] [--variant baseline] [--workers 1] [--scenario get_one]
//                          [--duration 5] [--warmup 1] [--connections 64] [--seed 1000] [--rounds 3]

const { values } = parseArgs({
  options: {
    variant: { type: "string", multiple: true, default: [] },
    workers: { type: "string", default: "1" },
    scenario: { type: "string", default: "get_one" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "64" },
    seed: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
    verbose: { type: "boolean", default: false },
  },
});
const sc = scenarios.find((s) => s.name === values.scenario);
if (!sc) throw new Error(`unknown scenario ${values.scenario}`);
const variants = (values.variant!.length ? values.variant! : ["service", "baseline"]).map((v) => {
  const [name, spec] = v.includes(":") ? [v.slice(0, v.indexOf(":")), v.slice(v.indexOf(":") + 1)] : [v, ""];
  const env = Object.fromEntries(
    spec
      .split(",")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const [label, root] = name!.split("@");
  return { name: label!, root, env };
});

function ticks(pid: number, file = `/proc/${pid}/stat`): { user: number; sys: number } {
  try {
    const stat = readFileSync(file, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(f[11]), sys: Number(f[12]) };
  } catch {
    return { user: 0, sys: 0 };
  }
}

/** CPU ticks of a process's threads other than its main thread. */
function otherThreads(pid: number): number {
  let n = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (Number(tid) === pid) continue;
      const t = ticks(pid, `/proc/${pid}/task/${tid}/stat`);
      n += t.user + t.sys;
    }
  } catch {
    // gone
  }
  return n;
}

function tree(pid: number): number[] {
  const out = [pid];
  for (const c of children(pid)) out.push(...tree(c));
  return out;
}

const tmp = mkdtempSync(join(tmpdir(), "sitesync-attr-"));
const workers = Number(values.workers);
const servers: { name: string; server: RunningServer; next: () => import("./load.ts").LoadRequest; cpu: number[]; rps: number[] }[] = [];
try {
  for (const [i, v] of variants.entries()) {
    const dbPath = join(tmp, `${i}.db`);
    const server =
      v.name === "baseline" || v.name === "groupcommit"
        ? await startBaseline({ dbPath, workers, groupCommit: v.name === "groupcommit" })
        : await startService({ dbPath, workers, syncWorkers: 0, env: v.env, root: v.root });
    const ids = await seedSites(server.url, Number(values.seed));
    const next = sc.generator({
      side: v.name === "baseline" || v.name === "groupcommit" ? "baseline" : "service",
      siteIds: ids,
      runTag: `${Date.now().toString(36)}${i}`,
    });
    servers.push({ name: `${v.name}${Object.keys(v.env).length ? ` ${JSON.stringify(v.env)}` : ""}`, server, next, cpu: [], rps: [] });
  }
  for (let round = 0; round < Number(values.rounds); round++) {
    // Rotate the order each round so a drift of the machine does not always favour the same variant.
    const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
    for (const s of order) {
      const base = { url: s.server.url, connections: Number(values.connections), next: s.next };
      await runLoad({ ...base, durationSec: Number(values.warmup) });
      const pids = tree(s.server.pid);
      const before = pids.map((p) => ticks(p));
      const threads0 = pids.map(otherThreads);
      const load = await runLoad({ ...base, durationSec: Number(values.duration) });
      const after = pids.map((p) => ticks(p));
      const threads = pids.map((p, i) => otherThreads(p) - threads0[i]!);
      const per = (t: number) => ((t / 100) * 1e6) / load.requests;
      let total = 0;
      const parts = pids.map((pid, i) => {
        const u = after[i]!.user - before[i]!.user;
        const sy = after[i]!.sys - before[i]!.sys;
        total += u + sy;
        return `${i === 0 ? "top" : pid} u ${per(u).toFixed(1)} s ${per(sy).toFixed(1)} (other threads ${per(threads[i]!).toFixed(1)})`;
      });
      s.cpu.push(per(total));
      s.rps.push(load.rps);
      const bad = load.requests - load.ok2xx - load.conflict409;
      if (values.verbose || bad > 0)
        console.log(
          `  r${round} ${s.name}: ${Math.round(load.rps)} req/s, ${per(total).toFixed(1)} µs/req (${parts.join("; ")})${bad ? ` statuses ${JSON.stringify(load.statuses)}` : ""}`,
        );
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  // On a shared machine other load only adds CPU per request (cache misses, steal): the minimum is
  // the least disturbed figure, the median the usual one.
  console.log(
    `${sc.name}, ${workers} worker(s), ${values.rounds} rounds of ${values.duration} s: cpu µs/req min and median (all rounds), median req/s`,
  );
  for (const s of servers) {
    console.log(
      `  ${Math.min(...s.cpu)
        .toFixed(1)
        .padStart(
          6,
        )} ${median(s.cpu).toFixed(1).padStart(6)}  [${s.cpu.map((c) => c.toFixed(1)).join(" ")}]  ${Math.round(median(s.rps)).toString().padStart(6)} req/s  ${s.name}`,
    );
  }
} finally {
  for (const s of servers) await s.server.stop();
  rmSync(tmp, { recursive: true, force: true });
}
