// The CPU of idle test servers (docs/testing.md, "Idle processes"): `--servers` servers of each variant started as
// test/helpers/server.ts starts them (supervisor + `--workers` HTTP workers, the engine of TEST_ENGINE), all side by
// side over the same window, so every variant sees the same load; then each server tree's CPU a second (and on
// PostgreSQL its database's backends'). The variants are environments the servers start with: by default Bun's GC
// timer as Bun sets it against off, as scripts/test.ts sets it for the suite.
//   bun bench/idle-servers.ts [--servers 3] [--workers 2] [--seconds 30] [--variants '{"name":{"ENV":"value"}}']
// PostgreSQL: TEST_ENGINE=pg TEST_POSTGRES_URL=postgres://... (a server on this machine, to read its backends).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startServer, type RunningServer } from "../test/helpers/server.ts";

const { values } = parseArgs({
  options: {
    servers: { type: "string", default: "3" },
    workers: { type: "string", default: "2" },
    seconds: { type: "string", default: "30" },
    variants: {
      type: "string",
      default: JSON.stringify({ "bun-gc-timer": { BUN_GC_TIMER_INTERVAL: "1000" }, "gc-timer-off": { BUN_GC_TIMER_DISABLE: "1" } }),
    },
  },
});
const perVariant = Number(values.servers);
const seconds = Number(values.seconds);
const variants = JSON.parse(values.variants) as Record<string, Record<string, string>>;

/** utime + stime of a process in clock ticks (10 ms), 0 once it is gone. */
function ticks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** A process and all its descendants. */
function tree(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // gone
  }
  return [pid, ...kids.flatMap(tree)];
}

/** The PostgreSQL backends serving database `name` (their command lines name it). */
function backends(name: string): number[] {
  const out = Bun.spawnSync(["pgrep", "-f", `^postgres: \\S+ ${name} `])
    .stdout.toString()
    .trim();
  return out ? out.split("\n").map(Number) : [];
}

const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];
// As the suite runs them (scripts/test.ts): the optimizing JIT off.
process.env.BUN_JSC_useDFGJIT ??= "0";
const started: { variant: string; server: RunningServer }[] = [];
try {
  // Interleaved: no variant starts (or idles) earlier than the others.
  for (let i = 0; i < perVariant; i++)
    for (const [variant, env] of Object.entries(variants))
      started.push({ variant, server: await startServer({ workers: Number(values.workers), env }) });
  // Past the first seconds' start-up work.
  await Bun.sleep(5000);
  const load0 = loadavg();
  const watched = started.map(({ server }) => {
    const db = server.dbPath.startsWith("postgres") ? new URL(server.dbPath).pathname.slice(1) : null;
    return [
      ...tree(server.proc.pid).map((pid) => ({ pid, at: ticks(pid), backend: false })),
      ...(db ? backends(db) : []).map((pid) => ({ pid, at: ticks(pid), backend: true })),
    ];
  });
  await Bun.sleep(seconds * 1000);
  const rows = new Map<string, { tree: number[]; pg: number[] }>();
  started.forEach(({ variant }, i) => {
    const row = rows.get(variant) ?? { tree: [], pg: [] };
    const spent = (backend: boolean) =>
      (watched[i]!.filter((p) => p.backend === backend).reduce((a, p) => a + ticks(p.pid) - p.at, 0) * 10) / seconds;
    row.tree.push(spent(false));
    row.pg.push(spent(true));
    rows.set(variant, row);
  });
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(
    `idle ${seconds} s, ${perVariant} servers a variant (${values.workers} HTTP workers, ${process.env.TEST_ENGINE === "pg" ? "PostgreSQL" : "SQLite"}), load ${load0} -> ${loadavg()}: ms of CPU a second per server`,
  );
  for (const [variant, r] of rows) {
    const pg = r.pg.some((x) => x > 0) ? `; its database's backends ${r.pg.map((x) => x.toFixed(1)).join(" / ")}` : "";
    console.log(`  ${variant.padEnd(16)} median ${median(r.tree).toFixed(1)} (${r.tree.map((x) => x.toFixed(1)).join(" / ")})${pg}`);
  }
} finally {
  await Promise.all(started.map(({ server }) => server.cleanup()));
}
