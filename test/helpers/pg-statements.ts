import type { Db } from "../../src/db/index.ts";

/** The SQL texts `fn` sends to PostgreSQL through `db`'s pool, in order (each pooled client's query wrapped while it runs). */
export async function pgStatementsOf(db: Db, fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  let on = true;
  // A client is acquired many times: wrap its query once; after `fn` the wrapper records nothing.
  const wrapped = new WeakSet<object>();
  const onAcquire = (c: { query: (...a: unknown[]) => unknown }) => {
    if (wrapped.has(c)) return;
    wrapped.add(c);
    const query = c.query.bind(c);
    c.query = (...a: unknown[]) => {
      const text = typeof a[0] === "string" ? a[0] : (a[0] as { text?: string }).text;
      if (on && text) seen.push(text);
      return query(...a);
    };
  };
  db.pg!.pool.on("acquire", onAcquire);
  try {
    await fn();
  } finally {
    on = false;
    db.pg!.pool.off("acquire", onAcquire);
  }
  return seen;
}
