// `bun bench/served-threads.ts [service|baseline|groupcommit] [get_one|list|create] [warmup s] [measured s]
//   [--syscalls] [--top-tier off]`:
// CPU µs per request of ONE served process (src/server.ts unsupervised, or bench/baseline/main.ts with one
// worker) split by thread (main thread, JIT compiler, mimalloc's scavenger, GC helpers) and user/sys, from
// /proc, after a warm-up of its own length: what a short `bench --quick` round charges to JIT warm-up.
// With `--syscalls` (strace in PATH) it also counts the serving process's system calls per request
// during the measured seconds (strace -c): a figure the machine's load does not move, unlike CPU time.
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
const syscalls = process.argv.includes("--syscalls");
// `--top-tier off`: the served process starts with JSC's top JIT tier off, as the supervisor starts HTTP workers
// (HTTP_JIT_TOP_TIER=off); the default is JSC's own (src/server.ts run alone): alternate the two to compare.
const tierAt = process.argv.indexOf("--top-tier");
const topTierOff = tierAt > 0 && process.argv[tierAt + 1] === "off";
const argv = process.argv.filter((a, i) => a !== "--syscalls" && i !== tierAt && (tierAt < 0 || i !== tierAt + 1));
const side = argv[2] ?? "service";
const scenario = argv[3] ?? "get_one";
const warm = Number(argv[4] ?? 10),
  secs = Number(argv[5] ?? 5);
const root = join(import.meta.dir, "..");
const { migrate } = await import("../src/db/sqlite/migrate.ts");
const { runLoad } = await import("./load.ts");
const dir = mkdtempSync(join(tmpdir(), "thr-"));
const path = join(dir, "a.db");
migrate(path);
const d = new Database(path);
const ins = d.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
d.transaction(() => {
  for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
})();
d.close();
const port = 20000 + Math.floor(Math.random() * 20000);
const cmd =
  side === "service"
    ? [process.execPath, "src/server.ts"]
    : [
        process.execPath,
        "bench/baseline/main.ts",
        "--db",
        path,
        "--port",
        String(port),
        "--workers",
        "1",
        ...(side === "groupcommit" ? ["--group-commit"] : []),
      ];
const proc = Bun.spawn(cmd, {
  cwd: root,
  env: {
    ...process.env,
    DATABASE_URL: path,
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    REQUEST_LOG: "0",
    SYNC_SCHEDULER: "0",
    ...(topTierOff ? { BUN_JSC_useFTLJIT: "0" } : {}),
  },
  stdout: "ignore",
  stderr: "inherit",
});
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 600; i++) {
  try {
    await fetch(`${url}/api/v1/sites/1`);
    break;
  } catch {
    await Bun.sleep(100);
  }
}
let k = 0;
const next =
  scenario === "create"
    ? () => ({
        method: "POST" as const,
        path: "/api/v1/sites",
        body: JSON.stringify({ domain: `sc-domain:t${++k}.${port}.example`, name: `T ${k}` }),
      })
    : scenario === "list"
      ? () => ({ method: "GET" as const, path: "/api/v1/sites?limit=50" })
      : () => ({ method: "GET" as const, path: `/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}` });
// The baseline may be a supervisor with one child: measure the whole tree.
function pids(p: number): number[] {
  const out = [p];
  try {
    for (const t of readdirSync(`/proc/${p}/task`)) {
      const c = readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
      if (c) for (const x of c.split(" ")) out.push(...pids(Number(x)));
    }
  } catch {}
  return out;
}
function threads() {
  const m = new Map<string, number>();
  for (const p of pids(proc.pid)) {
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) {
        try {
          const s = readFileSync(`/proc/${p}/task/${t}/stat`, "utf8");
          const comm = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")).replace(/\d+$/, "");
          const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
          m.set(`${comm} u`, (m.get(`${comm} u`) ?? 0) + Number(f[11]) * 10_000);
          m.set(`${comm} s`, (m.get(`${comm} s`) ?? 0) + Number(f[12]) * 10_000);
        } catch {}
      }
    } catch {}
  }
  return m;
}
await runLoad({ url, connections: 32, durationSec: warm, next });
// strace slows what it traces: CPU figures of a --syscalls run are not comparable with others.
const traced = syscalls ? pids(proc.pid).at(-1)! : null;
const straceOut = join(dir, "strace.txt");
const strace = traced === null ? null : Bun.spawn(["strace", "-c", "-f", "-o", straceOut, "-p", String(traced)], { stderr: "ignore" });
if (strace) await Bun.sleep(300);
const a = threads();
const gen0 = process.cpuUsage();
const r = await runLoad({ url, connections: 32, durationSec: secs, next });
const gen = process.cpuUsage(gen0);
const b = threads();
const rows = [...b]
  .map(([k, v]) => [k, (v - (a.get(k) ?? 0)) / r.requests] as const)
  .filter(([, v]) => v > 0.5)
  .sort((x, y) => y[1] - x[1]);
const total = rows.reduce((s, [, v]) => s + v, 0);
console.log(
  `${side} ${scenario}: ${r.rps.toFixed(0)} req/s, ${total.toFixed(1)} µs/req: ` +
    rows.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ") +
    ` (load generator ${((gen.user + gen.system) / r.requests).toFixed(1)} µs/req; ${r.server5xx} 5xx, ${r.socketErrors} socket errors)`,
);
if (strace) {
  strace.kill("SIGINT");
  await strace.exited;
  // strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"; keep the calls of each.
  const perReq = readFileSync(straceOut, "utf8")
    .split("\n")
    .filter((l) => /^\s*\d/.test(l))
    .map((l) => l.trim().split(/\s+/))
    .map((f) => [f.at(-1)!, Number(f[3]) / r.requests] as const)
    .filter(([name, n]) => name !== "total" && n >= 0.01)
    .sort((x, y) => y[1] - x[1]);
  const sum = perReq.reduce((t, [, n]) => t + n, 0);
  console.log(`  system calls per request: ${sum.toFixed(2)}: ${perReq.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(", ")}`);
}
proc.kill("SIGTERM");
await proc.exited;
rmSync(dir, { recursive: true, force: true });
