import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { sites } from "../src/db/schema.ts";
import { logOncePer, setLogLevel } from "../src/log.ts";
import { tempDb } from "./helpers/db.ts";

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
  test("a write transaction that held the lock past WRITE_LOCK_WARN_MS is logged with what it was doing", async () => {
    const h = t.open({ holdWarnMs: 20 });
    capture();
    await h.write((tx) => {
      Bun.sleepSync(40);
      return tx.insert(sites).values({ domain: "sc-domain:slow.example", name: "Slow" }).run();
    }, "slow test insert");
    await h.write((tx) => tx.insert(sites).values({ domain: "sc-domain:quick.example", name: "Quick" }).run(), "quick insert");
    const held = lines.filter((l) => l.msg === "write lock held long");
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ level: "warn", writes: 1, what: ["slow test insert"] });
    expect(held[0]!.held_ms).toBeGreaterThanOrEqual(40);
    expect(h.stats.maxHoldMs).toBeGreaterThanOrEqual(40);
  });

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
