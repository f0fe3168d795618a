// `bun bench/served-tree.ts [scenario,scenario,...] [--workers 4] [--side service|baseline|groupcommit]`: the service as `bun run bench` starts it
// (src/main.ts, N HTTP workers and the supervisor) on 1,000 seeded sites, serving each listed scenario
// (get_one, list, create, mixed = 90/5/5) in turn, 1 s of warm-up + 3 s measured at 64 connections; prints the
// tree's CPU µs per request by process (supervisor, workers) and by thread kind (main, JIT, allocator, GC),
// then the write queue's counters from /metrics. bench/served-threads.ts is the one-process view; this one shows
// what only several workers cost (each commit seen by the other workers: mixed against its parts).
// `--side baseline` (or groupcommit) measures the textbook (or the group-commit peer) the same way, its parent
// process in the supervisor's column: run the sides one after the other to compare them thread by thread.
// `--env NAME=VALUE` (repeatable): set in the service's environment only (e.g. HTTP_JIT_TOP_TIER=on, a BUN_JSC_ option).
// `--root DIR`: run the service of another checkout (e.g. main's, to alternate before/after a change).
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { children } from "./cpu.ts";
import { runLoad, type LoadRequest } from "./load.ts";
import { startBaseline, startService } from "./processes.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workers: { type: "string", default: "4" },
    side: { type: "string", default: "service" },
    env: { type: "string", multiple: true },
    root: { type: "string" },
  },
});
const sequence = (positionals[0] ?? "get_one,mixed,get_one,mixed").split(",");
const { migrate } = await import("../src/db/sqlite/migrate.ts");
const dir = mkdtempSync(join(tmpdir(), "served-tree-"));
const path = join(dir, "a.db");
migrate(path);
const seed = new Database(path);
const ins = seed.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
seed.transaction(() => {
  for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
})();
seed.close();
// The service as `bun run bench` starts it (bench/processes.ts), no sync worker.
const side = values.side;
if (side !== "service" && side !== "baseline" && side !== "groupcommit")
  throw new Error(`--side ${side}: service, baseline or groupcommit`);
const service =
  side === "service"
    ? await startService({
        dbPath: path,
        workers: Number(values.workers),
        syncWorkers: 0,
        root: values.root,
        env: Object.fromEntries((values.env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])),
      })
    : await startBaseline({ dbPath: path, workers: Number(values.workers), groupCommit: side === "groupcommit" });
const { url } = service;
const port = new URL(url).port; // in the created domains: unique per run
const proc = { pid: service.pid };

function tree(pid: number): number[] {
  return [pid, ...children(pid).flatMap(tree)];
}
/** CPU µs so far per "process kind|thread kind" of the tree. */
function snapshot(): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of tree(proc.pid)) {
    const kind = p === proc.pid ? "supervisor" : "worker";
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) {
        try {
          const s = readFileSync(`/proc/${p}/task/${t}/stat`, "utf8");
          const comm = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")).replace(/\d+$/, "");
          const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
          const k = `${kind}|${comm === "bun.exe" || comm === "bun" ? "main" : comm}`;
          m.set(k, (m.get(k) ?? 0) + (Number(f[11]) + Number(f[12])) * 10_000);
        } catch {}
      }
    } catch {}
  }
  return m;
}

let k = 0;
const getOne = (): LoadRequest => ({ method: "GET", path: `/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}` });
const list = (): LoadRequest => ({ method: "GET", path: "/api/v1/sites?limit=50" });
const create = (): LoadRequest => ({
  method: "POST",
  path: "/api/v1/sites",
  body: JSON.stringify({ domain: `sc-domain:t${++k}.${port}.example`, name: `T ${k}` }),
});
const mixed = (): LoadRequest => {
  const r = Math.random();
  return r < 0.9 ? getOne() : r < 0.95 ? list() : create();
};
const scenarios: Record<string, () => LoadRequest> = { get_one: getOne, list, create, mixed };

for (const name of sequence) {
  const next = scenarios[name];
  if (!next) throw new Error(`unknown scenario ${name} (get_one, list, create, mixed)`);
  await runLoad({ url, connections: 64, durationSec: 1, next });
  const a = snapshot();
  const r = await runLoad({ url, connections: 64, durationSec: 3, next });
  const b = snapshot();
  const rows = [...b].map(([key, v]) => [key, (v - (a.get(key) ?? 0)) / r.requests] as const).filter(([, v]) => v >= 0.5);
  const sum = (f: (key: string) => boolean) => rows.filter(([key]) => f(key)).reduce((s, [, v]) => s + v, 0);
  const threads = [...new Set(rows.map(([key]) => key.split("|")[1]!))]
    .map((t) => [t, sum((key) => key.endsWith(`|${t}`))] as const)
    .sort((x, y) => y[1] - x[1]);
  console.log(
    `${side === "service" ? "" : `${side} `}${name}: ${r.rps.toFixed(0)} req/s, ${sum(() => true).toFixed(1)} µs/req (supervisor ${sum((key) => key.startsWith("supervisor")).toFixed(1)}, ` +
      `workers ${sum((key) => key.startsWith("worker")).toFixed(1)}: ${threads.map(([t, v]) => `${t} ${v.toFixed(1)}`).join(", ")}); ` +
      `${r.server5xx} 5xx, ${r.socketErrors} socket errors`,
  );
}
if (side === "service") {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  console.log(
    metrics
      .split("\n")
      .filter((l) => /^sitesync_write_(commits|busy_retries|group_size_(sum|count))/.test(l))
      .join("\n"),
  );
}
await service.stop();
rmSync(dir, { recursive: true, force: true });
