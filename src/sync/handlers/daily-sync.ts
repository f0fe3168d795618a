import type { Orm } from "../../db/index.ts";
import type { Site } from "../../db/model.ts";
import { rowsIngested } from "../../metrics/registry.ts";
import { indexAllPendingQueries } from "../../search/queries.ts";
import { checkpointOwnWrites, findSyncedDays, markDaySynced, replaceDayDetail, rowTextIds, writeDayRows } from "../data.ts";
import { isFinalDay, isFreshDay } from "../dates.ts";
import { findCompleteness, replaceDayGrains, upsertPageIds, type DayGrains } from "../grain-writes.ts";
import { anonymizedShare, dailyRowCap, dayNumber, deviceCode, sumPosition, typeCode } from "../grains.ts";
import { searchTypes, typeRules, type SearchType } from "../search-types.ts";
import { refreshDayRollups } from "../rollups.ts";
import { DayRows, type Rollup } from "../keyed-rows.ts";
import { clearStaged, stageDayRows, stageQueryTotals, stageRows, startStaging, switchStagedDay } from "../staged-day.ts";
import type { SourceRow, TotalsRow, TotalsRows } from "../source.ts";
import { KnownTextIds, type TextIds } from "../text-ids.ts";
import { runDays, type SyncMode } from "./days.ts";
import { giveWay } from "../give-way.ts";
import type { TaskContext, TaskHandler } from "./index.ts";

/**
 * daily_sync: for each day of the task's range and each of the six search types, fetches Search
 * Console's property totals (country × device), page totals (page × country × device), search
 * appearance totals and the query detail (page, query, device; not for discover and googleNews), as
 * Google's per-type rules allow, and stores them at their grains (docs/design/grains.md) with the
 * day's completeness. `skip` leaves days already synced (marker and fetched completeness) alone; `overwrite`
 * fetches them again and replaces their rows. A day that fails is counted and the others go on; the task
 * then fails (and is retried) with the last error. Progress is recorded after every day.
 */
export const dailySync: TaskHandler = {
  type: "daily_sync",
  async run(ctx) {
    const { task } = ctx;
    // Markers this job wrote in an earlier attempt (it was re-queued after a crash): done, not redone.
    // started_at is set by the first claim and kept across attempts.
    const firstStart = task.started_at!;
    let markers: Awaited<ReturnType<typeof findSyncedDays>> | null = null;
    let complete: Awaited<ReturnType<typeof findCompleteness>> | null = null;
    /** What the task does with a day × type: counts its earlier attempt's rows, skips it, or fetches and stores it. */
    const planOf = (mode: SyncMode, day: string, type: SearchType): "done" | "skip" | "sync" => {
      const marker = markers!.get(`${day}|${type}`);
      if (marker && marker.synced_at >= firstStart) return "done";
      // A day marked before the grains were fetched (no completeness row, or totals derived from the
      // old query rows by the migration) is fetched again once, for Search Console's true totals.
      if (marker && mode === "skip" && complete!.get(`${day}|${typeCode(type)}`)?.derived === false) return "skip";
      return "sync";
    };
    const ahead = fetchesAhead(ctx);
    try {
      await runDays(ctx, async ({ site, mode, day, days, later }) => {
        markers ??= await findSyncedDays(ctx.db, site.id, days[0]!, days[days.length - 1]!);
        complete ??= await findCompleteness(ctx.db, site.id, days[0]!, days[days.length - 1]!);
        // The day × types to store from here on, in order: the next ctx.fetchAhead are fetched while this one is written.
        const upcoming = function* () {
          for (const d of [day, ...later]) for (const t of searchTypes) if (planOf(mode, d, t) === "sync") yield { day: d, type: t };
        };
        let skippedTypes = 0;
        let records = 0;
        for (const type of searchTypes) {
          const plan = planOf(mode, day, type);
          if (plan === "done") records += markers.get(`${day}|${type}`)!.row_count;
          else if (plan === "skip") skippedTypes++;
          else {
            const fetched = ahead.take(site, day, type, upcoming());
            records += await syncDay(ctx, site, day, type, fetched);
          }
        }
        return { skipped: skippedTypes === searchTypes.length, records };
      });
    } finally {
      // Fetches started for days the task did not reach (it failed or stopped): not waited for.
      ahead.stop();
    }
  },
};

