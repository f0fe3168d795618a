import { Database } from "bun:sqlite";
import { getTableColumns, getTableName, sql } from "drizzle-orm";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { getTableConfig as pgTableConfig, type PgTable } from "drizzle-orm/pg-core";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import { existsSync } from "node:fs";
import { migrationsFolder } from "./migrate.ts";
import { migratePg } from "./pg/migrate.ts";
import { openPg, type PgOrm } from "./pg/open.ts";
import { pgTablesByName, sqliteTablesByName } from "./pg/tables.ts";

// `bun run db:copy`: an SQLite file into a PostgreSQL database, table by table in batches, ids kept.
// The source is read in one read transaction, so the copy is one consistent snapshot even while the
// service keeps writing (what it writes later is not copied). Each batch commits on its own, so an
// interrupted copy can be resumed.

/** fresh: the target must be empty; resume: keep what an earlier run copied, add the rest; replace: empty the target first. */
export type CopyMode = "fresh" | "resume" | "replace";

export type CopyProgress = { table: string; done: number; total: number };
export type TableCount = { table: string; source: number; target: number };

export type CopyOptions = {
  /** Path of the SQLite file. */
  from: string;
  /** postgres:// URL of the target database (migrated first). */
  to: string;
  mode: CopyMode;
  /** Rows per INSERT. */
  batchSize?: number;
  onProgress?: (p: CopyProgress) => void;
};

export type CopyResult = { counts: TableCount[]; verified: boolean; copiedRows: number; ms: number };

/** The copy cannot start: the message says why and what to do. Nothing was written to the target. */
export class CopyRefusedError extends Error {}

// Only one copy into a database at a time (a second one would interleave batches).
const COPY_LOCK = 5_171_511_012;

/** Copies every table of the SQLite file at `from` into the PostgreSQL database at `to`; verifies row counts. */
export async function copySqliteToPg(opts: CopyOptions): Promise<CopyResult> {
  const started = performance.now();
  if (!existsSync(opts.from)) throw new CopyRefusedError(`no SQLite database at ${opts.from}`);
  const source = new Database(opts.from, { readonly: true });
  try {
    checkSourceMigrated(source, opts.from);
    await migratePg(opts.to);
    const target = openPg(opts.to, { max: 2 });
    const lock = await target.pool.connect();
    try {
      const { rows } = await lock.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [COPY_LOCK]);
      if (!rows[0]?.ok) throw new CopyRefusedError("another db:copy into this database is running");
      const tables = copyOrder();
      await prepareTarget(target.orm, tables, opts.mode);
      // One snapshot of the source for the copy and the counts (WAL readers never block the service).
      source.run("BEGIN");
      try {
        let copiedRows = 0;
        const counts: TableCount[] = [];
        for (const t of tables) {
          copiedRows += await copyTable(source, target, t, opts);
          await resetSequence(target.orm, t.pg);
          counts.push({ table: t.name, source: countRows(source, t.name), target: await countPgRows(target.orm, t.name) });
        }
        return { counts, verified: counts.every((c) => c.source === c.target), copiedRows, ms: Math.round(performance.now() - started) };
      } finally {
        source.run("COMMIT");
      }
    } finally {
      lock.release(true);
      await target.close();
    }
  } finally {
    source.close();
  }
}

type TablePair = { name: string; sqlite: SQLiteTable; pg: PgTable };

/** Tables paired by name, parents before the tables whose foreign keys point at them. */
function copyOrder(): TablePair[] {
  const sqliteTables = sqliteTablesByName();
  const pgTables = pgTablesByName();
  const missing = [...sqliteTables.keys()].filter((n) => !pgTables.has(n));
  if (missing.length > 0) throw new Error(`tables without a PostgreSQL twin in src/db/pg/schema.ts: ${missing.join(", ")}`);
  const ordered: TablePair[] = [];
  const visit = (name: string, path: string[]) => {
    if (ordered.some((t) => t.name === name)) return;
    if (path.includes(name)) throw new Error(`foreign keys form a cycle: ${[...path, name].join(" -> ")}`);
    const pgTable = pgTables.get(name)!;
    for (const fk of pgTableConfig(pgTable).foreignKeys) {
      const parent = getTableName(fk.reference().foreignTable);
      if (parent !== name) visit(parent, [...path, name]);
    }
    ordered.push({ name, sqlite: sqliteTables.get(name)!, pg: pgTable });
  };
  for (const name of [...sqliteTables.keys()].sort()) visit(name, []);
  return ordered;
}

/** Refuses a source file that is not at the current schema (its columns would not match the copy's). */
function checkSourceMigrated(source: Database, path: string) {
  const latest = readMigrationFiles({ migrationsFolder }).at(-1)?.folderMillis ?? 0;
  const hasTable = source.query("select 1 from sqlite_master where type = 'table' and name = '__drizzle_migrations'").get();
  const applied = hasTable
    ? Number(source.query<{ m: number | null }, []>(`select max(created_at) as m from "__drizzle_migrations"`).get()?.m ?? 0)
    : 0;
  if (applied < latest) {
    throw new CopyRefusedError(`${path} is not at the current schema: run \`DATABASE_URL=${path} bun run migrate\` first`);
  }
}

