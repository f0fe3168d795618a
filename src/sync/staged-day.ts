import { sql, type SQL } from "drizzle-orm";
import type { Db, Orm, Q } from "../db/index.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { sqliteOrm } from "../db/sql.ts";
import { rowTextIds } from "./data.ts";
import { deviceCode, sumPosition } from "./grains.ts";
import type { SourceRow } from "./source.ts";
import { type KeyedColumns, keyRows } from "./keyed-rows.ts";
import type { KnownTextIds } from "./text-ids.ts";
import { giveWay } from "./give-way.ts";

// A day × search type whose query detail is too big for one transaction (more than SYNC_ATOMIC_DAY_ROWS
// rows, up to Search Console's 50,000) is staged, then switched (issue 17, docs/sync.md):
//   1. startStaging: the task's leftovers (an earlier attempt killed mid-day) and the rows of tasks no
//      longer pending or running are cleared;
//   2. stageRows, one short write per batch: the rows go into gsc_staged_detail under the task's id (the
//      page and query dictionaries gain their new texts; readers never look at the staging tables);
//   3. stageQueryTotals: the staged day's rollup per query, built in SQL (touches the staging alone);
//   4. switchStagedDay, inside the one transaction that also replaces the day's totals grains and marks it:
//      the detail and rollup rows gone from the new day are deleted, new and changed rows written, equal
//      ones left alone. Readers see the old day or the new one; a crash before it leaves the old day whole;
//   5. clearStaged: the task's staging rows deleted (also done by the next startStaging after a crash).
// A task that ends without switching (cancelled or failed mid-day, by its worker, a reaper or cancelJob) has
// its staging rows deleted in the transaction that ends it (src/sync/lease.ts, cancelJob); any other
// leftovers (a task deleted with its site) at the next worker start (sweepEndedStaging) or staged day.
// A task stages one day × type at a time, so its staging rows are keyed by its id alone.

/** Runs one statement in a write transaction on either engine. */
async function run(tx: Q, query: SQL): Promise<void> {
  const orm = sqliteOrm(tx);
  if (orm) orm.run(query);
  else await tx.execute(query);
}

/** Staged rows per multi-row statement (7 parameters each). */
const STAGE_ROWS_PER_STATEMENT = 64;

const stageStatements = perConnection((orm) => {
  const c = (orm as Orm & { $client: import("bun:sqlite").Database }).$client;
  // A key given again in a later batch keeps the last row, as upsertRows does.
  const stage = (n: number) =>
    c.prepare<unknown, number[]>(
      `insert into gsc_staged_detail (task_id, page_id, query_id, device, clicks, impressions, sum_position)
       values ${Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}
       on conflict (task_id, page_id, query_id, device)
       do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position`,
    );
  return { stage: stage(1), stageMany: stage(STAGE_ROWS_PER_STATEMENT) };
});

/**
 * Inside a write, before a task stages a day: deletes its own staging rows (left by an attempt that died
 * mid-day) and those of tasks that are no longer pending or running (cancelled, failed, deleted).
 */
export async function startStaging(tx: Q, taskId: number): Promise<void> {
  const gone = sql`(task_id = ${taskId} or ${ended})`;
  await run(tx, sql`delete from gsc_staged_detail where ${gone}`);
  await run(tx, sql`delete from gsc_staged_query_totals where ${gone}`);
}

/** Staging rows of tasks that can no longer switch them (not pending or running: ended, or deleted). */
const ended = sql`task_id not in (select id from sync_tasks where status in ('pending', 'running'))`;

/**
 * Deletes the staging rows of tasks that are no longer pending or running (a day cancelled or failed
 * mid-staging; a killed worker's task failed by the reaper). One read when there are none; a write only
 * when some staging rows exist.
 */
