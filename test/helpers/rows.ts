import { and, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../../src/db/index.ts";
import type { SearchType, SourceRow } from "../../src/sync/source.ts";

// Synced rows written through the engine-neutral API, on either engine: the same upsert on the row key
// as the daily sync's (src/sync/data.ts), for tests that need data in gsc_performance_data.

/** Stores rows of one site, day and search type (insert or update on the row key); returns their ids. */
export async function storeRows(db: Db, siteId: number, day: string, type: SearchType, rows: SourceRow[]): Promise<number[]> {
  if (rows.length === 0) return [];
  const g = db.t.gscPerformanceData;
  return db.tx(async (tx) => {
    const ids: number[] = [];
    // One row per statement: a batch holding the same key twice would be refused by PostgreSQL's ON CONFLICT.
    for (const r of rows) {
      const [row] = await tx
        .insert(g)
        .values({ site_id: siteId, date: day, search_type: type, ...r })
        .onConflictDoUpdate({
          target: [g.site_id, g.date, g.page, g.query, g.device, g.search_type],
          set: {
            clicks: sql`excluded.clicks`,
            impressions: sql`excluded.impressions`,
            ctr: sql`excluded.ctr`,
            position: sql`excluded.position`,
          },
        })
        .returning({ id: g.id });
      ids.push(Number(row!.id));
    }
    return ids;
  });
}

/** Deletes rows by id; returns how many. */
export async function deleteRows(db: Db, ids: number[]): Promise<number> {
  const g = db.t.gscPerformanceData;
  return db.tx(async (tx) => (await tx.delete(g).where(inArray(g.id, ids)).returning({ id: g.id })).length);
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
