// Calendar days as `YYYY-MM-DD` strings, always in UTC (Search Console's days are UTC-ish; ours are UTC).

const DAY_MS = 86_400_000;

/** Search Console has data up to this many days before today. */
export const DATA_LAG_DAYS = 2;
/** Search Console still revises its last ~3 days: only days at least this many days old are final. */
export const FINAL_LAG_DAYS = 4;
/**
 * Days newer than today minus this are asked with dataState `all` (Search Console's fresh, still-changing
 * data included; its metadata says from which day data is incomplete), so the newest days are stored
 * (provisional) before Google calls them final, and fetched again until it does.
 */
export const FRESH_DATA_DAYS = 10;
/** Longest range one task may cover (Search Console keeps about 16 months). */
export const MAX_RANGE_DAYS = 480;
/** How far before the newest data day Search Console still has data (about 16 months). */
export const RETENTION_DAYS = 486;

const datePattern = /^\d{4}-\d{2}-\d{2}$/;

/** True for a real calendar date written `YYYY-MM-DD`. */
export function isDate(s: string): boolean {
  if (!datePattern.test(s)) return false;
  const d = new Date(`${s}T00:00:00.000Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** The UTC day of a moment. */
export function dayOf(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** The day `n` days after `day` (before, when negative). */
export function addDays(day: string, n: number): string {
  return dayOf(new Date(Date.parse(`${day}T00:00:00.000Z`) + n * DAY_MS));
}

/** Days from `start` to `end`, both included. */
export function daysBetween(start: string, end: string): number {
  return Math.round((Date.parse(`${end}T00:00:00.000Z`) - Date.parse(`${start}T00:00:00.000Z`)) / DAY_MS) + 1;
}

/** Every day from `start` to `end`, oldest first. */
export function dayRange(start: string, end: string): string[] {
  const n = daysBetween(start, end);
  return Array.from({ length: Math.max(0, n) }, (_, i) => addDays(start, i));
}

/** The newest day Search Console has data for (today minus 2, UTC). */
export function newestDataDay(now: Date = new Date()): string {
  return addDays(dayOf(now), -DATA_LAG_DAYS);
}

/** True when Search Console will not change this day's data any more (today minus 4 or older, UTC). */
export function isFinalDay(day: string, now: Date = new Date()): boolean {
  return day <= addDays(dayOf(now), -FINAL_LAG_DAYS);
}

/** True when the day is asked with dataState `all` (newer than today minus FRESH_DATA_DAYS, UTC). */
export function isFreshDay(day: string, now: Date = new Date()): boolean {
  return day > addDays(dayOf(now), -FRESH_DATA_DAYS);
}

/** The moment `HH:MM` UTC falls on the given day. */
export function atTimeOfDay(day: string, hhmm: string): Date {
  return new Date(`${day}T${hhmm}:00.000Z`);
}

/** Days of hourly data Search Console keeps (the last ~10 days, today included). */
export const HOURLY_RETENTION_DAYS = 10;

/** The day and hour of a Search Console HOUR key (`2026-11-20T03:00:00-08:00`, or `…Z`), in its own offset. */
export function hourOf(timestamp: string): { date: string; hour: number } | null {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}):\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.exec(timestamp);
  if (!m || !isDate(m[1]!) || Number(m[2]) > 23) return null;
  return { date: m[1]!, hour: Number(m[2]) };
}

// Made on first use: a formatter with a time zone loads ICU's zone data (~45 ms of CPU), and every process imports this
// module (the app, the CLI, each test process) while only demo data and hourly keys use it.
let pacific: Intl.DateTimeFormat | undefined;

/** Search Console's HOUR key for an hour of a day in Pacific time (its reporting zone): `2026-11-20T03:00:00-08:00`. */
export function pacificHourTimestamp(day: string, hour: number): string {
  const hh = String(hour).padStart(2, "0");
  // The offset at noon UTC of that day is the day's offset but for the two DST switch nights: close enough for demo data.
  pacific ??= new Intl.DateTimeFormat("en-US", { timeZone: "America/Los_Angeles", timeZoneName: "longOffset" });
  const zone = pacific.formatToParts(new Date(`${day}T12:00:00Z`)).find((p) => p.type === "timeZoneName")?.value ?? "GMT-08:00";
  return `${day}T${hh}:00:00${zone.replace("GMT", "") || "+00:00"}`;
}
