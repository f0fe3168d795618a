import { Database, type SQLQueryBindings } from "bun:sqlite";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { existsSync } from "node:fs";
import { type Batch, CopyRefusedError, type CopySource, type CopyTarget } from "./types.ts";
import { acquireLock, databaseLockPath, InstanceLockedError, type InstanceLock } from "../instance-lock.ts";
import { migrate, migrationsFolder } from "../sqlite/migrate.ts";
import { defaultPragmas, openConnection } from "../sqlite/open.ts";

// The SQLite side of db:copy (src/db/copy/index.ts): a file read in one read transaction, or written in a
// transaction per batch.

/** Rows of an SQLite table (with rowid up to `through`, if given). */
function countRows(db: Database, table: string, through?: number): number {
  const where = through === undefined ? "" : ` where rowid <= ${Number(through)}`;
  return db.query<{ n: number }, []>(`select count(*) as n from "${table}"${where}`).get()!.n;
}

/**
 * Rows of a table without an `id`, in primary-key order, `size` at a time: a row-value cursor on the key
 * (keyset paging), so each batch is one seek and a short range of the key's b-tree. Works for `WITHOUT
 * ROWID` tables, which have no rowid to page by.
 */
async function* readByKey(db: Database, table: string, key: string[], columns: string[], size: number): AsyncIterable<Batch> {
  const list = columns.map((c) => `"${c}"`).join(", ");
  const keys = key.map((c) => `"${c}"`).join(", ");
  const at = key.map((c) => columns.indexOf(c));
  if (at.some((i) => i < 0)) throw new Error(`${table}: its key (${key.join(", ")}) is not among the copied columns`);
  const first = db.query<unknown[], [number]>(`select ${list} from "${table}" order by ${keys} limit ?`);
  const next = db.query<unknown[], SQLQueryBindings[]>(
    `select ${list} from "${table}" where (${keys}) > (${key.map(() => "?").join(", ")}) order by ${keys} limit ?`,
  );
  let after: SQLQueryBindings[] | null = null;
  for (;;) {
    const rows: unknown[][] = after ? next.values(...after, size) : first.values(size);
    if (rows.length === 0) return;
    const keyOf = (r: unknown[]) => at.map((i) => r[i] as SQLQueryBindings);
    yield { rows, which: `rows (${keyOf(rows[0]!).join(", ")})..(${keyOf(rows.at(-1)!).join(", ")}) (key)` };
    after = keyOf(rows.at(-1)!);
  }
}

/** The SQLite file at `path` as the source of a copy. */
export function sqliteSource(path: string): CopySource {
  if (!existsSync(path)) throw new CopyRefusedError(`no SQLite database at ${path}`);
  const db = new Database(path, { readonly: true });
  let inTransaction = false;
  return {
    async checkSchema() {
      const latest = readMigrationFiles({ migrationsFolder }).at(-1)?.folderMillis ?? 0;
      const hasTable = db.query("select 1 from sqlite_master where type = 'table' and name = '__drizzle_migrations'").get();
      const applied = hasTable
        ? Number(db.query<{ m: number | null }, []>(`select max(created_at) as m from "__drizzle_migrations"`).get()?.m ?? 0)
        : 0;
      if (applied < latest) {
        throw new CopyRefusedError(`${path} is not at the current schema: run \`DATABASE_URL=${path} bun run migrate\` first`);
      }
    },
    async begin() {
      // One snapshot for the copy and the counts (WAL readers never block the service).
      db.run("BEGIN");
      inTransaction = true;
    },
    async count(t, throughId) {
      return countRows(db, t.name, throughId);
    },
    async *read(t, columns, afterId, size) {
      if (!t.id) {
        yield* readByKey(db, t.name, t.sqliteKey, columns, size);
        return;
      }
      // A table with an integer `id`: the rowid is its key (an integer primary key is the rowid itself).
      const list = columns.map((c) => `"${c}"`).join(", ");
      const stmt = db.query<unknown[], [number, number]>(`select rowid, ${list} from "${t.name}" where rowid > ? order by rowid limit ?`);
      let last = afterId;
      for (;;) {
        const rows = stmt.values(last, size);
        if (rows.length === 0) return;
        const first = rows[0]![0] as number;
        last = rows.at(-1)![0] as number;
        yield { rows: rows.map((r) => r.slice(1)), which: `rows ${first}..${last} (rowid)` };
      }
    },
    async close() {
      if (inTransaction) db.run("COMMIT");
      db.close();
    },
  };
}

/** The SQLite file at `path` as the target of a copy: created and migrated if need be. */
export function sqliteTarget(path: string): CopyTarget {
  let db: Database | null = null;
  let lock: InstanceLock | null = null;
  const conn = () => db!;
  const inserts = new Map<string, ReturnType<Database["query"]>>();
  return {
    async open() {
      migrate(path);
      // The service's own lock file: no service may run on the file while it is being filled.
      try {
        lock = acquireLock(
          databaseLockPath(path),
          `the database ${path}`,
          { port: 0, host: "db:copy", database: path, shared: false },
          { sharable: false },
        );
      } catch (err) {
        if (err instanceof InstanceLockedError) throw new CopyRefusedError(`${err.message}: stop it before copying into this file`);
        throw err;
      }
      db = openConnection(path, defaultPragmas);
    },
    async count(t) {
      return countRows(conn(), t.name);
    },
    async maxId(t) {
      if (!t.id) return 0;
      return conn().query<{ m: number | null }, []>(`select max(id) as m from "${t.name}"`).get()?.m ?? 0;
    },
    async clear(tables) {
      const db = conn();
      db.transaction(() => {
        // With the FTS mark at 0, gsc_queries' delete trigger leaves the FTS index alone; it is emptied at once.
        db.run("update gsc_queries_indexed set indexed_through = 0 where id = 1");
        db.run("insert into gsc_queries_fts (gsc_queries_fts) values ('delete-all')");
        for (const t of tables) db.run(`delete from "${t.name}"`);
      })();
    },
    async insert(t, columns, rows, skipExisting) {
      const db = conn();
      const key = `${t.name}:${skipExisting}`;
      let stmt = inserts.get(key);
      if (!stmt) {
        const list = columns.map((c) => `"${c}"`).join(", ");
        const marks = columns.map(() => "?").join(", ");
        stmt = db.query(`insert into "${t.name}" (${list}) values (${marks})${skipExisting ? " on conflict do nothing" : ""}`);
        inserts.set(key, stmt);
      }
      const s = stmt;
      return db.transaction(() => {
        let n = 0;
        for (const r of rows) n += s.run(...(r as never[])).changes;
        return n;
      })();
    },
    async tableDone() {
      // AUTOINCREMENT keeps its counter (sqlite_sequence) past every id inserted, explicit ones included.
    },
    async finish() {
      // What migrations/sqlite/0006 does for existing data: the FTS5 index of every query, and its mark.
      const db = conn();
      db.transaction(() => {
        db.run("insert into gsc_queries_fts (gsc_queries_fts) values ('rebuild')");
        db.run("update gsc_queries_indexed set indexed_through = (select coalesce(max(id), 0) from gsc_queries) where id = 1");
      })();
      db.run("PRAGMA optimize");
    },
    async close() {
      for (const s of inserts.values()) s.finalize();
      db?.close();
      lock?.release();
    },
  };
}
