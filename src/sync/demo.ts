import { pacificHourTimestamp } from "./dates.ts";
import { typeRules } from "./search-types.ts";
import type { Grain, HourlySourceRow, SearchAnalyticsSource, SearchType, SourceRow, TotalsRow } from "./source.ts";

// Deterministic synthetic Search Console data: the same (site, day, type) always gives the same rows,
// so re-running a day is visibly idempotent and a fresh install shows syncs completing end to end.

const topics = [
  "running shoes",
  "trail running",
  "marathon training",
  "yoga mats",
  "protein powder",
  "hiking boots",
  "cycling helmet",
  "swim goggles",
  "tennis racket",
  "climbing gear",
  "ski jacket",
  "camping tent",
  "fitness tracker",
  "foam roller",
  "kettlebell",
  "resistance bands",
  "water bottle",
  "sports socks",
  "rain jacket",
  "sleeping bag",
  "headlamp",
  "compression tights",
  "gym bag",
  "jump rope",
];
const modifiers = [
  "best",
  "cheap",
  "buy",
  "review",
  "how to choose",
  "vs",
  "for beginners",
  "sale",
  "near me",
  "size guide",
  "women",
  "men",
  "kids",
  "lightweight",
  "waterproof",
  "2026",
  "top 10",
  "discount code",
  "repair",
  "used",
];
const devices = ["DESKTOP", "MOBILE", "TABLET"] as const;
const typeWeight: Record<SearchType, number> = { web: 1, image: 0.4, video: 0.2, news: 0.1, discover: 0.3, googleNews: 0.1 };
const countries = ["usa", "gbr", "deu", "fra"];
const appearances = ["VIDEO", "REVIEW_SNIPPET", "FAQ_RICH_RESULT"];
/** Share of a day's clicks and impressions the demo puts in queries Google does not name. */
const DEMO_ANONYMIZED = 0.15;

