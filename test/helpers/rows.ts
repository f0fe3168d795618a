import { insertInspection } from "../../src/inspection/queries.ts";
import { and, eq, sql } from "drizzle-orm";
import { searchTypeCodes } from "../../src/db/enums.ts";
import type { Db } from "../../src/db/index.ts";
import type { SearchTypeCode } from "../../src/db/enums.ts";
import { dayNumber, deviceCode, sumPosition, typeCode } from "../../src/sync/grains.ts";
import { deleteRowsById, rebuildDayQueryTotals, upsertRows } from "../../src/sync/data.ts";
import { dayDate } from "../../src/sync/grains.ts";
import { moveDayPageWeek, refreshDayRollups } from "../../src/sync/rollups.ts";
import type { SearchType, SourceRow } from "../../src/sync/source.ts";

// Synced rows written through the same write path as the daily sync (src/sync/data.ts), on either engine:
// the compact query detail (gsc_query_detail and its dictionaries, readable through the gsc_performance_data
// view) and the day × query rollup, rebuilt as the sync does once a day is stored, with the report rollups
// (src/sync/rollups.ts).

/** Stores rows of one site, day and search type (insert or update on the row key); returns their key ids. */
export async function storeRows(db: Db, siteId: number, day: string, type: SearchType, rows: SourceRow[]): Promise<string[]> {
  if (rows.length === 0) return [];
  return db.tx(async (tx) => {
    const ids = await upsertRows(tx, siteId, day, type, rows);
    await rebuildDayQueryTotals(tx, siteId, day, type);
    await refreshDayRollups(tx, siteId, dayNumber(day), typeCode(type));
    return ids;
  });
}

/** A detail row as the old gsc_performance_data held it: unset numbers are 0, unset device MOBILE, unset type web. */
export type OldRow = { site_id: number; date: string; page: string; query: string; search_type?: string; device?: string } & Partial<
  Pick<SourceRow, "clicks" | "impressions" | "ctr" | "position">
>;