/**
 * The day × type fetches of one task run: take() hands out a day × type's fetch (started now if it was not yet) and
 * starts the next ctx.fetchAhead of `upcoming` (the day × types the task stores after it, in order), so Search
 * Console's answers for them arrive while this one is written. Each fetched day × type is held in memory until taken.
 */
function fetchesAhead(ctx: TaskContext) {
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  const started = new Map<string, Promise<FetchedDay>>();
  // Taken once: a day × type is never fetched ahead again after it was taken (stored, or failed).
  const taken = new Set<string>();
  const start = (site: Site, day: string, type: SearchType) => {
    const key = `${day}|${type}`;
    let f = started.get(key);
    if (!f && !taken.has(key)) {
      f = fetchDay(ctx, site, day, type, signal);
      // Its error is thrown where it is taken (or never, if the task stops first).
      f.catch(() => {});
      started.set(key, f);
    }
    return f;
  };
  return {
    take(site: Site, day: string, type: SearchType, upcoming: Iterable<{ day: string; type: SearchType }>): Promise<FetchedDay> {
      const key = `${day}|${type}`;
      const f = start(site, day, type) ?? fetchDay(ctx, site, day, type, signal);
      started.delete(key);
      taken.add(key);
      // The next ones once this one's fetch went through (a refused property or a failing Search Console is asked once, not ahead).
      f.then(
        () => {
          let n = 0;
          for (const u of upcoming) {
            if (signal.aborted || n >= ctx.fetchAhead) break;
            if (taken.has(`${u.day}|${u.type}`)) continue;
            n++;
            start(site, u.day, u.type);
          }
        },
        () => {},
      );
      return f;
    },
    stop() {
      stop.abort(new Error("the task ended before this day was stored"));
      started.clear();
    },
  };
}

/** One day × type as fetched from the source: its totals grains and the detail's pages. */
export type FetchedDay = {
  property: TotalsRows;
  pageRows: TotalsRows;
  appearance: TotalsRows;
  /** The query detail's pages, in order, read in the background as they come (an error is thrown where it is read). */
  detail: AsyncIterable<SourceRow[]>;
};

/**
 * Fetches one day × type: the property totals first (none: the type has no data that day, and nothing more is
 * asked), then the page and appearance totals and the query detail's pages at once, as Google's per-type rules
 * allow. Recent days (isFreshDay) are asked with dataState `all` (fresh data included) at every grain.
 */
export async function fetchDay(ctx: TaskContext, site: Site, day: string, type: SearchType, signal: AbortSignal): Promise<FetchedDay> {
  const rules = typeRules(type);
  const fetch = { fresh: isFreshDay(day) };
  const totals = (grain: "property" | "page" | "appearance") => ctx.source.totals(site.domain, day, type, grain, signal, fetch);
  const property = await totals("property");
  const hasData = property.length > 0;
  const detail = readAhead(hasData && rules.query ? ctx.source.pages(site.domain, day, type, signal, fetch) : []);
  const [pageRows, appearance] = await Promise.all([
    hasData ? totals("page") : ([] as TotalsRows),
    hasData && rules.appearance ? totals("appearance") : ([] as TotalsRows),
  ]);
  return { property, pageRows, appearance, detail };
}

/** Reads `source` to its end in the background from now on; the result yields its items in order (each once). */
function readAhead<T>(source: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  const items: T[] = [];
  let done = false;
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  void (async () => {
    try {
      for await (const item of source) {
        items.push(item);
        notify();
      }
    } catch (error) {
      failure = { error };
    } finally {
      done = true;
      notify();
    }
  })();
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (items.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        if (items.length > 0) yield items.shift()!;
        else if (failure) throw (failure as { error: unknown }).error;
        else return;
      }
    },
  };
}

/**
 * Per database handle (a sync worker's): the dictionary ids of the last site's texts seen committed
 * (src/sync/text-ids.ts), kept from one task to the next: a backfill split into tasks names mostly the texts of the
 * tasks before. A worker runs one task at a time. Dictionary ids are never reused (AUTOINCREMENT, identity) and a
 * text's id never changes while its site exists. Freed once no task used them for `idleMs` (an idle worker's memory).
 */
const knownIds = new WeakMap<object, { ids: KnownTextIds; timer: ReturnType<typeof setTimeout> }>();

