import { loadConfig } from "../../src/config.ts";
import { openDbFromConfig, type Db } from "../../src/db/index.ts";

// Looking at a service's database from a test, as an outside observer, on either engine.

/** Opens a short-lived handle on DATABASE_URL `url` (an SQLite path or a PostgreSQL URL), runs `fn`, closes it. */
export async function withDb<T>(url: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = openDbFromConfig(loadConfig([], { DATABASE_URL: url, LOG_LEVEL: "warn" }), "test");
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}
