// `bun bench/page-totals-switch.ts [--rows 50000] [--database postgres://…]`: the cost of a day's page totals
// inside the day's switching transaction (issue 17): replaceDayGrains with `rows` page-total rows (Google's
// daily cap is 50,000), first write and the same day written again, against the same day with 10 page rows.
// Prints wall ms of each transaction and the process CPU ms it used. Single runs on a shared machine.
import { parseArgs } from "node:util";
import { openBenchDb } from "./bench-db.ts";
import { setLogLevel } from "../src/log.ts";
import { replaceDayGrains, upsertPageIds, type DayGrains } from "../src/sync/grain-writes.ts";

const { values: args } = parseArgs({ options: { rows: { type: "string", default: "50000" }, database: { type: "string" } } });
const rows = Number(args.rows);
setLogLevel("warn");

const { db, cleanup } = await openBenchDb(args.database, "sitesync-pagetotals-");
const domain = `sc-domain:pt-${Date.now()}.bench.example`;
const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
const countries = ["usa", "gbr", "deu", "fra", "ind"];
const devices = [1, 2, 3];
const perPage = countries.length * devices.length;
const urls = Array.from({ length: Math.ceil(rows / perPage) }, (_, i) => `https://pt.example/p/${i}`);
const ids = new Map<string, number>();
for (let i = 0; i < urls.length; i += 2000) {
  for (const [k, v] of await db.tx((tx) => upsertPageIds(tx, site, urls.slice(i, i + 2000)))) ids.set(k, v);
}
function grains(n: number, day: number, bump: number): DayGrains {
  const page = [];
  for (let i = 0; page.length < n; i++) {
    for (const country of countries)
      for (const device of devices)
        if (page.length < n)
          page.push({ page_id: ids.get(urls[i]!)!, country, device, clicks: (i % 7) + bump, impressions: 100 + i, sum_position: 500 + i });
  }
  return {
    siteId: site,
    day,
    type: 1,
    property: [{ country: "usa", device: 1, clicks: 10, impressions: 100, sum_position: 1000 }],
    page,
    appearance: [],
    completeness: {
      property_rows: 1,
      page_rows: n,
      detail_rows: 0,
      appearance_rows: 0,
      page_truncated: false,
      detail_truncated: false,
      anonymized_share: null,
      data_state: "final",
    },
  };
}
async function timed(label: string, g: DayGrains) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await db.tx((tx) => replaceDayGrains(tx, g));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${db.engine} ${label.padEnd(40)} ${wall.toFixed(0).padStart(6)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0).padStart(6)} ms CPU (this process)`,
  );
}
await timed("10 page rows", grains(10, 20000, 0));
await timed(`${rows} page rows, first write`, grains(rows, 20001, 0));
await timed(`${rows} page rows, written again (equal)`, grains(rows, 20001, 0));
await timed(`${rows} page rows, written again (all changed)`, grains(rows, 20001, 1));
await cleanup();
process.exit(0);
