import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { openDb } from "../src/db/index.ts";
import { pageTotalsQuery, type PageTotalsOptions } from "../src/analytics/totals.ts";
import { addDays } from "../src/sync/dates.ts";

// `bun bench/report-grains.ts --db FILE --site 1 --end 2026-12-04 [--days 90] [--rounds 5]`: the CPU of one
// page-totals read over a window (the SQL behind best_pages, insights top/compare by page, compare_periods'
// page counts and page-keyword-performance's totals) from the day rows and from the weekly rollup, alternated
// in one process on one read-only connection (user + system CPU per read, so other load disturbs it little),
// and whether both answer the same rows. SQLite files only (an existing seed: bench:analytics --db).

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    site: { type: "string", default: "1" },
    end: { type: "string" },
    days: { type: "string", default: "90" },
    rounds: { type: "string", default: "5" },
  },
});
if (!values.db || !values.end) {
  console.error("--db and --end are required");
  process.exit(1);
}
const db = openDb({ path: values.db, role: "test" });
const siteId = Number(values.site);
const end = values.end;
const start = addDays(end, -(Number(values.days) - 1));
const rounds = Number(values.rounds);

/** CPU milliseconds (user + system) of one call. */
function cpuMs<T>(fn: () => T): [number, T] {
  const before = process.cpuUsage();
  const out = fn();
  const used = process.cpuUsage(before);
  return [(used.user + used.system) / 1000, out];
}

const cases: [string, PageTotalsOptions][] = [
  ["all pages, by clicks", {}],
  ["top 100 pages", { limit: 100 }],
  ["url contains 'kaka'", { urlContains: "kaka" }],
];
console.log(
  `${values.db}: site ${siteId}, ${start} .. ${end} (${values.days} days), ${cpus().length} cores, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`,
);
for (const [name, o] of cases) {
  const f = { siteId, start, end, searchType: "web" as const };
  const day = await pageTotalsQuery(db, f, { ...o, grain: "day" });
  const week = await pageTotalsQuery(db, f, o);
  const reader = db.raw.reader;
  const times = { day: [] as number[], week: [] as number[] };
  let same = true;
  for (let i = 0; i < rounds; i++) {
    const [a, ra] = cpuMs(() => reader.query(day.sql).all(day.params as never));
    const [b, rb] = cpuMs(() => reader.query(week.sql).all(week.params as never));
    times.day.push(a);
    times.week.push(b);
    same &&= JSON.stringify(ra) === JSON.stringify(rb);
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
  console.log(
    `${name.padEnd(24)} day rows ${med(times.day).toFixed(0).padStart(6)} ms CPU  weekly ${med(times.week).toFixed(0).padStart(6)} ms CPU  ` +
      `(${(med(times.day) / med(times.week)).toFixed(1)}x, medians of ${rounds})  same rows: ${same}`,
  );
}
console.log(`load after: ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);
db.close();
