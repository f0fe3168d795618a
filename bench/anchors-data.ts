import type { Q } from "../src/db/engine.ts";
import { sumPositionScale } from "../src/db/enums.ts";
import { demoRows, hash, random } from "../src/sync/demo.ts";
import { type PageTotal, type PropertyTotal, replaceDayGrains, upsertPageIds } from "../src/sync/grain-writes.ts";
import { dayNumber, deviceCode, typeCode } from "../src/sync/grains.ts";
import type { SearchType, SourceRow } from "../src/sync/source.ts";

// Search Console rows shaped like the storage anchors' data set (docs: /work/shared/reference/storage-anchors.md,
// BENCHMARKS.md "Analytics at sizes"): one web property with ~20,000 page URLs of 37-90 characters, a query
// vocabulary of 10-40 character queries with Zipf popularity (~5.9 distinct queries per 100 rows), each query
// found on a few pages, devices 57/37/7 % mobile/desktop/tablet, clicks median 0 (p99 ~4), impressions
// median 2 (p99 ~39), position 1-100 with one decimal. Deterministic: the same (day, count) gives the same rows.
// The demo source (src/sync/demo.ts) gives every row of a day its own query and only 24 pages, so its day x
// query rollup has one row per detail row; real properties have far fewer.

const syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "pi", "nu", "tra", "il", "shoe", "run", "bo", "ta", "gen", "mar"];
/** A word per number (distinct numbers give distinct words below 18^3). */
const word = (n: number) =>
  syllables[n % 18]! + syllables[Math.floor(n / 18) % 18]! + (n >= 324 ? syllables[Math.floor(n / 324) % 18]! : "");
const WORDS = Array.from({ length: 5832 }, (_, i) => word(i));
/** Query text of vocabulary id `id`: two or three words, unique per id, 10-40 characters. */
export function anchorsQuery(id: number): string {
  const a = WORDS[id % 5832]!;
  const b = WORDS[Math.floor(id / 5832) % 5832]!;
  const q = `${a} ${b}${id >= 5832 * 40 ? ` ${WORDS[Math.floor(id / 5832 / 5832) + 7]}` : ""} ${id % 7 === 0 ? "near me" : "best"}`;
  return q.length < 10 ? `${q} online` : q.slice(0, 40);
}

export const ANCHORS_PAGES = 20_000;
/** Page URL of page id `id` (37-90 characters). */
export function anchorsPage(host: string, id: number): string {
  const r = random(id + 1);
  const depth = 1 + Math.floor(r() * 4);
  const parts = Array.from({ length: depth }, (_, i) => WORDS[(id * 7 + i * 131) % 5832]! + (i === depth - 1 ? `-${id}` : ""));
  const url = `https://${host}/${parts.join("/")}`;
  return url.length < 37 ? `${url}/${"x".repeat(37 - url.length)}` : url.slice(0, 90);
}

/** The Zipf (s = 1) cumulative weights of a vocabulary, for sampling by binary search. */
function zipfCdf(n: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1);
  for (let i = 0; i < n; i++) cdf[i]! /= sum;
  return cdf;
}

const cdfs = new Map<number, Float64Array>();

/** The vocabulary size for a data set of `totalRows` rows (the anchors: 294,993 distinct queries in 5 M rows). */
export const anchorsVocabulary = (totalRows: number) => Math.max(100, Math.round(totalRows * 0.059));

