// Histogram series kept in arrays and handed to prom-client when scraped (its `collect`): an observation costs a few
// array increments, with no label object, validation or hashing. http.ts (requests) and registry.ts (commits) use it.

/** One labelled series: bucket counts per upper bound (not cumulative; +Inf is `count`), sum and count. */
export type BucketSeries = { counts: Float64Array; sum: number; count: number };

/** A new, empty series for `buckets`. */
export function newSeries(buckets: readonly number[]): BucketSeries {
  return { counts: new Float64Array(buckets.length), sum: 0, count: 0 };
}

/** Records `value` in `s`. */
export function observeSeries(s: BucketSeries, buckets: readonly number[], value: number): void {
  s.count++;
  s.sum += value;
  for (let b = 0; b < buckets.length; b++) {
    if (value <= buckets[b]!) {
      s.counts[b] = s.counts[b]! + 1;
      break;
    }
  }
}

/** Replaces the series of prom-client 15 histogram `histogram` (`this` in its collect) with `series` (key, labels, series). */
export function fillHistogram(
  histogram: unknown,
  buckets: readonly number[],
  series: Iterable<[string, Record<string, string>, BucketSeries]>,
): void {
  // prom-client 15's own per-series record, what its observe() keeps.
  const self = histogram as { hashMap: Record<string, unknown> };
  self.hashMap = {};
  for (const [key, labels, s] of series) {
    const bucketValues: Record<number, number> = {};
    for (let b = 0; b < buckets.length; b++) bucketValues[buckets[b]!] = s.counts[b]!;
    self.hashMap[key] = { labels, bucketValues, sum: s.sum, count: s.count };
  }
}
