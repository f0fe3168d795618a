import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { runReadOnlySqlPg } from "../src/db/pg/mcp-sql.ts";
import { checkSingleSelect, expandSitePlaceholders, QUERYABLE_TABLES, runReadOnlySql } from "../src/mcp/sql.ts";
import { openReadOnly, runStatement } from "../src/mcp/sql-runner.ts";
import { tempDb, testEngine } from "./helpers/db.ts";

// The layers of the MCP `query` tool below the tool itself: the statement check, the compiled-program
// check (SQLite) or the plan check in a READ ONLY transaction (PostgreSQL), and the read-only
// connection, each on its own (mcp.api.test.ts drives them through the server).

let t: ReturnType<typeof tempDb>;
beforeAll(async () => {
  t = tempDb();
  const { sites } = t.db.t;
  await t.db.tx(async (tx) => {
    await tx.insert(sites).values(["a", "b", "c"].map((x) => ({ domain: `sc-domain:${x}.example`, name: x.toUpperCase() })));
  });
});
afterAll(() => t.cleanup());

const run = (sql: string, o: { maxRows?: number; maxBytes?: number } = {}) =>
  runStatement({ path: t.path, sql, maxRows: o.maxRows ?? 100, maxBytes: o.maxBytes ?? 1 << 20, tables: QUERYABLE_TABLES });

describe("checkSingleSelect", () => {
  const accepted: [string, string][] = [
    ["select 1", "select 1"],
    ["SELECT 1;", "SELECT 1"],
    ["  /* lead */ with a as (select 1) select * from a ;  -- trailing comment", "  /* lead */ with a as (select 1) select * from a "],
    ["select ';' as semi, \"a;b\" from [x;y]", "select ';' as semi, \"a;b\" from [x;y]"],
    ["select 'it''s; fine'", "select 'it''s; fine'"],
    ["values (1), (2)", "values (1), (2)"],
  ];
  test.each(accepted)("accepts %p", (sql, statement) => {
    expect(checkSingleSelect(sql)).toBe(statement);
  });

  const refused: [string, RegExp][] = [
    ["delete from sites", /only read-only SELECT statements are allowed \(got DELETE\)/],
    ["insert into sites values (1)", /got INSERT/],
    ["-- select\nupdate sites set name = 'x'", /got UPDATE/],
    ["attach database 'x.db' as x", /got ATTACH/],
    ["vacuum into '/tmp/copy.db'", /got VACUUM/],
    ["pragma writable_schema = 1", /got PRAGMA/],
    ["", /got no statement/],
    ["/* only a comment */", /got no statement/],
    ["select 1; delete from sites", /only one statement is allowed/],
    ["select 1; select 2", /only one statement is allowed/],
    ["select 1; 'x'", /only one statement is allowed/],
  ];
  test.each(refused)("refuses %p", (sql, message) => {
    expect(() => checkSingleSelect(sql)).toThrow(message);
  });
});

describe("expandSitePlaceholders", () => {
  test("{site} is the daily rows, {site_hourly} the hourly rows, of one site", () => {
    expect(expandSitePlaceholders("select * from {site}", 7)).toContain("from gsc_performance_data where site_id = 7)");
    expect(expandSitePlaceholders("select * from {site}", 7, "hourly")).toContain("from hourly_rankings where site_id = 7)");
    expect(expandSitePlaceholders("select * from {site_hourly} join {site}", 3)).toMatch(
      /hourly_rankings where site_id = 3\).*gsc_performance_data where site_id = 3\)/,
    );
    expect(expandSitePlaceholders("select 1", null)).toBe("select 1");
    expect(() => expandSitePlaceholders("select * from {site}", null)).toThrow(/give site_id or hostname/);
  });

  test("PostgreSQL: the placeholders name CTEs put before the statement's own (a derived table needs an alias there)", () => {
    expect(expandSitePlaceholders("select count(*) from {site}", 7, "daily", "pg")).toMatch(
      /^with site_rows as \(select .* from gsc_performance_data where site_id = 7\) select count\(\*\) from site_rows$/,
    );
    const both = expandSitePlaceholders(
      "/* c */ WITH RECURSIVE r(x) as (select 1) select * from {site_hourly} join {site} using (query), r",
      3,
      "daily",
      "pg",
    );
    expect(both).toMatch(
      /^\/\* c \*\/ WITH RECURSIVE site_rows as \(.*gsc_performance_data where site_id = 3\), site_hourly_rows as \(.*hourly_rankings where site_id = 3\), {2}r\(x\)/,
    );
    expect(both).toEndWith("from site_hourly_rows join site_rows using (query), r");
  });
});

