import { drizzle } from "drizzle-orm/sqlite-proxy";
import { queryPool } from "../../analytics/pool.ts";
import type { Q } from "../engine.ts";
import type { SqliteDb } from "../index.ts";
import * as schema from "./schema.ts";

// Drizzle whose queries run in the query processes (src/analytics/pool.ts) within the current request's
// budget: off the event loop, killed past the time limit or when the client leaves, refused past the
// row and byte caps. Drizzle's SQLite proxy driver hands us each statement's text, parameters and
// method; the rows come back as arrays, which Drizzle maps as it does its own driver's.

/** Drizzle over `db`'s file whose every query runs bounded in a query process (writes fail: the connection is query_only). */
export function boundedOrm(db: SqliteDb): Q {
  return drizzle(
    async (sql, params, method) => {
      if (method === "run") throw new Error("a bounded read cannot write");
      const rows = await queryPool(db).values(sql, params);
      return { rows: method === "get" ? rows[0] : rows } as { rows: unknown[] };
    },
    { schema },
  ) as unknown as Q;
}