/** How long a worker keeps a site's text ids after a task last took them. */
const KNOWN_IDS_IDLE_MS = 60_000;

/** The KnownTextIds of a site for a database handle (a new one when its worker moved to another site, or had none for idleMs). */
export function knownIdsOf(db: object, siteId: number, idleMs = KNOWN_IDS_IDLE_MS): KnownTextIds {
  const held = knownIds.get(db);
  if (held) clearTimeout(held.timer);
  const ids = held?.ids.siteId === siteId ? held.ids : new KnownTextIds(siteId);
  const timer = setTimeout(() => knownIds.delete(db), idleMs);
  timer.unref();
  knownIds.set(db, { ids, timer });
  return ids;
}

/** Per task run: the columns' size for each search type's next day (its last day's rows and a sixteenth). */
const daySizes = new WeakMap<TaskContext, Map<SearchType, number>>();

/** The task's sizes of the last day buffered per search type. */
function daySizesOf(ctx: TaskContext): Map<SearchType, number> {
  let m = daySizes.get(ctx);
  if (!m) daySizes.set(ctx, (m = new Map()));
  return m;
}

/** Page URLs given ids (gsc_pages) per write. */
const PAGE_ID_BATCH = 2000;

/**
 * Stores one day and search type (`fetching`: its fetch, started ahead by the task, else here: fetchDay); returns
 * the detail rows stored. The detail's pages are taken as they arrive. A day whose detail has at most ctx.atomicDayRows rows (SYNC_ATOMIC_DAY_ROWS)
 * is switched in ONE transaction: its old detail deleted and the new inserted, the day × query rollup
 * rebuilt, the totals grains replaced, its completeness recorded and (if final: old enough by isFinalDay
 * and not reported incomplete by Google) the day marked synced; a reader, or a crash, sees the old day or
 * the new one. A bigger day's detail is staged under the task's id in short writes (src/sync/staged-day.ts)
 * and that same one transaction switches it in (only rows that differ are written): readers and crashes
 * still see the old day or the new one, and other writers never wait for the whole day.
 */
