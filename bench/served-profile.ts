// `bun bench/served-profile.ts [checkout] [get_one|list|create|mixed] [seconds]`: one served HTTP worker
// (src/server.ts, unsupervised) under `bun --cpu-prof` while bench/load.ts drives it over real sockets (3 s of
// warm-up first; mixed = 90 % get_one, 5 % list, 5 % create, as `bun run bench`); prints its CPU per request,
// then the main thread's CPU per request by step (bench/profile-steps.ts: each step's share of the measured
// seconds' samples times the main thread's CPU per request), then the profile's self time by package, by
// function, and the callers of the main native functions (those shares are of all samples, start-up and idle
// included: read the ranks).
import { sampleSteps, stepOrder, type CpuProfile } from "./profile-steps.ts";
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
// Resolved: the checkout's modules are imported by path, which a relative one would resolve against this file.
const root = resolve(process.argv[2] ?? join(import.meta.dir, ".."));
const scenario = process.argv[3] ?? "get_one";
const secs = Number(process.argv[4] ?? 6);
const { migrate } = await import(`${root}/src/db/sqlite/migrate.ts`);
const { runLoad } = await import("./load.ts");
const dir = mkdtempSync(join(tmpdir(), "servedprof-"));
const path = join(dir, "a.db");
migrate(path);
const d = new Database(path);
const ins = d.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
d.transaction(() => {
  for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
})();
d.close();
const port = 20000 + Math.floor(Math.random() * 20000);
/** The profiler's sampling interval (µs). */
const PROFILE_INTERVAL_US = 200;
const proc = Bun.spawn(
  [process.execPath, "--cpu-prof", `--cpu-prof-interval=${PROFILE_INTERVAL_US}`, `--cpu-prof-dir=${dir}`, "src/server.ts"],
  {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: path,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      REQUEST_LOG: "0",
      SYNC_SCHEDULER: "0",
    },
    stdout: "inherit",
    stderr: "inherit",
  },
);
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 600; i++) {
  try {
    await fetch(`${url}/health`);
    break;
  } catch {
    await Bun.sleep(100);
  }
}
let k = 0;
const getOne = () => ({ method: "GET" as const, path: `/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}` });
const list = () => ({ method: "GET" as const, path: "/api/v1/sites?limit=50" });
const create = () => ({
  method: "POST" as const,
  path: "/api/v1/sites",
  body: JSON.stringify({ domain: `sc-domain:x${++k}.p.example`, name: `X ${k}` }),
});
const mixed = () => {
  const r = Math.random();
  return r < 0.9 ? getOne() : r < 0.95 ? list() : create();
};
const next = { get_one: getOne, list, create, mixed }[scenario];
if (!next) throw new Error(`unknown scenario ${scenario} (get_one, list, create, mixed)`);
await runLoad({ url, connections: 32, durationSec: 3, next });
/** CPU µs so far of the process (all threads) and of its main thread. */
const cpu = () => {
  const ticks = (stat: string) => {
    const f = stat.split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) * 10_000;
  };
  return {
    all: ticks(readFileSync(`/proc/${proc.pid}/stat`, "utf8")),
    main: ticks(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/stat`, "utf8")),
  };
};
const c0 = cpu();
const t0 = Date.now() * 1000;
const r = await runLoad({ url, connections: 32, durationSec: secs, next });
const t1 = Date.now() * 1000;
const c1 = cpu();
const mainUs = (c1.main - c0.main) / r.requests;
console.log(
  `${scenario}: ${r.requests} req, ${r.rps.toFixed(0)} req/s, process CPU ${((c1.all - c0.all) / r.requests).toFixed(1)} µs/req ` +
    `(main thread ${mainUs.toFixed(1)}), statuses ${JSON.stringify(r.statuses)}`,
);
proc.kill("SIGINT");
await proc.exited;
const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
if (!file) {
  console.log("no profile");
  process.exit(1);
}
const prof = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile & { startTime: number };
// The main thread's CPU per request by step, from the samples of the measured seconds (startTime and the
// deltas are µs of the wall clock). JSC samples the thread only while it runs JavaScript (a delta after a
// sample may span the event loop's idle wait, and Bun's native serving is not sampled), so each sample
// counts as one interval of JavaScript; what the main thread spent beyond them is Bun's own serving (HTTP
// parsing, the Request and the answer's writing, system calls) and the kernel's, printed as one line.
{
  const steps = sampleSteps(prof);
  const inWindow = new Map<string, number>();
  let at = prof.startTime;
  let samples = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (at < t0 || at > t1) continue;
    inWindow.set(steps[i]!, (inWindow.get(steps[i]!) ?? 0) + 1);
    samples++;
  }
  const perSample = PROFILE_INTERVAL_US / r.requests;
  console.log(`-- main thread CPU µs per request by step (${samples} samples of JavaScript in the measured ${secs} s)`);
  for (const step of stepOrder) {
    const v = inWindow.get(step);
    if (v === undefined || v * perSample < 0.05) continue;
    console.log(`${(v * perSample).toFixed(1).padStart(7)}  ${step}`);
  }
  console.log(`${(samples * perSample).toFixed(1).padStart(7)}  JavaScript, total`);
  console.log(`${(mainUs - samples * perSample).toFixed(1).padStart(7)}  Bun's native serving and the kernel (not sampled)`);
  console.log(`${mainUs.toFixed(1).padStart(7)}  main thread, total`);
}
const byId = new Map<number, any>(prof.nodes.map((n: any) => [n.id, n]));
const self = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const n = byId.get(prof.samples[i]!);
  const dt = prof.timeDeltas[i] ?? 0;
  total += dt;
  const u = (n.callFrame.url || "(native)").replace(/.*node_modules\//, "nm/").replace(root, "");
  const key = `${n.callFrame.functionName || "(anon)"} ${u}:${n.callFrame.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + dt);
  const fk = u.replace(/^(nm\/(@[^/]+\/)?[^/]+).*/, "$1");
  byFile.set(fk, (byFile.get(fk) ?? 0) + dt);
}
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const pk = new Map<string, number>();
for (let i = 0; i < prof.samples.length; i++) {
  const n = byId.get(prof.samples[i]!);
  if (n.callFrame.url) continue;
  const fn = n.callFrame.functionName;
  if (!["get", "set", "run", "values", "requestIP", "Response", "stringify", "(anon)", ""].includes(fn)) continue;
  const p = byId.get(parent.get(n.id)!);
  const p2 = p && byId.get(parent.get(p.id)!);
  const key = `${fn} <- ${p?.callFrame.functionName} ${(p?.callFrame.url ?? "").replace(/.*node_modules\//, "nm/").replace(root, "")}:${p?.callFrame.lineNumber} <- ${p2?.callFrame.functionName} ${(p2?.callFrame.url ?? "").replace(/.*node_modules\//, "nm/").replace(root, "")}:${p2?.callFrame.lineNumber}`;
  pk.set(key, (pk.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
console.log(`profile total ${(total / 1e3).toFixed(0)} ms`);
const top = (m: Map<string, number>, n: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
console.log(`-- by file/package\n${top(byFile, 25)}`);
console.log(`-- by function\n${top(self, 45)}`);
console.log(`-- natives by caller\n${top(pk, 30)}`);
rmSync(dir, { recursive: true, force: true });
