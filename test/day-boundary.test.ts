import { describe, expect, test } from "bun:test";
import { waitBeforeDayBoundary } from "./helpers/day.ts";

// The guard that keeps files seeding rows relative to "today" off a day boundary (test/helpers/day.ts):
// UTC midnight (the app's `dayOf`) and Pacific midnight (Search Console's day: 08:00 UTC in winter, 07:00 in summer).

const at = (iso: string) => Date.parse(iso);
const MIN = 60_000;

describe("waitBeforeDayBoundary", () => {
  test("no midnight within the margin: no wait", () => {
    expect(waitBeforeDayBoundary(at("2026-12-06T04:30:00Z"), 10 * MIN)).toBe(0);
    expect(waitBeforeDayBoundary(at("2026-12-06T23:49:00Z"), 10 * MIN)).toBe(0);
  });

  test("UTC midnight within the margin: waits until just past it", () => {
    const w = waitBeforeDayBoundary(at("2026-12-06T23:55:00Z"), 10 * MIN);
    expect(w).toBeGreaterThanOrEqual(5 * MIN);
    expect(w).toBeLessThanOrEqual(5 * MIN + 2000);
  });

  test("Pacific midnight within the margin: 08:00 UTC in winter, 07:00 UTC in summer", () => {
    const winter = waitBeforeDayBoundary(at("2026-12-06T07:58:00Z"), 10 * MIN);
    expect(winter).toBeGreaterThanOrEqual(2 * MIN);
    expect(winter).toBeLessThanOrEqual(2 * MIN + 2000);
    expect(waitBeforeDayBoundary(at("2026-07-06T07:58:00Z"), 10 * MIN)).toBe(0);
    const summer = waitBeforeDayBoundary(at("2026-07-06T06:59:00Z"), 10 * MIN);
    expect(summer).toBeGreaterThanOrEqual(1 * MIN);
    expect(summer).toBeLessThanOrEqual(1 * MIN + 2000);
  });
});