export async function syncDay(
  ctx: TaskContext,
  site: Site,
  day: string,
  type: SearchType,
  fetching: Promise<FetchedDay> = fetchDay(ctx, site, day, type, ctx.signal),
): Promise<number> {
  const rules = typeRules(type);
  const { property, pageRows, appearance, detail } = await fetching;
  // Final only when our clock says Search Console no longer revises it (isFinalDay) and Google does not
  // report the day as still being collected (metadata.firstIncompleteDate on or before it). Otherwise
  // provisional: stored, not marked synced, so every run fetches it again until Google calls it final.
  const final = isFinalDay(day) && !(property.firstIncompleteDate !== undefined && property.firstIncompleteDate <= day);
  const hasData = property.length > 0;

  // The detail is buffered while it fits in ctx.atomicDayRows: then the whole switch (detail, rollup,
  // totals, completeness, marker) is one transaction. A bigger day's detail is staged in short writes
  // (src/sync/staged-day.ts) and switched in by that same one transaction: atomic for readers either way.
  // SQLite buffers the day in typed columns, each page's texts given ids as it comes (a short write only for
  // new texts), so the switch holds the write lock only for the writing itself; PostgreSQL buffers the rows.
  const columns = ctx.db.engine === "sqlite";
  const sizes = daySizesOf(ctx);
  let dayRows: DayRows | null = columns ? new DayRows(sizes.get(type)) : null;
  // SQLite: rows not in dayRows yet, their texts to be given ids (at most a batch: a small day's get them in the
  // switch, as before, without a write of their own).
  let unresolved: SourceRow[] = [];
  let buffered: SourceRow[] | null = columns ? null : [];
  let detailRows = 0;
  let detailClicks = 0;
  const taskId = ctx.task.id;
  const known = knownIdsOf(ctx.db, site.id);
  const stage = async (rows: SourceRow[]) => {
    // ctx.batchSize changes with contention: read once per batch.
    for (let i = 0, batch: SourceRow[]; i < rows.length; i += batch.length) {
      batch = rows.slice(i, i + ctx.batchSize);
      known.discard();
      await ctx.write((tx) => stageRows(tx, taskId, site.id, batch, known));
      known.committed();
      rowsIngested.inc({ source: ctx.source.name }, batch.length);
    }
  };
  if (hasData && rules.query) {
    for await (const page of detail) {
      giveWay();
      detailRows += page.length;
      for (const r of page) detailClicks += r.clicks ?? 0;
      if (dayRows && dayRows.n + unresolved.length + page.length <= ctx.atomicDayRows) {
        unresolved.push(...page);
        if (unresolved.length > ctx.batchSize) {
          await addToDay(ctx, site.id, unresolved, known, dayRows);
          unresolved = [];
          // Before the next page is parsed: a page's rows into the day's columns is a few ms of a core.
          giveWay();
        }
        continue;
      }
      if (buffered && buffered.length + page.length <= ctx.atomicDayRows) {
        buffered.push(...page);
        continue;
      }
      if (buffered || dayRows) await ctx.write((tx) => startStaging(tx, taskId));
      if (buffered) await stage(buffered);
      if (dayRows) {
        await addToDay(ctx, site.id, unresolved, known, dayRows);
        unresolved = [];
        const k = dayRows.keyed();
        for (let i = 0, n = 0; i < k.n; i += n) {
          n = ctx.batchSize;
          await ctx.write((tx) => stageDayRows(tx, taskId, k, i, i + n));
        }
        rowsIngested.inc({ source: ctx.source.name }, dayRows.n);
      }
      buffered = null;
      dayRows = null;
      await stage(page);
    }
  }
  const atomic = buffered !== null || dayRows !== null;
  // The day's columns sorted and deduplicated before the switch takes the write lock (unless rows wait for ids).
  const early = dayRows && rules.query && unresolved.length === 0 ? dayRows.keyed() : null;
  if (dayRows) sizes.set(type, dayRows.n + unresolved.length + (dayRows.n >> 4));
  // The staged day's rollup per query, built before the switch (a write of the staging tables alone).
  if (!atomic) await ctx.write((tx) => stageQueryTotals(tx, taskId));

  const urls = [...new Set(pageRows.map((r) => r.page))];
  const pageIds = new Map<string, number>();
  for (let i = 0; i < urls.length; i += PAGE_ID_BATCH) {
    const ids = await ctx.write((tx) => upsertPageIds(tx, site.id, urls.slice(i, i + PAGE_ID_BATCH)));
    for (const [k, v] of ids) pageIds.set(k, v);
  }
  const propertyClicks = property.reduce((s, r) => s + r.clicks, 0);
  const grains: DayGrains = {
    siteId: site.id,
    day: dayNumber(day),
    type: typeCode(type),
    property: property.map((r) => ({ country: r.country, device: deviceCode(r.device), ...measures(r) })),
    page: pageRows.map((r) => ({ page_id: pageIds.get(r.page)!, country: r.country, device: deviceCode(r.device), ...measures(r) })),
    appearance: appearance.map((r) => ({ appearance: r.appearance, ...measures(r) })),
    completeness: {
      property_rows: property.length,
      page_rows: pageRows.length,
      detail_rows: detailRows,
      appearance_rows: appearance.length,
      page_truncated: pageRows.length >= dailyRowCap,
      detail_truncated: detailRows >= dailyRowCap,
      // Only where Google names queries; a day without clicks has no share.
      anonymized_share: rules.query ? anonymizedShare(detailClicks, propertyClicks) : null,
      data_state: final ? "final" : "provisional",
    },
  };
  // One transaction switches the day: its detail too when it fits (delete and insert: the old detail
  // goes, the new comes, with the totals). A provisional day is stored but not marked: its data may still
  // change, so the next run fetches it again.
  known.discard();
  const stored = await ctx.write(async (tx) => {
    let rows = 0;
    // The day's distinct queries when its whole detail is written from memory here (else counted from what is stored).
    let named: number | undefined;
    let sums: Rollup | undefined;
    if (!atomic) rows = await switchStagedDay(tx, taskId, site.id, dayNumber(day), typeCode(type));
    // The old detail and rollup replaced by the new rows and their sums (computed from the rows, not read back).
    else if (dayRows && rules.query) {
      let keyed = early;
      if (!keyed) {
        pushRows(dayRows, unresolved, await rowTextIds(tx, site.id, unresolved, known));
        keyed = dayRows.keyed();
      }
      rows = writeDayRows(tx, site.id, dayNumber(day), typeCode(type), keyed, keyed.rollup);
      named = keyed.rollup.query.length;
      sums = keyed.rollup;
    } else if (rules.query) rows = await replaceDayDetail(tx, site.id, day, type, buffered!, known);
    // Between the switch's parts (tens of ms of a core in all at 50,000 rows) a supervised sync worker gives way to
    // reads in flight (src/sync/give-way.ts; not to a request that may write: it waits for this transaction).
    giveWay();
    await replaceDayGrains(tx, grains);
    giveWay();
    // The report rollups of this day (src/sync/rollups.ts), from what is now stored.
    await refreshDayRollups(tx, site.id, dayNumber(day), typeCode(type), named, sums);
    giveWay();
    if (final) await markDaySynced(tx, site.id, day, type, rows);
    return rows;
  });
  known.committed();
  // The switch's pages copied into the file on the sync's CPUs, on a thread of its own: not waited for (src/sync/data.ts).
  void checkpointOwnWrites(ctx.db);
  if (atomic) rowsIngested.inc({ source: ctx.source.name }, buffered?.length ?? dayRows!.n);
  // Switched: the staging rows are no longer needed (left behind by a crash, startStaging clears them).
  else await ctx.write((tx) => clearStaged(tx, taskId));
  // SQLite: the day's new queries go into the FTS5 search index in a few batched writes, not one FTS
  // write per row. (PostgreSQL's trigram index on gsc_queries is kept by the server itself.)
  if (ctx.db.engine === "sqlite" && stored > 0) await indexAllPendingQueries((fn) => ctx.write((tx) => fn(tx as unknown as Orm)));
  return stored;
}

