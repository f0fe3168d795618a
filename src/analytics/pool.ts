import type { SQLQueryBindings } from "bun:sqlite";
import type { Db, SqliteDb } from "../db/index.ts";
import type { ThreadReply, ThreadRequest } from "./query-thread.ts";

// Aggregations over hundreds of thousands of rows take from 0.1 to several seconds of SQLite time.
// Run on the reader connection they would block the HTTP worker's event loop for as long, stalling
// every other request of that process (sites, health...). They run on query threads instead: each
// has its own read-only connection (a fresh snapshot per query), and the event loop only waits.

/** Query threads per HTTP process: two slow queries at once before they queue. */
const THREADS = 2;

type Thread = { worker: Worker; pending: Map<number, { resolve: (rows: unknown[]) => void; reject: (err: Error) => void }> };

/** Runs read-only SELECTs on this process's query threads. */
export type QueryPool = { all<R>(sql: string, params: SQLQueryBindings): Promise<R[]> };

const pools = new WeakMap<object, QueryPool>();

/** The query threads of this database handle (started on first use, stopped when the handle closes). */
export function queryPool(db: SqliteDb): QueryPool {
  // Keyed by the reader connection: wrapped handles (e.g. the audited one) share the pool.
  let pool = pools.get(db.raw.reader);
  if (!pool) {
    pool = createPool(db);
    pools.set(db.raw.reader, pool);
  }
  return pool;
}

function createPool(db: SqliteDb): QueryPool {
  const threads: Thread[] = [];
  let nextId = 1;

  const start = (): Thread => {
    const worker = new Worker(new URL("./query-thread.ts", import.meta.url).href);
    // Never what keeps a process alive: the HTTP server or the test runner decides that.
    worker.unref();
    const t: Thread = { worker, pending: new Map() };
    worker.onmessage = (e: MessageEvent<ThreadReply>) => {
      const r = e.data;
      const p = t.pending.get(r.id);
      if (!p) return;
      t.pending.delete(r.id);
      if ("rows" in r) p.resolve(r.rows);
      else p.reject(Object.assign(new Error(r.error.message), { name: r.error.name, code: r.error.code }));
    };
    worker.onerror = (e) => {
      // A thread that died answers nothing more: fail what it held and start a new one next time.
      threads.splice(threads.indexOf(t), 1);
      for (const p of t.pending.values()) p.reject(new Error(`query thread failed: ${e.message}`));
      t.pending.clear();
    };
    worker.postMessage({ type: "open", path: db.path, pragmas: db.pragmas } satisfies ThreadRequest);
    threads.push(t);
    return t;
  };

  db.onClose.push(() => {
    for (const t of threads.splice(0)) {
      for (const p of t.pending.values()) p.reject(new Error("the database was closed"));
      t.worker.terminate();
    }
  });

  return {
    all<R>(sql: string, params: SQLQueryBindings) {
      // The least busy thread; a new one while fewer than THREADS run and all are busy.
      let t = threads.reduce<Thread | undefined>((a, b) => (a && a.pending.size <= b.pending.size ? a : b), undefined);
      if (!t || (t.pending.size > 0 && threads.length < THREADS)) t = start();
      const id = nextId++;
      return new Promise<R[]>((resolve, reject) => {
        t.pending.set(id, { resolve: resolve as (rows: unknown[]) => void, reject });
        t.worker.postMessage({ type: "all", id, sql, params } satisfies ThreadRequest);
      });
    },
  };
}
