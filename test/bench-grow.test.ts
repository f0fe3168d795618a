import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { seedAnalytics } from "../bench/seed-analytics.ts";
import { tempDir } from "./helpers/db.ts";

// bench/grow-analytics.ts: the grown file holds N copies of the seed's days, each copy's sums equal to the
// seed's in every per-day table and in the weekly page totals, and a summary beside it for bench:analytics.

setDefaultTimeout(120_000);

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-bench-grow-test-");
afterAll(() => dir.cleanup());

/** Each copy's (rows, sum of `sum`) of one table, newest copy first. */
function perCopy(db: Database, table: string, key: "day" | "week", first: number, last: number, copies: number, sum = "clicks") {
  const step = key === "day" ? 105 : 15;
  return Array.from(
    { length: copies },
    (_, k) =>
      db
        .query<{ n: number; clicks: number }, [number, number]>(
          `select count(*) as n, sum(${sum}) as clicks from ${table} where ${key} between ? and ?`,
        )
        .get(first - k * step, last - k * step)!,
  );
}

describe("bench/grow-analytics.ts", () => {
  test("three copies of a seeded site's days, each summing as the seed", async () => {
    const from = join(dir.dir, "seed.db");
    const seed = await seedAnalytics(from, { rows: 4000, days: 30, data: "anchors" });
    writeFileSync(`${from}.seed.json`, JSON.stringify(seed));
    const to = join(dir.dir, "grown.db");
    const proc = Bun.spawn([process.execPath, "bench/grow-analytics.ts", from, to, "--times", "3"], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(code, stdout + stderr).toBe(0);

    const db = new Database(to, { readonly: true });
    try {
      const { first, last } = db
        .query<{ first: number; last: number }, []>(
          "select min(day) as first, max(day) as last from gsc_query_detail where day >= (select max(day) - 29 from gsc_query_detail)",
        )
        .get()!;
      for (const table of ["gsc_query_detail", "gsc_page_totals", "gsc_day_query_totals", "gsc_property_totals"]) {
        const copies = perCopy(db, table, "day", first, last, 3);
        const [newest] = copies;
        expect(newest?.n, table).toBeGreaterThan(0);
        expect(copies, table).toEqual(new Array(3).fill(newest));
      }
      const weeks = perCopy(db, "gsc_week_page_totals", "week", Math.floor(first / 7), Math.floor(last / 7), 3);
      // A week cut by the gap between copies sums both copies' days, so only the total is exact.
      expect(weeks.reduce((a, w) => a + w.clicks, 0)).toBe(3 * perCopy(db, "gsc_page_totals", "day", first, last, 1)[0]!.clicks);
      const sums = perCopy(db, "gsc_day_query_sums", "day", first, last, 3, "queries");
      const [newest] = sums;
      expect(newest?.n).toBeGreaterThanOrEqual(30);
      expect(sums).toEqual(new Array(3).fill(newest));
      const detail = db.query<{ n: number }, []>("select count(*) as n from gsc_query_detail").get()!.n;
      const grown = JSON.parse(readFileSync(`${to}.seed.json`, "utf8"));
      expect(grown).toMatchObject({ rows: detail, days: 90, end: seed.end, terms: seed.terms });
      expect(detail).toBe(3 * seed.rows);
    } finally {
      db.close();
    }
  });
});
