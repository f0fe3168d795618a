import { parseArgs } from "node:util";
import * as budget from "../src/db/budget.ts";
import { openDb } from "../src/db/index.ts";
import { searchQueries } from "../src/search/queries.ts";
import { addDays } from "../src/sync/dates.ts";

// `bun bench/search-window.ts --db FILE --end 2026-12-04 [--site 1] [--rounds 3] [--terms renka,ka] [--base DIR]`:
// query search (src/search/queries.ts, as GET /api/v1/queries/search: 1,000 results) over 30 and 90 days for each
// term, CPU (user + system, this process and its query processes) and wall, on one read-only SQLite file. With
// --base (another checkout's root, e.g. the tree before a change) each search runs alternately in both trees in this
// one process, and their answers are compared (same JSON or it says DIFFERENT).

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    site: { type: "string", default: "1" },
    end: { type: "string" },
    rounds: { type: "string", default: "3" },
    terms: { type: "string", default: "renka,ka" },
    base: { type: "string" },
  },
});
if (!values.db || !values.end) {
  console.error("--db and --end are required");
  process.exit(1);
}
type Search = typeof searchQueries;
const trees: [string, Search, typeof budget][] = [["new", searchQueries, budget]];
if (values.base)
  trees.unshift([
    "base",
    (await import(`${values.base}/src/search/queries.ts`)).searchQueries,
    await import(`${values.base}/src/db/budget.ts`),
  ]);
const db = openDb({ path: values.db, role: "test" });
/** CPU ms (user + system) of this process and its children (the query processes), from /proc (10 ms ticks for children). */
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
const load = async () => (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
console.log(`${values.db}: window ending ${values.end}, load ${await load()}`);
for (const term of values.terms.split(","))
  for (const days of [30, 90]) {
    const opts = { siteId: Number(values.site), term, startDate: addDays(values.end, -(days - 1)), endDate: values.end, limit: 1000 };
    const cpu: Record<string, number[]> = {};
    const wall: Record<string, number[]> = {};
    const answers: Record<string, string> = {};
    for (let i = 0; i < Number(values.rounds); i++)
      for (const [tree, search, b] of trees) {
        const before = await cpuNow();
        const t0 = performance.now();
        const out = await b.withBudget(b.budgetOf({ timeoutMs: 3_600_000, maxRows: 10_000_000, maxBytes: 2 ** 30 }), () =>
          search(db, opts),
        );
        (wall[tree] ??= []).push(performance.now() - t0);
        (cpu[tree] ??= []).push((await cpuNow()) - before);
        answers[tree] = JSON.stringify(out);
      }
    const same = trees.length < 2 || answers.base === answers.new;
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
    console.log(
      `'${term}' ${days} d`.padEnd(14) +
        `${trees.map(([t]) => `${t} cpu ${fmt(cpu[t]!)} wall ${fmt(wall[t]!)} ms`).join("   ")}${same ? "" : "   DIFFERENT ANSWERS"}`,
    );
  }
console.log(`end load ${await load()}`);
process.exit(0);
