import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { getTableConfig, SQLiteTable } from "drizzle-orm/sqlite-core";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { copyFileSync, cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { defaultPragmas } from "../src/db/sqlite/open.ts";
import { pgMigrationsFolder } from "../src/db/pg/migrate.ts";
import * as schema from "../src/db/sqlite/schema.ts";
import { tempDir } from "./helpers/db.ts";
import { postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(60_000);

// Both migration paths (`bun run migrate` and `bunx drizzle-kit migrate`) on empty databases of both engines
// (SQLite files; PostgreSQL on a real server), real processes; and a file migrated before the SQLite
// migrations moved from migrations/ to migrations/sqlite/.

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-migrations-");
afterAll(() => dir.cleanup());
let n = 0;
const freshPath = () => join(dir.dir, `m${++n}.db`);

const migrations = readMigrationFiles({ migrationsFolder });

type MasterRow = { type: string; name: string; tbl_name: string; sql: string | null };
const bookkeeping = (r: MasterRow) => !r.name.startsWith("__drizzle_migrations") && !r.name.startsWith("sqlite_autoindex___drizzle");

function schemaOf(conn: Database): MasterRow[] {
  return conn.query<MasterRow, []>("select type, name, tbl_name, sql from sqlite_master order by type, name").all().filter(bookkeeping);
}

/** The schema the migration files produce, applied one by one to an in-memory database. */
function expectedSchema(): MasterRow[] {
  const mem = new Database(":memory:");
  for (const m of migrations) for (const stmt of m.sql) if (stmt.trim()) mem.run(stmt);
  const rows = schemaOf(mem);
  mem.close();
  return rows;
}

function inspect(path: string) {
  const conn = new Database(path, { readonly: true });
  try {
    return {
      schema: schemaOf(conn),
      applied: conn
        .query<{ hash: string; created_at: number }, []>('select hash, created_at from "__drizzle_migrations" order by created_at')
        .all(),
    };
  } finally {
    conn.close();
  }
}

const expectedApplied = () => migrations.map((m) => ({ hash: m.hash, created_at: m.folderMillis }));

async function run(cmd: string[], databaseUrl: string) {
  const proc = Bun.spawn(cmd, {
    cwd: root,
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, out: out + err };
}

const bunMigrate = (path: string) => run([process.execPath, "run", "migrate"], path);
const kitMigrate = (path: string) => run([process.execPath, "x", "drizzle-kit", "migrate"], path);

describe("the migration files", () => {
  test("there is at least one, and they create every table and index of the drizzle schema", () => {
    expect(migrations.length).toBeGreaterThan(0);
    const mem = new Database(":memory:");
    for (const m of migrations) for (const stmt of m.sql) if (stmt.trim()) mem.run(stmt);
    // A schema.ts change without `drizzle-kit generate` shows up here as a missing column or index.
    const tables = (Object.values(schema) as unknown[]).filter((v): v is SQLiteTable => v instanceof SQLiteTable);
    expect(tables.length).toBeGreaterThanOrEqual(4);
    for (const table of tables) {
      const cfg = getTableConfig(table);
      const columns = mem
        .query<{ name: string }, []>(`select name from pragma_table_info('${cfg.name}')`)
        .all()
        .map((c) => c.name);
      expect({ table: cfg.name, columns: columns.sort() }).toEqual({ table: cfg.name, columns: cfg.columns.map((c) => c.name).sort() });
      const indexes = mem
        .query<{ name: string }, []>(`select name from pragma_index_list('${cfg.name}') where origin = 'c'`)
        .all()
        .map((i) => i.name);
      expect({ table: cfg.name, indexes: indexes.sort() }).toEqual({
        table: cfg.name,
        indexes: cfg.indexes.map((i) => i.config.name).sort(),
      });
    }
    mem.close();
  });
});

describe("drizzle.config.ts picks the engine from DATABASE_URL", () => {
  test.each([
    { url: "./data/x.db", dialect: "sqlite", out: "./migrations/sqlite", credentials: "file:./data/x.db" },
    { url: "file:data/x.db", dialect: "sqlite", out: "./migrations/sqlite", credentials: "file:data/x.db" },
    { url: "sqlite:///data/x.db", dialect: "sqlite", out: "./migrations/sqlite", credentials: "file:data/x.db" },
    { url: "postgres://u:p@127.0.0.1:5/db", dialect: "postgresql", out: "./migrations/pg", credentials: "postgres://u:p@127.0.0.1:5/db" },
    { url: "postgresql://127.0.0.1/db", dialect: "postgresql", out: "./migrations/pg", credentials: "postgresql://127.0.0.1/db" },
  ])("$url -> $dialect, $out", async ({ url, dialect, out, credentials }) => {
    // A temp cwd-relative path would create ./data in the repo: the SQLite cases run from a temp dir (one copy for all).
    const cwd = join(dir.dir, "cfg");
    if (!existsSync(cwd)) {
      cpSync(join(root, "drizzle.config.ts"), join(cwd, "drizzle.config.ts"));
      cpSync(join(root, "drizzle.pg.config.ts"), join(cwd, "drizzle.pg.config.ts"));
      cpSync(join(root, "src"), join(cwd, "src"), { recursive: true });
    }
    const proc = Bun.spawn(
      [process.execPath, "-e", 'const c = (await import("./drizzle.config.ts")).default; console.log(JSON.stringify(c))'],
      {
        cwd,
        env: { ...process.env, DATABASE_URL: url },
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const [code, outText, errText] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(errText).toBe("");
    expect(code).toBe(0);
    const cfg = JSON.parse(outText);
    expect({ dialect: cfg.dialect, out: cfg.out, url: cfg.dbCredentials.url }).toEqual({ dialect, out, url: credentials });
    expect(cfg.schema).toBe(dialect === "sqlite" ? "./src/db/sqlite/schema.ts" : "./src/db/pg/schema.ts");
  });
});

describe("a file migrated before the move to migrations/sqlite/", () => {
  // test/fixtures/migrated-before-sqlite-folder.db: made by `bun run migrate` of commit 4bd6164 (the last with
  // the SQLite migrations in migrations/), holding one site, one Search Console row and its day marker.
  const fixture = join(import.meta.dir, "fixtures", "migrated-before-sqlite-folder.db");
  const dataOf = (path: string) => {
    const conn = new Database(path, { readonly: true });
    try {
      // gsc_performance_data: a table in the fixture, the compatibility view of the compact detail after
      // (no id; ctr and position computed from clicks, impressions and sum_position).
      const cols = (t: string) =>
        t === "gsc_performance_data" ? "site_id, date, page, query, device, search_type, clicks, impressions, ctr, position" : "*";
      return ["sites", "gsc_performance_data", "gsc_synced_days", "gsc_queries"].map((t) =>
        conn.query(`select ${cols(t)} from ${t} order by 1`).all(),
      );
    } finally {
      conn.close();
    }
  };

  // The migrations that existed at 4bd6164 (later ones are applied on top, never the moved ones again).
  const FIXTURE_MIGRATIONS = 7;

  test("records the same migrations (hash and created_at) as the moved files: none of them is pending", () => {
    // drizzle's migrators (ours, drizzle-orm's, drizzle-kit's) run a migration only when its journal `when`
    // is past the newest created_at applied; the hash is the file's sha256. Moving the files changes neither.
    expect(inspect(fixture).applied).toEqual(expectedApplied().slice(0, FIXTURE_MIGRATIONS));
  });

  test.each([
    ["bun run migrate", bunMigrate],
    ["bunx drizzle-kit migrate", kitMigrate],
  ] as const)("%s applies only the migrations newer than the move: nothing re-applied, rows unchanged", async (_name, tool) => {
    const path = freshPath();
    copyFileSync(fixture, path);
    const before = { ...inspect(path), data: dataOf(path) };
    expect(before.data[0]).toHaveLength(1);
    const r = await tool(path);
    expect(r.code, r.out).toBe(0);
    if (tool === bunMigrate) expect(r.out).toContain(`migrations: ${migrations.length - FIXTURE_MIGRATIONS} applied`);
    expect({ ...inspect(path), data: dataOf(path) }).toEqual({ schema: expectedSchema(), applied: expectedApplied(), data: before.data });
  });
});

describe("bun run migrate", () => {
  test("brings an empty file to the current schema; running it again is a no-op", async () => {
    const path = freshPath();
    const first = await bunMigrate(path);
    expect(first).toMatchObject({ code: 0 });
    expect(first.out).toContain(`migrations: ${migrations.length} applied to ${path}`);
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });

    const again = await bunMigrate(path);
    expect(again.code).toBe(0);
    expect(again.out).toContain("migrations: 0 applied");
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });
  });

  test("an unusable path (a directory) fails with one line, no stack", async () => {
    const r = await bunMigrate(dir.dir);
    expect(r.code).toBe(1);
    // Besides `bun run`'s own lines ("$ bun src/db/sqlite/migrate-cli.ts", "error: script ... exited"): one line.
    const ours = r.out.split("\n").filter((l) => l && !l.startsWith("$ ") && !l.startsWith("error: script"));
    expect(ours).toEqual([expect.stringMatching(/^fatal: the database file .* cannot be opened/)]);
  });

  test("several processes migrating one empty file at once all succeed; the migrations run exactly once", async () => {
    const path = freshPath();
    const results = await Promise.all(Array.from({ length: 6 }, () => bunMigrate(path)));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0]);
    const counts = results.map((r) => Number(/migrations: (\d+) applied/.exec(r.out)?.[1])).sort();
    expect(counts).toEqual([0, 0, 0, 0, 0, migrations.length]);
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });
  });
});

