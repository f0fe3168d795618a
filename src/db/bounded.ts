import type { Db } from "./index.ts";
import { boundedOrm as pgBoundedOrm } from "./pg/bounded.ts";
import { boundedOrm as sqliteBoundedOrm } from "./sqlite/bounded.ts";

// Heavy requests (docs/security.md, "Cost bounds") read through a view of the handle whose Drizzle
// reads are bounded: SQLite's run in the query processes (off the event loop, killed at the deadline or
// when the client leaves), PostgreSQL's in a READ ONLY cursor with statement_timeout and
// pg_cancel_backend. Everything else (writes, the engine, the file) is the handle's own.

const views = new WeakMap<Db, Db>();

/** `db` with `q` replaced by Drizzle whose reads run within the current request's budget (src/db/budget.ts). */
export function boundedDb<D extends Db>(db: D): D {
  let v = views.get(db);
  if (!v) {
    const q = db.engine === "pg" ? pgBoundedOrm(db) : sqliteBoundedOrm(db);
    v = Object.create(db, { q: { value: q } }) as Db;
    views.set(db, v);
  }
  return v as D;
}