/** Applies the mode: fresh refuses a non-empty target, replace empties it (ids restart), resume keeps it. */
async function prepareTarget(pgdb: PgOrm, tables: TablePair[], mode: CopyMode) {
  if (mode === "replace") {
    const names = tables.map((t) => `"${t.name}"`).join(", ");
    await pgdb.execute(sql.raw(`truncate ${names} restart identity cascade`));
    return;
  }
  if (mode === "resume") return;
  const nonEmpty: string[] = [];
  for (const t of tables) {
    const n = await countPgRows(pgdb, t.name);
    if (n > 0) nonEmpty.push(`${t.name} (${n} rows)`);
  }
  if (nonEmpty.length > 0) {
    throw new CopyRefusedError(
      `the target database is not empty: ${nonEmpty.join(", ")}. ` +
        "Use --resume to finish an interrupted copy, or --replace to delete its rows and copy again.",
    );
  }
}

/**
 * Copies one table in batches of rowid order (on resume, after the highest id already there); returns rows
 * inserted. Each batch is one INSERT ... SELECT FROM unnest() with an array per column: 11 parameters for
 * 5000 rows instead of 55,000, which halves the time of a large copy.
 */
async function copyTable(source: Database, target: ReturnType<typeof openPg>, t: TablePair, opts: CopyOptions): Promise<number> {
  const pgByName = new Map(Object.values(getTableColumns(t.pg)).map((c) => [c.name, c]));
  // Each value goes SQLite storage -> JS (the SQLite schema's mapping) -> PostgreSQL (the pg schema's).
  const columns = Object.values(getTableColumns(t.sqlite)).map((c) => {
    const twin = pgByName.get(c.name);
    if (!twin) throw new Error(`${t.name}.${c.name} has no PostgreSQL twin`);
    return { name: c.name, from: c, to: twin };
  });
  const list = columns.map((c) => `"${c.name}"`).join(", ");
  const read = source.query<unknown[], [number, number]>(`select rowid, ${list} from "${t.name}" where rowid > ? order by rowid limit ?`);
  const unnest = columns.map((c, i) => `$${i + 1}::${c.to.getSQLType()}[]`).join(", ");
  // On resume a row of a table without an integer id (or one copied meanwhile) may be there already.
  const insert = `insert into "${t.name}" (${list}) select * from unnest(${unnest})${opts.mode === "resume" ? " on conflict do nothing" : ""}`;
  const batch = opts.batchSize ?? 5000;
  const total = countRows(source, t.name);
  // An integer primary key `id` is SQLite's rowid: rows up to the highest id in the target were copied.
  let last = 0;
  if (opts.mode === "resume" && pgByName.get("id")?.primary) {
    const r = await target.pool.query<{ m: string | null }>(`select max("id") as m from "${t.name}"`);
    last = Number(r.rows[0]?.m ?? 0);
  }
  let done = last > 0 ? countRows(source, t.name, last) : 0;
  let inserted = 0;
  opts.onProgress?.({ table: t.name, done, total });
  for (;;) {
    const rows = read.values(last, batch);
    if (rows.length === 0) break;
    last = rows.at(-1)![0] as number;
    const arrays = columns.map((c, i) =>
      rows.map((r) => {
        const v = r[i + 1];
        return v === null ? null : c.to.mapToDriverValue(c.from.mapFromDriverValue(v));
      }),
    );
    const r = await target.pool.query(insert, arrays).catch((err: Error) => {
      throw new Error(`${t.name}, rows ${rows[0]![0]}..${last} (rowid): ${err.message}`, { cause: err });
    });
    inserted += r.rowCount ?? rows.length;
    done += rows.length;
    opts.onProgress?.({ table: t.name, done, total });
  }
  return inserted;
}

/** Moves the identity sequence of the table's `id` (if any) past the highest id, so new rows get fresh ids. */
async function resetSequence(pgdb: PgOrm, table: PgTable) {
  const cfg = pgTableConfig(table);
  const id = cfg.columns.find((c) => c.name === "id" && c.primary);
  if (!id) return;
  await pgdb.execute(
    sql.raw(`select setval(pg_get_serial_sequence('"${cfg.name}"', 'id'), coalesce(max("id"), 0) + 1, false) from "${cfg.name}"`),
  );
}

/** Rows of an SQLite table (with rowid up to `through`, if given). */
function countRows(db: Database, table: string, through?: number): number {
  const where = through === undefined ? "" : ` where rowid <= ${Number(through)}`;
  return db.query<{ n: number }, []>(`select count(*) as n from "${table}"${where}`).get()!.n;
}

async function countPgRows(pgdb: PgOrm, table: string): Promise<number> {
  const r = await pgdb.execute<{ n: string }>(sql.raw(`select count(*) as n from "${table}"`));
  return Number(r.rows[0]!.n);
}
