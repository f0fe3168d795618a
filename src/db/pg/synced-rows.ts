import type { Q } from "../engine.ts";
import type { GscRow, HourlyRow } from "../sqlite/schema.ts";
import { fromExcluded } from "../sql.ts";
import { gscPerformanceData as g, hourlyRankings as h } from "./schema.ts";

// The synced rows' upserts on PostgreSQL: multi-row `insert … on conflict do update` in statements of at
// most ROWS_PER_STATEMENT rows (one round trip each, instead of SQLite's prepared statement per row).

const ROWS_PER_STATEMENT = 1000;

type DailyRow = Pick<GscRow, "page" | "query" | "device" | "clicks" | "impressions" | "ctr" | "position">;
type HourlyInsert = Omit<HourlyRow, "id">;

/**
 * Inside a transaction: stores rows of one site, day and search type (insert, or update on the row key);
 * returns each input row's id, in input order. A key given twice keeps the last row, as on SQLite (one
 * statement cannot update the same row twice on PostgreSQL, so repeats are folded first).
 */
export async function upsertRowsPg(tx: Q, siteId: number, day: string, type: string, rows: DailyRow[]): Promise<number[]> {
  const keyOf = (r: { page: string; query: string; device: string }) => `${r.page}\u0000${r.query}\u0000${r.device}`;
  const unique = new Map<string, DailyRow>();
  for (const r of rows) unique.set(keyOf(r), r);
  const ids = new Map<string, number>();
  const values = [...unique.values()].map((r) => ({ site_id: siteId, date: day, search_type: type, ...r }));
  for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
    const stored = await tx
      .insert(g)
      .values(values.slice(i, i + ROWS_PER_STATEMENT))
      .onConflictDoUpdate({
        target: [g.site_id, g.date, g.page, g.query, g.device, g.search_type],
        set: fromExcluded("clicks", "impressions", "ctr", "position"),
      })
      .returning({ id: g.id, page: g.page, query: g.query, device: g.device });
    for (const r of stored) ids.set(keyOf(r), r.id);
  }
  return rows.map((r) => ids.get(keyOf(r))!);
}

/** Inside a transaction: stores hourly rows (insert, or update on the row key); a key given twice keeps the last row. */
export async function upsertHourlyRowsPg(tx: Q, rows: HourlyInsert[]): Promise<void> {
  const unique = new Map<string, HourlyInsert>();
  for (const r of rows) unique.set(`${r.site_id}\u0000${r.hour_timestamp}\u0000${r.query}\u0000${r.page}\u0000${r.device}`, r);
  const values = [...unique.values()];
  for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
    await tx
      .insert(h)
      .values(values.slice(i, i + ROWS_PER_STATEMENT))
      .onConflictDoUpdate({
        target: [h.site_id, h.hour_timestamp, h.query, h.page, h.device],
        set: fromExcluded("clicks", "impressions", "ctr", "position", "fetched_at"),
      });
  }
}