describe("bunx drizzle-kit migrate", () => {
  // Each drizzle-kit run is a Node process loading its 3.7 MB CLI (~1.2 s of CPU): one file goes through the
  // fresh-clone folder, the second run and `bun run migrate` after it, instead of a file for each.
  test("brings an empty file to the current schema, creating its folder as on a fresh clone (./data does not exist yet); running it again is a no-op; bun run migrate finds its work done", async () => {
    const path = join(dir.dir, "fresh-clone", "data", "app.db");
    const first = await kitMigrate(path);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain("migrations applied successfully");
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });

    const again = await kitMigrate(path);
    expect(again.code).toBe(0);
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });

    const then = await bunMigrate(path);
    expect(then.code).toBe(0);
    expect(then.out).toContain("migrations: 0 applied");
    expect(inspect(path).applied).toEqual(expectedApplied());
  });

  test("finds bun run migrate's work done", async () => {
    const b = freshPath();
    expect((await bunMigrate(b)).code).toBe(0);
    expect((await kitMigrate(b)).code).toBe(0);
    expect(inspect(b)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });
  });
});

describe("migrate() and foreign keys", () => {
  // What drizzle-kit generates when a change needs a table rebuild (e.g. a column type change on sites).
  const rebuildSites = [
    "PRAGMA foreign_keys=OFF;",
    `CREATE TABLE \`__new_sites\` (
	\`id\` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	\`domain\` text NOT NULL,
	\`name\` text NOT NULL,
	\`category\` text,
	\`is_active\` integer DEFAULT true NOT NULL,
	\`created_at\` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	\`updated_at\` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);`,
    'INSERT INTO `__new_sites`("id", "domain", "name", "category", "is_active", "created_at", "updated_at") SELECT "id", "domain", "name", "category", "is_active", "created_at", "updated_at" FROM `sites`;',
    "DROP TABLE `sites`;",
    "ALTER TABLE `__new_sites` RENAME TO `sites`;",
    "PRAGMA foreign_keys=ON;",
    "CREATE UNIQUE INDEX `sites_domain_unique` ON `sites` (`domain`);",
    "CREATE INDEX `sites_name_id_idx` ON `sites` (`name`,`id`);",
    "CREATE INDEX `sites_active_name_id_idx` ON `sites` (`is_active`,`name`,`id`);",
  ].join("--> statement-breakpoint\n");

  /** A copy of the real migrations folder with one more migration appended to the journal. */
  function folderWith(tag: string, sqlText: string): string {
    const folder = join(dir.dir, `folder-${++n}`);
    cpSync(migrationsFolder, folder, { recursive: true });
    const journalPath = join(folder, "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { idx: number; when: number; tag: string }[] };
    const last = journal.entries.at(-1)!;
    journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1000, tag });
    writeFileSync(journalPath, JSON.stringify(journal, null, 2));
    writeFileSync(join(folder, `${tag}.sql`), sqlText);
    return folder;
  }

  /** A migrated file holding one site with a task, a performance row and a completion marker. */
  function populated(): string {
    const path = freshPath();
    migrate(path);
    const conn = new Database(path);
    conn.run("PRAGMA foreign_keys = ON");
    conn.run("insert into sites (id, domain, name) values (1, 'example.com', 'Example')");
    conn.run("insert into sync_tasks (site_id, task_type) values (1, 'daily_sync')");
    conn.run("insert into gsc_pages (id, site_id, page) values (1, 1, '/')");
    conn.run("insert into gsc_queries (id, site_id, query) values (1, 1, 'q')");
    conn.run("insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks) values (1, 19723, 1, 1, 1, 1, 3)");
    conn.run("insert into gsc_synced_days (site_id, date, search_type, row_count) values (1, '2024-01-01', 'web', 1)");
    conn.close();
    return path;
  }

  function counts(path: string) {
    const conn = new Database(path, { readonly: true });
    try {
      const count = (t: string) => conn.query<{ n: number }, []>(`select count(*) as n from ${t}`).get()!.n;
      return {
        sites: count("sites"),
        sync_tasks: count("sync_tasks"),
        gsc_performance_data: count("gsc_performance_data"),
        gsc_synced_days: count("gsc_synced_days"),
        applied: count('"__drizzle_migrations"'),
      };
    } finally {
      conn.close();
    }
  }

  test("a drizzle-kit table rebuild of sites keeps the rows of every table pointing at it", () => {
    const path = populated();
    const before = counts(path);
    expect(before).toEqual({ sites: 1, sync_tasks: 1, gsc_performance_data: 1, gsc_synced_days: 1, applied: migrations.length });

    expect(migrate(path, defaultPragmas, folderWith("0099_rebuild_sites", rebuildSites))).toBe(1);

    expect(counts(path)).toEqual({ ...before, applied: migrations.length + 1 });
    const conn = new Database(path, { readonly: true });
    // The children still reference the rebuilt table, and deleting a site still cascades.
    expect(conn.query("select distinct \"table\" from pragma_foreign_key_list('sync_tasks')").all()).toEqual([{ table: "sites" }]);
    conn.close();
    const rw = new Database(path);
    rw.run("PRAGMA foreign_keys = ON");
    rw.run("delete from sites where id = 1");
    rw.close();
    expect(counts(path)).toEqual({ sites: 0, sync_tasks: 0, gsc_performance_data: 0, gsc_synced_days: 0, applied: migrations.length + 1 });
  });

  test("a migration that leaves a dangling foreign key is rolled back with a message saying so", () => {
    const path = populated();
    const before = counts(path);
    const folder = folderWith("0099_orphan", "INSERT INTO `sync_tasks` (`site_id`, `task_type`) VALUES (42, 'daily_sync');");
    expect(() => migrate(path, defaultPragmas, folder)).toThrow(
      /rolled back.*1 row\(s\) whose foreign key points at no row \(sync_tasks rowid \d+ -> sites\)/,
    );
    expect(counts(path)).toEqual(before);
    // Nothing of the failed run was kept: the real migrations find nothing to do.
    expect(migrate(path)).toBe(0);
  });
});

