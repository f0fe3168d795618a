import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { getTableConfig, SQLiteTable } from "drizzle-orm/sqlite-core";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";
import { migrationsFolder } from "../src/db/migrate.ts";
import * as schema from "../src/db/schema.ts";
import { tempDir } from "./helpers/db.ts";

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(60_000);

// Both migration paths (`bun run migrate` and `bunx drizzle-kit migrate`) on empty files, real processes.

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-migrations-");
afterAll(() => dir.cleanup());
let n = 0;
const freshPath = () => join(dir.dir, `m${++n}.db`);

const migrations = readMigrationFiles({ migrationsFolder });

type MasterRow = { type: string; name: string; tbl_name: string; sql: string | null };
const bookkeeping = (r: MasterRow) => !r.name.startsWith("__drizzle_migrations") && !r.name.startsWith("sqlite_autoindex___drizzle");

function schemaOf(conn: Database): MasterRow[] {
  return conn
    .query<MasterRow, []>("select type, name, tbl_name, sql from sqlite_master order by type, name")
    .all()
    .filter(bookkeeping);
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
      applied: conn.query<{ hash: string; created_at: number }, []>('select hash, created_at from "__drizzle_migrations" order by created_at').all(),
    };
  } finally {
    conn.close();
  }
}

const expectedApplied = () => migrations.map((m) => ({ hash: m.hash, created_at: m.folderMillis }));

async function run(cmd: string[], path: string) {
  const proc = Bun.spawn(cmd, {
    cwd: root,
    env: { ...process.env, DATABASE_URL: path },
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
      const columns = mem.query<{ name: string }, []>(`select name from pragma_table_info('${cfg.name}')`).all().map((c) => c.name);
      expect({ table: cfg.name, columns: columns.sort() }).toEqual({ table: cfg.name, columns: cfg.columns.map((c) => c.name).sort() });
      const indexes = mem
        .query<{ name: string }, []>(`select name from pragma_index_list('${cfg.name}') where origin = 'c'`)
        .all()
        .map((i) => i.name);
      expect({ table: cfg.name, indexes: indexes.sort() }).toEqual({ table: cfg.name, indexes: cfg.indexes.map((i) => i.config.name).sort() });
    }
    mem.close();
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
  test("brings an empty file to the current schema; running it again is a no-op", async () => {
    const path = freshPath();
    const first = await kitMigrate(path);
    expect(first.code).toBe(0);
    expect(first.out).toContain("migrations applied successfully");
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });

    const again = await kitMigrate(path);
    expect(again.code).toBe(0);
    expect(inspect(path)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });
  });

  test("either tool finds the other's work done", async () => {
    const a = freshPath();
    expect((await kitMigrate(a)).code).toBe(0);
    const then = await bunMigrate(a);
    expect(then.code).toBe(0);
    expect(then.out).toContain("migrations: 0 applied");
    expect(inspect(a).applied).toEqual(expectedApplied());

    const b = freshPath();
    expect((await bunMigrate(b)).code).toBe(0);
    expect((await kitMigrate(b)).code).toBe(0);
    expect(inspect(b)).toEqual({ schema: expectedSchema(), applied: expectedApplied() });
  });
});
