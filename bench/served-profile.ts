// `bun bench/served-profile.ts [checkout] [get_one|list|create] [seconds]`: one served HTTP worker
// (src/server.ts, unsupervised) under `bun --cpu-prof` while bench/load.ts drives it over real sockets (3 s of
// warm-up first); prints its CPU per request and the profile's self time by package, by function, and the
// callers of the main native functions. Shares are of all samples (start-up and idle included): read the ranks.
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
const root = process.argv[2] ?? join(import.meta.dir, "..");
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
const proc = Bun.spawn([process.execPath, "--cpu-prof", "--cpu-prof-interval=200", `--cpu-prof-dir=${dir}`, "src/server.ts"], {
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
});
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 600; i++) {
  try {
    await fetch(url + "/health");
    break;
  } catch {
    await Bun.sleep(100);
  }
}
let k = 0;
const next =
  scenario === "list"
    ? () => ({ method: "GET" as const, path: "/api/v1/sites?limit=50" })
    : scenario === "create"
      ? () => ({
          method: "POST" as const,
          path: "/api/v1/sites",
          body: JSON.stringify({ domain: `sc-domain:x${++k}.p.example`, name: `X ${k}` }),
        })
      : () => ({ method: "GET" as const, path: `/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}` });
await runLoad({ url, connections: 32, durationSec: 3, next });
const cpu = () => {
  const f = readFileSync(`/proc/${proc.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
const c0 = cpu();
const r = await runLoad({ url, connections: 32, durationSec: secs, next });
const c1 = cpu();
console.log(
  `${scenario}: ${r.requests} req, ${r.rps.toFixed(0)} req/s, process CPU ${((c1 - c0) / r.requests).toFixed(1)} µs/req, statuses ${JSON.stringify(r.statuses)}`,
);
proc.kill("SIGINT");
await proc.exited;
const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
if (!file) {
  console.log("no profile");
  process.exit(1);
}
const prof = JSON.parse(readFileSync(join(dir, file), "utf8"));
const byId = new Map<number, any>(prof.nodes.map((n: any) => [n.id, n]));
const self = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const n = byId.get(prof.samples[i]);
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
  const n = byId.get(prof.samples[i]);
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
console.log("-- by file/package\n" + top(byFile, 25));
console.log("-- by function\n" + top(self, 45));
console.log("-- natives by caller\n" + top(pk, 30));
rmSync(dir, { recursive: true, force: true });
