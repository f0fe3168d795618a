// Units of the grain tables (docs/design/grains.md): integer day numbers, coded type/device, scaled sum_position.
import { deviceCodes, searchTypeCodes, sumPositionScale, type SearchTypeCode } from "../db/enums.ts";

const msPerDay = 86_400_000;

/** Google's date 'YYYY-MM-DD' (Pacific) as a day number: days since 1970-01-01. */
export function dayNumber(date: string): number {
  return Math.round(Date.parse(`${date}T00:00:00Z`) / msPerDay);
}

/** A day number back to 'YYYY-MM-DD'. */
export function dayDate(day: number): string {
  return new Date(day * msPerDay).toISOString().slice(0, 10);
}

/** A search type's stored code (1..6). */
export function typeCode(type: SearchTypeCode): number {
  return searchTypeCodes.indexOf(type) + 1;
}

/** A device's stored code: 0 none, 1 desktop, 2 mobile, 3 tablet. */
export function deviceCode(device: string | undefined): number {
  // Google sends the codes in capitals: no upper-cased copy per row then (the ingest calls this for every row).
  let i = deviceCodes.indexOf(device as (typeof deviceCodes)[number]);
  if (i < 0) i = deviceCodes.indexOf((device ?? "").toUpperCase() as (typeof deviceCodes)[number]);
  return Math.max(i, 0);
}

/** round(position × impressions × scale): the stored, exactly re-aggregatable position. */
export function sumPosition(position: number, impressions: number): number {
  return Math.round(position * impressions * sumPositionScale);
}

/** Search Console's CTR: Σclicks / Σimpressions (0 without impressions). */
export function ctrOf(clicks: number, impressions: number): number {
  return impressions > 0 ? clicks / impressions : 0;
}

/** Search Console's impression-weighted position: Σsum_position / Σimpressions / scale (0 without impressions). */
export function positionOf(sumPos: number, impressions: number): number {
  return impressions > 0 ? sumPos / impressions / sumPositionScale : 0;
}

/** Share of clicks from queries Google does not name: 1 − Σ detail clicks / property clicks (null without clicks). */
export function anonymizedShare(detailClicks: number, propertyClicks: number): number | null {
  return propertyClicks > 0 ? Math.max(0, 1 - detailClicks / propertyClicks) : null;
}

/** Rows Search Console exposes per day and search type at most (sorted by clicks): a fetch that got this many was cut. */
export const dailyRowCap = 50_000;
