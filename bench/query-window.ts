import { parseArgs } from "node:util";
import { openDb } from "../src/db/index.ts";
import { comparePeriods, findBrandSplit, findOverview, findTop } from "../src/insights/queries.ts";
import { comparePeriodsBy, comparePeriodTotals } from "../src/mcp/queries.ts";
import { addDays } from "../src/sync/dates.ts";

// `bun bench/query-window.ts --db FILE --end 2026-12-04 [--site 1] [--rounds 3] [--base DIR]`: CPU (user + system)
// of the reads of every query over a window (insights overview / top query / compare by query / brand, MCP
// compare_periods by query and its period query counts), 90 days (compare: 45 vs 45), on one read-only SQLite
// file. With --base (another checkout's root, e.g. the tree before a change) each read runs alternately in both
// trees in this one process, and their answers are compared (same JSON or it says DIFFERENT).

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    site: { type: "string", default: "1" },
    end: { type: "string" },
    rounds: { type: "string", default: "3" },
    base: { type: "string" },
  },
});
if (!values.db || !values.end) {
  console.error("--db and --end are required");
  process.exit(1);
}
type Reads = {
  findOverview: typeof findOverview;
  findTop: typeof findTop;
  comparePeriods: typeof comparePeriods;
  findBrandSplit: typeof findBrandSplit;
  comparePeriodsBy: typeof comparePeriodsBy;
  comparePeriodTotals: typeof comparePeriodTotals;
};
const trees: [string, Reads][] = [
  ["new", { findOverview, findTop, comparePeriods, findBrandSplit, comparePeriodsBy, comparePeriodTotals }],
];
if (values.base) {
  const i = await import(`${values.base}/src/insights/queries.ts`);
  const m = await import(`${values.base}/src/mcp/queries.ts`);
  trees.unshift(["base", { ...i, ...m } as Reads]);
}
const db = openDb({ path: values.db, role: "test" });
const siteId = Number(values.site);
const end = values.end;
const start = addDays(end, -89);
const mid = addDays(end, -44);
const f = { siteId, start, end, searchType: "web" };
const p1 = { start, end: addDays(mid, -1) };
const p2 = { start: mid, end };
const cases: [string, (r: Reads) => Promise<unknown>][] = [
  ["insight overview 90d", (r) => r.findOverview(db, f)],
  ["insight top query 90d", (r) => r.findTop(db, { ...f, by: "query", limit: 100 })],
  [
    "insight compare query 45+45",
    (r) => r.comparePeriods(db, { siteId, searchType: "web", by: "query", previous: p1, current: p2, limit: 20 }),
  ],
  ["insight brand 90d", (r) => r.findBrandSplit(db, { ...f, terms: ["ka", "zu"] })],
  [
    "mcp compare by query 45+45",
    (r) => r.comparePeriodsBy(db, { siteId, searchType: "web", period1: p1, period2: p2, by: "query", order: "losers_first", limit: 100 }),
  ],
  ["mcp period query counts", (r) => r.comparePeriodTotals(db, { siteId, searchType: "web", period1: p1, period2: p2 })],
];
/** CPU ms (user + system) of this process and its children (the analytics query processes), from /proc (10 ms ticks for children). */
async function cpuNow(): Promise<number> {
  const u = process.cpuUsage();
  let ticks = 0;
  for (const pid of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    const stat = await Bun.file(`/proc/${pid}/stat`)
      .text()
      .catch(() => "");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[1]) === process.pid) ticks += Number(f[11]) + Number(f[12]);
  }
  return (u.user + u.system) / 1000 + ticks * 10;
}
console.log(`${values.db}: ${start}..${end}, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);
for (const [name, read] of cases) {
  const cpu: Record<string, number[]> = {};
  const answers: Record<string, string> = {};
  for (let i = 0; i < Number(values.rounds); i++)
    for (const [tree, reads] of trees) {
      const before = await cpuNow();
      const out = await read(reads);
      (cpu[tree] ??= []).push((await cpuNow()) - before);
      answers[tree] = JSON.stringify(out);
    }
  const same = trees.length < 2 || answers.base === answers.new;
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
  console.log(`${name.padEnd(30)} ${trees.map(([t]) => `${t} ${fmt(cpu[t]!)} ms`).join("   ")}${same ? "" : "   DIFFERENT ANSWERS"}`);
}
console.log(`end load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);