export async function sweepEndedStaging(db: Db): Promise<void> {
  const any = sql`select 1 as x from gsc_staged_detail union all select 1 from gsc_staged_query_totals limit 1`;
  const orm = db.engine === "sqlite" ? sqliteOrm(db.q) : null;
  const found = orm ? orm.all(any).length > 0 : (await db.q.execute(any)).rows.length > 0;
  if (!found) return;
  await db.tx(async (tx) => {
    await run(tx, sql`delete from gsc_staged_detail where ${ended}`);
    await run(tx, sql`delete from gsc_staged_query_totals where ${ended}`);
  }, "sweep of ended tasks' staging rows");
}

/** Inside a write: stages detail rows of the task's current day × type (their texts get dictionary ids; `known`: as rowTextIds). */
export async function stageRows(tx: Q, taskId: number, siteId: number, rows: SourceRow[], known?: KnownTextIds): Promise<void> {
  const { pages, queries } = await rowTextIds(tx, siteId, rows, known);
  const orm = sqliteOrm(tx);
  if (orm) {
    stageKeyed(orm, taskId, keyRows(rows, pages, queries), 0, rows.length);
    return;
  }
  // PostgreSQL: one statement of column arrays; the last row of a repeated key wins (one statement cannot
  // update the same row twice).
  const last = new Map<string, number>();
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    last.set(`${pages.get(r.page)}|${queries.get(r.query)}|${deviceCode(r.device)}`, i);
  }
  const cols: number[][] = [[], [], [], [], [], []];
  for (const i of last.values()) {
    const r = rows[i]!;
    cols[0]!.push(pages.get(r.page)!);
    cols[1]!.push(queries.get(r.query)!);
    cols[2]!.push(deviceCode(r.device));
    cols[3]!.push(r.clicks);
    cols[4]!.push(r.impressions);
    cols[5]!.push(sumPosition(r.position, r.impressions));
  }
  const [p, q, dv, c, im, sp] = cols.map((col) => `{${col.join(",")}}`);
  await tx.execute(sql`insert into gsc_staged_detail (task_id, page_id, query_id, device, clicks, impressions, sum_position)
    select ${taskId}::int, u.* from unnest(${p}::int[], ${q}::int[], ${dv}::int[], ${c}::int[], ${im}::int[], ${sp}::bigint[]) as u
    on conflict (task_id, page_id, query_id, device)
    do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position`);
}

/** Inside a write, SQLite: stages rows from..to of a day's keyed rows (DayRows.keyed(): ids, key order, one per key). */
export function stageDayRows(tx: Q, taskId: number, k: KeyedColumns, from: number, to: number): void {
  stageKeyed(sqliteOrm(tx)!, taskId, k, from, Math.min(to, k.n));
}

/**
 * SQLite: rows from..to of keyed rows into the staging, in key order, 64 rows a statement: the staging B-tree is
 * written like an append and with fewer calls (measured 1.1 -> 0.4 µs a row for the inserts of 5,000-row batches).
 */
function stageKeyed(orm: Orm, taskId: number, k: KeyedColumns, from: number, to: number): void {
  const { stage, stageMany } = stageStatements(orm);
  const end = Math.min(to, k.n);
  const values = new Array<number>(STAGE_ROWS_PER_STATEMENT * 7);
  let i = from;
  for (; i + STAGE_ROWS_PER_STATEMENT <= end; i += STAGE_ROWS_PER_STATEMENT) {
    for (let j = 0, o = 0; j < STAGE_ROWS_PER_STATEMENT; j++, o += 7) {
      values[o] = taskId;
      values[o + 1] = k.page[i + j]!;
      values[o + 2] = k.query[i + j]!;
      values[o + 3] = k.device[i + j]!;
      values[o + 4] = k.clicks[i + j]!;
      values[o + 5] = k.impressions[i + j]!;
      values[o + 6] = k.sumPosition[i + j]!;
    }
    stageMany.run(...values);
    giveWay();
  }
  for (; i < end; i++) stage.run(taskId, k.page[i]!, k.query[i]!, k.device[i]!, k.clicks[i]!, k.impressions[i]!, k.sumPosition[i]!);
}

