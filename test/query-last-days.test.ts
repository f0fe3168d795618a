import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import pg from "pg";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { countQueriesSince } from "../src/analytics/query-sums.ts";
import { dayDate } from "../src/sync/grains.ts";
import { tempDir } from "./helpers/db.ts";
import { migrationsBefore, pgFixtureBefore } from "./helpers/migrations.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// Each query's newest and oldest day in the day × query rollup (migrations sqlite 0029 and 0033 / pg 0023 and 0028, issue 18): filled from a
// database with data by the migration, then kept by the rollup's triggers through every kind of write the sync, the
// copy and a site's deletion make: after each, the table is what the rollup says, and the queries counted from it
// equal the distinct queries of windows ending on or after the newest day (null for other windows).

setDefaultTimeout(60_000);
const dir = tempDir("sitesync-last-days-");
afterAll(() => dir.cleanup());
const TAG = { sqlite: "0029_query_last_days", pg: "0023_query_last_days" };
const DAYS = [20400, 20401, 20402, 20403, 20404, 20405, 20406, 20407, 20408, 20409];

/** Two sites' rollup over ten days and three types, each query on some days only (gaps, different newest days). */
function fixtureSql(): string[] {
  const rows: string[] = [];
  for (const [site, qs] of [
    [1, [1, 2, 3, 4, 5, 6, 7, 8]],
    [2, [9, 10, 11, 12]],
  ] as const)
    for (const day of DAYS)
      for (const type of [1, 2, 3])
        for (const q of qs) if ((q * 7 + day + type) % 3 !== 0) rows.push(`(${site}, ${day}, ${type}, ${q}, ${q}, ${q * 10}, ${q * 100})`);
  return [
    "insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')",
    `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) values ${rows.join(", ")}`,
  ];
}

/** What the table must hold: computed from the rollup. */
const expectedLastSql = `select site_id, type, query_id, max(day) as day, min(day) as first_day from gsc_day_query_totals group by site_id, type, query_id order by 1, 2, 3`;
const lastSql = "select site_id, type, query_id, day, first_day from gsc_query_last_days order by 1, 2, 3";
const distinctSql = (site: number, type: number, from: number, to: number) =>
  `select count(distinct query_id) as n from gsc_day_query_totals where site_id = ${site} and type = ${type} and day >= ${from} and day <= ${to}`;

/** The writes after the migration, in order, each followed by the check. */
const writes: [string, string][] = [
  [
    "a newer day (new and known queries)",
    "insert into gsc_day_query_totals values (1, 20410, 1, 1, 1, 1, 1), (1, 20410, 1, 3, 1, 1, 1), (1, 20410, 1, 99, 1, 1, 1)",
  ],
  ["an older day (a backfill)", "insert into gsc_day_query_totals values (1, 20390, 1, 2, 1, 1, 1), (1, 20390, 2, 98, 1, 1, 1)"],
  [
    "a query's oldest day deleted (its next day found)",
    "delete from gsc_day_query_totals where site_id = 1 and day = 20390 and type = 1 and query_id = 2",
  ],
  [
    "a query's oldest day deleted again",
    "delete from gsc_day_query_totals where site_id = 1 and day = 20401 and type = 1 and query_id = 2",
  ],
  [
    "the newest day again, sums changed (on conflict)",
    `insert into gsc_day_query_totals values (1, 20410, 1, 1, 5, 5, 5), (1, 20410, 1, 3, 6, 6, 6)
      on conflict (site_id, query_id, day, type) do update set clicks = excluded.clicks, impressions = excluded.impressions`,
  ],
  [
    "queries gone from their newest day (re-synced; 99 had no other day)",
    "delete from gsc_day_query_totals where site_id = 1 and day = 20410 and type = 1 and query_id in (1, 99)",
  ],
  ["a query's every row deleted", "delete from gsc_day_query_totals where site_id = 1 and query_id = 98"],
  ["a whole day deleted", "delete from gsc_day_query_totals where site_id = 1 and day = 20409"],
  ["a site deleted (the rollup's cascade)", "delete from sites where id = 2"],
];

