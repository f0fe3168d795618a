import { dlopen, FFIType } from "bun:ffi";
import type { Database, SQLQueryBindings } from "bun:sqlite";
import { openConnection, type Pragmas } from "../db/sqlite/open.ts";

// A query thread (see pool.ts): runs long read-only SELECTs on a connection of its own, so the HTTP
// worker's event loop keeps serving other requests meanwhile.

/** The nice value of query threads: when CPU is short, the scheduler favours the request threads. */
export const QUERY_THREAD_NICE = 10;

/**
 * Lowers this thread's scheduling priority (Linux: setpriority on the thread id affects that thread
 * only). Where that is not possible the thread simply runs at normal priority.
 */
function lowerThreadPriority(): boolean {
  if (process.platform !== "linux") return false;
  try {
    const libc = dlopen("libc.so.6", {
      gettid: { args: [], returns: FFIType.i32 },
      setpriority: { args: [FFIType.i32, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    });
    const ok = libc.symbols.setpriority(0 /* PRIO_PROCESS */, libc.symbols.gettid(), QUERY_THREAD_NICE) === 0;
    libc.close();
    return ok;
  } catch {
    return false;
  }
}

declare const self: Worker;

export type ThreadRequest =
  | { type: "open"; path: string; pragmas: Pragmas }
  | { type: "all"; id: number; sql: string; params: SQLQueryBindings };
export type ThreadReply = { id: number; rows: unknown[] } | { id: number; error: { message: string; name: string; code?: string } };

let conn: Database | undefined;

self.onmessage = (e: MessageEvent<ThreadRequest>) => {
  const m = e.data;
  if (m.type === "open") {
    lowerThreadPriority();
    conn = openConnection(m.path, m.pragmas);
    conn.run("PRAGMA query_only = 1");
    return;
  }
  try {
    // query() compiles each SQL text once for this connection.
    const rows = conn!.query<unknown, [SQLQueryBindings]>(m.sql).all(m.params);
    postMessage({ id: m.id, rows } satisfies ThreadReply);
  } catch (err) {
    const { message, name, code } = err as Error & { code?: string };
    postMessage({ id: m.id, error: { message, name, code } } satisfies ThreadReply);
  }
};
