import { Database } from "bun:sqlite";
import type { Subprocess } from "bun";
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../src/free-port.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { children } from "./cpu.ts";
import { runLoad } from "./load.ts";

// `bun bench/served-bisect.ts [side ...] [--workers 1] [--connections 32] [--rounds 10] [--window 1]
//   [--scenario get_one|list|create|mixed] [--generator wrk|autocannon] [--syscalls]`
//
// Served sides started side by side on copies of one file of 1,000 sites; the load moves from one side to the
// next every `window` seconds, `rounds` times (the order rotated each round), so the shared machine's drift
// falls on every side alike. Per side: requests a second, the CPU µs per request of its processes' main threads
// (user / system) and of all their threads, and the generator's own CPU per request (wrk's process, or autocannon in
// this one: both share the cores with the side); with
// `--syscalls`, the system calls per request of one of its processes (strace -c, one window after the rounds).
// Sides:
//   textbook[+headers][+ip][+app][+audit]  bench/bisect-server.ts: the textbook's GET of one site, or the
//                                  group-commit peer's create, with the service's pieces added (see that file);
//                                  `--workers` processes sharing the port
//   baseline                       bench/baseline/server.ts (the textbook `bun run bench` compares with)
//   groupcommit                    the same with --group-commit (the peer of the service's creates)
//   service                        --workers 1: src/server.ts alone; more: src/main.ts (the supervisor and its workers)
//   service@DIR?NAME=VALUE&...     the same from another checkout, with environment variables
// Default sides: textbook textbook+headers textbook+ip textbook+headers+ip textbook+headers+ip+app service.

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workers: { type: "string", default: "1" },
    connections: { type: "string", default: "32" },
    rounds: { type: "string", default: "10" },
    window: { type: "string", default: "1" },
    scenario: { type: "string", default: "get_one" },
    generator: { type: "string", default: "wrk" },
    syscalls: { type: "boolean", default: false },
  },
});
const workers = Number(flags.workers);
const connections = Number(flags.connections);
const windowSec = Number(flags.window);
const list = flags.scenario === "list";
const create = flags.scenario === "create";
// `bun run bench`'s mix: 90 % get_one, 5 % list (50), 5 % create (a new domain each).
const mixed = flags.scenario === "mixed";
const names = positionals.length
  ? positionals
  : ["textbook", "textbook+headers", "textbook+ip", "textbook+headers+ip", "textbook+headers+ip+app", "service"];
const root = join(import.meta.dir, "..");

const dir = mkdtempSync(join(tmpdir(), "served-bisect-"));
const seed = join(dir, "seed.db");
migrate(seed);
{
  const db = new Database(seed);
  const ins = db.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
  db.transaction(() => {
    for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
  })();
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
}
const lua = join(dir, "load.lua");
// A create's domain is unique across windows and sides: each window passes its own prefix (wrk's `--` argument).
writeFileSync(
  lua,
  list
    ? 'request = function() return wrk.format("GET", "/api/v1/sites?limit=50") end\n'
    : create
      ? 'local prefix, n = "w", 0\nfunction init(args) prefix = args[1] end\n' +
        'request = function() n = n + 1; return wrk.format("POST", "/api/v1/sites", {["Content-Type"] = "application/json"}, ' +
        '\'{"domain":"sc-domain:\' .. prefix .. "-" .. n .. \'.bench.example","name":"Bench \' .. n .. \'"}\') end\n'
      : mixed
        ? 'local prefix, n = "w", 0\nfunction init(args) prefix = args[1]; math.randomseed(os.time()) end\n' +
          "request = function() local r = math.random()\n" +
          '  if r < 0.05 then n = n + 1; return wrk.format("POST", "/api/v1/sites", {["Content-Type"] = "application/json"}, ' +
          '\'{"domain":"sc-domain:\' .. prefix .. "-" .. n .. \'.bench.example","name":"Bench \' .. n .. \'"}\')\n' +
          '  elseif r < 0.10 then return wrk.format("GET", "/api/v1/sites?limit=50")\n' +
          '  else return wrk.format("GET", "/api/v1/sites/" .. math.random(1, 1000)) end end\n'
        : 'math.randomseed(os.time())\nrequest = function() return wrk.format("GET", "/api/v1/sites/" .. math.random(1, 1000)) end\n',
);
// With wrk, each window's latency percentiles (µs) come back on one line of their own.
appendFileSync(
  lua,
  'done = function(summary, latency, requests) io.write(string.format("LATENCY %d %d %d %d\\n", ' +
    "latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max)) end\n",
);
let windows = 0;
let created = 0;
const oneSite = () => ({ method: "GET" as const, path: `/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}` });
const page = () => ({ method: "GET" as const, path: "/api/v1/sites?limit=50" });
const newSite = () => ({
  method: "POST" as const,
  path: "/api/v1/sites",
  body: JSON.stringify({ domain: `sc-domain:c-${++created}.bench.example`, name: `Bench ${created}` }),
});
const next = list
  ? page
  : create
    ? newSite
    : mixed
      ? () => {
          const r = Math.random();
          return r < 0.05 ? newSite() : r < 0.1 ? page() : oneSite();
        }
      : oneSite;

