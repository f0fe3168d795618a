import type pg from "pg";
import { pgDriver } from "./driver.ts";
import { log } from "../../log.ts";

// PostgreSQL's counterpart of SQLite's PRAGMA data_version for api_keys: one connection per HTTP process
// LISTENs on 'sitesync_api_keys', which a statement trigger on api_keys notifies after every commit that
// changes the table (migrations/pg/0012_api_keys_notify.sql). The auth middleware remembers "no active key"
// with the generation it was read at, so a keyless request in protected mode costs no query. While the
// listener is not connected the generation is null and the table is asked every time, as before.

const CHANNEL = "sitesync_api_keys";
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

/** Tells whether api_keys may have changed since a generation was read. */
export type KeyChanges = {
  /** Changes with every notification and every (re)connect; null while not listening. */
  generation(): number | null;
  close(): void;
};

/** Listens for changes to api_keys on the server at `url` (a dedicated connection from the first generation() call, reconnected with backoff). */
export function watchKeyChanges(url: string): KeyChanges {
  let gen = 0;
  let listening = false;
  let closed = false;
  let client: pg.Client | null = null;
  let delay = RECONNECT_MIN_MS;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const lost = (c: pg.Client) => {
    if (client !== c) return;
    client = null;
    listening = false;
    gen++;
    c.end().catch(() => {});
    if (!closed) schedule();
  };
  const schedule = () => {
    timer = setTimeout(connect, delay);
    timer.unref();
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  };
  async function connect() {
    timer = null;
    if (closed) return;
    // keepAlive: a connection that silently died (no RST) is found by the kernel instead of never.
    const c = new (pgDriver().Client)({ connectionString: url, keepAlive: true, application_name: `sitesync-${process.pid}-keys` });
    client = c;
    c.on("notification", () => {
      gen++;
    });
    c.on("error", () => lost(c));
    c.on("end", () => lost(c));
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
      if (client !== c || closed) return void c.end().catch(() => {});
      // Anything may have changed while not listening: a new generation.
      gen++;
      listening = true;
      delay = RECONNECT_MIN_MS;
    } catch (err) {
      log("debug", "api_keys listener could not connect", { error: String(err) });
      lost(c);
    }
  }
  // Connected on the first question, not at start: a process (or a test's in-process app) that never checks keylessly
  // never opens it (a backend costs the server 20-40 ms of CPU to start on the test machine); until it listens the
  // answer is null, as while reconnecting.
  let started = false;

  return {
    generation: () => {
      if (!started) {
        started = true;
        if (!closed) connect();
      }
      return listening ? gen : null;
    },
    close() {
      closed = true;
      listening = false;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      c?.end().catch(() => {});
    },
  };
}
