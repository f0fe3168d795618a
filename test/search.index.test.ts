import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { eq, sql } from "drizzle-orm";
import { INDEX_BATCH, indexAllPendingQueries, indexPendingQueries, searchQueries } from "../src/search/queries.ts";
import { containsPattern } from "../src/db/sql.ts";
import { ftsTrigrams, SEARCH_INDEXED_SQL, SEARCH_SCAN_SQL, searchSqlParams, windowHasOneType } from "../src/db/sqlite/search.ts";
import { purgeSite } from "../src/sites/queries.ts";
import { queryPool } from "../src/analytics/pool.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { asSqlite, tempDb, tempDir, testEngine } from "./helpers/db.ts";
import { addSite, deleteRows, storeRows } from "./helpers/rows.ts";
import { pgStatementsOf } from "./helpers/pg-statements.ts";

// The query search index (the gsc_queries dictionary + the FTS5 trigram table gsc_queries_fts, then the day ×
// query rollup): results identical to the plain scan of the query detail on the same data, and the index
// kept right by every write.
// PostgreSQL: gsc_queries + the pg_trgm GIN index on it (always current: no FTS batches, no pending ids).

let t: ReturnType<typeof tempDb>;
beforeAll(() => {
  t = tempDb();
});
afterAll(() => t.cleanup());

/** mulberry32: a seeded generator, so a failing case can be replayed from the printed seed. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// Letters in both cases, digits, LIKE's wildcards and escape, FTS5 syntax characters, and non-ASCII
// letters whose case LIKE does not fold but the trigram index does (É/é, the Kelvin sign K/k, Σ/σ/ς), CJK.
const alphabet = [..."abcdeABCDE019 %_\\\"'*:^()-.éÉKkΣσς理髮店ß"];

const pick = <T>(r: () => number, xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
const word = (r: () => number, min: number, max: number) =>
  Array.from({ length: min + Math.floor(r() * (max - min + 1)) }, () => pick(r, alphabet)).join("");

function flipCase(r: () => number, s: string) {
  return [...s].map((ch) => (r() < 0.5 ? ch.toUpperCase() : ch.toLowerCase())).join("");
}

const site = (db: typeof t.db, domain: string) => addSite(db, domain);

/** Byte order (SQLite's BINARY), whatever the database's collation. */
const byKey = (a: { site_id: number; query: string }, b: { site_id: number; query: string }) =>
  a.site_id - b.site_id || Buffer.compare(Buffer.from(a.query), Buffer.from(b.query));

/**
 * gsc_queries (the dictionary) must hold every distinct (site, query) pair of the rows (and may keep those
 * whose rows are gone); once the pending queries are indexed, the FTS index must match it exactly.
 */
async function expectIndexInStep(db: typeof t.db) {
  const { gscPerformanceData: g, gscQueries: q } = db.t;
  const fromRows = (await db.q.selectDistinct({ site_id: g.site_id, query: g.query }).from(g)).sort(byKey);
  const listed = (await db.q.select({ site_id: q.site_id, query: q.query }).from(q)).sort(byKey);
  expect(listed).toEqual(expect.arrayContaining(fromRows));
  if (db.engine === "pg") return;
  const r = db.raw.reader;
  await indexAllPendingQueries((fn) => db.write(fn));
  // FTS5's own check of the index against its content table (throws SQLITE_CORRUPT_VTAB when out of step).
  await db.write((tx) => tx.run(sql`insert into gsc_queries_fts (gsc_queries_fts, rank) values ('integrity-check', 1)`));
  expect(r.query<{ n: number }, []>("select count(*) as n from gsc_queries_fts").get()!.n).toBe(listed.length);
}

type Found = Awaited<ReturnType<typeof searchQueries>>;
/**
 * Means to 12 significant digits: PostgreSQL sums floats in the order the plan reads the rows, which
 * differs between the index path and the scan (last-bit differences); SQLite reads both in index order.
 */
const rounded = (f: Found): Found => ({
  ...f,
  queries: f.queries.map((q) => ({
    ...q,
    avg_ctr: Number(q.avg_ctr.toPrecision(12)),
    avg_position: Number(q.avg_position.toPrecision(12)),
  })),
});

