import { is } from "drizzle-orm";
import { PgTable, getTableConfig as pgTableConfig } from "drizzle-orm/pg-core";
import { SQLiteTable, getTableConfig as sqliteTableConfig } from "drizzle-orm/sqlite-core";
import * as sqliteSchema from "../sqlite/schema.ts";
import * as pgSchema from "./schema.ts";

/** Every table of src/db/sqlite/schema.ts by its SQL name. */
export function sqliteTablesByName(): Map<string, SQLiteTable> {
  const tables = Object.values(sqliteSchema as Record<string, unknown>).filter((v): v is SQLiteTable => is(v, SQLiteTable));
  return new Map(tables.map((t) => [sqliteTableConfig(t).name, t]));
}

/** Every table of src/db/pg/schema.ts by its SQL name. */
export function pgTablesByName(): Map<string, PgTable> {
  const tables = Object.values(pgSchema as Record<string, unknown>).filter((v): v is PgTable => is(v, PgTable));
  return new Map(tables.map((t) => [pgTableConfig(t).name, t]));
}
