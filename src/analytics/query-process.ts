import { Database, type SQLQueryBindings } from "bun:sqlite";
import { setPriority } from "node:os";
import type { Pragmas } from "../db/sqlite/open.ts";

// A query process (see pool.ts): runs long read-only SELECTs on a connection of its own, so the HTTP
// worker's event loop keeps serving other requests meanwhile. A process, not a Worker thread: SQLite
// cannot be interrupted from JavaScript, and a Worker's terminate() leaves the statement running to its
// end (measured: CPU kept burning at full speed after terminate()), while the parent's SIGKILL always
// stops it. The parent kills this process when a query passes its time limit or its client goes away.

/** The nice value of query processes: when CPU is short, the scheduler favours the HTTP workers. */
export const QUERY_PROCESS_NICE = 10;

export type QueryRequest =
  | { type: "open"; path: string; pragmas: Pragmas }
  | { type: "all"; id: number; sql: string; params: SQLQueryBindings | unknown[]; maxRows: number; maxBytes: number; values?: boolean };
export type QueryReply =
  | { id: number; rows: unknown[] }
  | { id: number; tooLarge: { rows: number; bytes: number } }
  | { id: number; error: { message: string; name: string; code?: string } };

let conn: Database | undefined;

/**
 * A read-only connection with the service's read pragmas. Not open.ts's openConnection: this process
 * imports nothing but bun:sqlite, so it starts in a fraction of the time (it is started again after
 * every kill). The file is in WAL mode already (the service opened it).
 */
function openReader(path: string, p: Pragmas): Database {
  const c = new Database(path, { create: false, strict: true });
  c.run(`PRAGMA busy_timeout = ${p.busyTimeoutMs}`);
  c.run(`PRAGMA cache_size = ${p.cacheSize}`);
  c.run(`PRAGMA temp_store = ${p.tempStore}`);
  c.run(`PRAGMA mmap_size = ${p.mmapSize}`);
  c.run("PRAGMA query_only = 1");
  return c;
}

/**
 * The rows of `sql`, or what exceeded the caps: more than `maxRows` rows, or more than `maxBytes` of
 * them as JSON (each row measured as it is read, so an over-large answer is never held whole).
 * `params`: named (an object) or positional (an array, Drizzle's). `values`: rows as arrays in column
 * order (what Drizzle maps), else objects.
 */
export function readCapped(
  c: Database,
  sql: string,
  params: SQLQueryBindings | unknown[],
  maxRows: number,
  maxBytes: number,
  values = false,
) {
  const stmt = c.query<Record<string, unknown>, SQLQueryBindings[]>(sql);
  const args = (Array.isArray(params) ? params : [params]) as SQLQueryBindings[];
  const names = stmt.columnNames;
  if (values && new Set(names).size !== names.length) {
    // Two columns of one name cannot be told apart in an object row: read them as arrays at once, then check.
    const rows = stmt.values(...args);
    const bytes = JSON.stringify(rows).length;
    if (rows.length > maxRows || bytes > maxBytes) return { tooLarge: { rows: rows.length, bytes } };
    return { rows };
  }
  const rows: unknown[] = [];
  let bytes = 0;
  for (const row of stmt.iterate(...args)) {
    bytes += JSON.stringify(row).length + 1;
    if (rows.length >= maxRows || bytes > maxBytes) return { tooLarge: { rows: rows.length + 1, bytes } };
    rows.push(values ? names.map((n) => row[n]) : row);
  }
  return { rows };
}

/** Kills this process as soon as its parent is gone, from a thread of its own (the main thread may be inside SQLite). */
function watchParent() {
  const code = `const parent = ${process.ppid};
setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, "SIGKILL"); }, 200);`;
  new Worker(URL.createObjectURL(new Blob([code], { type: "application/javascript" }))).unref();
}

if (import.meta.main) {
  watchParent();
  try {
    setPriority(QUERY_PROCESS_NICE);
  } catch {
    // Where that is not allowed the process runs at normal priority.
  }
  process.on("message", (m: QueryRequest) => {
    if (m.type === "open") {
      conn = openReader(m.path, m.pragmas);
      return;
    }
    try {
      const r = readCapped(conn!, m.sql, m.params, m.maxRows, m.maxBytes, m.values);
      process.send!({ id: m.id, ...r } satisfies QueryReply);
    } catch (err) {
      const { message, name, code } = err as Error & { code?: string };
      process.send!({ id: m.id, error: { message, name, code } } satisfies QueryReply);
    }
  });
  // The parent's channel closing (it exited) ends this process too.
  process.on("disconnect", () => process.exit(0));
}