describe("indexed search = plain scan (property-style, seeded)", () => {
  const seed = Number(process.env.SEARCH_SEED ?? Date.now() % 1_000_000);
  const r = rng(seed);
  const days = ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"];
  let sites: number[] = [];
  let queries: string[] = [];

  beforeAll(async () => {
    console.log(`search property test seed ${seed} (replay: SEARCH_SEED=${seed})`);
    sites = [await site(t.db, "sc-domain:prop-a.example"), await site(t.db, "sc-domain:prop-b.example")];
    queries = Array.from({ length: 600 }, () => word(r, 1, 14));
    // Case variants of the same query are distinct queries (SQLite groups by exact text).
    for (let i = 0; i < 40; i++) queries.push(flipCase(r, pick(r, queries)));
    for (const s of sites) {
      for (const [d, day] of days.entries()) {
        // The first days' queries go into the FTS index; the later ones stay pending (searched directly).
        if (testEngine === "sqlite" && s === sites[1] && d === 2) await indexAllPendingQueries((fn) => asSqlite(t.db).write(fn));
        const rows: SourceRow[] = [];
        const seen = new Set<string>();
        for (let i = 0; i < 250; i++) {
          const q = pick(r, queries);
          const page = `https://x.example/${Math.floor(r() * 5)}`;
          const device = pick(r, ["DESKTOP", "MOBILE", "TABLET"]);
          if (seen.has(`${q}|${page}|${device}`)) continue;
          seen.add(`${q}|${page}|${device}`);
          const impressions = 1 + Math.floor(r() * 50);
          const clicks = Math.floor(r() * impressions);
          rows.push({ page, query: q, device, clicks, impressions, ctr: clicks / impressions, position: 1 + Math.floor(r() * 300) / 10 });
        }
        await storeRows(t.db, s, day, pick(r, ["web", "image"] as const), rows);
      }
    }
  });

  test("500 random terms (substrings in other case, random strings of 1-6 characters), ranges and limits", async () => {
    let nonEmpty = 0;
    let short = 0;
    for (let i = 0; i < 500; i++) {
      let term: string;
      if (r() < 0.6) {
        const q = pick(r, queries);
        const from = Math.floor(r() * q.length);
        term = flipCase(r, q.slice(from, from + 1 + Math.floor(r() * 5)));
      } else term = word(r, 1, 6);
      term = term.trim();
      if (!term) continue;
      if ([...term].length < 3) short++;
      const start = r() < 0.5 ? null : pick(r, days);
      const end = r() < 0.5 ? null : pick(r, days);
      const opts = { siteId: pick(r, sites), term, startDate: start, endDate: end, limit: pick(r, [1, 5, 1000]) };
      const indexed = rounded(await searchQueries(t.db, opts));
      const scanned = rounded(await searchQueries(t.db, { ...opts, using: "scan" }));
      expect({ seed, opts, result: indexed }).toEqual({ seed, opts, result: scanned });
      // The matches' sums from the rollup per query and (SQLite) from the packed day rows, whichever the default picks
      // (PostgreSQL: a 1-2 character term's from the packed day rows, "rollup" its statement before).
      for (const using of testEngine === "sqlite" ? (["rollup", "packed"] as const) : (["rollup"] as const))
        expect({ seed, opts, using, result: rounded(await searchQueries(t.db, { ...opts, using })) }).toEqual({
          seed,
          opts,
          using,
          result: scanned,
        });
      if (indexed.total > 0) nonEmpty++;
    }
    // The generator must produce real matches and both kinds of terms, or the comparison proves little.
    expect(nonEmpty).toBeGreaterThan(150);
    expect(short).toBeGreaterThan(50);
    if (testEngine === "pg") return;
    // SQLite: some queries are in the FTS index, some pending: both paths are exercised.
    const pending = asSqlite(t.db)
      .raw.reader.query<{ n: number }, []>(
        "select count(*) as n from gsc_queries where id > (select indexed_through from gsc_queries_indexed)",
      )
      .get()!.n;
    expect(pending).toBeGreaterThan(20);
    expect(asSqlite(t.db).raw.reader.query<{ n: number }, []>("select count(*) as n from gsc_queries_fts").get()!.n).toBeGreaterThan(100);
  });

  test("case: ASCII folded, other letters not (as SQLite's LIKE), though the trigram index folds them", async () => {
    const id = await site(t.db, "sc-domain:case.example");
    const row = (query: string): SourceRow => ({
      page: "https://c.example/",
      query,
      device: "MOBILE",
      clicks: 1,
      impressions: 1,
      ctr: 1,
      position: 1,
    });
    await storeRows(t.db, id, "2026-05-01", "web", ["Café Crème", "CAFÉ CRÈME", "Kelvin", "\u212Aelvin", "理髮店 台北"].map(row));
    const found = async (term: string) =>
      (await searchQueries(t.db, { siteId: id, term, startDate: null, endDate: null, limit: 100 })).queries.map((q) => q.query).sort();
    expect(await found("café")).toEqual(["Café Crème"]);
    expect(await found("CAFÉ")).toEqual(["CAFÉ CRÈME"]);
    expect(await found("caf")).toEqual(["CAFÉ CRÈME", "Café Crème"]);
    expect(await found("kelvin")).toEqual(["Kelvin"]);
    expect(await found("\u212Aelvin")).toEqual(["\u212Aelvin"]);
    expect(await found("理髮店")).toEqual(["理髮店 台北"]);
    expect(await found("理髮")).toEqual(["理髮店 台北"]);
    expect(await found('"')).toEqual([]);
  });
});