type Run = { all: (sql: string) => Promise<Record<string, unknown>[]>; exec: (sql: string) => Promise<void> };
const numbers = (rows: Record<string, unknown>[]) => rows.map((r) => Object.values(r).map(Number));

/** The table as the rollup says, and countQueriesSince against the distinct queries of each window. */
async function check(run: Run, app: Db) {
  expect(numbers(await run.all(lastSql))).toEqual(numbers(await run.all(expectedLastSql)));
  for (const site of [1, 2])
    for (const type of [1, 2, 3]) {
      const [newest] = numbers(await run.all(`select max(day) from gsc_day_query_totals where site_id = ${site} and type = ${type}`));
      const end = newest![0] || DAYS[9]!;
      for (const from of [20390, DAYS[0]!, DAYS[4]!, end]) {
        const [want] = numbers(await run.all(distinctSql(site, type, from, end)));
        expect(await countQueriesSince(app, site, type, dayDate(from), dayDate(end))).toBe(want![0]!);
        expect(await countQueriesSince(app, site, type, dayDate(from), dayDate(end + 5))).toBe(want![0]!);
      }
      if (newest![0]) expect(await countQueriesSince(app, site, type, dayDate(DAYS[0]!), dayDate(end - 1))).toBeNull();
    }
}

async function scenario(run: Run, app: Db) {
  expect(Number((await run.all("select count(*) as n from gsc_query_last_days"))[0]!.n)).toBe(36); // 12 queries × 3 types
  await check(run, app);
  for (const [, sql] of writes) {
    await run.exec(sql);
    await check(run, app);
  }
  expect(numbers(await run.all("select count(*) from gsc_query_last_days where site_id = 2"))).toEqual([[0]]);
}

describe("SQLite: each query's newest day, filled by the migration and kept by the rollup's triggers", () => {
  test(`filled from the stored rollup; then ${writes.map(([w]) => w).join(", ")}: the table follows the rollup`, async () => {
    const path = join(dir.dir, "sqlite.db");
    migrate(path, undefined, migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir));
    const old = new Database(path);
    for (const s of fixtureSql()) old.run(s);
    old.close();
    migrate(path);
    const db = new Database(path);
    db.run("pragma foreign_keys = on");
    const app = openDb({ path, role: "test" });
    try {
      // The app's reader sees another connection's commit from its next event-loop turn (src/db/sqlite/read-snapshot.ts).
      const exec = async (sql: string) => {
        db.run(sql);
        await new Promise((r) => setImmediate(r));
      };
      await scenario({ all: async (sql) => db.query(sql).all() as Record<string, unknown>[], exec }, app);
    } finally {
      app.close();
      db.close();
    }
  });
});

describe.skipIf(postgresSkipReason !== null || pgRunsToo)(
  "PostgreSQL: each query's newest day, filled by the migration and kept by the rollup's triggers",
  () => {
    const server = usePostgres();

    test(`filled from the stored rollup; then ${writes.map(([w]) => w).join(", ")}: the table follows the rollup`, async () => {
      const url = await server.newDatabase();
      const c = await pgFixtureBefore(url, TAG.pg, fixtureSql(), dir.dir);
      const app = openPgDb({ url, role: "test", poolSize: 2 });
      try {
        await migratePg(url);
        await scenario({ all: async (sql) => (await c.query(sql)).rows, exec: async (sql) => void (await c.query(sql)) }, app);
      } finally {
        app.close();
        await app.pg?.pool.end().catch(() => {});
        await c.end();
      }
    });
  },
);

// Two sync workers write different days of one site at once (PostgreSQL: SQLite's writes are serialized). Each
// keeps the newest-day table from its rollup's statement triggers; no interleaving of their statements may deadlock
// (both waiting on the other's rows of that table) or leave a query's newest day stale (a deletion's recount that
// missed the other writer's uncommitted day). Each schedule runs its steps in order on two real connections: a step
// runs on once it is done or waits on a lock, so the other writer's next step runs while it waits; then both commit.
type Step = ["a" | "b", string];
const rollup = (day: number, queries: number[]) =>
  `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
    values ${queries.map((q) => `(1, ${day}, 1, ${q}, 1, 1, 1)`).join(", ")}`;