/** One day's rows (`count` distinct page x query x device keys) of a property with `vocabulary` queries. */
export function anchorsRows(host: string, day: string, count: number, vocabulary: number): SourceRow[] {
  let cdf = cdfs.get(vocabulary);
  if (!cdf) cdfs.set(vocabulary, (cdf = zipfCdf(vocabulary)));
  const rand = random(hash(`${host}|${day}`));
  const seen = new Set<number>();
  const rows: SourceRow[] = [];
  const pages = new Map<number, string>();
  for (let guard = 0; rows.length < count && guard < count * 20; guard++) {
    const u = rand();
    let lo = 0;
    let hi = vocabulary - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    const q = lo;
    // A query lands on one of a few pages (its own first); popular queries on more.
    const k = Math.floor(rand() * rand() * (q < 1000 ? 8 : 3));
    const page = ((q * 2654435761 + k * 40503) % ANCHORS_PAGES) >>> 0;
    const d = rand();
    const device = d < 0.57 ? 1 : d < 0.94 ? 0 : 2;
    const key = (q * ANCHORS_PAGES + page) * 3 + device;
    if (seen.has(key)) continue;
    seen.add(key);
    const impressions = Math.max(1, Math.floor(Math.exp(rand() * rand() * 3.7) * (q < 100 ? 20 : 1)));
    const clicks = rand() < 0.3 ? Math.floor(rand() * Math.min(impressions, 5)) : 0;
    let url = pages.get(page);
    if (!url) pages.set(page, (url = anchorsPage(host, page)));
    rows.push({
      page: url,
      query: anchorsQuery(q),
      device: (["MOBILE", "DESKTOP", "TABLET"] as const)[device]!,
      clicks,
      impressions,
      ctr: clicks / impressions,
      position: Math.round((1 + rand() * rand() * 99) * 10) / 10,
    });
  }
  return rows;
}

/** Which rows the analytics seeders write: the demo source's, or the anchors-shaped data set (web only). */
export type SeedData = "demo" | "anchors";

/** The search types a seed writes and how many rows per day and type, for about `rows` rows over `days` days. */
export function seedPlan(data: SeedData, rows: number, days: number, types: readonly SearchType[]) {
  const t = data === "anchors" ? (["web"] as SearchType[]) : [...types];
  return { types: t, rowsPerDayType: Math.max(1, Math.ceil(rows / (days * t.length))), vocabulary: anchorsVocabulary(rows) };
}

/** One day's rows of one type for the seeders. */
export function seedDayRows(data: SeedData, domain: string, day: string, type: SearchType, count: number, vocabulary: number): SourceRow[] {
  if (data === "demo") return demoRows(domain, day, type, count);
  return anchorsRows(domain.replace(/^sc-domain:/, ""), day, count, vocabulary);
}

/** Terms the bench's requests use: a query on every day, a page, a partial term, a 1-2 character term. */
export function seedTerms(data: SeedData, domain: string, day: string): { query: string; page: string; partial: string; short: string } {
  if (data === "demo") {
    const r = demoRows(domain, day, "web", 1)[0]!;
    return { query: r.query, page: r.page, partial: "trail", short: "vs" };
  }
  const host = domain.replace(/^sc-domain:/, "");
  return { query: anchorsQuery(0), page: anchorsPage(host, 0), partial: WORDS[3]!, short: "ka" };
}

/**
 * Inside the seeder's day transaction: the day's property and page totals (per device, no country) and its
 * completeness, summed from its rows, as a grain sync stores them: so totals, trends and page reports read the
 * small grain tables as on a synced property (without them every day counts as derived and is summed from the detail).
 */
export async function seedDayGrains(tx: Q, siteId: number, date: string, type: SearchType, rows: SourceRow[]): Promise<void> {
  const pageIds = await upsertPageIds(tx, siteId, [...new Set(rows.map((r) => r.page))]);
  const property = new Map<number, PropertyTotal>();
  const page = new Map<string, PageTotal>();
  for (const r of rows) {
    const device = deviceCode(r.device);
    const sp = Math.round(r.position * r.impressions * sumPositionScale);
    const p = property.get(device) ?? { country: "", device, clicks: 0, impressions: 0, sum_position: 0 };
    property.set(device, {
      ...p,
      clicks: p.clicks + r.clicks,
      impressions: p.impressions + r.impressions,
      sum_position: p.sum_position + sp,
    });
    const page_id = pageIds.get(r.page)!;
    const k = `${page_id}|${device}`;
    const g = page.get(k) ?? { page_id, country: "", device, clicks: 0, impressions: 0, sum_position: 0 };
    page.set(k, { ...g, clicks: g.clicks + r.clicks, impressions: g.impressions + r.impressions, sum_position: g.sum_position + sp });
  }
  await replaceDayGrains(tx, {
    siteId,
    day: dayNumber(date),
    type: typeCode(type),
    property: [...property.values()],
    page: [...page.values()],
    appearance: [],
    completeness: {
      property_rows: property.size,
      page_rows: page.size,
      detail_rows: rows.length,
      appearance_rows: 0,
      page_truncated: false,
      detail_truncated: false,
      anonymized_share: 0,
      data_state: "final",
    },
  });
}
