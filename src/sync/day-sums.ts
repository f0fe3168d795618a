// The packed format of gsc_day_query_sums.data (issue 18; read by src/analytics/query-sums.ts): per query in
// ascending id order, four unsigned LEB128 varints: the id's gap from the previous id (the first from 0), clicks,
// impressions, sum_position. Migration 0030 (pg 0024) writes the same bytes in SQL; src/sync/rollups.ts keeps it
// at ingest. Here, below both, so the sync's writer and the reports' reader share it without an import circle.

/** One day's query sums in ascending query id order (integers >= 0). */
export type DaySums = {
  query: ArrayLike<number>;
  clicks: ArrayLike<number>;
  impressions: ArrayLike<number>;
  sumPosition: ArrayLike<number>;
};

/** A day's sums as gsc_day_query_sums.data. */
export function encodeDaySums(s: DaySums): Uint8Array {
  const n = s.query.length;
  let out = new Uint8Array(Math.max(64, n * 12));
  let p = 0;
  const put = (v: number) => {
    if (!(v >= 0 && Number.isSafeInteger(v))) throw new Error(`gsc_day_query_sums: ${v} is not an integer >= 0`);
    if (p + 8 > out.length) {
      const grown = new Uint8Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    while (v >= 128) {
      out[p++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    out[p++] = v;
  };
  let last = 0;
  for (let k = 0; k < n; k++) {
    const q = s.query[k]!;
    if (q < last || (k > 0 && q === last)) throw new Error("gsc_day_query_sums: query ids must ascend");
    put(q - last);
    last = q;
    put(s.clicks[k]!);
    put(s.impressions[k]!);
    put(s.sumPosition[k]!);
  }
  return out.slice(0, p);
}
