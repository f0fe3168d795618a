import { getTableColumns, getTableName } from "drizzle-orm";
import { getTableConfig as pgTableConfig } from "drizzle-orm/pg-core";
import { getTableConfig as sqliteTableConfig } from "drizzle-orm/sqlite-core";
import type { DatabaseTarget } from "../../config.ts";
import { pgSource, pgTarget } from "./pg.ts";
import { CopyRefusedError, type CopySource, type CopyTarget, type TablePair } from "./types.ts";
export { CopyRefusedError, type CopySource, type CopyTarget, type TablePair, type Batch } from "./types.ts";
import { sqliteSource, sqliteTarget } from "./sqlite.ts";
import { pgTablesByName, sqliteTablesByName } from "../pg/tables.ts";

// `bun run db:copy`: every table of one database into another, SQLite -> PostgreSQL or PostgreSQL -> SQLite,
// table by table in batches, ids kept. The source is read in one snapshot (an SQLite read transaction, a
// PostgreSQL REPEATABLE READ transaction), so the copy is consistent even while a service keeps writing (what
// it writes later is not copied). Each batch commits on its own, so an interrupted copy can be resumed.
// Each engine's side lives in copy-sqlite.ts and copy-pg.ts.

/** fresh: the target must be empty; resume: keep what an earlier run copied, add the rest; replace: empty the target first. */
export type CopyMode = "fresh" | "resume" | "replace";

export type CopyProgress = { table: string; done: number; total: number };
export type TableCount = { table: string; source: number; target: number };

export type CopyOptions = {
  from: DatabaseTarget;
  /** Migrated first (created, for an SQLite file). */
  to: DatabaseTarget;
  mode: CopyMode;
  /** Rows per insert. */
  batchSize?: number;
  onProgress?: (p: CopyProgress) => void;
};

/** `notCopied`: tables left alone, with the reason. */
export type CopyResult = {
  counts: TableCount[];
  notCopied: { table: string; why: string }[];
  verified: boolean;
  copiedRows: number;
  ms: number;
};

/** The copy cannot start: the message says why and what to do. Nothing was written to the target. */
// Each engine's bookkeeping of its query-search index (SQLite: how far FTS5 has indexed gsc_queries). It is not
// copied: the target sets it for its own index once the copy is done (CopyTarget.finish), and its one row,
// there from the migrations, does not make a target "not empty".
const ownedByTarget = new Set(["gsc_queries_indexed"]);

// Kept by the target's own triggers from the day × query rollup as it is copied (migrations sqlite 0029 / pg 0023): not
// copied (a copied row would collide with the one the trigger wrote), emptied with the rest on --replace (PostgreSQL's
// TRUNCATE fires no row triggers), counted and verified as every table.
const keptByTriggers = new Set(["gsc_query_last_days"]);

// Not data: each live process's heartbeat row (host, pid) in the process registry, written again every few
// seconds by the process itself (copied, the source's processes would show as live in the target); and the
// commit tokens of the PostgreSQL write path (each write transaction's own, swept after 15 minutes); and the
// staging of a big day being synced (a task's own until it switches the day; staging again clears it first).
const notCopied: Record<string, string> = {
  db_connections: "the process registry: each running process registers itself",
  commit_tokens: "PostgreSQL's commit tokens: each write's own, needed minutes at most (see docs/operations.md)",
  gsc_staged_detail: "a running sync's staged day (transient: a task staging again starts from scratch, see docs/sync.md)",
  gsc_staged_query_totals: "a running sync's staged day (transient: a task staging again starts from scratch, see docs/sync.md)",
};

// Copied before the tables whose rows point at them without a foreign key: the query detail and its rollup
// hold gsc_pages / gsc_queries ids (no triggers; the order only keeps a half-done copy readable).
const copiedBefore: Record<string, string[]> = { gsc_query_detail: ["gsc_pages", "gsc_queries"], gsc_day_query_totals: ["gsc_queries"] };

