import { openPgDb } from "../../src/db/index.ts";
import { freePort } from "../../src/free-port.ts";
import { tempDb } from "./db.ts";

// A TCP proxy in a test, to make a server go away and come back without touching the server.

/**
 * A TCP proxy in front of the PostgreSQL server: stop() closes the listener and every connection
 * through it (as a server that went away), start() listens again on the same port.
 */
export async function tcpProxy(target: URL) {
  // One-shot fault on the next client chunk `cut.match` accepts: "forward" sends it on, then drops the
  // client's side at once (the server acts on it, or waits in it, while the client has gone); "answer" sends it
  // on and drops both sides when the server's answer arrives, unsent (the server has run it, its answer is lost:
  // a fixed delay before the cut can be outlasted by a loaded server); "drop" drops both sides unsent;
  // "hold" drops the client's side and keeps the server's open, unsent (the server's transaction stays open).
  type CutMode = "forward" | "answer" | "drop" | "hold";
  // `match` gets the chunk's text and its client connection's number (1, 2...: to follow one transaction).
  let cut: { match: (text: string, conn: number) => boolean; mode: CutMode } | null = null;
  // Standing fault: every client chunk it accepts is dropped with both sides of its connection, until cleared.
  let refused: ((text: string) => boolean) | null = null;
  const port = freePort();
  // Delay before each new connection reaches the server (a busy host: the backend slow to start), ms.
  let connectDelayMs = 0;
  // Client connections accepted since start (each new connection of the pool or a probe).
  let accepted = 0;
  const sockets = new Set<{ end(): void }>();
  type Pair = {
    id: number;
    upstream?: { write(c: Uint8Array): number; end(): void };
    pending: Uint8Array[];
    closed?: boolean;
    /** An "answer" cut is armed on this connection: the server's next answer is dropped with both sides. */
    cutOnAnswer?: boolean;
  };
  let listener: { stop(force?: boolean): void } | null = null;
  const start = async () => {
    listener = Bun.listen<Pair>({
      hostname: "127.0.0.1",
      port,
      socket: {
        async open(client) {
          accepted++;
          client.data = { id: accepted, pending: [] };
          sockets.add(client);
          try {
            if (connectDelayMs > 0) {
              await Bun.sleep(connectDelayMs);
              if (client.data.closed) return; // the client gave up meanwhile
            }
            const upstream = await Bun.connect({
              hostname: target.hostname,
              port: Number(target.port || 5432),
              socket: {
                data: (server, chunk: Uint8Array) => {
                  if (!client.data.cutOnAnswer) return void client.write(chunk);
                  client.end();
                  server.end();
                },
                close: () => void client.end(),
                error: () => void client.end(),
              },
            });
            sockets.add(upstream);
            client.data.upstream = upstream;
            for (const c of client.data.pending.splice(0)) upstream.write(c);
          } catch {
            client.end();
          }
        },
        data(client, chunk) {
          if (refused && client.data.upstream && refused(Buffer.from(chunk).toString("latin1"))) {
            client.data.upstream.end();
            client.end();
            return;
          }
          if (cut && client.data.upstream && cut.match(Buffer.from(chunk).toString("latin1"), client.data.id)) {
            const { mode } = cut;
            cut = null;
            const upstream = client.data.upstream;
            if (mode === "forward") {
              upstream.write(chunk);
              client.end();
              // The server reads the command before it sees the connection go.
              setTimeout(() => upstream.end(), 200);
            } else if (mode === "answer") {
              client.data.cutOnAnswer = true;
              upstream.write(chunk);
            } else if (mode === "hold") {
              client.data.upstream = undefined; // so the client's close does not end it
              client.end();
            } else {
              upstream.end();
              client.end();
            }
            return;
          }
          if (client.data.upstream) client.data.upstream.write(chunk);
          else client.data.pending.push(new Uint8Array(chunk));
        },
        close(client) {
          client.data.closed = true;
          client.data.upstream?.end();
        },
      },
    });
  };
  await start();
  return {
    port,
    start,
    /** Client connections accepted so far. */
    get accepted() {
      return accepted;
    },
    /** Holds each new connection this long before it reaches the server (0: none): a slow connect, not a silent server. */
    delayNewConnections(ms: number) {
      connectDelayMs = ms;
    },
    /** Arms the one-shot fault (see `cut` above). */
    cutNext(match: (text: string, conn: number) => boolean, mode: CutMode) {
      cut = { match, mode };
    },
    /** Drops (both sides) every connection that sends a chunk `match` accepts, until called with null. */
    refuse(match: ((text: string) => boolean) | null) {
      refused = match;
    },
    stop() {
      listener?.stop(true);
      listener = null;
      for (const s of sockets) s.end();
      sockets.clear();
    },
  };
}

/**
 * A database of the test's own and a pool on it through a TCP proxy (to cut, hold or delay its connections);
 * what must be undone is pushed on `cleanups` (the test file's afterEach runs it in reverse).
 */
export async function proxiedPgDb(cleanups: (() => unknown)[], opts: Omit<Parameters<typeof openPgDb>[0], "url" | "role">) {
  const t = tempDb();
  cleanups.push(() => t.cleanup());
  const proxy = await tcpProxy(new URL(t.databaseUrl));
  cleanups.push(() => proxy.stop());
  const u = new URL(t.databaseUrl);
  u.port = String(proxy.port);
  const db = openPgDb({ url: u.toString(), role: "test", ...opts });
  cleanups.push(() => db.close());
  return { t, proxy, db };
}
