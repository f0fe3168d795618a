import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { upsertRows } from "../src/sync/data.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { insertSites } from "./helpers/sync.ts";

// PostgreSQL: the sync's dictionary lookup (a batch's query texts → gsc_queries ids) never reads the pg_trgm GIN
// index of query search. In the state a real ingest reaches (autovacuum ANALYZEd gsc_queries while it was small,
// then a day's new queries filled the GIN pending list), the planner chose that index for `query IN (…1,000
// texts)`: one bitmap scan per text over the pending list, 13-30 s a statement here (load ~15 on 2 cores), which
// stalled grains.sync's 50,001-row day past its 170 s bound under load. The state is built by hand below
// (ANALYZE at 1,000 queries, 4,000 more pending) and the write's own index scans are read in its transaction
// (pg_stat_get_xact_numscans). SQLite has no such index (its search index is FTS5, written in batches).

let t: ReturnType<typeof tempDb>;
let site = 0;
beforeAll(async () => {
  if (testEngine !== "pg") return;
  t = tempDb();
  site = (await insertSites(t.db, 1, "plan.example"))[0]!;
});
afterAll(() => t?.cleanup());

const row = (i: number): SourceRow => ({
  page: `https://plan.example/p${i % 50}`,
  query: `fake query web ${i}`,
  device: ["DESKTOP", "MOBILE", "TABLET"][i % 3]!,
  clicks: 1,
  impressions: 10,
  ctr: 0.1,
  position: 2.5,
});

describe.skipIf(testEngine !== "pg")("PostgreSQL: the detail write's dictionary lookup", () => {
  test("never scans the trigram index, even with stale statistics and a full GIN pending list", async () => {
    const add = (from: number, n: number) =>
      t.db.tx((tx) =>
        tx.execute(
          sql`insert into gsc_queries (site_id, query) select ${site}::int, 'fake query web ' || g from generate_series(${from}::int, ${from + n - 1}::int) g`,
        ),
      );
    await add(0, 1000);
    await t.db.q.execute(sql`analyze gsc_queries`);
    await add(1000, 4000);

    // 1,000 rows: 500 known queries (4,500..4,999), 500 new (5,000..5,499).
    const rows = Array.from({ length: 1000 }, (_, i) => row(4500 + i));
    const { ids, trgmScans } = await t.db.tx(async (tx) => {
      const ids = await upsertRows(tx, site, "2026-03-01", "web", rows);
      const [r] = (await tx.execute<{ n: number }>(sql`select pg_stat_get_xact_numscans('gsc_queries_query_trgm_idx'::regclass)::int as n`))
        .rows;
      return { ids, trgmScans: r!.n };
    });
    expect(trgmScans).toBe(0);
    expect(new Set(ids).size).toBe(1000);

    // The keys hold the dictionary's ids: known texts kept theirs, the new ones were added once.
    const dict = await t.db.q.execute<{ id: number; query: string }>(
      sql`select id::int as id, query from gsc_queries where site_id = ${site} and query like 'fake query web %'`,
    );
    expect(dict.rows.length).toBe(5500);
    const idOf = new Map(dict.rows.map((r) => [r.query, r.id]));
    expect(ids.map((k) => Number(k.split("|")[4]))).toEqual(rows.map((r) => idOf.get(r.query)!));
    // The setting was only for the lookup: the rest of a transaction plans as configured.
    const setting = await t.db.tx(async (tx) => {
      await upsertRows(tx, site, "2026-03-02", "web", rows.slice(0, 10));
      return (await tx.execute<{ s: string }>(sql`select current_setting('enable_bitmapscan') as s`)).rows[0]!.s;
    });
    expect(setting).toBe("on");
  });
});