describe("the index follows every write", () => {
  const row = (query: string, page = "https://w.example/", device = "MOBILE"): SourceRow => ({
    page,
    query,
    device,
    clicks: 1,
    impressions: 2,
    ctr: 0.5,
    position: 3,
  });

  test("a query on the same day in two search types appeared that day once: windows of one type count its rows, windows of two its distinct days", async () => {
    const id = await site(t.db, "sc-domain:two-types.example");
    await storeRows(t.db, id, "2026-07-01", "web", [row("twin kind"), row("twin kind", "https://w.example/b")]);
    await storeRows(t.db, id, "2026-07-02", "web", [row("twin kind")]);
    await storeRows(t.db, id, "2026-07-02", "image", [row("twin kind")]);
    await storeRows(t.db, id, "2026-07-03", "image", [row("twin kind")]);
    const days = async (term: string, startDate: string, endDate: string) => {
      const opts = { siteId: id, term, startDate, endDate, limit: 10 };
      const found = await searchQueries(t.db, opts);
      expect(rounded(found)).toEqual(rounded(await searchQueries(t.db, { ...opts, using: "scan" })));
      return found.queries.map((q) => [q.query, q.days_appeared, q.total_impressions]);
    };
    for (const term of ["twin", "tw"]) {
      expect(await days(term, "2026-07-01", "2026-07-01")).toEqual([["twin kind", 1, 4]]);
      expect(await days(term, "2026-07-01", "2026-07-03")).toEqual([["twin kind", 3, 10]]);
      expect(await days(term, "2026-07-02", "2026-07-02")).toEqual([["twin kind", 1, 4]]);
      expect(await days(term, "2026-07-03", "2026-07-03")).toEqual([["twin kind", 1, 2]]);
    }
    if (testEngine === "pg") return;
    const d = (day: string) => Math.round(Date.parse(`${day}T00:00:00Z`) / 86_400_000);
    const one = (a: string, b: string) => windowHasOneType(asSqlite(t.db), id, d(a), d(b));
    expect([one("2026-07-01", "2026-07-01"), one("2026-07-02", "2026-07-02"), one("2026-07-01", "2026-07-03")]).toEqual([
      true,
      false,
      false,
    ]);
    expect([one("2026-07-03", "2026-07-03"), one("2026-06-01", "2026-06-30"), one("2026-07-01", "2026-07-01")]).toEqual([true, true, true]);
  });

  test("ingest, upsert of existing rows, stale-row deletes (overwrite), site delete", async () => {
    const a = await site(t.db, "sc-domain:writes-a.example");
    const b = await site(t.db, "sc-domain:writes-b.example");
    const ids = await storeRows(t.db, a, "2026-06-01", "web", [
      row("alpha one"),
      row("alpha one", "https://w.example/2"),
      row("beta two"),
      row("gamma three"),
    ]);
    await storeRows(t.db, b, "2026-06-01", "web", [row("alpha one"), row("delta four")]);
    await expectIndexInStep(t.db);
    const { gscPerformanceData: g, gscQueries: q } = t.db.t;
    const names = async (siteId: number) =>
      (await t.db.q.selectDistinct({ query: g.query }).from(g).where(eq(g.site_id, siteId))).map((x) => x.query).sort();
    const listed = async (siteId: number) =>
      (await t.db.q.select({ query: q.query }).from(q).where(eq(q.site_id, siteId))).map((x) => x.query).sort();
    expect(await names(a)).toEqual(["alpha one", "beta two", "gamma three"]);

    // Re-running the day updates the same rows: no duplicate, nothing new.
    await storeRows(t.db, a, "2026-06-01", "web", [row("alpha one"), row("beta two")]);
    expect(await names(a)).toEqual(["alpha one", "beta two", "gamma three"]);

    // Overwrite deletes the rows the source no longer has: a query's rows go with their last row, its
    // dictionary entry stays (ids are never reused), and search no longer finds it.
    await deleteRows(t.db, [ids[0]!, ids[3]!]);
    expect(await names(a)).toEqual(["alpha one", "beta two"]);
    await deleteRows(t.db, [ids[1]!]);
    expect(await names(a)).toEqual(["beta two"]);
    expect(await listed(a)).toEqual(["alpha one", "beta two", "gamma three"]);
    expect((await searchQueries(t.db, { siteId: a, term: "alpha", startDate: null, endDate: null, limit: 10 })).total).toBe(0);
    expect((await searchQueries(t.db, { siteId: b, term: "alpha", startDate: null, endDate: null, limit: 10 })).total).toBe(1);
    await expectIndexInStep(t.db);

    // Deleting the site cascades to its rows and its query list, and the FTS index follows.
    await purgeSite(t.db, a, "sc-domain:writes-a.example");
    expect(await names(a)).toEqual([]);
    expect(await listed(a)).toEqual([]);
    expect(await names(b)).toEqual(["alpha one", "delta four"]);
    await expectIndexInStep(t.db);
  });

  test.skipIf(testEngine === "pg")(
    "indexing goes in batches of INDEX_BATCH, oldest first, and a query searched before and after is found both times (SQLite: the FTS5 index is written in batches)",
    async () => {
      const id = await site(t.db, "sc-domain:batches.example");
      await indexAllPendingQueries((fn) => asSqlite(t.db).write(fn));
      const rows = Array.from({ length: INDEX_BATCH + 5 }, (_, i) => row(`batch query ${i}`));
      await storeRows(t.db, id, "2026-06-02", "web", rows);
      const found = async () =>
        (await searchQueries(t.db, { siteId: id, term: "query 7", startDate: null, endDate: null, limit: 1000 })).total;
      const before = await found();
      expect(before).toBe(rows.filter((r) => r.query.includes("query 7")).length);
      expect(await asSqlite(t.db).write((tx) => indexPendingQueries(tx))).toBe(INDEX_BATCH);
      expect(await found()).toBe(before);
      expect(await asSqlite(t.db).write((tx) => indexPendingQueries(tx))).toBe(5);
      expect(await asSqlite(t.db).write((tx) => indexPendingQueries(tx))).toBe(0);
      expect(await found()).toBe(before);
      await expectIndexInStep(t.db);
    },
  );

  test.skipIf(testEngine === "pg")(
    "a pending query whose rows are deleted before it is indexed stays in the dictionary, is indexed, and is not found (SQLite: FTS5 batches)",
    async () => {
      const id = await site(t.db, "sc-domain:pending.example");
      await indexAllPendingQueries((fn) => asSqlite(t.db).write(fn));
      const [keep, drop] = await storeRows(t.db, id, "2026-06-03", "web", [row("kept pending"), row("dropped pending")]);
      await deleteRows(t.db, [drop!]);
      await storeRows(t.db, id, "2026-06-03", "web", [row("added after")]);
      expect(keep).toBeDefined();
      await expectIndexInStep(t.db);
      const ids = asSqlite(t.db)
        .raw.reader.query<{ id: number; query: string }, [number]>("select id, query from gsc_queries where site_id = ? order by id")
        .all(id);
      // Ingest inserts a batch's new texts in sorted order (27fba8f): ids say nothing of the rows' order.
      expect(ids.map((x) => x.query).sort()).toEqual(["added after", "dropped pending", "kept pending"]);
      const found = async (term: string) =>
        (await searchQueries(t.db, { siteId: id, term, startDate: null, endDate: null, limit: 10 })).queries.map((x) => x.query);
      expect(await found("pending")).toEqual(["kept pending"]);
    },
  );

  test("after every migration: the FTS triggers (SQLite) or the trigram index (PostgreSQL); the old row triggers are gone", async () => {
    const gone = ["gsc_performance_data_queries_delete", "gsc_performance_data_queries_insert", "gsc_performance_data_queries_update"];
    if (t.db.engine === "pg") {
      const rows = await t.db.q.execute<{ name: string }>(sql`select tgname as name from pg_trigger where not tgisinternal order by 1`);
      for (const name of gone) expect(rows.rows.map((x) => x.name)).not.toContain(name);
      const index = await t.db.q.execute<{ def: string }>(
        sql`select indexdef as def from pg_indexes where indexname = 'gsc_queries_query_trgm_idx'`,
      );
      expect(index.rows[0]?.def).toContain("gin_trgm_ops");
      return;
    }
    const triggers = asSqlite(t.db)
      .raw.reader.query<{ name: string }, []>("select name from sqlite_master where type = 'trigger' order by name")
      .all()
      .map((x) => x.name);
    expect(triggers).toEqual(expect.arrayContaining(["gsc_queries_fts_delete", "gsc_queries_fts_update"]));
    for (const name of gone) expect(triggers).not.toContain(name);
  });
});