/** Inside a write, once every row of the day is staged: builds the staged day's rollup per query. */
export async function stageQueryTotals(tx: Q, taskId: number): Promise<void> {
  await run(tx, sql`delete from gsc_staged_query_totals where task_id = ${taskId}`);
  await run(
    tx,
    sql`insert into gsc_staged_query_totals (task_id, query_id, clicks, impressions, sum_position)
      select task_id, query_id, sum(clicks), sum(impressions), sum(sum_position)
        from gsc_staged_detail where task_id = ${taskId} group by task_id, query_id`,
  );
}

/**
 * Inside the day's switching transaction: makes the task's staged detail and rollup the stored day
 * (site, day number, type code): rows not in the new day deleted, new and changed ones written, equal
 * ones untouched (a day fetched again with few changes writes little). Returns the day's detail rows.
 */
export async function switchStagedDay(tx: Q, taskId: number, siteId: number, day: number, type: number): Promise<number> {
  // The day's own key (the outer table's columns: the staging tables have none of these names).
  const ofDay = sql`site_id = ${siteId} and day = ${day} and type = ${type}`;
  // Integer parameters typed on both engines (PostgreSQL cannot infer a SELECT list's parameter types).
  const [s, d, t] = [siteId, day, type].map((v) => sql`cast(${v} as integer)`);
  // Rollup rows of queries gone from the day: the day's key range (SQLite's key, PostgreSQL's (site_id, day, type,
  // query_id) index).
  await run(
    tx,
    sql`delete from gsc_day_query_totals where ${ofDay} and not exists (
      select 1 from gsc_staged_query_totals s where s.task_id = ${taskId} and s.query_id = gsc_day_query_totals.query_id)`,
  );
  await run(
    tx,
    sql`delete from gsc_query_detail where ${ofDay} and not exists (
      select 1 from gsc_staged_detail s where s.task_id = ${taskId} and s.page_id = gsc_query_detail.page_id
         and s.query_id = gsc_query_detail.query_id and s.device = gsc_query_detail.device)`,
  );
  await run(
    tx,
    sql`insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
      select ${s}, ${d}, ${t}, page_id, query_id, device, clicks, impressions, sum_position
        from gsc_staged_detail where task_id = ${taskId}
      on conflict (site_id, day, type, page_id, query_id, device)
      do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
      where gsc_query_detail.clicks <> excluded.clicks or gsc_query_detail.impressions <> excluded.impressions
         or gsc_query_detail.sum_position <> excluded.sum_position`,
  );
  await run(
    tx,
    sql`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
      select ${s}, ${d}, ${t}, query_id, clicks, impressions, sum_position
        from gsc_staged_query_totals where task_id = ${taskId}
      on conflict (site_id, query_id, day, type)
      do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
      where gsc_day_query_totals.clicks <> excluded.clicks or gsc_day_query_totals.impressions <> excluded.impressions
         or gsc_day_query_totals.sum_position <> excluded.sum_position`,
  );
  return countStaged(tx, taskId);
}

/** Inside a write: the task's staged detail rows. */
async function countStaged(tx: Q, taskId: number): Promise<number> {
  const query = sql`select count(*) as n from gsc_staged_detail where task_id = ${taskId}`;
  const orm = sqliteOrm(tx);
  if (orm) return Number(orm.all<{ n: number }>(query)[0]!.n);
  return Number((await tx.execute<{ n: string }>(query)).rows[0]!.n);
}

/** Inside a write, after the switch: deletes the task's staging rows. */
export async function clearStaged(tx: Q, taskId: number): Promise<void> {
  await run(tx, sql`delete from gsc_staged_detail where task_id = ${taskId}`);
  await run(tx, sql`delete from gsc_staged_query_totals where task_id = ${taskId}`);
}