const dropDay = (day: number, queries?: number[]) =>
  `delete from gsc_day_query_totals where site_id = 1 and type = 1 and day = ${day}${queries ? ` and query_id in (${queries.join(", ")})` : ""}`;
const schedules: [string, Step[]][] = [
  [
    "each writes its new day in two statements, in opposite query order",
    [
      ["a", rollup(20411, [1, 2])],
      ["b", rollup(20412, [3, 4])],
      ["a", rollup(20411, [3, 4])],
      ["b", rollup(20412, [1, 2])],
    ],
  ],
  [
    "one re-writes the newest day (delete, insert) while the other writes a newer one, a new query on both",
    [
      ["a", dropDay(20410)],
      ["b", rollup(20411, [7])],
      ["a", rollup(20410, [1, 2, 3, 4, 5, 6, 7])],
      ["b", rollup(20411, [1, 2, 3, 4])],
    ],
  ],
  [
    "one backfills an older day while the other deletes a query's newest day",
    [
      ["a", rollup(20409, [1, 2])],
      ["b", dropDay(20410, [1, 2])],
    ],
  ],
  [
    "one deletes an older day while the other deletes the newest",
    [
      ["a", dropDay(20408, [1, 2])],
      ["b", dropDay(20410, [1, 2])],
    ],
  ],
];

/** Resolves once `p` settled or the backend `pid` waits on a lock. */
async function doneOrWaiting(p: Promise<unknown>, watch: pg.Client, pid: number): Promise<void> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    if (settled) return;
    const r = await watch.query("select wait_event_type from pg_stat_activity where pid = $1", [pid]);
    if (r.rows[0]?.wait_event_type === "Lock") return;
  }
}

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("PostgreSQL: two writers of one site's days at once", () => {
  const server = usePostgres();

  for (const [name, steps] of schedules)
    test(`${name}: both commit (no deadlock) and the table follows the rollup`, async () => {
      const url = await server.newMigratedDatabase();
      const [watch, a, b] = [0, 1, 2].map(() => new pg.Client({ connectionString: url }));
      for (const c of [watch!, a!, b!]) await c.connect();
      try {
        await watch!.query("insert into sites (id, domain, name) values (1, 'a.example', 'A')");
        // Queries 1-6 on the even days 20400-20410 (every query's newest day 20410, the one before 20408).
        for (let day = 20400; day <= 20410; day += 2) await watch!.query(rollup(day, [1, 2, 3, 4, 5, 6]));
        const client = { a: a!, b: b! };
        const pid = { a: 0, b: 0 };
        for (const w of ["a", "b"] as const) {
          pid[w] = Number((await client[w].query("select pg_backend_pid() as pid")).rows[0].pid);
          await client[w].query("begin");
        }
        // Each writer's statements in order; a failed one ends its writer's transaction (rolled back).
        const chain: Record<"a" | "b", Promise<unknown>> = { a: Promise.resolve(), b: Promise.resolve() };
        const failed: Record<"a" | "b", string | null> = { a: null, b: null };
        for (const [w, sql] of steps) {
          const p = chain[w].then(() => (failed[w] ? undefined : client[w].query(sql)));
          chain[w] = p.catch((e: { code?: string; message: string }) => {
            failed[w] ??= `${e.code}: ${e.message}`;
          });
          await doneOrWaiting(p, watch!, pid[w]);
        }
        for (const w of ["a", "b"] as const) chain[w] = chain[w].then(() => client[w].query(failed[w] ? "rollback" : "commit"));
        await Promise.all([chain.a, chain.b]);
        expect(failed).toEqual({ a: null, b: null });
        expect(numbers((await watch!.query(lastSql)).rows)).toEqual(numbers((await watch!.query(expectedLastSql)).rows));
      } finally {
        for (const c of [watch!, a!, b!]) await c.end().catch(() => {});
      }
    });
});