test.skipIf(testEngine === "pg")(
  "the FTS migration backfills the rows stored before it (SQLite: migrations/sqlite; PostgreSQL's backfill: test/migrations.test.ts)",
  async () => {
    const dir = tempDir("sitesync-fts-backfill-");
    try {
      // The migrations folder up to the one before the FTS migration.
      const folder = join(dir.dir, "migrations");
      cpSync(migrationsFolder, folder, { recursive: true });
      const journalPath = join(folder, "meta/_journal.json");
      const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
      const at = journal.entries.findIndex((e) => e.tag.endsWith("query_search_fts"));
      expect(at).toBeGreaterThan(0);
      writeFileSync(journalPath, JSON.stringify({ ...journal, entries: journal.entries.slice(0, at) }));
      const path = join(dir.dir, "app.db");
      migrate(path, undefined, folder);

      const conn = new Database(path);
      conn.run("insert into sites (domain, name) values ('sc-domain:old.example', 'Old'), ('sc-domain:old2.example', 'Old2')");
      const ins = conn.prepare(
        "insert into gsc_performance_data (site_id, date, page, query, device, search_type) values (?, ?, '/', ?, 'MOBILE', 'web')",
      );
      for (const [s, d, q] of [
        [1, "2026-01-01", "old query"],
        [1, "2026-01-02", "old query"],
        [1, "2026-01-02", "Other Thing"],
        [2, "2026-01-01", "old query"],
      ] as const)
        ins.run(s, d, q);
      conn.close();

      expect(migrate(path)).toBe(journal.entries.length - at);
      const db = new Database(path, { readonly: true });
      expect(db.query("select site_id, query from gsc_queries order by site_id, query").all()).toEqual([
        { site_id: 1, query: "Other Thing" },
        { site_id: 1, query: "old query" },
        { site_id: 2, query: "old query" },
      ]);
      expect(
        db
          .query("select q.site_id from gsc_queries_fts f join gsc_queries q on q.id = f.rowid where gsc_queries_fts match ?")
          .all(ftsTrigrams("OTHER")),
      ).toEqual([{ site_id: 1 }]);
      // Everything backfilled is in the FTS index: nothing pending.
      expect(db.query("select indexed_through from gsc_queries_indexed").all()).toEqual([{ indexed_through: 3 }]);
      db.close();
    } finally {
      dir.cleanup();
    }
  },
);

