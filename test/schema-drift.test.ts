// The SQLite schema (src/db/sqlite/schema.ts) and its PostgreSQL twin (src/db/pg/schema.ts) must describe the same
// database: same tables, columns, column kinds, nullability, defaults, primary and unique keys (partial ones
// with the same condition), indexes, foreign keys and checks. First from Drizzle's own table config (no server
// needed), then from the databases the two sets of migrations really build.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { is, SQL } from "drizzle-orm";
import { PgDialect, type PgTable, getTableConfig as pgTableConfig } from "drizzle-orm/pg-core";
import { SQLiteSyncDialect, SQLiteTable, getTableConfig as sqliteTableConfig } from "drizzle-orm/sqlite-core";
import { join } from "node:path";
import pg from "pg";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { pgQuerySearch } from "../src/db/pg/search-index.ts";
import { pgTablesByName, sqliteTablesByName } from "../src/db/pg/tables.ts";
import { tempDir } from "./helpers/db.ts";
import { postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// SQLite-only search machinery, not data: FTS5 virtual tables have no PostgreSQL twin (search there will use
// PostgreSQL's own index), so they and the shadow tables SQLite keeps for each are left out of the comparison
// of migrated databases. Only FTS5 tables may be listed here: the test checks that each one is.
const sqliteOnlyFtsTables: string[] = [
  "gsc_queries_fts", // query search's trigram index over gsc_queries (migrations/sqlite/0006_query_search_fts.sql)
];
const fts5ShadowSuffixes = ["_data", "_idx", "_content", "_docsize", "_config"];
// SQLite's triggers that write its FTS5 index; the triggers keeping gsc_queries itself exist on both engines.
const sqliteOnlyFtsTriggers: string[] = ["gsc_queries_fts_delete", "gsc_queries_fts_update"];
// PostgreSQL's search index in place of the FTS5 table (src/db/pg/search-index.ts): checked to be a pg_trgm GIN index.
const pgOnlySearchIndexes: string[] = [pgQuerySearch.index];
// Tables whose primary key has the same columns in another order on each engine, compared as a set: the day x query
// rollup is keyed by day on SQLite (site_id, type, day, query_id: WITHOUT ROWID, the key is the table, migration 0032,
// so a synced day writes one new key range) and by query on PostgreSQL (site_id, query_id, day, type: a btree beside
// the heap, carrying the sums for index-only reads of a query's days, with an index on (site_id, day, type, query_id)
// for the day's writes; pg migrations 0022/0027).
const keyOrderPerEngine: string[] = ["gsc_day_query_totals"];
// PostgreSQL's NOTIFY on every change to api_keys (src/db/pg/key-changes.ts); SQLite's readers use data_version instead.
const pgOnlyTriggers: string[] = ["api_keys_notify"];

// The kind of value a column holds, per engine's column type: a column must have the same kind on both.
const kinds: Record<string, string> = {
  SQLiteInteger: "integer",
  SQLiteBoolean: "boolean",
  SQLiteReal: "real",
  SQLiteText: "text",
  SQLiteTextJson: "json",
  SQLiteBlobBuffer: "bytes",
  PgInteger: "integer",
  PgBigInt53: "integer",
  PgBoolean: "boolean",
  PgDoublePrecision: "real",
  PgText: "text",
  PgJsonb: "json",
  // The one custom column type of src/db/pg/schema.ts: bytea.
  PgCustomColumn: "bytes",
};

type Config = ReturnType<typeof sqliteTableConfig> | ReturnType<typeof pgTableConfig>;

const sqliteDialect = new SQLiteSyncDialect();
const pgDialect = new PgDialect();

/** SQL text without quotes, table qualifiers or case and spacing differences. */
function sqlText(s: SQL, dialect: SQLiteSyncDialect | PgDialect, table: string): string {
  return dialect.sqlToQuery(s).sql.replace(/["`]/g, "").replaceAll(`${table}.`, "").replace(/\s+/g, " ").trim().toLowerCase();
}

/** An SQL default, with each engine's expression for "now as ISO-8601 UTC text" named alike. */
function sqlDefault(text: string): string {
  const now = /strftime\('%y-%m-%dt%h:%m:%fz', 'now'\)/.test(text) || /to_char\(clock_timestamp\(\) at time zone 'utc'/.test(text);
  return now ? "sql: now as iso-8601 text" : `sql: ${text}`;
}

/** A dialect-free description of a table, to compare with toEqual. */
function describeTable(cfg: Config, dialect: SQLiteSyncDialect | PgDialect) {
  const text = (s: SQL) => sqlText(s, dialect, cfg.name);
  const keyColumns =
    cfg.primaryKeys.length > 0 ? cfg.primaryKeys[0]!.columns.map((c) => c.name) : cfg.columns.filter((c) => c.primary).map((c) => c.name);
  const primaryKey = keyOrderPerEngine.includes(cfg.name) ? keyColumns.sort() : keyColumns;
  return {
    columns: Object.fromEntries(
      cfg.columns.map((c) => {
        const kind = kinds[c.columnType];
        if (!kind) throw new Error(`${cfg.name}.${c.name}: column type ${c.columnType} has no kind in schema-drift.test.ts (add it)`);
        // An auto-numbered key (SQLite rowid alias, PostgreSQL identity) is the engine's own default.
        const autoKey = c.primary && kind === "integer" && primaryKey.length === 1;
        const def = autoKey || c.default === undefined ? null : is(c.default, SQL) ? sqlDefault(text(c.default)) : c.default;
        return [c.name, { kind, notNull: c.notNull || c.primary, default: def, enum: c.enumValues ?? null }];
      }),
    ),
    primaryKey,
    uniqueKeys: [
      ...cfg.indexes
        .filter((i) => i.config.unique)
        .map((i) => ({
          name: i.config.name,
          columns: i.config.columns.map((c) => (c as { name: string }).name),
          where: i.config.where ? text(i.config.where) : null,
        })),
      ...cfg.uniqueConstraints.map((u) => ({ name: u.name, columns: u.columns.map((c) => c.name), where: null })),
      ...cfg.columns.filter((c) => c.isUnique).map((c) => ({ name: c.uniqueName, columns: [c.name], where: null })),
    ].sort((a, b) => String(a.name).localeCompare(String(b.name))),
    // Plain indexes too: the same queries will run on both engines and need the same access paths.
    indexes: cfg.indexes
      .filter((i) => !i.config.unique && !pgOnlySearchIndexes.includes(i.config.name!))
      .map((i) => ({
        name: i.config.name,
        columns: i.config.columns.map((c) => (c as { name: string }).name),
        where: i.config.where ? text(i.config.where) : null,
      }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
    foreignKeys: cfg.foreignKeys
      .map((f) => {
        const r = f.reference();
        const target = is(r.foreignTable, SQLiteTable)
          ? sqliteTableConfig(r.foreignTable).name
          : pgTableConfig(r.foreignTable as PgTable).name;
        return {
          columns: r.columns.map((c) => c.name),
          table: target,
          foreignColumns: r.foreignColumns.map((c) => c.name),
          onDelete: f.onDelete ?? "no action",
        };
      })
      .sort((a, b) => a.columns.join().localeCompare(b.columns.join())),
    checks: cfg.checks.map((c) => ({ name: c.name, sql: text(c.value) })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

const sqliteTables = new Map([...sqliteTablesByName()].map(([n, t]) => [n, sqliteTableConfig(t)]));
const pgTables = new Map([...pgTablesByName()].map(([n, t]) => [n, pgTableConfig(t)]));

describe("schema drift: src/db/sqlite/schema.ts vs src/db/pg/schema.ts", () => {
  test("both schemas have the same tables", () => {
    const missing = [...sqliteTables.keys()].filter((n) => !pgTables.has(n));
    const extra = [...pgTables.keys()].filter((n) => !sqliteTables.has(n));
    // Named, so the message says what to do.
    expect({ missingInPgSchema: missing, onlyInPgSchema: extra }).toEqual({ missingInPgSchema: [], onlyInPgSchema: [] });
    expect(sqliteTables.size).toBeGreaterThan(5);
  });

  test.each([...sqliteTables.keys()])("%s: same columns, kinds, nullability, defaults, keys and indexes", (name) => {
    const pgCfg = pgTables.get(name);
    if (!pgCfg) throw new Error(`table ${name} is missing from src/db/pg/schema.ts`);
    expect(describeTable(pgCfg, pgDialect)).toEqual(describeTable(sqliteTables.get(name)!, sqliteDialect));
  });

  test("the PostgreSQL-only search index is the pg_trgm GIN index on gsc_queries.query, and nothing else is left out", () => {
    const onlyPg = [...pgTables.values()].flatMap((cfg) =>
      cfg.indexes
        .filter((i) => pgOnlySearchIndexes.includes(i.config.name!))
        .map((i) => ({
          table: cfg.name,
          name: i.config.name,
          method: i.config.method,
          columns: i.config.columns.map((c) => ({
            name: (c as { name: string }).name,
            op: (c as { indexConfig?: { opClass?: string } }).indexConfig?.opClass,
          })),
        })),
    );
    expect(onlyPg).toEqual([
      { table: "gsc_queries", name: pgQuerySearch.index, method: "gin", columns: [{ name: "query", op: "gin_trgm_ops" }] },
    ]);
  });

  test("the comparison sees a difference: a column made nullable is caught", () => {
    const a = describeTable(sqliteTables.get("sites")!, sqliteDialect);
    const b = structuredClone(a);
    b.columns.domain!.notNull = false;
    expect(b).not.toEqual(a);
    // and the one-active-task partial index is compared with its condition
    const tasks = describeTable(pgTables.get("sync_tasks")!, pgDialect);
    expect(tasks.uniqueKeys.find((k) => k.name === "sync_tasks_one_active_idx")).toEqual({
      name: "sync_tasks_one_active_idx",
      columns: ["site_id", "task_type"],
      where: "status in ('pending','running')",
    });
  });
});

/** Tables, columns, nullability, unique keys, foreign keys and triggers as one migrated database reports them. */
type DbShape = Record<
  string,
  { columns: Record<string, { notNull: boolean }>; uniqueKeys: string[]; foreignKeys: string[]; triggers: string[] }
>;

function sqliteShape(path: string): { shape: DbShape; fts: string[]; ftsTriggers: string[] } {
  const db = new Database(path, { readonly: true });
  try {
    const all = db.query<{ name: string; sql: string }, []>("select name, sql from sqlite_master where type = 'table'").all();
    const fts = all.filter((t) => /^create virtual table/i.test(t.sql) && /using fts5/i.test(t.sql)).map((t) => t.name);
    const excluded = new Set(sqliteOnlyFtsTables.flatMap((n) => [n, ...fts5ShadowSuffixes.map((s) => n + s)]));
    const shape: DbShape = {};
    for (const { name } of all) {
      // SQLite's and drizzle's bookkeeping (sqlite_sequence for AUTOINCREMENT, the applied migrations).
      if (name.startsWith("sqlite_") || name === "__drizzle_migrations" || excluded.has(name)) continue;
      const cols = db.query<{ name: string; notnull: number; pk: number }, []>(`select * from pragma_table_info('${name}')`).all();
      const indexes = db
        .query<{ name: string; unique: number; partial: number; origin: string }, []>(`select * from pragma_index_list('${name}')`)
        .all();
      const fks = db
        .query<{ id: number; table: string; from: string; to: string; on_delete: string }, []>(
          `select * from pragma_foreign_key_list('${name}')`,
        )
        .all();
      shape[name] = {
        columns: Object.fromEntries(cols.map((c) => [c.name, { notNull: c.notnull === 1 || c.pk > 0 }])),
        uniqueKeys: indexes
          .filter((i) => i.unique === 1)
          .map((i) => {
            const on = db.query<{ name: string }, []>(`select name from pragma_index_info('${i.name}') order by seqno`).all();
            return keyText(name, on.map((c) => c.name).join(","), i.partial === 1);
          })
          .concat(cols.some((c) => c.pk > 0) && !indexes.some((i) => i.origin === "pk") ? [keyText(name, pkOf(cols), false)] : [])
          .sort(),
        foreignKeys: fks.map((f) => `${f.from} -> ${f.table}.${f.to} on delete ${f.on_delete.toLowerCase()}`).sort(),
        triggers: [],
      };
    }
    const triggers = db
      .query<{ name: string; tbl_name: string }, []>("select name, tbl_name from sqlite_master where type = 'trigger' order by name")
      .all();
    for (const t of triggers) if (!sqliteOnlyFtsTriggers.includes(t.name)) shape[t.tbl_name]!.triggers.push(t.name);
    return { shape, fts, ftsTriggers: triggers.filter((t) => sqliteOnlyFtsTriggers.includes(t.name)).map((t) => t.name) };
  } finally {
    db.close();
  }
}

/** A unique key of a migrated table as compared: its columns in order (as a set for keyOrderPerEngine's tables). */
function keyText(table: string, columns: string, partial: boolean): string {
  const cols = keyOrderPerEngine.includes(table) ? columns.split(",").sort().join(",") : columns;
  return `${cols}${partial ? " (partial)" : ""}`;
}

/** The rowid-alias primary key (INTEGER PRIMARY KEY), which has no index of its own in SQLite. */
function pkOf(cols: { name: string; pk: number }[]): string {
  return cols
    .filter((c) => c.pk > 0)
    .sort((a, b) => a.pk - b.pk)
    .map((c) => c.name)
    .join(",");
}

async function pgShape(url: string): Promise<DbShape> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const q = async <T>(text: string) => (await client.query(text)).rows as T[];
    const cols = await q<{ table_name: string; column_name: string; is_nullable: string }>(
      `select c.table_name, c.column_name, c.is_nullable from information_schema.columns c
         join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
        where c.table_schema = 'public' order by c.table_name, c.ordinal_position`,
    );
    const uniques = await q<{ table: string; columns: string; partial: boolean }>(`
      select t.relname as table, i.indpred is not null as partial,
             (select string_agg(a.attname, ',' order by k.ord) from unnest(i.indkey) with ordinality k(attnum, ord)
                join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum where k.ord <= i.indnkeyatts) as columns
      from pg_index i join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace
      where n.nspname = 'public' and i.indisunique`);
    const fks = await q<{ table: string; columns: string; target: string; target_columns: string; on_delete: string }>(`
      select c.conrelid::regclass::text as table, c.confrelid::regclass::text as target, c.confdeltype as on_delete,
             (select string_agg(a.attname, ',') from pg_attribute a where a.attrelid = c.conrelid and a.attnum = any(c.conkey)) as columns,
             (select string_agg(a.attname, ',') from pg_attribute a where a.attrelid = c.confrelid and a.attnum = any(c.confkey)) as target_columns
      from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = 'public' and c.contype = 'f'`);
    const actions: Record<string, string> = { a: "no action", r: "restrict", c: "cascade", n: "set null", d: "set default" };
    const shape: DbShape = {};
    for (const c of cols) {
      const t = (shape[c.table_name] ??= { columns: {}, uniqueKeys: [], foreignKeys: [], triggers: [] });
      t.columns[c.column_name] = { notNull: c.is_nullable === "NO" };
    }
    for (const u of uniques) shape[u.table]!.uniqueKeys.push(keyText(u.table, u.columns, u.partial));
    for (const f of fks)
      shape[f.table]!.foreignKeys.push(`${f.columns} -> ${f.target}.${f.target_columns} on delete ${actions[f.on_delete]}`);
    const triggers = await q<{ table: string; name: string }>(`
      select c.relname as table, t.tgname as name from pg_trigger t join pg_class c on c.oid = t.tgrelid
        join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and not t.tgisinternal order by t.tgname`);
    for (const t of triggers) if (!pgOnlyTriggers.includes(t.name)) shape[t.table]!.triggers.push(t.name);
    expect(triggers.filter((t) => pgOnlyTriggers.includes(t.name)).map((t) => t.name)).toEqual(pgOnlyTriggers);
    for (const t of Object.values(shape)) {
      t.uniqueKeys.sort();
      t.foreignKeys.sort();
    }
    return shape;
  } finally {
    await client.end();
  }
}

describe.skipIf(postgresSkipReason !== null)("PostgreSQL migrations (real server)", () => {
  const server = usePostgres();

  test("schema drift: migrations/sqlite and migrations/pg build the same tables, columns, nullability, unique and foreign keys", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.dir, "app.db");
      migrate(path);
      const url = await server.newDatabase();
      expect(await migratePg(url)).toBeGreaterThan(0);
      const sqliteShapeOf = sqliteShape(path);
      const { shape: sqlite, fts } = sqliteShapeOf;
      // The exclusion lists hold FTS5 tables and their triggers only, and every FTS5 table is on it.
      expect(fts.sort()).toEqual([...sqliteOnlyFtsTables].sort());
      expect(sqliteShapeOf.ftsTriggers.sort()).toEqual([...sqliteOnlyFtsTriggers].sort());
      // The query detail is a dictionary-backed table (no triggers keep gsc_queries any more).
      expect(sqlite.gsc_query_detail!.triggers).toEqual([]);
      const pgDb = await pgShape(url);
      expect(Object.keys(pgDb).sort()).toEqual(Object.keys(sqlite).sort());
      expect(pgDb).toEqual(sqlite);
      // The schema files agree with what their migrations build (a forgotten `generate` shows here).
      expect(Object.keys(sqlite).sort()).toEqual([...sqliteTables.keys()].sort());
    } finally {
      dir.cleanup();
    }
  });
});

describe.skipIf(postgresSkipReason !== null)("gsc_queries on PostgreSQL (real server)", () => {
  const server = usePostgres();

  test("the pg_trgm GIN index answers ILIKE '%term%' on gsc_queries", async () => {
    const url = await server.newMigratedDatabase();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query("insert into sites (id, domain, name) values (1, 's.example', 's')");
      await c.query(`insert into gsc_queries (site_id, query) select 1, 'query ' || md5(i::text) from generate_series(1, 5000) i`);
      const term = (await c.query("select upper(substr(md5('4999'), 3, 10)) as t")).rows[0].t;
      // New GIN entries wait in the index's pending list until (auto)vacuum merges them; the planner costs a long
      // list high. db:copy merges it after a copy the same way.
      await c.query(`select gin_clean_pending_list('${pgQuerySearch.index}'::regclass)`);
      await c.query("analyze gsc_queries");
      // At this size a sequential scan is cheaper; without it the planner must show the index can serve ILIKE.
      await c.query("set enable_seqscan = off");
      const search = "select query from gsc_queries where query ilike '%' || $1 || '%'";
      const plan = (await c.query(`explain ${search.replace("$1", `'${term}'`)}`)).rows.map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toContain(`Bitmap Index Scan on ${pgQuerySearch.index}`);
      expect((await c.query(search, [term])).rows).toEqual([
        { query: `query ${new Bun.CryptoHasher("md5").update("4999").digest("hex")}` },
      ]);
      expect((await c.query("select count(*)::int as n from gsc_queries")).rows[0].n).toBe(5000);
    } finally {
      await c.end();
    }
  });
});