describe.skipIf(testEngine === "pg")("runStatement (the child's work) (SQLite)", () => {
  test("rows and columns of a read", () => {
    expect(run("select id, domain from sites order by id")).toEqual({
      ok: true,
      columns: ["id", "domain"],
      rows: [
        { id: 1, domain: "sc-domain:a.example" },
        { id: 2, domain: "sc-domain:b.example" },
        { id: 3, domain: "sc-domain:c.example" },
      ],
      truncated: false,
    });
  });

  test("capped by rows and by bytes, saying so", () => {
    expect(run("select id from sites order by id", { maxRows: 2 })).toMatchObject({ rows: [{ id: 1 }, { id: 2 }], truncated: true });
    expect(run("select id from sites order by id", { maxRows: 3 })).toMatchObject({ truncated: false });
    const big = run("select id, hex(zeroblob(600)) as pad from sites order by id", { maxBytes: 2500 });
    expect(big).toMatchObject({ ok: true, truncated: true });
    expect((big as { rows: unknown[] }).rows.length).toBe(2);
  });

  test("a blob comes back as base64 text", () => {
    expect(run("select x'00ff10' as b")).toMatchObject({ rows: [{ b: "AP8Q" }] });
  });

  const refusedPrograms: [string, RegExp][] = [
    ["with s as (select 1) delete from sites", /only read-only SELECT statements are allowed/],
    ["with s as (select 1) insert into sites (domain, name) select 'x', 'y' from s", /only read-only SELECT/],
    [
      "select * from api_keys",
      /table 'api_keys' cannot be queried; readable tables: sites, gsc_performance_data, gsc_synced_days, hourly_rankings, gsc_query_detail, gsc_pages, gsc_queries, gsc_day_query_totals/,
    ],
    ["select * from sync_tasks", /table 'sync_tasks' cannot be queried/],
    ["select s.id from sites s join audit_log a on a.id = s.id", /table 'audit_log' cannot be queried/],
    // Virtual tables off the allow-list (issue 21): the file's path, api_keys' size, raw pages; PRAGMA statements.
    ["select file from pragma_database_list", /'pragma_database_list' cannot be used here/],
    ["select name, pgsize from dbstat where name = 'api_keys'", /'dbstat' cannot be used here/],
    ["select * from sqlite_dbpage", /'sqlite_dbpage' cannot be used here|no such table/],
    ["pragma database_list", /only read-only SELECT statements are allowed/],
    ["/* x */ pragma table_list", /only read-only SELECT statements are allowed/],
  ];
  test.each(refusedPrograms)("refuses %p by its compiled program", (sql, message) => {
    const answer = run(sql);
    expect(answer.ok).toBe(false);
    expect((answer as { error: string }).error).toMatch(message);
  });

  test("the schema and table-valued functions stay readable", () => {
    expect(run("select count(*) as n from sqlite_schema where name = 'sites'")).toMatchObject({ rows: [{ n: 1 }] });
    expect(run("select name from pragma_table_info('sites') where pk = 1")).toMatchObject({ rows: [{ name: "id" }] });
    expect(run("select value from json_each('[5]')")).toMatchObject({ rows: [{ value: 5 }] });
  });

  test("SQLite's own message for a bad statement", () => {
    expect(run("select nope from sites")).toEqual({ ok: false, error: "no such column: nope" });
    expect(run("selec 1")).toMatchObject({ ok: false, error: expect.stringMatching(/syntax error/) });
  });

  test("the data is unchanged after the refused writes", () => {
    expect(run("select count(*) as n from sites")).toMatchObject({ rows: [{ n: 3 }] });
  });
});

