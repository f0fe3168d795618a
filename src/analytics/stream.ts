import type { Database, SQLQueryBindings, Statement } from "bun:sqlite";
import type { Db } from "../db/index.ts";
import { openConnection } from "../db/open.ts";
import { Gauge } from "prom-client";
import { registry } from "../metrics/registry.ts";

// Large downloads: rows are read one by one with a statement's iterate() and written as they are
// read, in chunks the client pulls (ReadableStream backpressure), so memory stays flat at any size.

const openDownloads = new Gauge({
  name: "sitesync_downloads_open",
  help: "Streamed downloads (page-keyword CSV, export) holding a database connection right now",
  aggregator: "sum",
  registers: [registry],
});

/** Bytes of text gathered before a chunk is handed to the socket. */
const CHUNK_CHARS = 256 * 1024;

/**
 * Opens a read-only connection of its own for one download. The process's shared reader must not
 * be used: a statement left open there would pin every other read of this process to the snapshot
 * taken when the download started. Its sorts spill to temp files, not memory; it has a small cache and no mmap.
 */
export function openExportConnection(db: Db): Database {
  // A one-pass read gains nothing from a page cache or a memory map, which would only grow the
  // process's RSS by the pages read (64 MB cache, up to mmap_size mapped).
  const conn = openConnection(db.path, { ...db.pragmas, tempStore: "FILE", cacheSize: -2000, mmapSize: 0 });
  conn.run("PRAGMA query_only = 1");
  return conn;
}

/**
 * A byte stream of `header` then `line(row)` for each row of `sql`, read on its own connection as the
 * client consumes it; the connection closes at the end, on error or when the client goes away.
 */
export function streamQuery<R>(
  db: Db,
  sql: string,
  params: SQLQueryBindings,
  header: string,
  line: (row: R) => string,
): ReadableStream<Uint8Array> {
  const conn = openExportConnection(db);
  let stmt: Statement<R, [SQLQueryBindings]>;
  let rows: IterableIterator<R>;
  try {
    stmt = conn.prepare<R, [SQLQueryBindings]>(sql);
    rows = stmt.iterate(params);
  } catch (err) {
    conn.close();
    throw err;
  }
  openDownloads.inc();
  const encoder = new TextEncoder();
  let pending = header;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    // SQLite only really closes a connection once its statements are finalized (until then the
    // file stays open and the read snapshot held).
    rows.return?.();
    stmt.finalize();
    conn.close();
    openDownloads.dec();
  };
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        try {
          let text = pending;
          pending = "";
          while (text.length < CHUNK_CHARS) {
            const next = rows.next();
            if (next.done) {
              if (text) controller.enqueue(encoder.encode(text));
              close();
              controller.close();
              return;
            }
            text += line(next.value);
          }
          controller.enqueue(encoder.encode(text));
        } catch (err) {
          close();
          controller.error(err);
        }
      },
      cancel() {
        close();
      },
    },
    // One chunk queued ahead of the socket at most.
    { highWaterMark: 1 },
  );
}