/** Copies every table from `opts.from` to `opts.to` (one SQLite, one PostgreSQL); verifies row counts. */
export async function copyDatabase(opts: CopyOptions): Promise<CopyResult> {
  const started = performance.now();
  if (opts.from.dialect === opts.to.dialect) {
    throw new CopyRefusedError("one side must be an SQLite file and the other a PostgreSQL database");
  }
  const source = opts.from.dialect === "sqlite" ? sqliteSource(opts.from.path) : pgSource(opts.from.url);
  try {
    await source.checkSchema();
    const target = opts.to.dialect === "sqlite" ? sqliteTarget(opts.to.path) : pgTarget(opts.to.url);
    try {
      await target.open();
      const tables = copyOrder().filter((t) => !notCopied[t.name]);
      await prepareTarget(target, tables, opts.mode);
      await source.begin();
      let copiedRows = 0;
      const counts: TableCount[] = [];
      for (const t of tables) {
        if (!ownedByTarget.has(t.name) && !keptByTriggers.has(t.name)) {
          copiedRows += await copyTable(source, target, t, opts);
          await target.tableDone(t);
        }
      }
      await target.finish();
      for (const t of tables) counts.push({ table: t.name, source: await source.count(t), target: await target.count(t) });
      return {
        counts,
        notCopied: Object.entries(notCopied).map(([table, why]) => ({ table, why })),
        verified: counts.every((c) => c.source === c.target),
        copiedRows,
        ms: Math.round(performance.now() - started),
      };
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/** Tables paired by name, parents before the tables whose foreign keys (or triggers) point at them. */
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
    const cfg = pgTableConfig(pgTable);
    const parents = cfg.foreignKeys.map((fk) => getTableName(fk.reference().foreignTable)).concat(copiedBefore[name] ?? []);
    for (const parent of parents) if (parent !== name) visit(parent, [...path, name]);
    const id = cfg.columns.some((c) => c.name === "id" && c.primary);
    const key = id ? ["id"] : (cfg.primaryKeys[0]?.columns.map((c) => c.name) ?? cfg.columns.filter((c) => c.primary).map((c) => c.name));
    const sqliteKey = id ? key : (sqliteTableConfig(sqliteTables.get(name)!).primaryKeys[0]?.columns.map((c) => c.name) ?? key);
    ordered.push({ name, sqlite: sqliteTables.get(name)!, pg: pgTable, id, key, sqliteKey });
  };
  for (const name of [...sqliteTables.keys()].sort()) visit(name, []);
  return ordered;
}

/** Applies the mode: fresh refuses a non-empty target, replace empties it, resume keeps it. */
async function prepareTarget(target: CopyTarget, tables: TablePair[], mode: CopyMode) {
  const copied = tables.filter((t) => !ownedByTarget.has(t.name));
  if (mode === "replace") return target.clear([...copied].reverse());
  if (mode === "resume") return;
  const nonEmpty: string[] = [];
  for (const t of copied) {
    const n = await target.count(t);
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
 * Copies one table in batches of key order (on resume, after the highest id already in the target); returns
 * rows inserted. Each value goes source driver -> JS (the source schema's mapping) -> target driver (the
 * target schema's), so booleans, JSON and 64-bit integers arrive as the target stores them.
 */
async function copyTable(source: CopySource, target: CopyTarget, t: TablePair, opts: CopyOptions): Promise<number> {
  const [from, to] = opts.from.dialect === "sqlite" ? [t.sqlite, t.pg] : [t.pg, t.sqlite];
  const toByName = new Map(Object.values(getTableColumns(to)).map((c) => [c.name, c]));
  const columns = Object.values(getTableColumns(from)).map((c) => {
    const twin = toByName.get(c.name);
    if (!twin) throw new Error(`${t.name}.${c.name} has no twin in the target's schema`);
    return { name: c.name, from: c, to: twin };
  });
  const total = await source.count(t);
  // Rows up to the highest id in the target were copied by an earlier run (each batch commits in key order).
  const last = opts.mode === "resume" && t.id ? await target.maxId(t) : 0;
  let done = last > 0 ? await source.count(t, last) : 0;
  let inserted = 0;
  opts.onProgress?.({ table: t.name, done, total });
  const names = columns.map((c) => c.name);
  for await (const batch of source.read(t, names, last, opts.batchSize ?? 5000)) {
    const rows = batch.rows.map((r) =>
      columns.map((c, i) => (r[i] === null ? null : c.to.mapToDriverValue(c.from.mapFromDriverValue(r[i])))),
    );
    inserted += await target.insert(t, names, rows, opts.mode === "resume").catch((err: Error) => {
      throw new Error(`${t.name}, ${batch.which}: ${err.message}`, { cause: err });
    });
    done += rows.length;
    opts.onProgress?.({ table: t.name, done, total });
  }
  return inserted;
}