test.skipIf(testEngine === "pg")(
  "migration 0024 rebuilds the FTS index without positions in place: every query searchable, answers as the scan's",
  () => {
    const dir = tempDir("sitesync-fts-compact-");
    try {
      // The migrations folder up to the one before 0024, a file with data in that layout, then the rest.
      const folder = join(dir.dir, "migrations");
      cpSync(migrationsFolder, folder, { recursive: true });
      const journalPath = join(folder, "meta/_journal.json");
      const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
      const at = journal.entries.findIndex((e) => e.tag.endsWith("query_search_fts_compact"));
      expect(at).toBeGreaterThan(0);
      writeFileSync(journalPath, JSON.stringify({ ...journal, entries: journal.entries.slice(0, at) }));
      const path = join(dir.dir, "app.db");
      migrate(path, undefined, folder);

      const r = rng(18);
      const conn = new Database(path);
      conn.run("insert into sites (domain, name) values ('sc-domain:a.example', 'A'), ('sc-domain:b.example', 'B')");
      conn.run("insert into gsc_pages (site_id, page) values (1, '/a'), (2, '/b')");
      const texts = new Set<string>();
      while (texts.size < 300) texts.add(word(r, 3, 14));
      const addQuery = conn.prepare<{ id: number }, [number, string]>(
        "insert into gsc_queries (site_id, query) values (?, ?) returning id",
      );
      const detail = conn.prepare(
        "insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) values (?, ?, 0, ?, ?, 1, ?, ?, ?)",
      );
      const rollup = conn.prepare(
        "insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) values (?, ?, 0, ?, ?, ?, ?)",
      );
      let i = 0;
      for (const text of texts) {
        const siteId = 1 + (i++ % 2);
        const id = addQuery.get(siteId, text)!.id;
        for (let day = 20_000; day < 20_003; day++) {
          const [c, n, p] = [Math.floor(r() * 3), 1 + Math.floor(r() * 20), 100 + Math.floor(r() * 5000)];
          detail.run(siteId, day, siteId, id, c, n, p);
          rollup.run(siteId, day, id, c, n, p);
        }
      }
      // The old index holds the first 200 queries; the rest are pending (past the mark), as between two batches.
      conn.run("insert into gsc_queries_fts (rowid, query) select id, query from gsc_queries where id <= 200");
      conn.run("update gsc_queries_indexed set indexed_through = 200 where id = 1");
      conn.close();

      expect(migrate(path)).toBe(journal.entries.length - at);
      const db = new Database(path, { strict: true });
      try {
        const ddl = db.query<{ sql: string }, []>("select sql from sqlite_master where name = 'gsc_queries_fts'").get()!.sql;
        expect(ddl).toContain("detail=none");
        expect(ddl).toContain("columnsize=0");
        expect(db.query("select indexed_through as n from gsc_queries_indexed").get()).toEqual({ n: 300 });
        db.run("insert into gsc_queries_fts (gsc_queries_fts, rank) values ('integrity-check', 1)");
        expect(db.query("select count(*) as n from gsc_queries_fts").get()).toEqual({ n: 300 });
        // Every query found by its own text and by a 3-character piece of it, the indexed way as the scan does.
        const pieces = [...texts].flatMap((q) => [q, [...q].slice(0, 3).join(""), flipCase(r, [...q].slice(-3).join(""))]);
        let found = 0;
        for (const term of pieces.slice(0, 240)) {
          for (const siteId of [1, 2]) {
            const params = searchSqlParams({ site_id: siteId, pattern: containsPattern(term), start: "", end: "9999-12-31", limit: 1000 });
            const indexed = db.query(SEARCH_INDEXED_SQL).all({ ...params, fts: ftsTrigrams(term) });
            expect(indexed).toEqual(db.query(SEARCH_SCAN_SQL).all(params));
            found += indexed.length;
          }
        }
        expect(found).toBeGreaterThan(200);
      } finally {
        db.close();
      }
    } finally {
      dir.cleanup();
    }
  },
);