type Side = {
  name: string;
  procs: Subprocess[];
  url: string;
  main: [number, number];
  all: number;
  gen: number;
  requests: number;
  /** Each window's latency percentiles in ms (wrk): p50, p99, p99.9, max. */
  windows: number[][];
};

function start(name: string, index: number): Side {
  const db = join(dir, `side${index}.db`);
  copyFileSync(seed, db);
  const port = freePort();
  const env = {
    ...process.env,
    DB: db,
    DATABASE_URL: db,
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    REQUEST_LOG: "0",
    SYNC_SCHEDULER: "0",
  };
  const spawn = (cmd: string[], extra: Record<string, string> = {}) =>
    Bun.spawn(cmd, { cwd: root, env: { ...env, ...extra }, stdout: "ignore", stderr: "inherit" });
  let procs: Subprocess[];
  if (name.startsWith("service@")) {
    // An experiment: another checkout's service, with environment variables (`service@DIR?NAME=VALUE&...`), started as
    // `service` is (--workers 1: src/server.ts alone; more: src/main.ts, whose settings then reach its workers).
    const [where, query = ""] = name.slice("service@".length).split("?");
    const extra = Object.fromEntries(new URLSearchParams(query));
    const cmd =
      workers === 1
        ? [process.execPath, "src/server.ts"]
        : [process.execPath, "src/main.ts", "--workers", String(workers), "--sync-workers", "0"];
    procs = [Bun.spawn(cmd, { cwd: where, env: { ...env, ...extra }, stdout: "ignore", stderr: "inherit" })];
  } else if (name === "service") {
    procs = [
      workers === 1
        ? spawn([process.execPath, "src/server.ts"])
        : spawn([process.execPath, "src/main.ts", "--workers", String(workers), "--sync-workers", "0"]),
    ];
  } else if (name === "baseline" || name === "groupcommit") {
    const cmd = [
      process.execPath,
      "bench/baseline/server.ts",
      "--db",
      db,
      "--port",
      String(port),
      ...(name === "groupcommit" ? ["--group-commit"] : []),
    ];
    procs = Array.from({ length: workers }, () => spawn(cmd));
  } else if (name.startsWith("textbook")) {
    if (list || mixed) throw new Error("bench/bisect-server.ts answers get_one and create: compare list and mixed with `baseline service`");
    const pieces = name.split("+").slice(1).join(",");
    procs = Array.from({ length: workers }, () => spawn([process.execPath, "bench/bisect-server.ts"], { PIECES: pieces }));
  } else throw new Error(`unknown side ${name}`);
  return { name, procs, url: `http://127.0.0.1:${port}`, main: [0, 0], all: 0, gen: 0, requests: 0, windows: [] };
}

