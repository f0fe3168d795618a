// `bun run db:copy` as a real process, both ways between SQLite files and a real PostgreSQL: data synced by the
// real service (demo source) copied table by table with ids, contents and counts checked, and back again with
// rows written on PostgreSQL meanwhile (the service then runs on the copy: its API key, sites and query search);
// refusals; --replace; copies of 50k rows killed with SIGKILL halfway and finished with --resume; a
// verification that fails.
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { asc, sql } from "drizzle-orm";
import { drizzle as drizzleSqlite } from "drizzle-orm/bun-sqlite";
import { getTableConfig as pgTableConfig } from "drizzle-orm/pg-core";
import { getTableConfig as sqliteTableConfig } from "drizzle-orm/sqlite-core";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { openPg } from "../src/db/pg/open.ts";
import { pgTablesByName, sqliteTablesByName } from "../src/db/pg/tables.ts";
import { tempDir } from "./helpers/db.ts";
import { postgresSkipReason, usePostgres } from "./helpers/postgres.ts";
import { request, startServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/sync.ts";

const root = join(import.meta.dir, "..");
// Big enough that a copy killed at its first progress line of gsc_queries (1,000-row batches: 50 lines) is
// far from done, and a resume has most of the table to finish; 200,000 rows proved the same at 4x the copying.
const BIG = 50_000;

/** Runs `bun run db:copy` with these arguments to the end. */
async function dbCopy(args: string[]) {
  const proc = Bun.spawn([process.execPath, join(root, "src/db/copy/cli.ts"), ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

// The process registry's heartbeats, the commit tokens (each process writes its own) and a sync's staged day (its
// task's own, staged again from scratch) are not copied; every other table is.
const notCopiedTables = new Set(["db_connections", "commit_tokens", "gsc_staged_detail", "gsc_staged_query_totals"]);
const copiedTables = (names: Iterable<string>) => [...names].filter((n) => !notCopiedTables.has(n));

/** Row count of every copied table of the SQLite file. */
function sqliteCounts(path: string): Record<string, number> {
  const db = new Database(path, { readonly: true });
  try {
    return Object.fromEntries(
      copiedTables(sqliteTablesByName().keys()).map((n) => [n, db.query<{ n: number }, []>(`select count(*) as n from "${n}"`).get()!.n]),
    );
  } finally {
    db.close();
  }
}

async function pgCounts(url: string): Promise<Record<string, number>> {
  const pg = openPg(url, { max: 1 });
  try {
    const out: Record<string, number> = {};
    for (const n of copiedTables(pgTablesByName().keys()))
      out[n] = Number((await pg.orm.execute<{ n: string }>(sql.raw(`select count(*) as n from "${n}"`))).rows[0]!.n);
    return out;
  } finally {
    await pg.close();
  }
}

/** Rows of one table of the PostgreSQL database at `url`. */
async function otherCount(url: string, table: string): Promise<number> {
  const pg = openPg(url, { max: 1 });
  try {
    return Number((await pg.orm.execute<{ n: string }>(sql.raw(`select count(*) as n from "${table}"`))).rows[0]!.n);
  } finally {
    await pg.close();
  }
}

/** Sessions on the database at `url` other than the one asking. */
async function otherSessions(url: string): Promise<number> {
  const pg = openPg(url, { max: 1 });
  try {
    const r = await pg.pool.query<{ n: string }>(
      "select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    return Number(r.rows[0]!.n);
  } finally {
    await pg.close();
  }
}

/** Every row of every table through each engine's Drizzle schema, in primary-key order: the same JS values on both. */
async function allRows(path: string, url: string) {
  const sdb = drizzleSqlite({ client: new Database(path, { readonly: true }) });
  const pg = openPg(url, { max: 1 });
  try {
    const sqliteRows: Record<string, unknown[]> = {};
    const pgRows: Record<string, unknown[]> = {};
    for (const [name, t] of sqliteTablesByName()) {
      if (notCopiedTables.has(name)) continue;
      const cfg = sqliteTableConfig(t);
      const pk = cfg.primaryKeys[0]?.columns ?? cfg.columns.filter((c) => c.primary);
      sqliteRows[name] = sdb
        .select()
        .from(t)
        .orderBy(...pk.map((c) => asc(c)))
        .all();
    }
    for (const [name, t] of pgTablesByName()) {
      if (notCopiedTables.has(name)) continue;
      const cfg = pgTableConfig(t);
      // In SQLite's key order: a key's columns may be ordered differently per engine (gsc_day_query_totals).
      const s = sqliteTablesByName().get(name)!;
      const sqliteKey = (sqliteTableConfig(s).primaryKeys[0]?.columns ?? []).map((c) => c.name);
      const pk = sqliteKey.length
        ? sqliteKey.map((n) => cfg.columns.find((c) => c.name === n)!)
        : (cfg.primaryKeys[0]?.columns ?? cfg.columns.filter((c) => c.primary));
      pgRows[name] = await pg.orm
        .select()
        .from(t)
        .orderBy(...pk.map((c) => asc(c)));
    }
    return { sqliteRows, pgRows };
  } finally {
    sdb.$client.close();
    await pg.close();
  }
}

/** A migrated file with one site and `n` Search Console rows, generated inside SQLite (fast). */
function seedBig(path: string, n: number) {
  migrate(path);
  const db = new Database(path);
  try {
    db.run("insert into sites (domain, name) values ('sc-domain:big.example', 'Big')");
    // n queries in the dictionary (the table with ids: the one killed and resumed below) and n / 4 detail rows
    // (WITHOUT ROWID on SQLite: copied by key), so a copy moves about as many rows as before the compact layout.
    db.run(
      `with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < ${Math.ceil(n / 1000)})
       insert into gsc_pages (site_id, page) select 1, 'https://big.example/p/' || i from s`,
    );
    db.run(
      `with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < ${n})
       insert into gsc_queries (site_id, query) select 1, 'query ' || i from s`,
    );
    db.run(
      `with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < ${n})
       insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
       select 1, 20454 + i % 270, 1, 1 + i / 1000, 1 + 4 * i, 1 + i % 3, i % 50, 100 + i % 900, (100 + i % 900) * (100 + i % 8000)
       from s where i < ${n / 4}`,
    );
    db.run(`insert into gsc_queries_indexed (id, indexed_through) values (1, 0) on conflict (id) do nothing`);
  } finally {
    db.close();
  }
}

describe.skipIf(postgresSkipReason !== null)("db:copy (real PostgreSQL)", () => {
  const server = usePostgres();
  const dir = tempDir("sitesync-copy-");
  const synced = join(dir.dir, "synced.db");
  const big = join(dir.dir, "big.db");
  // The admin key made on the synced file (its hash is copied with api_keys).
  let adminKey = "";

  beforeAll(async () => {
    // Real data: the service syncs three sites from the demo source (daily and hourly), with an API key
    // and the audit log of its writes, then stops.
    const s = await startServer({
      workers: 1,
      syncWorkers: 1,
      dbPath: synced,
      env: { SYNC_SOURCE: "demo", DEMO_ROWS_PER_DAY: "30", SYNC_SCHEDULER: "false" },
    });
    try {
      const created = await request(s.url, "POST", "/api/v1/keys", { name: "copy-test", scope: "admin" });
      expect(created.status).toBe(201);
      adminKey = created.body.key;
      const auth = { authorization: `Bearer ${adminKey}` };
      const jobs: number[] = [];
      for (const name of ["alpha", "beta", "gamma"]) {
        const site = await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:${name}.copy.example`, name }, auth);
        expect(site.status).toBe(201);
        const daily = await request(s.url, "POST", `/api/v1/sync/trigger/${site.body.id}?days=4`, undefined, auth);
        expect(daily.status).toBe(202);
        const hourly = await request(
          s.url,
          "POST",
          `/api/v1/sites/${site.body.id}/sync-tasks`,
          { task_type: "hourly_sync", days: 2 },
          auth,
        );
        expect(hourly.status).toBe(202);
        jobs.push(daily.body.job_id, hourly.body.job_id);
      }
      for (const id of jobs) {
        await waitFor(
          `job ${id}`,
          async () => (await request(s.url, "GET", `/api/v1/sync/job/${id}`, undefined, auth)).body.status === "completed",
          60_000,
          200,
        );
      }
    } finally {
      await s.stop();
    }
    // A sync killed mid-way through a big day leaves its staging rows behind: they are not copied.
    const file = new Database(synced);
    file.run("insert into gsc_staged_detail values (1, 1, 1, 1, 1, 10, 100), (1, 1, 2, 1, 2, 20, 200)");
    file.run("insert into gsc_staged_query_totals values (1, 1, 1, 10, 100)");
    file.close();
    seedBig(big, BIG);
  });
  afterAll(() => dir.cleanup());

  describe("SQLite -> PostgreSQL", () => {
    test("copies every table of synced data: same rows, ids and values; sequences moved past the ids; a progress bar on stderr", async () => {
      const url = await server.newDatabase();
      const r = await dbCopy(["--from", synced, "--to", url, "--progress", "bar"]);
      expect(r.stderr).toContain("gsc_query_detail");
      expect(r.stderr).toContain("100%");
      expect(r.code).toBe(0);
      const counts = sqliteCounts(synced);
      // The data is real and every kind of it is there.
      for (const t of [
        "sites",
        "sync_tasks",
        "gsc_query_detail",
        "gsc_pages",
        "gsc_day_query_totals",
        "gsc_synced_days",
        "hourly_rankings",
        "gsc_queries",
        "api_keys",
        "audit_log",
      ]) {
        expect(counts[t]).toBeGreaterThan(0);
      }
      expect(await pgCounts(url)).toEqual(counts);
      for (const [t, n] of Object.entries(counts)) expect(r.stdout).toMatch(new RegExp(`^${t} +source ${n} +target ${n} +ok$`, "m"));
      expect(r.stdout).toMatch(/^db_connections +not copied: the process registry/m);
      expect(r.stdout).toMatch(/^gsc_staged_detail +not copied: a running sync's staged day/m);
      expect(await otherCount(url, "gsc_staged_detail")).toBe(0);
      expect(r.stdout).toMatch(/every table's row count matches/);
      const { sqliteRows, pgRows } = await allRows(synced, url);
      expect(pgRows).toEqual(sqliteRows);

      const pg = openPg(url, { max: 1 });
      try {
        const next = await pg.orm.execute<{ id: number }>(
          sql`insert into sites (domain, name) values ('sc-domain:new.example', 'New') returning id`,
        );
        expect(next.rows[0]!.id).toBe(counts.sites! + 1);
      } finally {
        await pg.close();
      }
    });

    test("refuses a non-empty target without --resume or --replace, and leaves it as it was; --replace copies again", async () => {
      const url = await server.newDatabase();
      expect((await dbCopy(["--from", synced, "--to", url, "--progress", "none"])).code).toBe(0);
      const before = await pgCounts(url);
      const again = await dbCopy(["--from", synced, "--to", url, "--progress", "none"]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/refused: the target database is not empty: .*sites \(3 rows\).*--resume.*--replace/);
      expect(await pgCounts(url)).toEqual(before);

      const replaced = await dbCopy(["--from", synced, "--to", url, "--progress", "none"].concat("--replace"));
      expect(replaced.code).toBe(0);
      expect(await pgCounts(url)).toEqual(sqliteCounts(synced));
    });

    test(`${BIG} rows: a copy killed with SIGKILL halfway is refused a plain re-run and finished by --resume, counts verified`, async () => {
      const url = await server.newDatabase();
      const proc = Bun.spawn(
        [process.execPath, join(root, "src/db/copy/cli.ts"), "--from", big, "--to", url, "--progress", "lines", "--batch-size", "1000"],
        {
          cwd: root,
          stdout: "ignore",
          stderr: "pipe",
        },
      );
      // Kill it once it reports a part of the big table (stderr lines: "gsc_queries: 10000/50000 rows").
      let seen = "";
      const reader = proc.stderr.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
        const m = [...seen.matchAll(/gsc_queries: (\d+)\/(\d+) rows/g)].at(-1);
        if (m && Number(m[1]) > 0 && Number(m[1]) < BIG / 2) {
          proc.kill("SIGKILL");
          break;
        }
      }
      await proc.exited;
      expect(proc.signalCode).toBe("SIGKILL");
      // The server finishes (and commits) a batch already sent before it notices the client is gone.
      await waitFor("the killed copy's connections to end", async () => (await otherSessions(url)) === 0, 30_000, 100);
      const partial = (await pgCounts(url)).gsc_queries!;
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(BIG);

      const plain = await dbCopy(["--from", big, "--to", url, "--progress", "none"]);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toContain("refused: the target database is not empty");

      const resumed = await dbCopy(["--from", big, "--to", url, "--progress", "lines", "--resume"]);
      expect(resumed.stderr).toMatch(new RegExp(`gsc_queries: ${partial}/${BIG} rows`));
      expect(resumed.code).toBe(0);
      expect(resumed.stdout).toMatch(new RegExp(`^gsc_queries +source ${BIG} +target ${BIG} +ok$`, "m"));
      expect(resumed.stdout).toMatch(new RegExp(`^gsc_query_detail +source ${BIG / 4} +target ${BIG / 4} +ok$`, "m"));
      const pg = openPg(url, { max: 1 });
      try {
        const r = await pg.orm.execute<{ n: string; ids: string; max: string; clicks: string }>(
          sql`select count(*) as n, count(distinct id) as ids, max(id) as max, (select sum(clicks) from gsc_query_detail) as clicks from gsc_queries`,
        );
        const src = new Database(big, { readonly: true });
        const s = src.query<{ clicks: number }, []>("select sum(clicks) as clicks from gsc_query_detail").get()!;
        src.close();
        expect(r.rows[0]).toEqual({ n: String(BIG), ids: String(BIG), max: String(BIG), clicks: String(s.clicks) });
      } finally {
        await pg.close();
      }
    });

    test("verification fails when the source lost rows since the first copy (a resume does not delete)", async () => {
      const url = await server.newDatabase();
      const changed = join(dir.dir, "changed.db");
      copyFileSync(synced, changed);
      expect((await dbCopy(["--from", changed, "--to", url, "--progress", "none"])).code).toBe(0);
      const db = new Database(changed);
      db.run("PRAGMA foreign_keys = ON");
      db.run("delete from sites where id = (select max(id) from sites)");
      db.close();
      const r = await dbCopy(["--from", changed, "--to", url, "--progress", "none", "--resume"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^sites +source 2 +target 3 +DIFFERENT$/m);
      expect(r.stderr).toMatch(/row counts differ in .*sites.*--replace/);
    });

    test("a value PostgreSQL refuses (text in an integer column, which SQLite stores) fails the copy naming the table and rows", async () => {
      const odd = join(dir.dir, "odd.db");
      copyFileSync(synced, odd);
      const db = new Database(odd);
      db.run("update gsc_query_detail set clicks = 'lots' where day = (select max(day) from gsc_query_detail)");
      db.close();
      const r = await dbCopy(["--from", odd, "--to", await server.newDatabase(), "--progress", "none"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^db:copy failed: gsc_query_detail, rows \([\d, ]+\)\.\.\([\d, ]+\) \(key\): invalid input syntax for type integer: "lots"$/m,
      );
    });

    test.each([
      {
        name: "no such source file",
        args: (u: string) => ["--from", "/nonexistent/app.db", "--to", u],
        code: 1,
        err: /refused: no SQLite database at \/nonexistent\/app.db/,
      },
      {
        name: "target neither SQLite nor PostgreSQL",
        args: () => ["--from", "./x.db", "--to", "mysql://h/db"],
        code: 2,
        err: /expected an SQLite file .* or a postgres:\/\/ or postgresql:\/\/ URL, got 'mysql:\/\/h\/db'/,
      },
      {
        name: "both SQLite",
        args: () => ["--from", "./x.db", "--to", "./y.db"],
        code: 2,
        err: /both SQLite files .*bun run backup.*one must be SQLite and the other PostgreSQL/,
      },
      { name: "both PostgreSQL", args: (u: string) => ["--from", u, "--to", u], code: 2, err: /both PostgreSQL databases .*pg_dump/ },
      {
        name: "--resume with --replace",
        args: (u: string) => ["--from", "./x.db", "--to", u, "--resume", "--replace"],
        code: 2,
        err: /cannot be used with/,
      },
      { name: "in-memory source", args: (u: string) => ["--from", ":memory:", "--to", u], code: 2, err: /in-memory/ },
      { name: "missing --to", args: () => ["--from", "./x.db"], code: 2, err: /--to <database>/ },
    ])("bad input: $name", async ({ args, code, err }) => {
      const r = await dbCopy(args(server.adminUrl()));
      expect(r.stderr).toMatch(err);
      expect(r.code).toBe(code);
    });

    test("refuses a source that is not at the current schema", async () => {
      const old = join(dir.dir, "old.db");
      const db = new Database(old);
      db.run("create table sites (id integer primary key, domain text)");
      db.close();
      const r = await dbCopy(["--from", old, "--to", await server.newDatabase()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`refused: ${old} is not at the current schema: run \`DATABASE_URL=${old} bun run migrate\` first`);
    });
  });

  describe("PostgreSQL -> SQLite", () => {
    /**
     * A PostgreSQL database holding the synced file's data, plus rows written on PostgreSQL since: made once, on the
     * first call (a db:copy process and its writes), for the tests below that only read it (a copy's source).
     */
    let pgSource: Promise<string> | undefined;
    const pgWithSyncedData = () => (pgSource ??= makePgWithSyncedData());
    async function makePgWithSyncedData(): Promise<string> {
      const url = await server.newDatabase();
      expect((await dbCopy(["--from", synced, "--to", url, "--progress", "none"])).code).toBe(0);
      const pg = openPg(url, { max: 1 });
      try {
        // Written on PostgreSQL: a site with rows of new pages and queries (dictionary entries with PostgreSQL's
        // ids), a day marker and hourly rows; and one site's rows of a day deleted.
        await pg.pool.query("insert into sites (domain, name, is_active) values ('sc-domain:delta.copy.example', 'delta', false)");
        await pg.pool.query(`insert into gsc_pages (site_id, page)
          select (select id from sites where name = 'delta'), 'https://delta.example/' || i from generate_series(0, 6) i`);
        await pg.pool.query(`insert into gsc_queries (site_id, query)
          select (select id from sites where name = 'delta'), 'delta written on pg ' || i from generate_series(0, 10) i`);
        await pg.pool.query(`insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
          select s.id, 20758 + i % 3, 1, p.id, q.id, 2, sum(i), sum(10 * i), sum(2500 * i)
            from generate_series(1, 60) i cross join sites s
            join gsc_pages p on p.site_id = s.id and p.page = 'https://delta.example/' || (i % 7)
            join gsc_queries q on q.site_id = s.id and q.query = 'delta written on pg ' || (i % 11)
           where s.name = 'delta' group by s.id, 20758 + i % 3, p.id, q.id`);
        // Its day × query rollup, as the sync rebuilds it after storing a day.
        await pg.pool.query(`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
          select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position)
            from gsc_query_detail where site_id = (select id from sites where name = 'delta') group by 1, 2, 3, 4`);
        await pg.pool.query(
          "insert into gsc_synced_days (site_id, date, search_type, row_count) select id, '2026-11-01', 'web', 20 from sites where name = 'delta'",
        );
        await pg.pool.query(`insert into hourly_rankings (site_id, date, hour, hour_timestamp, query, page, device, clicks)
          select id, '2026-11-01', 5, '2026-11-01T05:00:00Z', 'delta hourly', '/', 'DESKTOP', 3 from sites where name = 'delta'`);
        await pg.pool.query(
          "delete from gsc_query_detail where site_id = 1 and day = (select min(day) from gsc_query_detail where site_id = 1)",
        );
        // A live process's heartbeat on PostgreSQL: not copied into the file.
        await pg.pool.query(
          "insert into db_connections (host, pid, role, started_at, last_seen_at) values ('pg-host', 4242, 'http', '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z')",
        );
      } finally {
        await pg.close();
      }
      return url;
    }

    /** The FTS5 index of an SQLite file agrees with gsc_queries (throws if not), and its mark covers every id. */
    function expectSearchIndexed(path: string) {
      // (integrity-check is a write command to FTS5, though it changes nothing)
      const db = new Database(path);
      try {
        db.run("insert into gsc_queries_fts (gsc_queries_fts, rank) values ('integrity-check', 1)");
        const r = db
          .query<{ mark: number; max: number; fts: number; n: number }, []>(
            `select (select indexed_through from gsc_queries_indexed) as mark, (select max(id) from gsc_queries) as max,
                  (select count(*) from gsc_queries_fts where gsc_queries_fts match '"wri" AND "rit" AND "itt" AND "tte" AND "ten" AND "en " AND "n o" AND " on" AND "on " AND "n p" AND " pg"') as fts,
                  (select count(*) from gsc_queries where query like '%written on pg%') as n`,
          )
          .get()!;
        expect(r.mark).toBe(r.max);
        expect(r.fts).toBe(r.n);
      } finally {
        db.close();
      }
    }

    test("copies every table back, with the rows written on PostgreSQL: same rows and ids; the service runs on the copy (key, sites, search, new ids)", async () => {
      const url = await pgWithSyncedData();
      const back = join(dir.dir, "back.db");
      const r = await dbCopy(["--from", url, "--to", back, "--progress", "bar"]);
      expect(r.stderr).toContain("gsc_query_detail");
      expect(r.stderr).toContain("100%");
      expect(r.code).toBe(0);
      const counts = await pgCounts(url);
      expect(counts.sites).toBe(4);
      for (const [t, n] of Object.entries(counts)) expect(r.stdout).toMatch(new RegExp(`^${t} +source ${n} +target ${n} +ok$`, "m"));
      expect(sqliteCounts(back)).toEqual(counts);
      const registry = new Database(back, { readonly: true });
      expect(registry.query("select count(*) as n from db_connections").get()).toEqual({ n: 0 });
      registry.close();
      const { sqliteRows, pgRows } = await allRows(back, url);
      // The FTS mark is each engine's own (PostgreSQL's is not moved by its writes; the copy's covers every id).
      delete sqliteRows.gsc_queries_indexed;
      delete pgRows.gsc_queries_indexed;
      expect(sqliteRows).toEqual(pgRows);
      expectSearchIndexed(back);

      const s = await startServer({ workers: 1, dbPath: back, env: { SYNC_SCHEDULER: "false" } });
      try {
        const auth = { authorization: `Bearer ${adminKey}` };
        const sites = await request(s.url, "GET", "/api/v1/sites?active_only=false&limit=100", undefined, auth);
        expect(sites.status).toBe(200);
        const list = (sites.body.sites ?? sites.body.items ?? sites.body) as { id: number; name: string }[];
        expect(list.map((x) => x.name).sort()).toEqual(["alpha", "beta", "delta", "gamma"]);
        const delta = list.find((x) => x.name === "delta")!;
        const found = await request(s.url, "GET", `/api/v1/sites/${delta.id}/queries/search?search_term=ON+PG+3`, undefined, auth);
        expect(found.status).toBe(200);
        // Rows i = 3, 14, 25, 36, 47, 58 (i % 11 = 3) of query 'delta written on pg 3': clicks are i.
        expect(found.body.queries).toEqual([
          expect.objectContaining({ query: "delta written on pg 3", total_clicks: 3 + 14 + 25 + 36 + 47 + 58 }),
        ]);
        const created = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:epsilon.copy.example", name: "epsilon" }, auth);
        expect(created.status).toBe(201);
        expect(created.body.id).toBe(Math.max(...list.map((x) => x.id)) + 1);
      } finally {
        await s.stop();
      }
    });

    test("refuses a non-empty file without --resume or --replace, and leaves it as it was; --replace copies again with its search index right", async () => {
      const url = await pgWithSyncedData();
      const file = join(dir.dir, `replace-${Date.now()}.db`);
      // A file holding other data (the synced one) is refused, then replaced.
      copyFileSync(synced, file);
      const before = sqliteCounts(file);
      const again = await dbCopy(["--from", url, "--to", file, "--progress", "none"]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/refused: the target database is not empty: .*sites \(3 rows\).*--resume.*--replace/);
      expect(sqliteCounts(file)).toEqual(before);
      const replaced = await dbCopy(["--from", url, "--to", file, "--progress", "none", "--replace"]);
      expect(replaced.code).toBe(0);
      expect(sqliteCounts(file)).toEqual(await pgCounts(url));
      expectSearchIndexed(file);
    });

    test("refuses a file the service is running on", async () => {
      const url = await pgWithSyncedData();
      const s = await startServer({ workers: 1 });
      try {
        const r = await dbCopy(["--from", url, "--to", s.dbPath, "--progress", "none"]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(
            `refused: the database ${s.dbPath} is already served by sitesync pid ${s.proc.pid} .*: stop it before copying into this file`,
          ),
        );
      } finally {
        await s.cleanup();
      }
    });

    test(`${BIG} rows: a copy killed with SIGKILL halfway is refused a plain re-run and finished by --resume, counts verified`, async () => {
      const url = await server.newDatabase();
      expect((await dbCopy(["--from", big, "--to", url, "--progress", "none"])).code).toBe(0);
      const file = join(dir.dir, "big-back.db");
      const proc = Bun.spawn(
        [process.execPath, join(root, "src/db/copy/cli.ts"), "--from", url, "--to", file, "--progress", "lines", "--batch-size", "1000"],
        {
          cwd: root,
          stdout: "ignore",
          stderr: "pipe",
        },
      );
      let seen = "";
      const reader = proc.stderr.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
        const m = [...seen.matchAll(/gsc_queries: (\d+)\/(\d+) rows/g)].at(-1);
        if (m && Number(m[1]) > 0 && Number(m[1]) < BIG / 2) {
          proc.kill("SIGKILL");
          break;
        }
      }
      await proc.exited;
      expect(proc.signalCode).toBe("SIGKILL");
      const partial = sqliteCounts(file).gsc_queries!;
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(BIG);

      const plain = await dbCopy(["--from", url, "--to", file, "--progress", "none"]);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toContain("refused: the target database is not empty");

      const resumed = await dbCopy(["--from", url, "--to", file, "--progress", "lines", "--resume"]);
      expect(resumed.stderr).toMatch(new RegExp(`gsc_queries: ${partial}/${BIG} rows`));
      expect(resumed.code).toBe(0);
      expect(resumed.stdout).toMatch(new RegExp(`^gsc_queries +source ${BIG} +target ${BIG} +ok$`, "m"));
      const db = new Database(file, { readonly: true });
      const src = new Database(big, { readonly: true });
      try {
        const q = "select count(*) as n, count(distinct id) as ids, max(id) as max from gsc_queries";
        expect(db.query(q).get()).toEqual(src.query(q).get());
        const d = "select count(*) as n, sum(clicks) as clicks, sum(sum_position) as sp from gsc_query_detail";
        expect(db.query(d).get()).toEqual(src.query(d).get());
      } finally {
        db.close();
        src.close();
      }
    });

    test("refuses a PostgreSQL source that is not at the current schema", async () => {
      const url = await server.newDatabase();
      const r = await dbCopy(["--from", url, "--to", join(dir.dir, "never.db"), "--progress", "none"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /refused: 127\.0\.0\.1:\d+\/sitesync_test_\S+ is not at the current schema: run `DATABASE_URL=<its URL> bun run migrate` first/,
      );
    });
  });
});
