import pg from "pg";
import { openPgDb } from "./src/db/index.ts";
import { migratePg } from "./src/db/pg/migrate.ts";
import { setLogLevel } from "./src/log.ts";
import { stageQueryTotals, stageRows, switchStagedDay, clearStaged } from "./src/sync/staged-day.ts";
setLogLevel("warn");
const url = process.argv[2]!;
const analyze = process.argv[3] === "analyze";
await migratePg(url);
const db = openPgDb({ url, role: "test" });
const domain = `sc-domain:sw-${Date.now()}.example`;
const site = (await db.tx(async (tx) => (await tx.insert(db.t.sites).values({ domain, name: domain }).returning())[0]!)).id;
const task = 900000 + site;
const N = 50000;
const rows = Array.from({ length: N }, (_, i) => ({
  page: `https://sw.example/p${i % 2000}`,
  query: `q ${i}`,
  device: ["DESKTOP", "MOBILE", "TABLET"][i % 3]!,
  clicks: i % 5,
  impressions: 10 + (i % 50),
  ctr: 0,
  position: 3.5,
}));
async function stage() {
  for (let i = 0; i < N; i += 5000) await db.tx((tx) => stageRows(tx, task, site, rows.slice(i, i + 5000) as never));
  await db.tx((tx) => stageQueryTotals(tx, task));
}
const c = new pg.Client({ connectionString: url });
await c.connect();
const day = 20500;
const ofDay = `site_id = ${site} and day = ${day} and type = 1`;
const stmts = [
  `delete from gsc_query_detail where ${ofDay} and not exists (select 1 from gsc_staged_detail s where s.task_id = ${task} and s.page_id = gsc_query_detail.page_id and s.query_id = gsc_query_detail.query_id and s.device = gsc_query_detail.device)`,
  `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) select ${site}, ${day}, 1, page_id, query_id, device, clicks, impressions, sum_position from gsc_staged_detail where task_id = ${task} on conflict (site_id, day, type, page_id, query_id, device) do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position where gsc_query_detail.clicks <> excluded.clicks or gsc_query_detail.impressions <> excluded.impressions or gsc_query_detail.sum_position <> excluded.sum_position`,
  `delete from gsc_day_query_totals where ${ofDay} and not exists (select 1 from gsc_staged_query_totals s where s.task_id = ${task} and s.query_id = gsc_day_query_totals.query_id)`,
  `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) select ${site}, ${day}, 1, query_id, clicks, impressions, sum_position from gsc_staged_query_totals where task_id = ${task} on conflict (site_id, day, type, query_id) do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position where gsc_day_query_totals.clicks <> excluded.clicks or gsc_day_query_totals.impressions <> excluded.impressions or gsc_day_query_totals.sum_position <> excluded.sum_position`,
];
async function explainAll(label: string) {
  await c.query("begin");
  if (analyze) await c.query("analyze gsc_staged_detail; analyze gsc_staged_query_totals");
  for (const s of stmts) {
    const t0 = performance.now();
    const r = await c.query(`explain (analyze, costs) ${s}`);
    console.log(`--- ${label}: ${(performance.now() - t0).toFixed(0)} ms: ${s.slice(0, 40)}`);
    console.log(
      r.rows
        .map((x) => x["QUERY PLAN"])
        .filter((l: string) => /Join|Scan|Loop|Execution|Insert|Delete|Conflict|Hash|Sort/.test(l))
        .join("\n"),
    );
  }
  await c.query("rollback");
}
await stage();
await explainAll("first fetch (empty day)");
const t0 = performance.now();
await db.tx((tx) => switchStagedDay(tx, task, site, day, 1));
console.log(`real switch, first: ${(performance.now() - t0).toFixed(0)} ms`);
await db.tx((tx) => clearStaged(tx, task));
await stage();
await explainAll("fetched again (equal)");
await db.tx((tx) => clearStaged(tx, task));
await c.end();
await db.close();