/** 32-bit FNV-1a of a string. */
export function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A small seeded generator (mulberry32): uniform numbers in [0, 1). */
export function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The rows the demo source has for one property, day and search type. */
export function demoRows(siteUrl: string, day: string, type: SearchType, count: number): SourceRow[] {
  const rand = random(hash(`${siteUrl}|${day}|${type}`));
  const host = siteUrl
    .replace(/^sc-domain:/, "")
    .replace(/^https?:\/\//, "")
    .replace(/\/.*$/, "");
  const rows: SourceRow[] = [];
  for (let i = 0; i < count; i++) {
    // i -> (topic, modifier, round) is one-to-one, so every row has its own query: keys never collide.
    const topic = topics[i % topics.length]!;
    const modifier = modifiers[Math.floor(i / topics.length) % modifiers.length]!;
    const round = Math.floor(i / (topics.length * modifiers.length));
    const query = `${modifier} ${topic}${round > 0 ? ` ${round}` : ""}`;
    const impressions = 1 + Math.floor(rand() * 1000 * typeWeight[type]);
    const clicks = Math.floor(impressions * rand() * 0.3);
    rows.push({
      page: `https://${host}/${topic.replaceAll(" ", "-")}`,
      query,
      device: devices[i % devices.length]!,
      clicks,
      impressions,
      ctr: clicks / impressions,
      position: Math.round((1 + rand() * 49) * 10) / 10,
    });
  }
  return rows;
}

/**
 * The demo source's hourly rows for one property and day: `count` rows spread over the day's 24 hours
 * (Pacific time, as Search Console reports them), the busiest around the afternoon. For the current
 * day only the hours already past (in Pacific time) have rows, as with the real data.
 */
export function demoHourlyRows(siteUrl: string, day: string, count: number, now = new Date()): HourlySourceRow[] {
  const rand = random(hash(`${siteUrl}|${day}|hourly`));
  const daily = demoRows(siteUrl, day, "web", Math.ceil(count / 24));
  const rows: HourlySourceRow[] = [];
  for (let i = 0; i < count; i++) {
    const hour = i % 24;
    const ts = pacificHourTimestamp(day, hour);
    if (Date.parse(ts) > now.getTime()) continue;
    const base = daily[Math.floor(i / 24)]!;
    const weight = 0.3 + Math.sin((Math.PI * hour) / 24);
    const impressions = 1 + Math.floor(((base.impressions ?? 0) / 24) * weight * (0.5 + rand()));
    const clicks = Math.min(impressions, Math.floor(impressions * rand() * 0.3));
    rows.push({
      hour_timestamp: ts,
      query: base.query,
      page: base.page,
      device: base.device,
      clicks,
      impressions,
      ctr: clicks / impressions,
      position: Math.round(Math.max(1, (base.position ?? 1) + (rand() - 0.5) * 4) * 10) / 10,
    });
  }
  return rows;
}

/**
 * The demo source's totals of one grain: its query rows summed by the grain's keys (each row in one
 * country), plus DEMO_ANONYMIZED more clicks and impressions in queries the query rows leave out, as
 * Search Console's totals include them. Position impression-weighted; none for discover.
 */
export function demoTotals(
  siteUrl: string,
  day: string,
  type: SearchType,
  grain: Grain,
  count: number,
  rows: SourceRow[] = demoRows(siteUrl, day, type, count),
): TotalsRow[] {
  const rules = typeRules(type);
  const groups = new Map<string, TotalsRow & { sp: number }>();
  const add = (r: SourceRow, i: number, factor: number) => {
    const row = {
      page: grain === "page" ? r.page : "",
      country: grain === "appearance" ? "" : countries[i % countries.length]!,
      device: grain === "appearance" || !rules.device ? "" : r.device,
      appearance: grain === "appearance" ? appearances[i % appearances.length]! : "",
    };
    const key = `${row.page}|${row.country}|${row.device}|${row.appearance}`;
    const g = groups.get(key) ?? { ...row, clicks: 0, impressions: 0, position: 0, sp: 0 };
    const impressions = Math.round((r.impressions ?? 0) * factor);
    g.clicks += Math.round((r.clicks ?? 0) * factor);
    g.impressions += impressions;
    g.sp += (r.position ?? 0) * impressions;
    groups.set(key, g);
  };
  rows.forEach((r, i) => add(r, i, 1));
  // The anonymized part: as if every row had DEMO_ANONYMIZED more traffic from unnamed queries.
  if (grain !== "appearance" && rules.query) rows.forEach((r, i) => add(r, i, DEMO_ANONYMIZED));
  return [...groups.values()]
    .filter((g) => g.impressions > 0 || g.clicks > 0)
    .map(({ sp, ...g }) => ({ ...g, position: type === "discover" || g.impressions === 0 ? 0 : sp / g.impressions }))
    .sort((a, b) => b.clicks - a.clicks);
}

/** Rows in slices of `pageSize`, stopping when aborted. */
async function* inPages<T>(rows: T[], pageSize: number, signal: AbortSignal): AsyncGenerator<T[]> {
  for (let i = 0; i < rows.length; i += pageSize) {
    signal.throwIfAborted();
    yield rows.slice(i, i + pageSize);
  }
}

/** The demo source: `rowsPerDay` rows per day and search type (and per day of hourly data), in pages of `pageSize`. */
export function demoSource(rowsPerDay: number, pageSize = 25_000): SearchAnalyticsSource {
  // A sync asks the totals grains and the detail of one day and type in a row: the rows are made once for them
  // (the fake source's own cost must not weigh on an ingest benchmark).
  let last = { key: "", rows: [] as SourceRow[] };
  const rowsOf = (siteUrl: string, day: string, type: SearchType) => {
    const key = `${siteUrl}|${day}|${type}`;
    if (last.key !== key) last = { key, rows: demoRows(siteUrl, day, type, rowsPerDay) };
    return last.rows;
  };
  return {
    name: "demo",
    pages: (siteUrl, day, type, signal) => inPages(rowsOf(siteUrl, day, type), pageSize, signal),
    hourlyPages: (siteUrl, day, signal) => inPages(demoHourlyRows(siteUrl, day, rowsPerDay), pageSize, signal),
    totals: async (siteUrl, day, type, grain) => demoTotals(siteUrl, day, type, grain, rowsPerDay, rowsOf(siteUrl, day, type)),
  };
}
