import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { children } from "./cpu.ts";
import { startService } from "./processes.ts";

// `bun bench/startup.ts`: CPU each process of a served instance spends to get ready (supervisor, HTTP worker, sync
// worker), read from /proc the moment the supervisor says it listens and the sync worker says it started. Several
// trees side by side (`--tree /other/checkout`, default this one), alternated round by round, medians reported:
// the load of a shared machine moves each figure, the alternation keeps the comparison fair. A tree named with
// `+bundle` (`--tree .+bundle`) starts from its start bundle (src/bundle/build.ts, built first), as `bun run start` does.
//
//   bun bench/startup.ts [--tree /work/main] [--tree .] [--tree .+bundle] [--rounds 5] [--workers 1] [--sync-workers 1]
//                        [--database postgres://…  (a database of its own: migrated by the first start)]

const { values } = parseArgs({
  options: {
    tree: { type: "string", multiple: true, default: [] },
    rounds: { type: "string", default: "5" },
    workers: { type: "string", default: "1" },
    "sync-workers": { type: "string", default: "1" },
    database: { type: "string" },
  },
});
const trees = (values.tree!.length ? values.tree! : ["."]).map((t) =>
  t.endsWith("+bundle") ? `${resolve(t.slice(0, -7))}+bundle` : resolve(t),
);
// The supervisor's file per tree: its sources, or its start bundle's main.js (built now, by the tree's own builder).
const scripts = new Map<string, string>();
for (const tree of trees) {
  if (!tree.endsWith("+bundle")) continue;
  const root = tree.slice(0, -7);
  const { ensureStartBundle } = await import(join(root, "src/bundle/build.ts"));
  const { bundledFile } = await import(join(root, "src/bundle/entry.ts"));
  scripts.set(tree, bundledFile(await ensureStartBundle({ root }), "main.ts"));
}
const rounds = Number(values.rounds);
const workers = Number(values.workers);
const syncWorkers = Number(values["sync-workers"]);
const TICKS_PER_SECOND = 100;

/** User + system CPU milliseconds of one process so far (its threads included). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** The role of a child of the supervisor, from its command line. */
function roleOf(pid: number): string {
  const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  return cmd.includes("worker-main") ? "sync" : /server\.(ts|js)/.test(cmd) ? "http" : "other";
}

const dir = mkdtempSync(join(tmpdir(), "sitesync-startup-"));
// One migrated SQLite file per tree, copied for each start: the start measured is a restart's, not a first migration.
const templates = new Map<string, string>();
const samples = new Map<string, number[]>();
const add = (key: string, ms: number) => samples.set(key, [...(samples.get(key) ?? []), ms]);

async function startOnce(tree: string, round: number) {
  let dbUrl = values.database;
  if (!dbUrl) {
    dbUrl = join(dir, `r${round}-${trees.indexOf(tree)}.db`);
    const template = templates.get(tree);
    if (template) copyFileSync(template, dbUrl);
  }
  const start = () =>
    startService({
      dbPath: dbUrl,
      workers,
      syncWorkers,
      root: tree.replace(/\+bundle$/, ""),
      script: scripts.get(tree),
      env: { LOG_LEVEL: "info", SYNC_SCHEDULER: "0", SYNC_NICE: "0" },
    });
  // A start can fail on a loaded machine (a free port taken before the workers bind it): tried once more.
  const server = await start().catch(start);
  try {
    const deadline = Date.now() + 60_000;
    const started = () => server.output().split("sync worker started").length - 1;
    while (started() < syncWorkers && Date.now() < deadline) await Bun.sleep(5);
    const row: Record<string, number> = { supervisor: cpuMs(server.pid) };
    for (const c of children(server.pid)) {
      const role = roleOf(c);
      if (role !== "other") add(`${tree} ${role}`, cpuMs(c));
      row[role] = cpuMs(c);
    }
    add(`${tree} supervisor`, row.supervisor!);
    return row;
  } finally {
    await server.stop();
    if (!values.database && !templates.has(tree)) {
      const t = join(dir, `template-${trees.indexOf(tree)}.db`);
      copyFileSync(dbUrl, t);
      templates.set(tree, t);
    }
    if (!values.database) rmSync(dbUrl, { force: true });
  }
}

// A first start per tree (migrates the template; not counted), then the rounds, the order of the trees reversed every round.
for (const tree of trees) await startOnce(tree, -1);
samples.clear();
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? trees : [...trees].reverse();
  for (const tree of order) {
    const row = await startOnce(tree, r);
    console.log(
      `round ${r + 1} ${tree}: ${Object.entries(row)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")} ms`,
    );
  }
}
rmSync(dir, { recursive: true, force: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
console.log(`\nCPU to ready, ms, median of ${rounds} (min-max); load ${load}`);
// Each round's difference to the first tree (the same round, so the same moment's load): steadier than the medians.
const rows = new Map<string, number[]>();
for (const [key, xs] of samples) rows.set(key, xs);
for (const tree of trees.slice(1))
  for (const role of ["supervisor", "http", "sync"]) {
    const base = rows.get(`${trees[0]} ${role}`);
    const xs = rows.get(`${tree} ${role}`);
    if (!base || !xs || base.length !== xs.length) continue;
    const d = xs.map((x, i) => x - base[i]!);
    console.log(
      `${tree.padEnd(28)} ${role.padEnd(10)} ${median(d) >= 0 ? "+" : ""}${median(d).toFixed(0)} ms against ${trees[0]} (median of the rounds' differences)`,
    );
  }
for (const tree of trees)
  for (const role of ["supervisor", "http", "sync"]) {
    const xs = samples.get(`${tree} ${role}`);
    if (xs)
      console.log(`${tree.padEnd(28)} ${role.padEnd(10)} ${median(xs).toFixed(0).padStart(5)} (${Math.min(...xs)}-${Math.max(...xs)})`);
  }
