import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { openPgDb } from "../src/db/index.ts";
import { sites } from "../src/db/sqlite/schema.ts";
import { logOncePer, setLogLevel } from "../src/log.ts";
import { freePort } from "../src/free-port.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";

// Error answers the API promises and how they are logged: a 500 with a request id and no stack, 405
// with Allow, long write-lock holds and repeated errors in the log.

let t: ReturnType<typeof tempDb>;
let lines: Record<string, any>[];
let spy: ReturnType<typeof spyOn> | undefined;
beforeAll(() => {
  t = tempDb();
  setLogLevel("info");
});
afterAll(() => t.cleanup());
afterEach(() => spy?.mockRestore());

function capture() {
  lines = [];
  spy = spyOn(console, "error").mockImplementation((...args: unknown[]) => void lines.push(JSON.parse(args.map(String).join(" "))));
}

describe("500", () => {
  test("an unexpected failure answers 500 with the request id, no stack or internals; the log line has the stack", async () => {
    // A handle closed under the app: every query throws an error no route expects.
    const h = t.open();
    const app = createApp(h);
    h.close();
    capture();
    const res = await app.request("/api/v1/sites/1");
    const text = await res.text();
    expect(res.status).toBe(500);
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/.{8,}/);
    expect(JSON.parse(text)).toMatchObject({ error: { code: "internal", message: `internal error (request id ${id})` } });
    expect(text).not.toMatch(/\bat \S+:\d+|stack|closed database|SQLite/i);
    const logged = lines.find((l) => l.msg === "unhandled error");
    expect(logged).toMatchObject({ level: "error", request_id: id, error: expect.any(String) });
    expect(logged!.stack).toMatch(/\n\s+at /);
  });
});

describe("503 from a PostgreSQL server that does not answer, never 500", () => {
  const expect503 = async (res: Response) => {
    const text = await res.text();
    expect({ status: res.status, retryAfter: res.headers.get("retry-after") }).toEqual({
      status: 503,
      retryAfter: expect.stringMatching(/^[1-9]\d*$/),
    });
    expect(JSON.parse(text)).toMatchObject({ error: { code: "unavailable" } });
    expect(text).not.toMatch(/\bat \S+:\d+|stack|ECONNREFUSED|127\.0\.0\.1/i);
  };

  // Needs no server: nothing listens on the port (runs in both engines' suites).
  test("nothing listening at the URL: reads, writes and the key check answer 503 with Retry-After", async () => {
    const db = openPgDb({ url: `postgres://postgres@127.0.0.1:${freePort()}/nowhere`, role: "test", poolSize: 2, rideThroughMs: 200 });
    try {
      lines = [];
      spy = spyOn(console, "error").mockImplementation(() => {});
      // Protected mode asks whether a key exists before anything else; AUTH=off goes straight to the queries.
      for (const app of [createApp(db), createApp(db, { auth: { mode: "off", localAddresses: [], allowedHosts: [] } })]) {
        await expect503(await app.request("/api/v1/sites/1"));
        await expect503(await app.request("/api/v1/sites?limit=5"));
        await expect503(
          await app.request("/api/v1/sites", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ domain: "sc-domain:down.example", name: "Down" }),
          }),
        );
        await expect503(
          await app.request("/api/v1/keys", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ name: "k", scope: "read" }),
          }),
        );
      }
    } finally {
      db.close();
    }
  });

  test.skipIf(testEngine !== "pg")(
    "the connection of a running request terminated by the server (pg_terminate_backend): a read is retried once and answers, a write is retried and lands once",
    async () => {
      const h = t.open();
      const admin = await t.db.pg!.pool.connect();
      try {
        const app = createApp(h, { auth: { mode: "off", localAddresses: [], allowedHosts: [] } });
        const created = await app.request("/api/v1/sites", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ domain: "sc-domain:kept.term.example", name: "Kept" }),
        });
        expect(created.status).toBe(201);
        const { id } = (await created.json()) as { id: number };
        /** Holds a lock every statement on sites waits for, until released. */
        const blockSites = async () => {
          await admin.query("begin");
          await admin.query("lock table sites in access exclusive mode");
        };
        /** Terminates the one backend waiting for that lock (the request's). */
        const terminateWaiter = async () => {
          for (let i = 0; i < 200; i++) {
            const r = await admin.query(
              "select pg_terminate_backend(pid) as done from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
            );
            if (r.rows.length === 1 && r.rows[0].done) return;
            await Bun.sleep(10);
          }
          throw new Error("no request waited for the lock");
        };

        await blockSites();
        const read = app.request(`/api/v1/sites/${id}`);
        await terminateWaiter();
        await admin.query("rollback");
        // Reads are idempotent: run once more on a new connection (issue 23; before, a 503).
        expect((await read).status).toBe(200);
        // The handle's pool recovers: the next request gets a new connection.
        expect((await app.request(`/api/v1/sites/${id}`)).status).toBe(200);

        await blockSites();
        const write = app.request("/api/v1/sites", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ domain: "sc-domain:retried.term.example", name: "Retried" }),
        });
        await terminateWaiter();
        await admin.query("rollback");
        expect((await write).status).toBe(201);
        const { sites } = t.db.t;
        expect(await t.db.q.select({ id: sites.id }).from(sites).where(eq(sites.domain, "sc-domain:retried.term.example"))).toHaveLength(1);
      } finally {
        await admin.query("rollback").catch(() => {});
        admin.release();
      }
    },
  );
});