describe.skipIf(testEngine === "pg")("the read-only connection (last line of defence) (SQLite)", () => {
  test("refuses every write even when a statement gets past the checks", () => {
    const db = openReadOnly(t.path);
    try {
      expect(() => db.run("delete from sites")).toThrow(/readonly/);
      expect(() => db.run("create temp table t (x)")).toThrow(/readonly|query_only|attempt to write/);
      expect(() => db.run("pragma query_only = off")).not.toThrow(); // the pragma itself is harmless...
      expect(() => db.run("delete from sites")).toThrow(/readonly/); // ...the file is still opened read-only
      expect(db.query("select count(*) as n from sites").get()).toEqual({ n: 3 });
    } finally {
      db.close();
    }
  });
});

describe.skipIf(testEngine === "sqlite")("runReadOnlySqlPg (PostgreSQL: a READ ONLY transaction of its own)", () => {
  const run = (sql: string, o: { maxRows?: number; maxBytes?: number; timeoutMs?: number } = {}) =>
    runReadOnlySqlPg(t.db, {
      sql,
      maxRows: o.maxRows ?? 100,
      maxBytes: o.maxBytes ?? 1 << 20,
      timeoutMs: o.timeoutMs ?? 5000,
      tables: QUERYABLE_TABLES,
    });

  test("rows and columns of a read; bigint counts as numbers", async () => {
    expect(await run("select id, domain from sites order by id")).toEqual({
      ok: true,
      columns: ["id", "domain"],
      rows: [
        { id: 1, domain: "sc-domain:a.example" },
        { id: 2, domain: "sc-domain:b.example" },
        { id: 3, domain: "sc-domain:c.example" },
      ],
      truncated: false,
    });
    expect(await run("select count(*) as n, sum(id) as s, avg(id) as a from sites")).toMatchObject({ rows: [{ n: 3, s: 6, a: 2 }] });
    expect(await run("select id from sites where false")).toEqual({ ok: true, columns: ["id"], rows: [], truncated: false });
  });

  test("capped by rows and by bytes, saying so", async () => {
    expect(await run("select id from sites order by id", { maxRows: 2 })).toMatchObject({ rows: [{ id: 1 }, { id: 2 }], truncated: true });
    expect(await run("select id from sites order by id", { maxRows: 3 })).toMatchObject({ truncated: false });
    const big = await run("select id, repeat('0', 1200) as pad from sites order by id", { maxBytes: 2500 });
    expect(big).toMatchObject({ ok: true, truncated: true });
    expect((big as { rows: unknown[] }).rows.length).toBe(2);
  });

  test("a bytea comes back as base64 text", async () => {
    expect(await run("select '\\x00ff10'::bytea as b")).toMatchObject({ rows: [{ b: "AP8Q" }] });
  });

  const refused: [string, RegExp][] = [
    ["with s as (select 1) delete from sites", /only read-only SELECT statements are allowed/],
    ["with s as (select 1) insert into sites (domain, name) select 'x', 'y' from s", /only read-only SELECT/],
    ["select * from sites for update", /only read-only SELECT/],
    [
      "select * from api_keys",
      /table 'api_keys' cannot be queried; readable tables: sites, gsc_performance_data, gsc_synced_days, hourly_rankings, gsc_query_detail, gsc_pages, gsc_queries, gsc_day_query_totals/,
    ],
    ["select * from sync_tasks", /table 'sync_tasks' cannot be queried/],
    ["select s.id from sites s join audit_log a on a.id = s.id", /table 'audit_log' cannot be queried/],
    ["select relname from pg_class", /table 'pg_catalog.pg_class' cannot be queried/],
    ["select * from pg_stat_activity", /cannot be (queried|read from|called)/],
    // Functions that run SQL given as text would read any table: refused by name, in the text or the plan.
    ["select query_to_xml('select * from api_keys', true, false, '')", /function 'query_to_xml' cannot be called/],
    ["select * from sites where length(table_to_xml('api_keys', true, false, '')::text) > 0", /function 'table_to_xml' cannot be called/],
    ["select pg_read_file('/etc/passwd')", /function 'pg_read_file' cannot be called/],
    ["select set_config('statement_timeout', '0', false)", /function 'set_config' cannot be called/],
  ];
  test("the site placeholders run as CTEs, also after the statement's own WITH", async () => {
    const sql = expandSitePlaceholders(
      "with n as (select 1 as one) select count(*) as rows, min(one) as one from {site}, n",
      1,
      "daily",
      "pg",
    );
    expect(await run(sql)).toMatchObject({ ok: true, rows: [{ rows: 0, one: null }] });
  });

  test.each(refused)("refuses %p", async (sql, message) => {
    const answer = await run(sql);
    expect(answer.ok).toBe(false);
    expect((answer as { error: string }).error).toMatch(message);
  });

  test("the transaction refuses what gets past the checks (nextval writes a sequence)", async () => {
    expect(await run("select nextval('sites_id_seq')")).toMatchObject({ ok: false, error: expect.stringMatching(/read-only transaction/) });
  });

  test("set-returning functions of the allowed list stay readable", async () => {
    expect(await run("select count(*) as n from generate_series(1, 5)")).toMatchObject({ rows: [{ n: 5 }] });
    expect(await run('select value from jsonb_array_elements_text(\'["a", "b"]\') as value')).toMatchObject({
      rows: [{ value: "a" }, { value: "b" }],
    });
  });

  test("the server stops a statement at the time limit", async () => {
    const started = performance.now();
    const answer = await run("with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c", { timeoutMs: 300 });
    expect(answer).toMatchObject({ ok: false, timedOut: true });
    // The query never ends by itself: any bound is a hang guard (generous for a loaded machine).
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  test("PostgreSQL's own message for a bad statement", async () => {
    expect(await run("select nope from sites")).toEqual({ ok: false, error: 'column "nope" does not exist' });
    expect(await run("selec 1")).toMatchObject({ ok: false, error: expect.stringMatching(/syntax error/) });
  });

  test("the data is unchanged after the refused writes", async () => {
    expect(await run("select count(*) as n from sites")).toMatchObject({ rows: [{ n: 3 }] });
  });
});

describe.skipIf(testEngine === "pg")("the query tool's child process (SQLite)", () => {
  test("memory is capped: a statement that would take gigabytes is killed, the host keeps going", async () => {
    const limits = { maxRows: 10, timeoutMs: 20_000, maxBytes: 1_000_000, maxConcurrent: 1, maxMemoryBytes: 96 * 1024 * 1024 };
    await expect(runReadOnlySql(t.db, "select length(randomblob(600000000)) as n", limits)).rejects.toThrow(
      /needed more than 96 MB of memory/,
    );
    // A modest statement under the same cap still answers.
    expect((await runReadOnlySql(t.db, "select length(randomblob(1000)) as n", limits)).rows).toEqual([{ n: 1000 }]);
  });
});

describe("per-key concurrency of the query tool (MCP_QUERY_PER_KEY)", () => {
  // Before, one key could take every slot of a process (and its whole wait queue) with slow statements.
  test("a key's second query while its first runs is refused (rate_limited); other keys and later calls run", async () => {
    const limits = { maxRows: 10, timeoutMs: 20_000, maxBytes: 1_000_000, maxConcurrent: 4 };
    const slow = "with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000) select count(*) as n from c";
    const a = { id: "key:1", maxConcurrent: 1 };
    const first = runReadOnlySql(t.db, slow, limits, a);
    const second = runReadOnlySql(t.db, "select 1 as n", limits, a);
    const other = runReadOnlySql(t.db, "select 2 as n", limits, { id: "key:2", maxConcurrent: 1 });
    await expect(second).rejects.toMatchObject({ code: "rate_limited", message: expect.stringContaining("at most 1 at once") });
    expect((await other).rows).toEqual([{ n: 2 }]);
    expect((await first).rows).toEqual([{ n: 200000 }]);
    expect((await runReadOnlySql(t.db, "select 3 as n", limits, a)).rows).toEqual([{ n: 3 }]);
  });
});
