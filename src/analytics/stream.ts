import type { Database, SQLQueryBindings } from "bun:sqlite";
import { AsyncLocalStorage } from "node:async_hooks";
import type { Db, SqliteDb } from "../db/index.ts";
import { openConnection } from "../db/sqlite/open.ts";
import { openPgCursor } from "../db/pg/cursor.ts";
import { toPositional } from "../db/pg/named.ts";
import { Gauge } from "../metrics/prom.ts";
import { registry } from "../metrics/registry.ts";
import { log } from "../log.ts";
import { downloadEnds } from "./download-end.ts";

// Large downloads: rows are read as the client pulls chunks (ReadableStream backpressure) and written
// as they are read, so memory stays flat at any size. SQLite: a statement's iterate() on a connection
// of its own; PostgreSQL: a server-side cursor on a connection of its own, FETCHed in batches.

const openDownloads = new Gauge({
  name: "sitesync_downloads_open",
  help: "Streamed downloads (page-keyword CSV, export) holding a database connection right now",
  aggregator: "sum",
  registers: [registry],
});

/** Bytes of text gathered before a chunk is handed to the socket. */
const CHUNK_CHARS = 256 * 1024;
/** Longest slice of a SQLite download's reading and formatting in one turn of the event loop (ms). */
const SLICE_MS = 8;
/**
 * Rows per FETCH of a PostgreSQL cursor. Each FETCH's rows are parsed and formatted in one go on the event loop:
 * 2,000 held it 94-202 ms (p99 of a 120,000-row CSV at load 21-30), 500 43-61 ms for the same CPU and wall time.
 */
const FETCH_ROWS = 500;

/**
 * Opens a read-only connection of its own for one download. The process's shared reader must not
 * be used: a statement left open there would pin every other read of this process to the snapshot
 * taken when the download started. Its sorts spill to temp files, not memory; it has a small cache and no mmap.
 */
export function openExportConnection(db: SqliteDb): Database {
  // A one-pass read gains nothing from a page cache or a memory map, which would only grow the
  // process's RSS by the pages read (64 MB cache, up to mmap_size mapped).
  const conn = openConnection(db.path, { ...db.pragmas, tempStore: "FILE", cacheSize: -2000, mmapSize: 0 });
  conn.run("PRAGMA query_only = 1");
  return conn;
}

/**
 * How a download turns rows into bytes (text lines, Parquet row groups): `add` takes one row, `ready` is how
 * much output waits (characters or bytes), `take` hands it over (`end`: everything left, trailer included).
 */
export type RowEncoder<R> = {
  add(row: R): void;
  ready(): number;
  take(end: boolean): Uint8Array | null;
};

/** A text encoder: `header`, then `line(row)` for each row, as UTF-8. */
export function textRows<R>(header: string, line: (row: R) => string): RowEncoder<R> {
  const encoder = new TextEncoder();
  let text = header;
  return {
    add(row) {
      text += line(row);
    },
    ready: () => text.length,
    take() {
      if (!text) return null;
      const bytes = encoder.encode(text);
      text = "";
      return bytes;
    },
  };
}

export type StreamOptions = {
  /**
   * The longest the download may run (ms, EXPORT_TIMEOUT_MS): past it the stream is cut (the client
   * sees the body end without its last chunk) and its connection closed. Unset: no limit.
   */
  timeoutMs?: number;
  /**
   * SQLite steps only: a direct stream (Bun's `type: "direct"`), each chunk written straight to the consumer; when
   * that is Bun's HTTP response the steps write the next chunk into the same memory (DownloadSteps.recycle), not
   * into new memory whose pages fault in as they are written. A JavaScript reader of it gets no backpressure (the
   * steps run on without waiting for its reads).
   */
  direct?: boolean;
};

/** The error a download's stream ends with past its time limit (logged; the client sees the body cut). */
function downloadTimedOut(timeoutMs: number): Error {
  log("warn", "download stopped at its time limit (EXPORT_TIMEOUT_MS)", { timeout_ms: timeoutMs });
  return new Error(`the download was stopped after ${timeoutMs} ms (EXPORT_TIMEOUT_MS)`);
}

/**
 * Cuts a download at its time limit whether or not the client is reading (a slow chunk, a client that stopped
 * pulling): at `deadline` `stop` closes the read and the stream errors. Returns the function that cancels it
 * (at the end of the download); without a limit, nothing.
 */
function cutAtDeadline(
  timeoutMs: number | undefined,
  stop: () => void,
): { arm(error: (err: unknown) => void): void; disarm(): void; fail(err: unknown): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let errorStream: ((err: unknown) => void) | null = null;
  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    try {
      errorStream?.(err);
    } catch {
      // Closed or errored already.
    }
  };
  return {
    arm(error) {
      errorStream = error;
      if (!timeoutMs) return;
      timer = setTimeout(() => {
        stop();
        fail(downloadTimedOut(timeoutMs));
      }, timeoutMs);
    },
    disarm() {
      clearTimeout(timer);
    },
    fail,
  };
}

