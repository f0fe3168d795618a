import type Pg from "pg";
import type * as NodePg from "drizzle-orm/node-postgres";

// node-postgres and Drizzle's driver over it, loaded on first use: a SQLite process never loads them
// (they were ~15 % of a cold worker's start-up). Modules of src/db/pg/ take their types with
// `import type` and their values from here.

/** The `pg` module (node-postgres). */
export function pgDriver(): typeof Pg {
  return require("pg") as typeof Pg;
}

/** Drizzle's node-postgres driver (`drizzle-orm/node-postgres`). */
export function drizzlePg(): typeof NodePg {
  return require("drizzle-orm/node-postgres") as typeof NodePg;
}