/** Stores old-shaped rows of any sites, days and types through storeRows (grouped per site, day and type). */
export async function storeOldRows(db: Db, rows: OldRow[]): Promise<void> {
  const groups = new Map<string, OldRow[]>();
  for (const r of rows) {
    const k = `${r.site_id}|${r.date}|${r.search_type ?? "web"}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, group] of groups) {
    const [site, day, type] = k.split("|");
    await storeRows(
      db,
      Number(site),
      day!,
      type as SearchType,
      group.map((r) => ({
        page: r.page,
        query: r.query,
        device: r.device ?? "MOBILE",
        clicks: r.clicks ?? 0,
        impressions: r.impressions ?? 0,
        ctr: r.ctr ?? 0,
        position: r.position ?? 0,
      })),
    );
  }
}

/** Deletes rows by key id (as storeRows returned them); returns how many. The rollup of their days is rebuilt. */
export async function deleteRows(db: Db, ids: string[]): Promise<number> {
  return db.tx(async (tx) => {
    const n = await deleteRowsById(tx, ids);
    const days = new Set(ids.map((id) => id.split("|").slice(0, 3).join("|")));
    for (const d of days) {
      const [site, day, type] = d.split("|").map(Number);
      await rebuildDayQueryTotals(tx, site!, dayDate(day!), searchTypeCodes[type! - 1]! as SearchType);
      await refreshDayRollups(tx, site!, day!, type!);
    }
    return n;
  });
}

/** Records a day as synced (gsc_synced_days), as the daily sync does for a final day. */
export async function markSynced(
  db: Db,
  siteId: number,
  day: string,
  type: SearchType,
  rowCount: number,
  at = new Date().toISOString(),
): Promise<void> {
  const d = db.t.gscSyncedDays;
  await db.tx(async (tx) => {
    await tx.delete(d).where(and(eq(d.site_id, siteId), eq(d.date, day), eq(d.search_type, type)));
    await tx.insert(d).values({ site_id: siteId, date: day, search_type: type, row_count: rowCount, synced_at: at });
  });
}

/** Creates a site directly; returns its id. */
export async function addSite(db: Db, domain: string, name = domain): Promise<number> {
  const s = db.t.sites;
  return db.tx(async (tx) => Number((await tx.insert(s).values({ domain, name }).returning({ id: s.id }))[0]!.id));
}

/** Stores hourly rows (hourly_rankings) directly: `date` and `hour` as given, `hour_timestamp` as stored. */
export async function storeHourlyRows(
  db: Db,
  siteId: number,
  rows: {
    date: string;
    hour: number;
    hour_timestamp: string;
    query: string;
    page: string;
    device: string;
    clicks: number;
    impressions: number;
    ctr?: number;
    position?: number;
  }[],
): Promise<void> {
  const h = db.t.hourlyRankings;
  await db.tx(async (tx) => {
    await tx.insert(h).values(rows.map((r) => ({ site_id: siteId, ctr: 0, position: 0, ...r })));
  });
}

// Search Console's grains (docs/design/grains.md), seeded directly so a test states Google's totals
// explicitly: what Search Console answers without the query dimension (property totals, page totals),
// which counts the anonymized queries the detail leaves out.

/** One row of Google's totals: position as Google sends it (impression-weighted); country '' and device '' when not given. */
export type TotalsRow = { country?: string; device?: string; clicks: number; impressions: number; position: number };

/** Replaces a site's property totals of one day and type (gsc_property_totals); marks the day complete. */
export async function storePropertyTotals(
  db: Db,
  siteId: number,
  day: string,
  type: SearchTypeCode,
  rows: TotalsRow[],
  completeness: { anonymizedShare?: number | null; derived?: boolean } = {},
): Promise<void> {
  const p = db.t.gscPropertyTotals;
  const d = dayNumber(day);
  const t = typeCode(type);
  await db.tx(async (tx) => {
    await tx.delete(p).where(and(eq(p.site_id, siteId), eq(p.day, d), eq(p.type, t)));
    if (rows.length) {
      await tx.insert(p).values(
        rows.map((r) => ({
          site_id: siteId,
          day: d,
          type: t,
          country: r.country ?? "",
          device: deviceCode(r.device),
          clicks: r.clicks,
          impressions: r.impressions,
          sum_position: sumPosition(r.position, r.impressions),
        })),
      );
    }
  });
  await storeCompleteness(db, siteId, day, type, {
    property_rows: rows.length,
    anonymized_share: completeness.anonymizedShare ?? null,
    derived: completeness.derived ?? false,
  });
}

/** Replaces a site's page totals of one day and type (gsc_page_totals), adding the pages to the dictionary. */
export async function storePageTotals(
  db: Db,
  siteId: number,
  day: string,
  type: SearchTypeCode,
  rows: (TotalsRow & { page: string })[],
): Promise<void> {
  const pt = db.t.gscPageTotals;
  const pages = db.t.gscPages;
  const d = dayNumber(day);
  const t = typeCode(type);
  await db.tx(async (tx) => {
    // The weekly page rollup follows, as replaceDayGrains keeps it.
    await moveDayPageWeek(tx, siteId, d, t, -1);
    await tx.delete(pt).where(and(eq(pt.site_id, siteId), eq(pt.day, d), eq(pt.type, t)));
    for (const r of rows) {
      await tx.insert(pages).values({ site_id: siteId, page: r.page }).onConflictDoNothing();
      const [row] = await tx
        .select({ id: pages.id })
        .from(pages)
        .where(and(eq(pages.site_id, siteId), eq(pages.page, r.page)));
      await tx.insert(pt).values({
        site_id: siteId,
        day: d,
        type: t,
        page_id: Number(row!.id),
        country: r.country ?? "",
        device: deviceCode(r.device),
        clicks: r.clicks,
        impressions: r.impressions,
        sum_position: sumPosition(r.position, r.impressions),
      });
    }
    await moveDayPageWeek(tx, siteId, d, t, 1);
  });
  await storeCompleteness(db, siteId, day, type, { page_rows: rows.length });
}

/** Stores search appearance totals of one day and type (gsc_appearance_totals). */
export async function storeAppearanceTotals(
  db: Db,
  siteId: number,
  day: string,
  type: SearchTypeCode,
  rows: { appearance: string; clicks: number; impressions: number; position: number }[],
): Promise<void> {
  const a = db.t.gscAppearanceTotals;
  await db.tx(async (tx) => {
    await tx.insert(a).values(
      rows.map((r) => ({
        site_id: siteId,
        day: dayNumber(day),
        type: typeCode(type),
        appearance: r.appearance,
        clicks: r.clicks,
        impressions: r.impressions,
        sum_position: sumPosition(r.position, r.impressions),
      })),
    );
  });
}

/** Inserts or updates the completeness row of a site, day and type with the given fields. */
export async function storeCompleteness(
  db: Db,
  siteId: number,
  day: string,
  type: SearchTypeCode,
  fields: Partial<Omit<typeof db.t.gscDayCompleteness.$inferInsert, "site_id" | "day" | "type">>,
): Promise<void> {
  const c = db.t.gscDayCompleteness;
  await db.tx(async (tx) => {
    await tx
      .insert(c)
      .values({ site_id: siteId, day: dayNumber(day), type: typeCode(type), ...fields })
      .onConflictDoUpdate({
        target: [c.site_id, c.day, c.type],
        set: Object.keys(fields).length ? fields : { data_state: sql`excluded.data_state` },
      });
  });
}

/**
 * Google's totals for a day of a property without anonymized queries: property and page totals equal
 * to the sums of the detail rows given (also stored), anonymized share 0. For tests about the detail
 * whose totals should simply agree with it.
 */
export async function storeDayWithTotals(db: Db, siteId: number, day: string, type: SearchTypeCode, rows: SourceRow[]): Promise<void> {
  if (type === "web" || type === "image" || type === "video" || type === "news") await storeRows(db, siteId, day, type, rows);
  const sum = (list: SourceRow[]) => {
    const clicks = list.reduce((s, r) => s + (r.clicks ?? 0), 0);
    const impressions = list.reduce((s, r) => s + (r.impressions ?? 0), 0);
    const weighted = list.reduce((s, r) => s + (r.position ?? 0) * (r.impressions ?? 0), 0);
    return { clicks, impressions, position: impressions ? weighted / impressions : 0 };
  };
  const group = <K extends string>(key: (r: SourceRow) => K) => {
    const m = new Map<K, SourceRow[]>();
    for (const r of rows) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
    return m;
  };
  await storePropertyTotals(
    db,
    siteId,
    day,
    type,
    [...group((r) => r.device).entries()].map(([device, list]) => ({ device, ...sum(list) })),
    { anonymizedShare: rows.some((r) => (r.clicks ?? 0) > 0) ? 0 : null },
  );
  await storePageTotals(
    db,
    siteId,
    day,
    type,
    [...group((r) => `${r.page}\u0000${r.device}`).values()].map((list) => ({
      page: list[0]!.page,
      device: list[0]!.device,
      ...sum(list),
    })),
  );
}

/** Stores one URL inspection result of a page (as a url_inspection task would), inspected at `at` (ISO time). */
export async function storeInspection(
  db: Db,
  siteId: number,
  url: string,
  r: { verdict: string; coverageState: string; googleCanonical?: string; userCanonical?: string },
  at = new Date().toISOString(),
): Promise<void> {
  await db.tx(async (tx) => {
    await insertInspection(
      tx,
      db.t,
      siteId,
      url,
      {
        indexStatusResult: {
          verdict: r.verdict,
          coverageState: r.coverageState,
          googleCanonical: r.googleCanonical ?? url,
          userCanonical: r.userCanonical ?? url,
          sitemap: [],
          referringUrls: [],
        },
      } as never,
      "request",
      at,
    );
  });
}
