// `bun bench/ingest-big-file.ts --db <a copy of a big file> [--days 4] [--group] [--no-rollup] [--cache KiB]`: what
// writing new days costs once a property has history. Takes the biggest site's newest web day (its detail rows)
// and writes it again as the next `--days` days through writeDayRows (the sync's switch from memory: the detail and
// the day × query rollup), one day per transaction (`--group`: all of them in one), on one connection of the
// file (`--cache`: its cache_size in KiB, default SQLITE_CACHE_SIZE; the site's rollup is read once first, so the
// cache starts warm as a long-running sync worker's). Prints CPU µs per row (process.cpuUsage: the machine's load
// counts less than in wall time), the COMMITs' share and WAL bytes per row. It WRITES into the file: use a copy
// (e.g. of /work/bench-data/shared/anchors5m-0028.db); every run adds days after the newest stored.
import { statSync } from "node:fs";
import { parseArgs } from "node:util";
import { defaultPragmas, openConnection, wrapOrm } from "../src/db/sqlite/open.ts";
import { writeDayRows } from "../src/sync/data.ts";
import { DayRows } from "../src/sync/keyed-rows.ts";

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    days: { type: "string", default: "4" },
    group: { type: "boolean", default: false },
    "no-rollup": { type: "boolean", default: false },
    cache: { type: "string" },
  },
});
if (!args.db) throw new Error("--db <a copy of a big file> is required");
const path = args.db;
const days = Number(args.days);
const cacheSize = args.cache ? -Number(args.cache) : defaultPragmas.cacheSize;
// No auto-checkpoint: the WAL's growth is the bytes the COMMITs wrote (the service's checkpointer copies them later).
const c = openConnection(path, { ...defaultPragmas, walAutocheckpoint: 0, cacheSize });
c.run("PRAGMA wal_checkpoint(TRUNCATE)");
const orm = wrapOrm(c);
const site = c
  .query<{ site_id: number }, []>("select site_id from gsc_query_detail group by site_id order by count(*) desc limit 1")
  .get()!.site_id;
const newest = c.query<{ d: number }, [number]>("select max(day) as d from gsc_query_detail where site_id = ?").get(site)!.d;
const source = c
  .query<
    { page_id: number; query_id: number; device: number; clicks: number; impressions: number; sum_position: number },
    [number, number]
  >("select page_id, query_id, device, clicks, impressions, sum_position from gsc_query_detail where site_id = ? and day = ? and type = 1")
  .all(site, newest);
// Warm: the site's rollup pages in the cache (as far as it holds them).
c.query("select count(*), sum(clicks) from gsc_day_query_totals where site_id = ?").get(site);
const walBytes = () => {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
};
const noRollup = { query: [], clicks: [], impressions: [], sumPosition: [] };
const wal0 = walBytes();
const cpu0 = process.cpuUsage();
let commitCpu = 0;
const commit = () => {
  const a = process.cpuUsage();
  c.run("commit");
  const b = process.cpuUsage(a);
  commitCpu += b.user + b.system;
};
if (args.group) c.run("begin immediate");
for (let i = 1; i <= days; i++) {
  const day = new DayRows();
  for (const r of source) day.push(r.page_id, r.query_id, r.device, r.clicks, r.impressions, r.sum_position);
  const k = day.keyed();
  if (!args.group) c.run("begin immediate");
  writeDayRows(orm, site, newest + i, 1, k, args["no-rollup"] ? noRollup : k.rollup);
  if (!args.group) commit();
}
if (args.group) commit();
const cpu = process.cpuUsage(cpu0);
const rows = source.length * days;
const per = (us: number) => (us / rows).toFixed(2);
console.log(
  `site ${site}: ${days} days × ${source.length} rows after day ${newest}, ${args.group ? "one transaction" : "a transaction a day"}, ` +
    `${args["no-rollup"] ? "detail only" : "detail + rollup"}, cache ${-cacheSize} KiB: CPU ${per(cpu.user + cpu.system)} µs/row ` +
    `(user ${per(cpu.user)}, sys ${per(cpu.system)}; COMMITs ${per(commitCpu)}), WAL ${Math.round((walBytes() - wal0) / rows)} B/row`,
);
c.close();
