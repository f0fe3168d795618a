import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { authMiddleware, defaultAuthOptions } from "../src/auth/middleware.ts";
import * as authQueries from "../src/auth/queries.ts";
import { createApiKey, revokeApiKey } from "../src/auth/queries.ts";
import type { SqliteDb } from "../src/db/index.ts";
import { setLogLevel } from "../src/log.ts";
import { createSite } from "../src/sites/queries.ts";
import { requestFrom, runScript } from "./helpers/client.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { startServer } from "./helpers/server.ts";

// Protected mode's "does any active key exist" answer is remembered per process while the file's
// data_version stays the same (src/auth/middleware.ts): a key created or revoked by another
// connection or process must still change the very next keyless request's answer. SQLite: data_version.
// PostgreSQL: a LISTEN on api_keys' trigger (src/db/pg/key-changes.ts), so a keyless request asks nothing
// while no notification came, and the answer changes as soon as the commit's notification arrives.

setLogLevel("silent");
const root = join(import.meta.dir, "..");

const sqliteOnly = testEngine !== "sqlite";

describe.skipIf(sqliteOnly)("in-process, the other handle playing another process", () => {
  let t: ReturnType<typeof tempDb>;
  let other: ReturnType<typeof tempDb>["db"];
  let app: ReturnType<typeof createApp>;
  beforeAll(() => {
    t = tempDb();
    other = t.open();
    app = createApp(t.db);
  });
  afterAll(() => t.cleanup());
  // app.request has no socket: the caller counts as local (protected mode lets it in without a key).
  const status = async () => (await app.request("/api/v1/sites")).status;

  test("a key created, expired, revoked elsewhere changes the next keyless answer", async () => {
    for (let i = 0; i < 3; i++) expect(await status()).toBe(200);
    // A commit that is not a key: asked again, still no key.
    await createSite(other, { domain: "sc-domain:other.example", name: "Other" });
    expect(await status()).toBe(200);
    const k = await createApiKey(other, { name: "elsewhere", scope: "read" });
    expect(await status()).toBe(401);
    expect(await status()).toBe(401);
    await revokeApiKey(other, k.info.id);
    expect(await status()).toBe(200);
    // A key that ends by expiring (no commit at its end): protected mode comes back by itself.
    await createApiKey(other, { name: "short", scope: "read", expiresAt: new Date(Date.now() + 300) });
    expect(await status()).toBe(401);
    await Bun.sleep(400);
    expect(await status()).toBe(200);
  });

  test("a key created through this process's own writer connection is seen at once", async () => {
    expect(await status()).toBe(200);
    await createApiKey(t.db, { name: "own", scope: "read" });
    expect(await status()).toBe(401);
  });
});

describe.skipIf(sqliteOnly)("a keyless write's check in its own transaction (the fast path's create)", () => {
  let t: ReturnType<typeof tempDb>;
  beforeAll(() => {
    t = tempDb();
  });
  afterAll(() => t.cleanup());

  test("keyless writes one after another in a transaction ask once; a write between them makes the next ask again", async () => {
    const db = t.db as SqliteDb;
    const writer = authMiddleware(db, defaultAuthOptions).keylessWriter("127.0.0.1", "localhost")!;
    const asked = spyOn(authQueries, "hasActiveKeyIn");
    try {
      const keyless = () => db.write((tx) => writer.allowedIn(tx));
      // Queued in one turn: one transaction, in this order.
      const answers = await Promise.all([
        keyless(),
        keyless(),
        keyless(),
        db.write((tx) => void tx.run(sql`insert into api_keys (name, scope, prefix, key_hash) values ('k', 'read', 'p', 'h')`)),
        keyless(),
        keyless(),
      ]);
      expect(answers).toEqual([true, true, true, undefined, false, false]);
      // The first asks, the next two follow it; after the key's write the first asks (a key: refused), and so does the next.
      expect(asked).toHaveBeenCalledTimes(3);
      // A new transaction asks again.
      expect(await keyless()).toBe(false);
      expect(asked).toHaveBeenCalledTimes(4);
    } finally {
      asked.mockRestore();
    }
  });
});

describe.skipIf(testEngine !== "pg")("PostgreSQL: LISTEN on api_keys, the other handle playing another process", () => {
  let t: ReturnType<typeof tempDb>;
  let other: ReturnType<typeof tempDb>["db"];
  let app: ReturnType<typeof createApp>;
  let queries = 0;
  beforeAll(() => {
    t = tempDb();
    other = t.open();
    // Remembered for a minute without notifications: an answer that changes within the test came from one.
    app = createApp(t.db, { auth: { ...defaultAuthOptions, pgNoKeyMemoryMs: 60_000 } });
    const pool = t.db.pg!.pool;
    const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
    (pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      queries++;
      return query(...a);
    };
  });
  afterAll(() => t.cleanup());
  // A path no route answers: the key check runs (404 when let in, 401 when a key is required) and nothing else asks the database.
  const status = async () => (await app.request("/api/v1/no-such-thing")).status;
  /** Asks until the answer is `want` (the notification arrives just after the commit); false after 5 s. */
  async function becomes(want: number): Promise<boolean> {
    for (const end = Date.now() + 5000; Date.now() < end; await Bun.sleep(5)) if ((await status()) === want) return true;
    return false;
  }

  test("keyless requests ask nothing while no key changes; a key created or revoked elsewhere changes the answer", async () => {
    // Until the listener is connected every keyless request asks the table; then one asks, and the rest nothing.
    let quiet = false;
    for (const end = Date.now() + 10_000; !quiet && Date.now() < end; await Bun.sleep(20)) {
      await status();
      const before = queries;
      await status();
      quiet = queries === before;
    }
    expect(quiet).toBe(true);
    const q1 = queries;
    for (let i = 0; i < 20; i++) expect(await status()).toBe(404);
    expect(queries - q1).toBe(0);
    // A commit that is not a key: no notification, still no key and no query for it.
    await createSite(other, { domain: "sc-domain:other.example", name: "Other" });
    expect(await status()).toBe(404);
    expect(queries - q1).toBe(0);
    const k = await createApiKey(other, { name: "elsewhere", scope: "read" });
    expect(await becomes(401)).toBe(true);
    expect(await status()).toBe(401);
    await revokeApiKey(other, k.info.id);
    expect(await becomes(404)).toBe(true);
  });
});

test.skipIf(sqliteOnly)(
  "real workers: a key created by the CLI refuses the next keyless request in every worker",
  async () => {
    const s = await startServer({ workers: 2, env: { LOCAL_ADDRESSES: "127.0.0.1,::1" } });
    try {
      // Fresh connections spread over both workers; each remembers "no key" many times over.
      const pids = new Set<number>();
      for (let i = 0; i < 20; i++) pids.add((await requestFrom("127.0.0.1", s.url, "GET", "/health")).body.process_id);
      expect(pids.size).toBe(2);
      const before = await Promise.all(Array.from({ length: 40 }, () => requestFrom("127.0.0.1", s.url, "GET", "/api/v1/sites")));
      expect(before.map((r) => r.status)).toEqual(Array(40).fill(200));
      const created = await runScript(root, ["src/auth/cli.ts", "create", "--name", "fresh", "--scope", "read"], {
        DATABASE_URL: s.dbPath,
      });
      expect(created.code).toBe(0);
      const after = await Promise.all(Array.from({ length: 40 }, () => requestFrom("127.0.0.1", s.url, "GET", "/api/v1/sites")));
      expect(after.map((r) => r.status)).toEqual(Array(40).fill(401));
    } finally {
      await s.cleanup();
    }
  },
  60_000,
);
