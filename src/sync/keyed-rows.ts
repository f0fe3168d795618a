import { deviceCode, sumPosition } from "./grains.ts";
import type { SourceRow } from "./source.ts";
import type { TextIds } from "./text-ids.ts";

// A batch of query-detail rows as both engines write them (src/sync/data.ts, src/db/pg/synced-rows.ts):
// dictionary ids in place of texts, one row per key, in the primary key's order, and the day × query
// rollup summed from them in JS (no read back of the detail).

/** Rows of one site, day and type with their dictionary ids, one per key (the last row of a key wins, as an upsert would), in key order. */
export type KeyedRows = {
  n: number;
  page: number[];
  query: number[];
  device: number[];
  clicks: number[];
  impressions: number[];
  sumPosition: number[];
};

/**
 * The rows as KeyedRows: ids from the dictionaries' maps, sorted by (page_id, query_id, device) — the
 * primary key's order within a day, so the B-tree is written like an append (fuller pages, fewer touched)
 * — and one row per key (the last given).
 */
export function keyRows(rows: SourceRow[], pages: TextIds, queries: TextIds): KeyedRows {
  const n = rows.length;
  const p = new Array<number>(n);
  const q = new Array<number>(n);
  const d = new Array<number>(n);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    p[i] = pages.get(r.page)!;
    q[i] = queries.get(r.query)!;
    d[i] = deviceCode(r.device);
    order[i] = i;
  }
  // Stable on ties: the input order decides, so the last of a key's rows comes last.
  order.sort((a, b) => p[a]! - p[b]! || q[a]! - q[b]! || d[a]! - d[b]! || a - b);
  const out: KeyedRows = { n: 0, page: [], query: [], device: [], clicks: [], impressions: [], sumPosition: [] };
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const next = order[k + 1];
    if (next !== undefined && p[next] === p[i] && q[next] === q[i] && d[next] === d[i]) continue;
    const r = rows[i]!;
    out.page.push(p[i]!);
    out.query.push(q[i]!);
    out.device.push(d[i]!);
    out.clicks.push(r.clicks);
    out.impressions.push(r.impressions);
    out.sumPosition.push(sumPosition(r.position, r.impressions));
  }
  out.n = out.page.length;
  return out;
}

/** The day × query rollup of KeyedRows (what rebuildDayQueryTotals computes in SQL), in query id order. */
export function rollupOf(k: KeyedRows): { query: number[]; clicks: number[]; impressions: number[]; sumPosition: number[] } {
  const sums = new Map<number, [number, number, number]>();
  for (let i = 0; i < k.n; i++) {
    const s = sums.get(k.query[i]!);
    if (s) {
      s[0] += k.clicks[i]!;
      s[1] += k.impressions[i]!;
      s[2] += k.sumPosition[i]!;
    } else sums.set(k.query[i]!, [k.clicks[i]!, k.impressions[i]!, k.sumPosition[i]!]);
  }
  const ids = [...sums.keys()].sort((a, b) => a - b);
  const out = {
    query: ids,
    clicks: new Array<number>(ids.length),
    impressions: new Array<number>(ids.length),
    sumPosition: new Array<number>(ids.length),
  };
  for (let i = 0; i < ids.length; i++) {
    const s = sums.get(ids[i]!)!;
    out.clicks[i] = s[0];
    out.impressions[i] = s[1];
    out.sumPosition[i] = s[2];
  }
  return out;
}
