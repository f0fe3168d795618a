import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { desc, eq } from "drizzle-orm";
import pg from "pg";
import { createApp, MAX_BODY_BYTES } from "../src/app.ts";
import { authMiddleware, defaultAuthOptions } from "../src/auth/middleware.ts";
import type { Db } from "../src/db/index.ts";
import { createPgFastPath } from "../src/http/pg-fast-path.ts";
import { createSite } from "../src/sites/queries.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { proxiedPgDb } from "./helpers/tcp-proxy.ts";
import { waitFor } from "./helpers/wait.ts";

// The PostgreSQL request fast path (src/http/pg-fast-path.ts) against the full stack, over real sockets: the hot
// requests it answers get the full stack's status, body, headers and audit row; a keyless create whose outcome
// outlasts the ride-through is answered 202 with a pending-write token whose Location gives the final 201; a 503
// met while it runs is answered by it, within one ride-through, with the full stack's error shape.

setDefaultTimeout(60_000);
const NOT_FAST = 599;
type Served = { url: string; stop: () => void };
const serve = (fetch: (req: Request, server: unknown) => Response | Promise<Response>): Served => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: fetch as never });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
};
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** The fast path alone over `db` (NOT_FAST where it leaves a request to the full stack), and the metrics it recorded. */
function fastOnly(db: Db) {
  const observed: [string, number, string][] = [];
  const fast = createPgFastPath({
    db,
    // "No key" remembered for the whole test (1 s by default): a loaded machine must not send a request to the full stack.
    keylessPrincipal: authMiddleware(db, { ...defaultAuthOptions, pgNoKeyMemoryMs: 600_000 }).keylessPrincipal,
    observe: (method, status, route) => observed.push([method, status, route]),
    fallback: () => new Response("not fast", { status: NOT_FAST }),
    maxBodyBytes: MAX_BODY_BYTES,
  });
  const s = serve((req, server) => fast(req, server) ?? new Response("not fast", { status: NOT_FAST }));
  cleanups.push(() => s.stop());
  return { url: s.url, observed };
}

type Answer = { status: number; body: string; headers: Record<string, string> };
async function send(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(base + path, init);
  const headers: Record<string, string> = {};
  for (const [k, v] of res.headers) if (k !== "date") headers[k] = v;
  return { status: res.status, body: await res.text(), headers };
}
const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/**
 * "No key" (the auth middleware asks whether one exists) is looked up, then remembered once its key listener
 * listens: ask until the fast path answers twice in a row (a check started before the listener may end late).
 */
async function warm(url: string) {
  let inRow = 0;
  await waitFor(async () => ((await send(url, "/api/v1/sites")).status !== NOT_FAST ? ++inRow : (inRow = 0)) >= 2, {
    timeout: 10_000,
    what: "the keyless check remembered",
  });
}

/** `path` sent until the fast path takes it (NOT_FAST: left to the full stack before anything was written). */
async function fastly(url: string, path: string, init?: RequestInit): Promise<Answer> {
  let a: Answer | undefined;
  await waitFor(async () => (a = await send(url, path, init)).status !== NOT_FAST, { timeout: 10_000, what: `${path} answered fast` });
  return a!;
}

describe.skipIf(testEngine !== "pg")("request fast path (PostgreSQL)", () => {
  let t: ReturnType<typeof tempDb>;
  let full: Served;
  beforeAll(async () => {
    t = tempDb();
    for (let i = 1; i <= 5; i++) await createSite(t.db, { domain: `sc-domain:s${i}.example`, name: `Site ${i % 3}`, is_active: i !== 4 });
    const app = createApp(t.db, { fastPath: false, backups: null });
    full = serve((req, server) => app.fetch(req, server));
  });
  afterAll(async () => {
    full?.stop();
    await t?.cleanup();
  });

  test("answers plain keyless reads and creates exactly as the full stack does, audit rows included", async () => {
    const fast = fastOnly(t.db);
    await warm(fast.url);
    const id = (r: Answer) => ({ ...r, headers: { ...r.headers, "x-request-id": "id" } });
    for (const [path, init] of [
      ["/api/v1/sites/1", { headers: { "x-request-id": "client-id_1=" } }],
      ["/api/v1/sites/3"],
      ["/api/v1/sites"],
      ["/api/v1/sites?limit=2"],
      ["/api/v1/sites?active_only=0&include_archived=true&limit=3"],
    ] as [string, RequestInit?][]) {
      const before = fast.observed.length;
      const a = await send(fast.url, path, init);
      expect([path, a.status]).toEqual([path, 200]);
      expect(id(a)).toEqual(id(await send(full.url, path, init)));
      expect(fast.observed.length).toBe(before + 1);
    }
    // The next page (a cursor: the builder's query) too.
    const next = /^<([^>]+)>; rel="next"$/.exec((await send(fast.url, "/api/v1/sites?limit=2")).headers.link!)![1]!;
    expect(id(await send(fast.url, next))).toEqual(id(await send(full.url, next)));
    // Not answered: a missing site, a bad cursor, a key, an invalid or conflicting create (nothing written).
    for (const [path, init] of [
      ["/api/v1/sites/99"],
      ["/api/v1/sites?cursor=bm90IGEgY3Vyc29y"],
      ["/api/v1/sites/1", { headers: { authorization: "Bearer nope" } }],
      ["/api/v1/sites", post({ domain: "nope" })],
      ["/api/v1/sites", post({ domain: "sc-domain:s1.example", name: "again" })],
      ["/api/v1/sites", post({ domain: "sc-domain:k.example", name: "K" }, { "idempotency-key": "k1" })],
    ] as [string, RequestInit?][]) {
      expect([path, (await send(fast.url, path, init)).status]).toEqual([path, NOT_FAST]);
    }
    // A create: the same answer (but its id) and the same audit row (but its id and request id) as the full stack's.
    const a = await send(fast.url, "/api/v1/sites", post({ domain: "sc-domain:fast.example", name: "Fast" }, { "x-request-id": "fast-1" }));
    const b = await send(full.url, "/api/v1/sites", post({ domain: "sc-domain:full.example", name: "Fast" }, { "x-request-id": "full-1" }));
    expect(a.status).toBe(201);
    const site = (r: Answer) => {
      const { id: _id, domain: _d, created_at: _c, updated_at: _u, ...rest } = JSON.parse(r.body);
      return rest;
    };
    expect(site(a)).toEqual(site(b));
    const sameHeaders = (r: Answer) => ({ ...r.headers, "x-request-id": "id", location: r.headers.location!.replace(/\d+$/, "N") });
    expect(sameHeaders(a)).toEqual(sameHeaders(b));
    const { auditLog } = t.db.t;
    const rows = await t.db.q.select().from(auditLog).orderBy(desc(auditLog.id)).limit(2);
    const row = (r: (typeof rows)[number], siteId: number) => {
      expect(r.site_id).toBe(siteId);
      expect(r.target).toBe(`site:${siteId}`);
      const { id: _i, at: _a, site_id: _s, target: _t, request_id: _r, ...rest } = r;
      return rest;
    };
    expect(rows.map((r) => r.request_id)).toEqual(["full-1", "fast-1"]);
    expect(row(rows[1]!, JSON.parse(a.body).id)).toEqual(row(rows[0]!, JSON.parse(b.body).id));
    expect(fast.observed.at(-1)).toEqual(["POST", 201, "/api/v1/sites"]);
  });
});

