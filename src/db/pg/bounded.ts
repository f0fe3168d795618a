import type pg from "pg";
import type { Q } from "../engine.ts";
import type { PgDb } from "../index.ts";
import { pgBoundedRead } from "./named.ts";
import { drizzlePg, pgSchema } from "./driver.ts";

// Drizzle whose queries run as bounded reads (named.ts, pgBoundedRead): each in a READ ONLY transaction
// through a cursor, within the current request's budget (time limit, cancellation when the client
// leaves, row and byte caps). A client object of our own stands in for the pool: Drizzle only calls
// its query(config, values).

type QueryConfig = { text: string; rowMode?: "array"; types?: pg.CustomTypesConfig };

/** Drizzle over `db`'s server whose every query is a bounded read (writes fail: the transaction is READ ONLY). */
export function boundedOrm(db: PgDb): Q {
  const client = {
    query(config: string | QueryConfig, values?: unknown[]) {
      const c = typeof config === "string" ? { text: config } : config;
      return pgBoundedRead(db, { text: c.text, values, rowMode: c.rowMode, types: c.types });
    },
  };
  return drizzlePg().drizzle({ client: client as unknown as pg.Pool, schema: pgSchema() }) as unknown as Q;
}
