import { loadConfig } from "../../src/config.ts";
import { openDbFromConfig, type Db } from "../../src/db/index.ts";

// Looking at a service's database from a test, as an outside observer, on either engine.

/**
 * PostgreSQL handles kept per URL for this test process: a new connection costs the server 28-40 ms of CPU on the
 * test machine (fork, page faults, catalog caches), and tests poll with withDb (multimachine opened 249 in one run).
 * Its connections are the observer's own either way; idle ones do not keep the process alive.
 */
const kept = new Map<string, Db>();

/**
 * Runs `fn` on a handle on DATABASE_URL `url` (an SQLite path or a PostgreSQL URL) of this test process, not the
 * service's: SQLite, opened for the call and closed after it; PostgreSQL, one kept per URL (reopened once closed).
 */
export async function withDb<T>(url: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const open = () => openDbFromConfig(loadConfig([], { DATABASE_URL: url, LOG_LEVEL: "warn" }), "test");
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let db = kept.get(url);
    if (!db || db.closed) kept.set(url, (db = open()));
    return fn(db);
  }
  const db = open();
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}