describe.skipIf(testEngine !== "pg")("request fast path (PostgreSQL): faults", () => {
  test("a keyless create whose outcome outlasts the ride-through: 202 with a Location that gives the final 201; one row", async () => {
    const { t, db, proxy } = await proxiedPgDb(cleanups, { poolSize: 3, rideThroughMs: 500, retryForMs: 30_000 });
    const fast = fastOnly(db);
    const app = createApp(db, { backups: null });
    const served = serve((req, server) => app.fetch(req, server));
    cleanups.push(() => served.stop());
    await warm(fast.url);
    expect((await fastly(fast.url, "/api/v1/sites", post({ domain: "sc-domain:warm.example", name: "W" }))).status).toBe(201);
    const domain = "sc-domain:unkeyed.example";
    // Another transaction holds the domain: the create's statement reaches the server and waits there while its
    // connection is cut, so its outcome check waits for that transaction.
    const blocker = new pg.Client({ connectionString: t.databaseUrl });
    blocker.on("error", () => {});
    await blocker.connect();
    cleanups.push(() => blocker.end());
    await blocker.query("BEGIN");
    await blocker.query("INSERT INTO sites (domain, name) VALUES ($1, 'blocker')", [domain]);
    proxy.cutNext((text) => text.includes("sites_insert"), "forward");
    const first = await fastly(fast.url, "/api/v1/sites", post({ domain, name: "U" }));
    expect(first.status).toBe(202);
    const body = JSON.parse(first.body);
    expect(body).toMatchObject({ status: "pending" });
    expect(first.headers.location).toBe(`/api/v1/pending-writes/${body.token}`);
    expect(body.location).toBe(first.headers.location);
    expect(first.headers["idempotent-pending"]).toBe("true");
    expect(Number(first.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(first.headers["x-content-type-options"]).toBe("nosniff");
    // Not known yet; then the other transaction ends and the final answer is stored under the token.
    expect((await send(served.url, first.headers.location!)).status).toBe(202);
    await blocker.query("ROLLBACK");
    let final: Answer | undefined;
    await waitFor(
      async () => {
        final = await send(served.url, first.headers.location!);
        return final.status !== 202;
      },
      { timeout: 30_000, every: 100, what: "the final answer" },
    );
    expect(final!.status).toBe(201);
    expect(JSON.parse(final!.body)).toMatchObject({ domain, name: "U" });
    expect(final!.headers["idempotent-replayed"]).toBe("true");
    expect(final!.headers.location).toBe(`/api/v1/sites/${JSON.parse(final!.body).id}`);
    const { sites } = t.db.t;
    expect(await t.db.q.select({ id: sites.id }).from(sites).where(eq(sites.domain, domain))).toHaveLength(1);
  });

  test("the server gone while a read or a create runs: a 503 with the full stack's error shape, answered by the fast path", async () => {
    const { db, proxy } = await proxiedPgDb(cleanups, { poolSize: 2, rideThroughMs: 300, retryForMs: 30_000 });
    await createSite(db, { domain: "sc-domain:one.example", name: "One" });
    const fast = fastOnly(db);
    await warm(fast.url);
    // The read's connection is dropped and no new one gets through: the server looks gone.
    proxy.refuse(() => true);
    proxy.cutNext((text) => text.includes("sites_by_id"), "drop");
    const read = await send(fast.url, "/api/v1/sites/1");
    expect(read.status).toBe(503);
    expect(JSON.parse(read.body).error.code).toBe("unavailable");
    expect(Number(read.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(read.headers["x-content-type-options"]).toBe("nosniff");
    // Known down now: the next requests are the full stack's (it waits for the server within the ride-through).
    expect((await send(fast.url, "/api/v1/sites/1")).status).toBe(NOT_FAST);
    expect((await send(fast.url, "/api/v1/sites", post({ domain: "sc-domain:down.example", name: "D" }))).status).toBe(NOT_FAST);
  });
});
