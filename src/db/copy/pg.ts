import { getTableColumns } from "drizzle-orm";
import { readMigrationFiles } from "drizzle-orm/migrator";
import type { PgColumn } from "drizzle-orm/pg-core";
import pg from "pg";
import { CopyRefusedError, type CopySource, type CopyTarget } from "./types.ts";
import { describePgTarget, migratePg, pgMigrationsFolder } from "../pg/migrate.ts";
import { copyIn } from "../pg/copy-in.ts";
import { checkPostgresUrl } from "../pg/open.ts";
import { pgQuerySearch } from "../pg/search-index.ts";

// The PostgreSQL side of db:copy (src/db/copy/index.ts): a database read through a cursor per table in one
// REPEATABLE READ transaction, or written with one COPY FROM STDIN per batch (on resume, where rows already there
// are skipped, one INSERT ... SELECT FROM unnest() ... ON CONFLICT DO NOTHING).

// Only one copy into a database at a time (a second one would interleave batches).
const COPY_LOCK = 5_171_511_012;

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: checkPostgresUrl(url) });
  // A connection lost mid-copy rejects the query in flight; this keeps the 'error' event from killing the process.
  client.on("error", () => {});
  await client.connect();
  return client;
}

async function countRows(client: pg.Client, table: string, throughId?: number): Promise<number> {
  const where = throughId === undefined ? "" : ` where "id" <= ${Number(throughId)}`;
  const r = await client.query<{ n: string }>(`select count(*) as n from "${table}"${where}`);
  return Number(r.rows[0]!.n);
}

/** The PostgreSQL database at `url` as the source of a copy. */
export function pgSource(url: string): CopySource {
  let client: pg.Client | null = null;
  const conn = async () => (client ??= await connect(url));
  return {
    async checkSchema() {
      const c = await conn();
      const latest = readMigrationFiles({ migrationsFolder: pgMigrationsFolder }).at(-1)?.folderMillis ?? 0;
      const exists = (await c.query("select to_regclass('drizzle.__drizzle_migrations') is not null as e")).rows[0]?.e;
      const applied = exists ? Number((await c.query("select max(created_at) as m from drizzle.__drizzle_migrations")).rows[0]?.m ?? 0) : 0;
      if (applied < latest) {
        throw new CopyRefusedError(
          `${describePgTarget(url)} is not at the current schema: run \`DATABASE_URL=<its URL> bun run migrate\` first`,
        );
      }
    },
    async begin() {
      // One snapshot for every table and the counts; a running service goes on writing meanwhile.
      await (await conn()).query("begin isolation level repeatable read read only");
    },
    async count(t, throughId) {
      return countRows(await conn(), t.name, throughId);
    },
    async *read(t, columns, afterId, size) {
      const c = await conn();
      const list = columns.map((n) => `"${n}"`).join(", ");
      const order = t.key.map((k) => `"${k}"`).join(", ");
      const where = t.id ? ` where "id" > ${Number(afterId)}` : "";
      await c.query(`declare copy_rows no scroll cursor for select ${list} from "${t.name}"${where} order by ${order}`);
      try {
        const idAt = columns.indexOf("id");
        let n = 0;
        for (;;) {
          const r = await c.query<unknown[]>({ text: `fetch forward ${size} from copy_rows`, rowMode: "array" });
          if (r.rows.length === 0) return;
          const which = t.id
            ? `rows ${r.rows[0]![idAt]}..${r.rows.at(-1)![idAt]} (id)`
            : `rows ${n + 1}..${n + r.rows.length} (in key order)`;
          n += r.rows.length;
          yield { rows: r.rows, which };
        }
      } finally {
        await c.query("close copy_rows");
      }
    },
    async close() {
      if (!client) return;
      await client.query("rollback").catch(() => {});
      await client.end();
    },
  };
}

/** The PostgreSQL database at `url` as the target of a copy: migrated first. */
export function pgTarget(url: string): CopyTarget {
  let client: pg.Client | null = null;
  const conn = () => client!;
  return {
    async open() {
      await migratePg(url);
      client = await connect(url);
      const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [COPY_LOCK]);
      if (!rows[0]?.ok) throw new CopyRefusedError("another db:copy into this database is running");
    },
    async count(t) {
      return countRows(conn(), t.name);
    },
    async maxId(t) {
      if (!t.id) return 0;
      const r = await conn().query<{ m: string | null }>(`select max("id") as m from "${t.name}"`);
      return Number(r.rows[0]?.m ?? 0);
    },
    async clear(tables) {
      await conn().query(`truncate ${tables.map((t) => `"${t.name}"`).join(", ")} restart identity`);
    },
    async insert(t, columns, rows, skipExisting) {
      if (!skipExisting) return copyIn(conn(), t.name, columns, rows);
      // One statement per batch with an array per column: 11 parameters for 5000 rows instead of 55,000.
      const byName = new Map(Object.values(getTableColumns(t.pg)).map((c) => [c.name, c as PgColumn]));
      const unnest = columns.map((n, i) => `$${i + 1}::${byName.get(n)!.getSQLType()}[]`).join(", ");
      const list = columns.map((n) => `"${n}"`).join(", ");
      const text = `insert into "${t.name}" (${list}) select * from unnest(${unnest}) on conflict do nothing`;
      const arrays = columns.map((_, i) => rows.map((r) => r[i]));
      const r = await conn().query(text, arrays);
      return r.rowCount ?? rows.length;
    },
    async tableDone(t) {
      // Explicit ids do not move an identity sequence: move it past the highest id, so new rows get fresh ones.
      if (!t.id) return;
      await conn().query(`select setval(pg_get_serial_sequence('"${t.name}"', 'id'), coalesce(max("id"), 0) + 1, false) from "${t.name}"`);
    },
    async finish() {
      const c = conn();
      // The trigram index is current with every write; the mark (SQLite's FTS bookkeeping) says so.
      await c.query(`insert into gsc_queries_indexed (id, indexed_through) values (1, (select coalesce(max(id), 0) from gsc_queries))
        on conflict (id) do update set indexed_through = excluded.indexed_through`);
      // New GIN entries wait in a pending list, which searches scan and the planner costs high, until (auto)vacuum
      // merges them; after a bulk load, merge now. Statistics for the planner too, before the service starts.
      await c.query("select gin_clean_pending_list($1::regclass)", [pgQuerySearch.index]);
      await c.query("analyze");
    },
    async close() {
      if (!client) return;
      // Ends the session, and with it the advisory lock.
      await client.end();
    },
  };
}