/**
 * SQLite: fetched rows into the day's columns with their dictionary ids: known ones from the task's cache, new
 * texts looked up or added first in short writes of ctx.batchSize rows (none once a backfill's texts are known).
 */
async function addToDay(ctx: TaskContext, siteId: number, page: SourceRow[], known: KnownTextIds, day: DayRows): Promise<void> {
  // Rows whose page and query ids are known go in at once; the others wait for their texts' ids. (Rows of one
  // key share their texts, so they stay in one group, in their order: the last of a key still wins.)
  const unknown = pushKnown(day, page, known);
  for (let i = 0, rows: SourceRow[]; i < unknown.length; i += rows.length) {
    rows = i === 0 && unknown.length <= ctx.batchSize ? unknown : unknown.slice(i, i + ctx.batchSize);
    known.discard();
    const ids = await ctx.write((tx) => rowTextIds(tx, siteId, rows, known));
    pushRows(day, rows, ids);
    // After the ids are used: keeping them may start the cache again (src/sync/text-ids.ts).
    known.committed();
  }
}

/** Rows between two giveWay calls in pushKnown: ~1 ms of a core. */
const PUSH_CHECK_ROWS = 2048;

/** Rows into the day's columns whose page and query ids the task knows; returns the others, in order. */
function pushKnown(day: DayRows, rows: SourceRow[], known: KnownTextIds): SourceRow[] {
  const unknown: SourceRow[] = [];
  for (let i = 0; i < rows.length; i++) {
    // Two look-ups a row (~0.5 µs): a supervised sync worker gives way to requests every PUSH_CHECK_ROWS rows.
    if (i % PUSH_CHECK_ROWS === PUSH_CHECK_ROWS - 1) giveWay();
    const r = rows[i]!;
    const page = known.pages.get(r.page);
    const query = page === undefined ? undefined : known.queries.get(r.query);
    if (query === undefined) unknown.push(r);
    else day.push(page!, query, deviceCode(r.device), r.clicks, r.impressions, sumPosition(r.position, r.impressions));
  }
  return unknown;
}

type RowIds = { pages: TextIds; queries: TextIds };

/** Rows into the day's columns, with their texts' ids. */
function pushRows(day: DayRows, rows: SourceRow[], ids: RowIds): void {
  for (const r of rows) {
    day.push(
      ids.pages.get(r.page)!,
      ids.queries.get(r.query)!,
      deviceCode(r.device),
      r.clicks,
      r.impressions,
      sumPosition(r.position, r.impressions),
    );
  }
}

/** A totals row's measures as stored: integers, position scaled into sum_position. */
function measures(r: TotalsRow) {
  return { clicks: r.clicks, impressions: r.impressions, sum_position: sumPosition(r.position, r.impressions) };
}