describe.skipIf(postgresSkipReason !== null)("PostgreSQL: bun run migrate and bunx drizzle-kit migrate (real server)", () => {
  const server = usePostgres();
  const pgMigrations = readMigrationFiles({ migrationsFolder: pgMigrationsFolder });

  /** The applied migrations and every table, column, index, function and trigger of the public schema. */
  async function pgInspect(url: string) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const rows = async (text: string) => (await client.query(text)).rows;
      const applied = (await rows("select to_regclass('drizzle.__drizzle_migrations') is not null as e"))[0].e
        ? await rows("select hash, created_at::bigint::float8 as created_at from drizzle.__drizzle_migrations order by created_at")
        : [];
      return {
        applied,
        columns: await rows(
          "select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns where table_schema = 'public' order by 1, 2",
        ),
        indexes: await rows("select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by 1, 2"),
        functions: await rows(
          "select p.proname, pg_get_functiondef(p.oid) as def from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' and p.prokind = 'f' and p.proname like 'sitesync%' order by 1",
        ),
        triggers: await rows("select tgname, pg_get_triggerdef(oid) as def from pg_trigger where not tgisinternal order by 1"),
        extensions: await rows("select extname from pg_extension order by 1"),
      };
    } finally {
      await client.end();
    }
  }
  const expectedPgApplied = () => pgMigrations.map((m) => ({ hash: m.hash, created_at: m.folderMillis }));

  test("bun run migrate with a postgres:// DATABASE_URL: 6 processes at once on an empty database, one applies, none fails (advisory lock)", async () => {
    const url = await server.newDatabase();
    const results = await Promise.all(Array.from({ length: 6 }, () => bunMigrate(url)));
    expect(results.map((r) => r.code)).toEqual(Array(6).fill(0));
    const applied = results.map((r) => Number(/migrations: (\d+) applied to 127\.0\.0\.1:\d+\/sitesync_test_/.exec(r.out)?.[1]));
    expect(applied.sort()).toEqual([0, 0, 0, 0, 0, pgMigrations.length]);
    expect((await pgInspect(url)).applied).toEqual(expectedPgApplied());
    // Again: nothing to do; and `bun run migrate:pg URL` is the same.
    expect((await bunMigrate(url)).out).toContain("migrations: 0 applied");
    const alias = await run([process.execPath, "run", "migrate:pg", url], "");
    expect(alias.code).toBe(0);
    expect(alias.out).toContain("migrations: 0 applied");
  });

  test("bunx drizzle-kit migrate (drizzle.config.ts, no --config) builds the same database; each tool finds the other's work done", async () => {
    const [byKit, byUs] = [await server.newDatabase(), await server.newDatabase()];
    const kit = await kitMigrate(byKit);
    expect(kit.out).toContain("migrations applied successfully");
    expect(kit.code).toBe(0);
    expect((await bunMigrate(byKit)).out).toContain("migrations: 0 applied");
    expect((await bunMigrate(byUs)).code).toBe(0);
    const again = await kitMigrate(byUs);
    expect(again.code).toBe(0);
    const [a, b] = [await pgInspect(byKit), await pgInspect(byUs)];
    expect(a.applied).toEqual(expectedPgApplied());
    expect(a.columns.length).toBeGreaterThan(50);
    expect(b).toEqual(a);
  });

  test("a database owner without superuser rights can migrate (pg_trgm is a trusted extension)", async () => {
    const url = await server.newDatabase();
    const role = `sitesync_owner_${process.pid}_${Date.now().toString(36)}`;
    const admin = new pg.Client({ connectionString: server.adminUrl() });
    await admin.connect();
    try {
      await admin.query(`create role "${role}" login nosuperuser nocreatedb nocreaterole`);
      const name = new URL(url).pathname.slice(1);
      await admin.query(`alter database "${name}" owner to "${role}"`);
      const asOwner = new URL(url);
      asOwner.username = role;
      const r = await bunMigrate(asOwner.toString());
      expect(r.out).toContain(`migrations: ${pgMigrations.length} applied`);
      expect(r.code).toBe(0);
      const state = await pgInspect(asOwner.toString());
      expect(state.extensions.map((e) => e.extname)).toContain("pg_trgm");
      expect(state.indexes.map((i) => i.indexname)).toContain("gsc_queries_query_trgm_idx");
      // The old rows' triggers went with the table (migrations/pg/0008): api_keys' NOTIFY (0012) and the rollup's
      // triggers keeping each query's newest day (0023) and the sites' one clearing them first (0028) are left.
      expect(state.triggers.map((t) => t.tgname).sort()).toEqual([
        "api_keys_notify",
        "gsc_day_query_totals_last_day_delete",
        "gsc_day_query_totals_last_day_insert",
        "sites_query_last_days_delete",
      ]);
      expect((await admin.query("select rolsuper from pg_roles where rolname = $1", [role])).rows).toEqual([{ rolsuper: false }]);
      await admin.query(`drop database "${name}" with (force)`);
    } finally {
      await admin.query(`drop role if exists "${role}"`).catch(() => {});
      await admin.end();
    }
  });

  test("an unreachable server fails with one line naming it, no stack", async () => {
    const r = await bunMigrate("postgres://postgres@127.0.0.1:1/nowhere");
    expect(r.code).toBe(1);
    const ours = r.out.split("\n").filter((l) => l && !l.startsWith("$ ") && !l.startsWith("error: script"));
    expect(ours).toEqual([expect.stringMatching(/^fatal: migrations failed on 127\.0\.0\.1:1\/nowhere: .*ECONNREFUSED/)]);
  });
});