describe("405", () => {
  test("a method not routed on an existing path: 405 with Allow; an unknown path stays 404", async () => {
    const app = createApp(t.db);
    const r = await app.request("/api/v1/sites/1", { method: "PUT" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")?.split(", ").sort()).toEqual(["DELETE", "GET", "PATCH"]);
    expect(await r.json()).toMatchObject({ error: { code: "method_not_allowed" } });
    expect((await app.request("/health", { method: "POST" })).headers.get("allow")).toBe("GET");
    expect((await app.request("/nowhere", { method: "PUT" })).status).toBe(404);
  });
});

describe("logs", () => {
  test.skipIf(testEngine === "pg")(
    "a write transaction that held the lock past WRITE_LOCK_WARN_MS is logged with what it was doing (SQLite: the group-commit writer's lock)",
    async () => {
      const h = t.open({ holdWarnMs: 20 });
      capture();
      await asSqlite(h).write((tx) => {
        Bun.sleepSync(40);
        return tx.insert(sites).values({ domain: "sc-domain:slow.example", name: "Slow" }).run();
      }, "slow test insert");
      await asSqlite(h).write((tx) => tx.insert(sites).values({ domain: "sc-domain:quick.example", name: "Quick" }).run(), "quick insert");
      const held = lines.filter((l) => l.msg === "write lock held long");
      expect(held).toHaveLength(1);
      expect(held[0]).toMatchObject({ level: "warn", writes: 1, what: ["slow test insert"] });
      expect(held[0]!.held_ms).toBeGreaterThanOrEqual(40);
      expect(h.stats.maxHoldMs).toBeGreaterThanOrEqual(40);
    },
  );

  test("identical errors are logged once per interval, then once more with the count of repeats", async () => {
    capture();
    for (let i = 0; i < 500; i++) logOncePer("test storm", 200, "error", "storm", { i });
    logOncePer("other key", 200, "error", "other", {});
    expect(lines.map((l) => l.msg)).toEqual(["storm", "other"]);
    expect(lines[0]!.i).toBe(0);
    await Bun.sleep(1300);
    const repeated = lines.filter((l) => l.msg === "storm (repeated)");
    expect(repeated).toHaveLength(1);
    expect(repeated[0]).toMatchObject({ repeated: 499, interval_ms: 200, i: 499 });
    expect(lines.filter((l) => l.msg === "other (repeated)")).toEqual([]);
  });
});
