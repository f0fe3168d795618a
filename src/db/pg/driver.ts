import type Pg from "pg";
import type * as NodePg from "drizzle-orm/node-postgres";
import type * as Schema from "./schema.ts";
import type * as SyncedRows from "./synced-rows.ts";

// node-postgres and Drizzle's driver over it, loaded on first use: a SQLite process never loads them
// (they were ~15 % of a cold worker's start-up). Modules of src/db/pg/ take their types with
// `import type` and their values from here. The same for the PostgreSQL schema (drizzle-orm/pg-core, 72
// modules) and the synced-rows writers that use it: shared modules take them from here when on PostgreSQL.

/** The `pg` module (node-postgres). */
export function pgDriver(): typeof Pg {
  return require("pg") as typeof Pg;
}

/**
 * Drizzle's node-postgres driver (`drizzle-orm/node-postgres`), its ESM build: through a module that imports it, as
 * engine.ts and schema.ts do. A `require` of the package takes its CommonJS build, a second copy of drizzle-orm
 * beside the ESM one (104 modules, ~90 ms of a PostgreSQL supervisor's and HTTP worker's start).
 */
export function drizzlePg(): typeof NodePg {
  return (require("./node-pg.ts") as { nodePg: typeof NodePg }).nodePg;
}

// Kept once loaded: a `require` of a loaded module still costs ~11 µs, and these are reached per call.
let schema: typeof Schema | undefined;
let syncedRows: typeof SyncedRows | undefined;

/** The PostgreSQL schema (src/db/pg/schema.ts, and with it `drizzle-orm/pg-core`). */
export function pgSchema(): typeof Schema {
  schema ??= require("./schema.ts") as typeof Schema;
  return schema;
}

/** The PostgreSQL writers of synced rows (src/db/pg/synced-rows.ts). */
export function pgSyncedRows(): typeof SyncedRows {
  syncedRows ??= require("./synced-rows.ts") as typeof SyncedRows;
  return syncedRows;
}
