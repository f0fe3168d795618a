// `bun bench/ingest-big-file.ts --db <a copy of a big file> [--days 4] [--group] [--no-rollup] [--cache KiB] [--autocheckpoint N]`: what
// writing new days costs once a property has history. Takes the biggest site's newest web day (its detail rows)
// and writes it again as the next `--days` days through writeDayRows (the sync's switch from memory: the detail and
// the day × query rollup), one day per transaction (`--group`: all of them in one), on one connection of the
// file (`--cache`: its cache_size in KiB, default SQLITE_CACHE_SIZE; the site's rollup is read once first, so the
// cache starts warm as a long-running sync worker's). Prints CPU µs per row (process.cpuUsage: the machine's load
// counts less than in wall time), the COMMITs' share and WAL bytes per row, then what copying that WAL into the file
// costs another connection (a PASSIVE checkpoint, as the service's checkpointer runs it: CPU per row and per page);
// `--autocheckpoint N`: the writer's own auto-checkpoint at N pages, as a worker with SQLITE_WAL_AUTOCHECKPOINT N
// (its COMMITs then include the copying). It WRITES into the file: use a copy
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
    autocheckpoint: { type: "string", default: "0" },
    // A PASSIVE checkpoint after each COMMIT, on the writer's connection ("own") or on another of this process ("other").
    "checkpoint-each": { type: "string" },
    // PRAGMA journal_size_limit of the writer (bytes; -1: the WAL is never truncated after a reset).
    "journal-limit": { type: "string" },
  },
});
if (!args.db) throw new Error("--db <a copy of a big file> is required");
const path = args.db;
const days = Number(args.days);
const cacheSize = args.cache ? -Number(args.cache) : defaultPragmas.cacheSize;
// No auto-checkpoint (by default): the WAL's growth is the bytes the COMMITs wrote (the service's checkpointer copies them later).
const journalSizeLimit = args["journal-limit"] === undefined ? defaultPragmas.journalSizeLimit : Number(args["journal-limit"]);
const c = openConnection(path, { ...defaultPragmas, walAutocheckpoint: Number(args.autocheckpoint), cacheSize, journalSizeLimit });
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
const each = args["checkpoint-each"];
const eachConn = each === "other" ? openConnection(path, { ...defaultPragmas, walAutocheckpoint: 0 }) : each === "own" ? c : null;
const eachStmt = eachConn?.prepare("PRAGMA wal_checkpoint(PASSIVE)");
let eachCpu = 0;
const noRollup = { query: [], clicks: [], impressions: [], sumPosition: [] };
const wal0 = walBytes();
const cpu0 = process.cpuUsage();
let commitCpu = 0;
const commit = () => {
  const a = process.cpuUsage();
  c.run("commit");
  const b = process.cpuUsage(a);
  commitCpu += b.user + b.system;
  if (eachStmt) {
    const e = process.cpuUsage();
    eachStmt.get();
    const f = process.cpuUsage(e);
    eachCpu += f.user + f.system;
  }
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
    `${args["no-rollup"] ? "detail only" : "detail + rollup"}, cache ${-cacheSize} KiB, journal_size_limit ${journalSizeLimit}, auto-checkpoint ${args.autocheckpoint}${each ? `, PASSIVE after each COMMIT on the ${each} connection (${per(eachCpu)} µs/row of the CPU)` : ""}: CPU ${per(cpu.user + cpu.system)} µs/row ` +
    `(user ${per(cpu.user)}, sys ${per(cpu.system)}; COMMITs ${per(commitCpu)}), WAL ${Math.round((walBytes() - wal0) / rows)} B/row`,
);
// What is left in the WAL copied into the file by another connection, as the checkpointer does (before this one's close would).
const frames = (walBytes() - 32) / (4096 + 24);
const other = openConnection(path, { ...defaultPragmas, walAutocheckpoint: 0 });
const ck0 = process.cpuUsage();
const result = other.query<{ log: number; checkpointed: number }, []>("PRAGMA wal_checkpoint(PASSIVE)").get()!;
const ck = process.cpuUsage(ck0);
console.log(
  `  PASSIVE checkpoint of the ${Math.round(frames)} frames left (${result.checkpointed} copied): CPU ${per(ck.user + ck.system)} µs/row ` +
    `(user ${per(ck.user)}, sys ${per(ck.system)}), ${((ck.user + ck.system) / Math.max(1, result.checkpointed)).toFixed(2)} µs a frame`,
);
other.close();
c.close();
