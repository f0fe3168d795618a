import type { Database, SQLQueryBindings } from "bun:sqlite";
import { openConnection, type Pragmas } from "../db/open.ts";

// A query thread (see pool.ts): runs long read-only SELECTs on a connection of its own, so the HTTP
// worker's event loop keeps serving other requests meanwhile.

declare const self: Worker;

export type ThreadRequest =
  | { type: "open"; path: string; pragmas: Pragmas }
  | { type: "all"; id: number; sql: string; params: SQLQueryBindings };
export type ThreadReply = { id: number; rows: unknown[] } | { id: number; error: { message: string; name: string; code?: string } };

let conn: Database | undefined;

self.onmessage = (e: MessageEvent<ThreadRequest>) => {
  const m = e.data;
  if (m.type === "open") {
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