const tree = (pid: number): number[] => [pid, ...children(pid).flatMap(tree)];
/** utime, stime (µs) of one thread. */
function times(pid: number, tid: number): [number, number] {
  const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return [Number(f[11]) * 1e4, Number(f[12]) * 1e4];
}
function cpu(side: Side) {
  let u = 0;
  let s = 0;
  let all = 0;
  for (const pid of side.procs.flatMap((p) => tree(p.pid))) {
    try {
      const [mu, ms] = times(pid, pid);
      u += mu;
      s += ms;
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const [tu, ts] = times(pid, Number(tid));
        all += tu + ts;
      }
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return { u, s, all };
}

/** One load window on `url`: requests answered and the generator's CPU µs (autocannon runs in this process). */
async function load(url: string, seconds: number): Promise<{ requests: number; gen: number; latency?: number[] }> {
  if (flags.generator === "autocannon") {
    const c0 = process.cpuUsage();
    const r = await runLoad({ url, connections, durationSec: seconds, next });
    const c = process.cpuUsage(c0);
    if (r.ok2xx !== r.requests || r.socketErrors > 0 || r.lockErrors > 0)
      throw new Error(`${url}: ${JSON.stringify(r.statuses)}, ${r.socketErrors} socket errors`);
    return { requests: r.requests, gen: c.user + c.system };
  }
  const p = Bun.spawn(["wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "-s", lua, url, "--", `w${++windows}`], { stdout: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`${url}: ${out}`);
  const latency = /LATENCY (\d+) (\d+) (\d+) (\d+)/
    .exec(out)
    ?.slice(1)
    .map((us) => Number(us) / 1000);
  // wrk's own CPU (its process's user + system time, µs): it shares the cores with the side it drives.
  const cpu = p.resourceUsage()?.cpuTime;
  return { requests: Number(/(\d+) requests in/.exec(out)![1]), gen: cpu ? Number(cpu.total) : Number.NaN, latency };
}

const sides = names.map(start);
process.on("exit", () => {
  for (const s of sides) for (const p of s.procs) p.kill("SIGKILL");
});
try {
  for (const s of sides) {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${s.url}/api/v1/sites/1`)).ok) break;
      } catch {}
      if (i > 600) throw new Error(`${s.name} did not answer`);
      await Bun.sleep(100);
    }
    await load(s.url, 2);
  }
  const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  const load0 = loadavg();
  const rounds = Number(flags.rounds);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < sides.length; i++) {
      const s = sides[(i + r) % sides.length]!;
      const a = cpu(s);
      const got = await load(s.url, windowSec);
      const b = cpu(s);
      s.main[0] += b.u - a.u;
      s.main[1] += b.s - a.s;
      s.all += b.all - a.all;
      s.gen += got.gen;
      s.requests += got.requests;
      if (got.latency) s.windows.push(got.latency);
    }
  }
  console.log(
    `${flags.scenario}, ${workers} process(es) a side, ${connections} connections (${flags.generator}), ${rounds} rounds of ${windowSec} s a side, load ${load0} -> ${loadavg()}`,
  );
  for (const s of sides) {
    const per = (x: number) => (x / s.requests).toFixed(1);
    const gen = Number.isNaN(s.gen) ? "" : `, generator ${per(s.gen)}`;
    console.log(
      `  ${s.name.padEnd(26)} ${String(Math.round(s.requests / (rounds * windowSec))).padStart(6)} req/s  main threads ${per(s.main[0] + s.main[1])} µs (user ${per(s.main[0])}, system ${per(s.main[1])}), all threads ${per(s.all)}${gen}`,
    );
    if (s.windows.length) {
      // A window's p99 is the tail of its own second or so: the median window and the worst say how often a stall hits.
      const col = (i: number) => s.windows.map((w) => w[i]!).sort((a, b) => a - b);
      const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]!.toFixed(2);
      const [p50, p99, p999, max] = [0, 1, 2, 3].map(col) as [number[], number[], number[], number[]];
      console.log(
        `  ${"".padEnd(26)} latency ms, median window / worst window: p50 ${median(p50)} / ${p50.at(-1)!.toFixed(2)}, ` +
          `p99 ${median(p99)} / ${p99.at(-1)!.toFixed(2)}, p99.9 ${median(p999)} / ${p999.at(-1)!.toFixed(2)}, max ${median(max)} / ${max.at(-1)!.toFixed(2)}`,
      );
    }
  }
  if (flags.syscalls) {
    for (const s of sides) {
      const pids = s.procs.flatMap((p) => tree(p.pid));
      const traced = pids.at(-1)!;
      const out = join(dir, "strace.txt");
      const st = Bun.spawn(["strace", "-c", "-f", "-o", out, "-p", String(traced)], { stderr: "ignore" });
      await Bun.sleep(300);
      // Only the traced process's requests count: its share of the side's is unknown with several, so one process per side.
      const got = await load(s.url, windowSec * 2);
      st.kill("SIGINT");
      await st.exited;
      const calls = readFileSync(out, "utf8")
        .split("\n")
        .filter((l) => /^\s*\d/.test(l))
        .map((l) => l.trim().split(/\s+/))
        .map((f) => [f.at(-1)!, Number(f[3]) / got.requests] as const)
        .filter(([name, n]) => name !== "total" && n >= 0.01)
        .sort((x, y) => y[1] - x[1]);
      const note = pids.length > 1 ? ` (one process of ${pids.length}: per request of the whole side)` : "";
      console.log(
        `  ${s.name.padEnd(26)} system calls per request${note}: ${calls.reduce((t, [, n]) => t + n, 0).toFixed(2)}: ${calls.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(", ")}`,
      );
    }
  }
} finally {
  for (const s of sides) for (const p of s.procs) p.kill("SIGTERM");
  await Promise.all(sides.flatMap((s) => s.procs.map((p) => p.exited)));
  rmSync(dir, { recursive: true, force: true });
}
