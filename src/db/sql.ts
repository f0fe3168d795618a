import { is, sql, type SQL, type SQLWrapper } from "drizzle-orm";
import { BaseSQLiteDatabase } from "drizzle-orm/sqlite-core";
import type { Q } from "./engine.ts";
import type { Db, Engine } from "./index.ts";
import type { Orm } from "./sqlite/open.ts";

// SQL fragments whose spelling differs between the engines; everything else is Drizzle's builder, once.

/**
 * `col LIKE pattern` without regard to ASCII case, with `\` escaping % and _ (see containsPattern): SQLite's LIKE
 * folds ASCII letters only. On PostgreSQL (likeAsciiSql) a plain ILIKE, which a trigram index serves, then ILIKE
 * under COLLATE "C", which folds ASCII letters only whatever the database's locale (a UTF-8 locale's ILIKE alone
 * matched 'Éclair' with 'éclair', which SQLite does not).
 */
export function likeInsensitive(db: Db, col: SQLWrapper, pattern: string): SQL {
  return db.engine === "pg"
    ? sql`(${col} ilike ${pattern} escape '\\' and (${col} collate "C") ilike ${pattern} escape '\\')`
    : sql`${col} like ${pattern} escape '\\'`;
}

/** likeInsensitive as SQL text, for a column `col` and a named parameter `param` (e.g. "$like") of raw statements. */
export function likeAsciiSql(engine: Engine, col: string, param: string): string {
  return engine === "pg"
    ? `(${col} ilike ${param} escape '\\' and (${col} collate "C") ilike ${param} escape '\\')`
    : `${col} like ${param} escape '\\'`;
}

/** `value IN (list)` for a list bound as one JSON array parameter (one prepared statement for any length). */
export function inJsonList(db: Db, col: SQLWrapper, json: string): SQL {
  return db.engine === "pg"
    ? sql`${col} in (select jsonb_array_elements_text(${json}::jsonb))`
    : sql`${col} in (select value from json_each(${json}))`;
}

/**
 * The bun:sqlite Drizzle behind a write-transaction handle (db.tx's or db.write's `tx`), or null on
 * PostgreSQL: lets a function given only `tx` take SQLite's prepared-statement fast path.
 */
export function sqliteOrm(tx: Q | Orm): Orm | null {
  return is(tx, BaseSQLiteDatabase) ? (tx as Orm) : null;
}

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";

/**
 * `col LIKE pattern` exactly as SQLite's LIKE: ASCII letters fold, nothing else does, no escape
 * character (for patterns users write). PostgreSQL: both sides ASCII-lower-cased, `escape ''`; an ILIKE
 * first, which keeps every row the ASCII rule keeps (it folds ASCII letters and more), so a column with a
 * trigram index (gsc_queries.query) is narrowed through it instead of every text of the site being
 * translated (MCP search_keywords at 1 M rows, '%renka%': 58k texts scanned, 6,002 index candidates).
 */
export function likeAsciiInsensitive(db: Db, col: SQLWrapper, pattern: string): SQL {
  return db.engine === "pg"
    ? sql`(${col} ilike ${pattern} escape '' and translate(${col}, ${UPPER}, ${LOWER}) like translate(${pattern}::text, ${UPPER}, ${LOWER}) escape '')`
    : sql`${col} like ${pattern}`;
}

/** An upsert's `set`: each named column takes the proposed row's value (`excluded.col`, one spelling on both engines). */
export function fromExcluded<K extends string>(...cols: K[]): Record<K, SQL> {
  return Object.fromEntries(cols.map((c) => [c, sql.raw(`excluded.${c}`)])) as Record<K, SQL>;
}

/** True when `col` contains (as a substring, case-sensitive) any string of a list bound as one JSON array parameter. */
export function containsAnyOfJsonList(db: Db, col: SQLWrapper, json: string): SQL {
  return db.engine === "pg"
    ? sql`exists (select 1 from jsonb_array_elements_text(${json}::jsonb) as l(v) where strpos(${col}, l.v) > 0)`
    : sql`exists (select 1 from json_each(${json}) where instr(${col}, value) > 0)`;
}

/** A LIKE pattern matching `term` anywhere, with %, _ and the escape character taken literally. */
export function containsPattern(term: string): string {
  return `%${term.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

/**
 * Control characters (C0, DEL, C1). SQLite's LIKE stops reading a pattern at a NUL, so `%00` would
 * match every query; no Search Console query holds one, so a term with any is refused.
 */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