describe.skipIf(testEngine === "pg")("SQLite: a 1-2 character term's matches totalled from the packed day rows", () => {
  const row = (query: string, impressions: number, device = "MOBILE"): SourceRow => ({
    page: "https://p.example/",
    query,
    device,
    clicks: 1,
    impressions,
    ctr: 1 / impressions,
    position: 2.5,
  });

  /** The statements a search sends to the query processes and runs on the reader (for the packed day rows). */
  async function statementsOf(fn: () => Promise<unknown>): Promise<string[]> {
    const db = asSqlite(t.db);
    const pool = queryPool(db);
    const all = pool.all;
    const query = db.raw.reader.query;
    const seen: string[] = [];
    pool.all = ((sql: string, params: never) => {
      seen.push(sql);
      return all.call(pool, sql, params);
    }) as typeof pool.all;
    db.raw.reader.query = ((sql: string) => {
      seen.push(sql);
      return query.call(db.raw.reader, sql);
    }) as typeof db.raw.reader.query;
    try {
      await fn();
    } finally {
      pool.all = all;
      db.raw.reader.query = query;
    }
    return seen;
  }

  test("a short term reads the window's packed rows, not the rollup per query; a 3+ term the rollup", async () => {
    const id = await site(t.db, "sc-domain:packed-path.example");
    await storeRows(t.db, id, "2026-08-01", "web", [row("ab one", 5), row("ab two", 7), row("cd", 9)]);
    await storeRows(t.db, id, "2026-08-02", "image", [row("ab one", 3)]);
    const opts = { siteId: id, startDate: "2026-08-01", endDate: "2026-08-02", limit: 10 };
    const short = await statementsOf(() => searchQueries(t.db, { ...opts, term: "ab" }));
    expect(short.some((q) => q.includes("from gsc_day_query_sums"))).toBe(true);
    expect(short.some((q) => q.includes("gsc_day_query_totals"))).toBe(false);
    const long = await statementsOf(() => searchQueries(t.db, { ...opts, term: "ab o" }));
    expect(long.some((q) => q.includes("gsc_day_query_totals"))).toBe(true);
    expect(long.some((q) => q.includes("from gsc_day_query_sums"))).toBe(false);
    const found = await searchQueries(t.db, { ...opts, term: "ab" });
    expect(found).toEqual(await searchQueries(t.db, { ...opts, term: "ab", using: "scan" }));
    expect(found.queries.map((q) => [q.query, q.total_impressions, q.days_appeared])).toEqual([
      ["ab one", 8, 2],
      ["ab two", 7, 1],
    ]);
  });

  test("ties in impressions ordered by the text's bytes (SQLite's BINARY): characters past U+FFFF after U+E000-U+FFFF", async () => {
    const id = await site(t.db, "sc-domain:packed-ties.example");
    // One impression each: every match ties; the order is the texts' alone. U+1F600 is a surrogate pair in UTF-16
    // (0xD83D...), which orders before U+FF21 there but after it in UTF-8.
    const texts = ["x\u{1F600}", "x\uFF21", "x\uE000", "xZ", "xz", "x\u00E9", "x", "xa\u{1F600}", "xa\uFFFD"];
    await storeRows(
      t.db,
      id,
      "2026-08-03",
      "web",
      texts.map((q) => row(q, 1)),
    );
    for (const limit of [3, 5, 100]) {
      const opts = { siteId: id, term: "x", startDate: null, endDate: null, limit };
      const packed = await searchQueries(t.db, { ...opts, using: "packed" });
      expect({ limit, packed }).toEqual({ limit, packed: await searchQueries(t.db, { ...opts, using: "scan" }) });
    }
    expect(
      (await searchQueries(t.db, { siteId: id, term: "x", startDate: null, endDate: null, limit: 100 })).queries.map((q) => q.query),
    ).toEqual([...texts].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  });

  test("a short term's ids read on the reader in slices of the site's texts: 40,000 queries, every slice's edge, as the scan", async () => {
    const id = await site(t.db, "sc-domain:packed-slices.example");
    // 40,000 texts (2.4 slices of 16,384), matches at every slice's edge and between; other sites' texts around them.
    const texts = Array.from({ length: 40_000 }, (_, i) => `${String(i).padStart(5, "0")}${i % 7 === 0 ? " zq" : ""}`);
    await storeRows(
      t.db,
      id,
      "2026-08-05",
      "web",
      texts.map((q, i) => row(q, 1 + (i % 13))),
    );
    const pool = queryPool(asSqlite(t.db));
    const all = pool.all;
    let sent = 0;
    pool.all = ((sql: string, params: never) => {
      sent++;
      return all.call(pool, sql, params);
    }) as typeof pool.all;
    let results: Awaited<ReturnType<typeof searchQueries>>[] = [];
    const cases = [
      ["zq", 1000],
      ["1", 5],
      ["9", 1000],
      ["0", 40_000],
    ] as const;
    try {
      for (const [term, limit] of cases)
        results.push(await searchQueries(t.db, { siteId: id, term, startDate: null, endDate: null, limit }));
    } finally {
      pool.all = all;
    }
    expect(sent).toBe(0);
    for (const [k, [term, limit]] of cases.entries())
      expect({ term, limit, found: results[k] }).toEqual({
        term,
        limit,
        found: await searchQueries(t.db, { siteId: id, term, startDate: null, endDate: null, limit, using: "scan" }),
      });
    expect(results.map((r) => r.total)).toEqual(["zq", "1", "9", "0"].map((term) => texts.filter((q) => q.includes(term)).length));
    results = [];
  });
});

describe.skipIf(testEngine !== "pg")("PostgreSQL: a 3+ character term's many matches over a short window from the packed day rows", () => {
  const row = (query: string, impressions: number): SourceRow => ({
    page: "https://p.example/",
    query,
    device: "MOBILE",
    clicks: 1,
    impressions,
    ctr: 1 / impressions,
    position: 2.5,
  });

  /** The statements a search sends to the server. */
  const statementsOf = (fn: () => Promise<unknown>) => pgStatementsOf(t.db, fn);

  test("more than 150 matches a day: the packed rows; fewer: the rollup for the ids found; answers as the scan", async () => {
    const id = await addSite(t.db, "sc-domain:pg-packed-path.example");
    // 200 matches of 'zqx' on the first day (more than 150 a day over 1 day, fewer over 2), one other text.
    await storeRows(t.db, id, "2026-08-01", "web", [
      ...Array.from({ length: 200 }, (_, i) => row(`zqx ${i}`, 1 + (i % 7))),
      row("other", 3),
    ]);
    await storeRows(t.db, id, "2026-08-02", "image", [row("zqx 1", 4), row("zqx 250", 2)]);
    for (const [startDate, endDate, packed] of [
      ["2026-08-01", "2026-08-01", true],
      ["2026-08-01", "2026-08-02", false],
    ] as const) {
      for (const limit of [5, 1000]) {
        const opts = { siteId: id, term: "zqx", startDate, endDate, limit };
        let found: Awaited<ReturnType<typeof searchQueries>> | null = null;
        const sent = await statementsOf(async () => {
          found = await searchQueries(t.db, opts);
        });
        expect({ startDate, endDate, packed: sent.some((q) => q.includes("gsc_day_query_sums")) }).toEqual({ startDate, endDate, packed });
        expect(sent.some((q) => q.includes("gsc_day_query_totals"))).toBe(!packed);
        expect(found!).toEqual(await searchQueries(t.db, { ...opts, using: "scan" }));
      }
    }
  });
});