/**
 * A byte stream of `header` then `line(row)` for each row of `sql` (the engine's text, named
 * parameters), read on its own connection as the client consumes it; the connection closes at the
 * end, on error, past `opts.timeoutMs` or when the client goes away. Resolves once the rows can be read
 * (a connection that fails is an error before any byte is sent).
 */
export async function streamQuery<R>(
  db: Db,
  sql: string,
  params: Record<string, string | number | null>,
  header: string,
  line: (row: R) => string,
  opts: StreamOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  return streamRows(db, sql, params, textRows(header, line), opts);
}

/** streamQuery with any encoder of the rows (e.g. Parquet, see parquet.ts). */
export async function streamRows<R>(
  db: Db,
  sql: string,
  params: Record<string, string | number | null>,
  out: RowEncoder<R>,
  opts: StreamOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  return db.engine === "pg" ? streamPg(db, sql, params, out, opts) : streamSqlite(db, sql, params, out, opts);
}

function streamSqlite<R>(
  db: SqliteDb,
  sql: string,
  params: SQLQueryBindings,
  out: RowEncoder<R>,
  opts: StreamOptions,
): ReadableStream<Uint8Array> {
  return streamSteps(
    db,
    (conn) => {
      const stmt = conn.prepare<R, [SQLQueryBindings]>(sql);
      let rows: IterableIterator<R>;
      try {
        rows = stmt.iterate(params);
      } catch (err) {
        stmt.finalize();
        throw err;
      }
      return {
        step() {
          const next = rows.next();
          if (next.done) return false;
          out.add(next.value);
          return true;
        },
        ready: () => out.ready(),
        take: (end) => out.take(end),
        close() {
          // SQLite only really closes a connection once its statements are finalized (until then the
          // file stays open and the read snapshot held).
          rows.return?.();
          stmt.finalize();
        },
      };
    },
    64,
    opts,
  );
}

/**
 * How a SQLite download makes its bytes: `step` reads and encodes a little (false once every row is written),
 * `ready`/`take` as RowEncoder's, `close` lets the statements go.
 */
export type DownloadSteps = {
  step(): boolean;
  ready(): number;
  take(end: boolean): Uint8Array | null;
  /** The consumer is done with a chunk `take` returned: its memory may be written again (none: every chunk is new). */
  recycle?(chunk: Uint8Array): void;
  close(): void;
};

/**
 * How Bun's HTTP response shows as a direct stream's controller. Its `write` sends the bytes or copies them into
 * the response's buffer before it returns, so a chunk written there may be written over at once.
 */
const HTTP_RESPONSE_SINK = "[object ReadableHTTPResponseSinkController]";

/**
 * A byte stream of `open`'s steps on a read connection of its own (openExportConnection), run as the client
 * pulls: at most SLICE_MS of steps per turn of the event loop (the clock read every `checkEvery` steps).
 * The connection closes at the end, on error, past `opts.timeoutMs` or when the client goes away.
 */
export function streamSteps(
  db: SqliteDb,
  open: (conn: Database) => DownloadSteps,
  checkEvery: number,
  opts: StreamOptions,
): ReadableStream<Uint8Array> {
  const deadline = opts.timeoutMs ? performance.now() + opts.timeoutMs : Number.POSITIVE_INFINITY;
  const conn = openExportConnection(db);
  let steps: DownloadSteps;
  try {
    steps = open(conn);
  } catch (err) {
    conn.close();
    throw err;
  }
  openDownloads.inc();
  let closed = false;
  let ended: (() => void) | null = null;
  const close = () => {
    if (closed) return;
    closed = true;
    cut.disarm();
    steps.close();
    conn.close();
    openDownloads.dec();
    ended?.();
  };
  // The limit holds while the client is not reading too (its connection and read snapshot are let go).
  const cut = cutAtDeadline(opts.timeoutMs, close);
  /**
   * The next chunk, after a turn of the event loop (`last`: the download's end; null: closed or past the limit).
   * A client reading fast (loopback) makes the stream ask again at once, in microtasks: without a turn of the
   * event loop between chunks, a whole download ran before the worker served anything else (its other requests,
   * the supervisor's ping: workers were killed as hung). One turn per chunk.
   */
  const next = async (): Promise<{ chunk: Uint8Array | null; last: boolean } | null> => {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (closed) return null;
      if (performance.now() >= deadline) {
        close();
        cut.fail(downloadTimedOut(opts.timeoutMs!));
        return null;
      }
      // A slice of at most SLICE_MS of reading and formatting per turn, so other requests wait little.
      const sliceEnd = performance.now() + SLICE_MS;
      let n = 0;
      while (steps.ready() < CHUNK_CHARS && (++n % checkEvery !== 0 || performance.now() < sliceEnd)) {
        if (!steps.step()) return { chunk: steps.take(true), last: true };
      }
      // Nothing yet (a sparse filter, a Parquet row group still filling): another slice after a turn of the
      // event loop. A pull that enqueues nothing is not called again (the stream would stall).
      const chunk = steps.take(false);
      if (chunk) return { chunk, last: false };
    }
  };
  if (opts.direct) {
    // Bun's HTTP response runs a direct stream's pull outside the request's context: its log lines (the time
    // limit's) keep the request's fields this way.
    const inRequest = AsyncLocalStorage.snapshot();
    const stream = new ReadableStream<Uint8Array>({
      type: "direct",
      pull: (controller) => inRequest(() => pullDirect(controller)),
      cancel() {
        close();
      },
    });
    const pullDirect = async (controller: ReadableStreamDirectController) => {
      // Bun's HTTP response has the bytes sent or copied once write returns: the steps may write over them.
      const reuse = Object.prototype.toString.call(controller) === HTTP_RESPONSE_SINK;
      cut.arm((err) => controller.close(err as Error));
      try {
        for (;;) {
          const got = await next();
          if (!got) return;
          if (got.chunk) {
            const written = controller.write(got.chunk);
            if (reuse) steps.recycle?.(got.chunk);
            else controller.flush();
            // Backpressure: a pending write resolves once the client has read enough.
            if (written instanceof Promise) await written;
          }
          if (got.last) {
            close();
            controller.close();
            return;
          }
        }
      } catch (err) {
        close();
        cut.fail(err);
      }
    };
    downloadEnds.set(stream, (fn) => {
      if (closed) fn();
      else ended = fn;
    });
    return stream;
  }
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        cut.arm((err) => controller.error(err));
      },
      async pull(controller) {
        try {
          const got = await next();
          if (!got) return;
          if (got.chunk) controller.enqueue(got.chunk);
          if (got.last) {
            close();
            controller.close();
          }
        } catch (err) {
          close();
          cut.fail(err);
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

async function streamPg<R>(
  db: Db,
  sql: string,
  params: Record<string, unknown>,
  out: RowEncoder<R>,
  opts: StreamOptions,
): Promise<ReadableStream<Uint8Array>> {
  const deadline = opts.timeoutMs ? performance.now() + opts.timeoutMs : Number.POSITIVE_INFINITY;
  // Each FETCH is one statement; the server's statement_timeout is only a backstop: the timer below cuts a
  // FETCH running at the deadline (it used to run on for up to the whole limit again).
  const cursor = await openPgCursor(db, toPositional(sql, params), {
    name: "download",
    statementTimeoutMs: opts.timeoutMs ? opts.timeoutMs + 1000 : undefined,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    cut.disarm();
    await cursor.close();
    openDownloads.dec();
  };
  // At the limit, reading or not: the connection is dropped at once (a running FETCH ends with it).
  const cut = cutAtDeadline(opts.timeoutMs && Math.max(1, deadline - performance.now()), () => {
    if (closed) return;
    closed = true;
    cursor.abort();
    openDownloads.dec();
  });
  openDownloads.inc();
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        cut.arm((err) => controller.error(err));
      },
      async pull(controller) {
        if (closed) return;
        if (performance.now() >= deadline) {
          await close();
          cut.fail(downloadTimedOut(opts.timeoutMs!));
          return;
        }
        try {
          while (out.ready() < CHUNK_CHARS) {
            const { rows } = await cursor.fetch<R>(FETCH_ROWS);
            for (const r of rows) out.add(r);
            if (rows.length < FETCH_ROWS) {
              const last = out.take(true);
              if (last) controller.enqueue(last);
              await close();
              controller.close();
              return;
            }
          }
          const chunk = out.take(false);
          if (chunk) controller.enqueue(chunk);
        } catch (err) {
          await close();
          cut.fail(err);
        }
      },
      async cancel() {
        await close();
      },
    },
    { highWaterMark: 1 },
  );
}

/** A byte stream of `header` then `line(item)` for each of `items` (already read), a chunk per turn of the event loop. */
export function linesStream<T>(header: string, items: readonly T[], line: (item: T) => string): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  let pending = header;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        let text = pending;
        pending = "";
        while (text.length < CHUNK_CHARS && i < items.length) text += line(items[i++]!);
        if (text) controller.enqueue(encoder.encode(text));
        if (i >= items.length) controller.close();
      },
    },
    { highWaterMark: 1 },
  );
}
