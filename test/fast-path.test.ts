import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp, MAX_BODY_BYTES } from "../src/app.ts";
import { authMiddleware, defaultAuthOptions } from "../src/auth/middleware.ts";
import { createApiKey } from "../src/auth/queries.ts";
import type { SqliteDb } from "../src/db/index.ts";
import { createFastPath } from "../src/http/fast-path.ts";
import { setLogLevel } from "../src/log.ts";
import { createSite } from "../src/sites/queries.ts";
import { CreateSiteSchema, ListSitesQuery, plainCreateSite, SiteIdParams } from "../src/sites/schemas.ts";
import { tempSqliteDb } from "./helpers/db.ts";

// The request fast path (src/http/fast-path.ts) against the full stack, over real sockets on one SQLite
// file: every request it answers gets the same status, body, headers and audit row as the full stack's
// answer, the requests it must not answer (keys, Origin, proxies, odd queries, refusals, misses, bad
// bodies, conflicts) reach the full stack, and the app composed with it answers exactly as the app without it.

type Served = { url: string; stop: () => void };
const serve = (fetch: (req: Request, server: unknown) => Response | Promise<Response>): Served => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: fetch as never });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
};

let t: ReturnType<typeof tempSqliteDb>;
let full: Served;
let composed: Served;
let fastOnly: Served;
const observed: [string, number, string][] = [];
const NOT_FAST = 599;

beforeAll(async () => {
  t = tempSqliteDb();
  for (let i = 1; i <= 5; i++) await createSite(t.db, { domain: `sc-domain:s${i}.example`, name: `Site ${i % 3}`, is_active: i !== 4 });
  const fullApp = createApp(t.db, { fastPath: false, backups: null });
  full = serve((req, server) => fullApp.fetch(req, server));
  const app = createApp(t.db, { backups: null });
  composed = serve((req, server) => app.fetch(req, server));
  const auth = authMiddleware(t.db, defaultAuthOptions);
  const fast = createFastPath({
    db: t.db as SqliteDb,
    keylessPrincipal: auth.keylessPrincipal,
    keylessWriter: auth.keylessWriter,
    observe: (method, status, route) => observed.push([method, status, route]),
    fallback: () => new Response("not fast", { status: NOT_FAST }),
    maxBodyBytes: MAX_BODY_BYTES,
  });
  fastOnly = serve((req, server) => fast(req, server) ?? new Response("not fast", { status: NOT_FAST }));
});
afterAll(async () => {
  for (const s of [full, composed, fastOnly]) s?.stop();
  await t.cleanup();
});

type Answer = { status: number; body: string; headers: Record<string, string> };
async function send(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(base + path, init);
  const headers: Record<string, string> = {};
  // The date changes by the second; a generated request id differs (checked for its shape below).
  for (const [k, v] of res.headers) if (k !== "date") headers[k] = v;
  return { status: res.status, body: await res.text(), headers };
}
function sameAnswer(a: Answer, b: Answer) {
  const id = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const ida = a.headers["x-request-id"]!;
  const idb = b.headers["x-request-id"]!;
  if (id.test(ida) || id.test(idb)) {
    expect(ida).toMatch(id);
    expect(idb).toMatch(id);
    a = { ...a, headers: { ...a.headers, "x-request-id": "generated" } };
    b = { ...b, headers: { ...b.headers, "x-request-id": "generated" } };
  }
  expect(a).toEqual(b);
}

const answered: [string, RequestInit?][] = [
  ["/api/v1/sites/1"],
  ["/api/v1/sites/3", { headers: { "x-request-id": "client-id_1=" } }],
  ["/api/v1/sites/2", { headers: { "x-request-id": "not plain!" } }],
  ["/api/v1/sites"],
  ["/api/v1/sites?limit=2"],
  ["/api/v1/sites?limit=002&active_only=false"],
  ["/api/v1/sites?active_only=0&include_archived=true&limit=3"],
  ["/api/v1/sites?include_archived=1"],
  ["/api/v1/sites?limit=500"],
  ["/api/v1/sites?limit=0500&include_archived=0"],
  ["/api/v1/sites", { headers: { host: "localhost:9" } }],
];

const notAnswered: [string, RequestInit?][] = [
  ["/api/v1/sites/99"],
  ["/api/v1/sites/0"],
  ["/api/v1/sites/99999999999999999"],
  ["/api/v1/sites/1/"],
  ["/api/v1/sites/"],
  ["/api/v1/sites/%31"],
  ["/api/v1/sites/1", { method: "HEAD" }],
  ["/api/v1/sites/1", { headers: { authorization: "Bearer nope" } }],
  ["/api/v1/sites/1", { headers: { "x-api-key": "nope" } }],
  ["/api/v1/sites/1", { headers: { origin: "https://evil.example" } }],
  ["/api/v1/sites/1", { headers: { "x-forwarded-for": "203.0.113.9" } }],
  ["/api/v1/sites/1", { headers: { forwarded: "for=203.0.113.9" } }],
  ["/api/v1/sites/1", { headers: { host: "evil.example" } }],
  ["/api/v1/sites?limit=0"],
  ["/api/v1/sites?limit=501"],
  ["/api/v1/sites?limit=2&limit=3"],
  ["/api/v1/sites?limit=2&extra=1"],
  ["/api/v1/sites?limit"],
  ["/api/v1/sites?active_only=yes"],
  ["/api/v1/sites?cursor=bm90IGEgY3Vyc29y"],
  ["/api/v1/sites?limit=%32"],
  ["/api/v1/sites?limit="],
  ["/api/v1/sites?cursor="],
  ["/api/v1/sites?include_archived=TRUE"],
  ["/api/v1/sites/1/sync-status"],
  ["/health"],
];

describe("request fast path (SQLite)", () => {
  test("answers plain keyless reads exactly as the full stack does, and records them in the metrics", async () => {
    for (const [path, init] of answered) {
      const before = observed.length;
      const fast = await send(fastOnly.url, path, init);
      expect([path, fast.status]).toEqual([path, 200]);
      sameAnswer(fast, await send(full.url, path, init));
      expect(observed.length).toBe(before + 1);
      expect(observed.at(-1)).toEqual(["GET", 200, path.startsWith("/api/v1/sites/") ? "/api/v1/sites/:id" : "/api/v1/sites"]);
    }
    // The list's next-page link, followed, is answered by the fast path too (a cursor it issued).
    const page = await send(fastOnly.url, "/api/v1/sites?limit=2");
    const next = /^<([^>]+)>; rel="next"$/.exec(page.headers.link!)![1]!;
    const second = await send(fastOnly.url, next);
    expect(second.status).toBe(200);
    sameAnswer(second, await send(full.url, next));
    // The next link keeps the other fields in place and sets the cursor where it was, or last.
    let query = "active_only=0&limit=1&include_archived=true";
    for (let i = 0; i < 3; i++) {
      const r = await send(fastOnly.url, `/api/v1/sites?${query}`);
      expect(r.status).toBe(200);
      sameAnswer(r, await send(full.url, `/api/v1/sites?${query}`));
      const cursor = /[?&]cursor=([^&>]+)/.exec(r.headers.link!)![1]!;
      query = i === 0 ? `cursor=${cursor}&limit=1` : `limit=1&cursor=${cursor}&active_only=false`;
    }
  });

  test("leaves everything else to the full stack", async () => {
    for (const [path, init] of notAnswered) {
      const r = await send(fastOnly.url, path, init);
      expect([path, init?.headers, r.status]).toEqual([path, init?.headers, NOT_FAST]);
    }
  });

  test("judges the id and the list query by the routes' own schemas (SiteIdParams, ListSitesQuery)", async () => {
    // Answered exactly when the schema accepts the plain value (a site that exists, no cursor): a rule
    // restated beside the schema and drifting from it would answer a refusal or refuse an answer.
    const values: Record<string, string[]> = {
      limit: ["1", "9", "10", "99", "100", "499", "500", "501", "0", "00", "007", "-1", "1.5", "1e2", "", "x"],
      active_only: ["true", "false", "1", "0", "True", "yes", ""],
      include_archived: ["true", "false", "1", "0", "FALSE", "no", ""],
    };
    for (const [field, list] of Object.entries(values)) {
      for (const value of list) {
        const accepted = ListSitesQuery.safeParse({ [field]: value }).success;
        const r = await send(fastOnly.url, `/api/v1/sites?${field}=${value}`);
        expect([field, value, r.status]).toEqual([field, value, accepted ? 200 : NOT_FAST]);
      }
    }
    for (const raw of ["1", "5", "01", "1e0", "-1", "9007199254740993", "1.0", "0x1"]) {
      const accepted = SiteIdParams.safeParse({ id: raw }).success;
      const r = await send(fastOnly.url, `/api/v1/sites/${raw}`);
      expect([raw, r.status]).toEqual([raw, accepted ? 200 : NOT_FAST]);
    }
  });

  test("judges a create's body as CreateSiteSchema does (plainCreateSite gives its output or leaves it to the schema)", () => {
    const long = (n: number) => "a".repeat(n);
    const domainOf = (n: number) => `sc-domain:${"b".repeat(n - "sc-domain:.example".length)}.example`;
    // Plain bodies: plainCreateSite must judge them itself (else the test would pass with a check that never answers).
    const plain: unknown[] = [
      { domain: "sc-domain:a.example", name: "A" },
      { domain: "SC-DOMAIN:Up.Example", name: "  padded\t " },
      { domain: "https://Example.COM:8080/Path/", name: "U", category: "blog", is_active: false },
      { domain: "http://x.example/", name: "N", category: null, is_active: true },
      { domain: "sc-domain:c.example", name: "C", category: "  shop " },
      { domain: domainOf(2048), name: long(200) },
      { domain: "sc-domain:d.example", name: `\u00a0${long(200)}\u2003`, category: long(100) },
    ];
    const others: unknown[] = [
      null,
      [],
      "sc-domain:a.example",
      7,
      {},
      { domain: "sc-domain:a.example" },
      { name: "A" },
      { domain: domainOf(2049), name: "A" },
      { domain: "", name: "A" },
      { domain: "example.com", name: "A" },
      { domain: "sc-domain:a.example\u202e", name: "A" },
      { domain: "https://a.example/\u0007", name: "A" },
      { domain: 5, name: "A" },
      { domain: "sc-domain:a.example", name: "" },
      { domain: "sc-domain:a.example", name: "   " },
      { domain: "sc-domain:a.example", name: long(201) },
      { domain: "sc-domain:a.example", name: 5 },
      { domain: "sc-domain:a.example", name: "A", category: "" },
      { domain: "sc-domain:a.example", name: "A", category: "  " },
      { domain: "sc-domain:a.example", name: "A", category: long(101) },
      { domain: "sc-domain:a.example", name: "A", category: 3 },
      { domain: "sc-domain:a.example", name: "A", is_active: null },
      { domain: "sc-domain:a.example", name: "A", is_active: "true" },
      { domain: "sc-domain:a.example", name: "A", is_active: 1 },
      { domain: "sc-domain:a.example", name: "A", extra: 1 },
      JSON.parse('{"domain": "sc-domain:a.example", "name": "A", "__proto__": {"x": 1}}'),
    ];
    for (const body of [...plain, ...others]) {
      const own = plainCreateSite(body);
      const zod = CreateSiteSchema.safeParse(body);
      if (own !== null) expect([body, own]).toStrictEqual([body, zod.success ? zod.data : "refused by the schema"]);
      expect([body, own !== null]).toEqual([body, plain.includes(body)]);
    }
  });

  test("the app composed with it answers every request as the app without it", async () => {
    for (const [path, init] of [...answered, ...notAnswered])
      sameAnswer(await send(composed.url, path, init), await send(full.url, path, init));
  });

  const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const auditOf = (requestId: string) =>
    t.db.raw.reader.query("select * from audit_log where request_id = ?").all(requestId) as Record<string, unknown>[];

  test("answers a plain create as the full stack does: answer, stored row, audit row, metrics", async () => {
    const before = observed.length;
    const fast = await send(
      fastOnly.url,
      "/api/v1/sites",
      json({ domain: "SC-DOMAIN:Fast.example", name: " Fast ", category: "blog" }, { "x-request-id": "fast-create" }),
    );
    const slow = await send(
      full.url,
      "/api/v1/sites",
      json({ domain: "SC-DOMAIN:Full.example", name: " Full ", category: "blog" }, { "x-request-id": "full-create" }),
    );
    expect([fast.status, slow.status]).toEqual([201, 201]);
    const f = JSON.parse(fast.body);
    const s = JSON.parse(slow.body);
    expect(f.domain).toBe("sc-domain:fast.example");
    expect(f.name).toBe("Fast");
    expect(Object.keys(f)).toEqual(Object.keys(s));
    expect({ ...f, id: 0, domain: "", name: "", created_at: "", updated_at: "" }).toEqual({
      ...s,
      id: 0,
      domain: "",
      name: "",
      created_at: "",
      updated_at: "",
    });
    // The stored row is what the answer says.
    expect(fast.body).toBe((await send(full.url, `/api/v1/sites/${f.id}`)).body);
    const strip = (a: Answer) => ({ ...a.headers, location: "", "content-length": "", "x-request-id": "" });
    expect(strip(fast)).toEqual(strip(slow));
    expect(fast.headers.location).toBe(`/api/v1/sites/${f.id}`);
    expect(fast.headers["x-request-id"]).toBe("fast-create");
    const [fa] = auditOf("fast-create");
    const [sa] = auditOf("full-create");
    expect(fa).toMatchObject({ target: `site:${f.id}`, site_id: f.id, ip: "127.0.0.1", actor: "loopback", outcome: "ok" });
    const rest = (r: Record<string, unknown>) => ({ ...r, id: 0, at: "", request_id: "", target: "", site_id: 0 });
    expect(rest(fa!)).toEqual(rest(sa!));
    expect(observed.slice(before)).toEqual([["POST", 201, "/api/v1/sites"]]);
  });

  const refusedCreates: [string, RequestInit][] = [
    ["invalid JSON", json("{not json")],
    ["a body the schema refuses", json({ domain: "sc-domain:x.example" })],
    ["an unknown field", json({ domain: "sc-domain:y.example", name: "Y", extra: 1 })],
    ["a duplicate domain", json({ domain: "sc-domain:s1.example", name: "Again" })],
  ];
  const notFastCreates: [string, RequestInit][] = [
    ...refusedCreates,
    ["an Idempotency-Key", json({ domain: "sc-domain:k1.example", name: "K" }, { "idempotency-key": "k-1" })],
    ["another content type", json({ domain: "sc-domain:k2.example", name: "K" }, { "content-type": "text/plain" })],
    ["a browser's Sec-Fetch-Site", json({ domain: "sc-domain:k3.example", name: "K" }, { "sec-fetch-site": "cross-site" })],
    ["an Origin", json({ domain: "sc-domain:k4.example", name: "K" }, { origin: "https://evil.example" })],
    ["a key", json({ domain: "sc-domain:k5.example", name: "K" }, { authorization: "Bearer nope" })],
  ];

  test("leaves other creates to the full stack (nothing written by the fast path)", async () => {
    const count = () => (t.db.raw.reader.query("select count(*) as n from sites").get() as { n: number }).n;
    const n = count();
    for (const [name, init] of notFastCreates)
      expect([name, (await send(fastOnly.url, "/api/v1/sites", init)).status]).toEqual([name, NOT_FAST]);
    expect((await send(fastOnly.url, "/api/v1/sites?x=1", json({ domain: "sc-domain:q.example", name: "Q" }))).status).toBe(NOT_FAST);
    expect(count()).toBe(n);
  });

  test("the composed app answers refused creates as the full stack, refusal audit row with the client's address", async () => {
    for (const [name, init] of refusedCreates) {
      const a = await send(composed.url, "/api/v1/sites", {
        ...init,
        headers: { ...(init.headers as object), "x-request-id": `c-${name.length}` },
      });
      const b = await send(full.url, "/api/v1/sites", {
        ...init,
        headers: { ...(init.headers as object), "x-request-id": `f-${name.length}` },
      });
      expect([name, a.status]).toEqual([name, b.status]);
      sameAnswer({ ...a, headers: { ...a.headers, "x-request-id": "" } }, { ...b, headers: { ...b.headers, "x-request-id": "" } });
    }
    // The conflict's refusal row (written by the full stack after the fast path's attempt) has the socket's address.
    const [row] = auditOf(`c-${"a duplicate domain".length}`);
    expect(row).toMatchObject({ outcome: "failed", status: 409, ip: "127.0.0.1", actor: "loopback" });
  });

  test("with REQUEST_LOG, the same request line as the full stack's", async () => {
    // The request lines are info lines: the level is the process's (a file before this one in the same `bun test`
    // process may have set "silent": scripts/test.ts groups small files).
    setLogLevel("info");
    const env = { requestIP: () => ({ address: "127.0.0.1", family: "IPv4", port: 1 }) };
    const lines: Record<string, unknown>[] = [];
    const linesOf = async (app: ReturnType<typeof createApp>, path: string, init: RequestInit = {}) => {
      const original = console.error;
      console.error = (line: string) => lines.push(JSON.parse(line));
      try {
        const res = await app.fetch(
          new Request(`http://127.0.0.1:1${path}`, { ...init, headers: { host: "127.0.0.1:1", ...(init.headers as object) } }),
          env,
        );
        await res.text();
      } finally {
        console.error = original;
      }
      return lines.splice(0).filter((l) => l.msg === "request");
    };
    const withLog = createApp(t.db, { backups: null, requestLog: true });
    const withoutFast = createApp(t.db, { backups: null, requestLog: true, fastPath: false });
    const shape = (l: Record<string, unknown>) => ({ ...l, t: "", pid: 0, duration_ms: typeof l.duration_ms });
    for (const [path, init] of [
      ["/api/v1/sites/2?x", undefined],
      ["/api/v1/sites/2", { headers: { "x-request-id": "log-1" } }],
      ["/api/v1/sites?limit=1", { headers: { "x-request-id": "log-2" } }],
    ] as [string, RequestInit | undefined][]) {
      const a = await linesOf(withLog, path, init);
      const b = await linesOf(withoutFast, path, init);
      expect(a.length).toBe(1);
      if (init === undefined) a[0]!.request_id = b[0]!.request_id;
      expect(shape(a[0]!)).toEqual(shape(b[0]!));
    }
    const created = await linesOf(
      withLog,
      "/api/v1/sites",
      json({ domain: "sc-domain:logged.example", name: "L" }, { "x-request-id": "log-3" }),
    );
    expect(shape(created[0]!)).toMatchObject({
      request_id: "log-3",
      method: "POST",
      path: "/api/v1/sites",
      route: "/api/v1/sites",
      status: 201,
      duration_ms: "number",
    });
  });

  test("once a key exists, keyless reads and creates go to the full stack (401 there)", async () => {
    expect((await send(fastOnly.url, "/api/v1/sites/1")).status).toBe(200);
    const count = () => (t.db.raw.reader.query("select count(*) as n from sites").get() as { n: number }).n;
    const other = t.open();
    const { key } = await createApiKey(other, { name: "k", scope: "read" });
    // A create's key check is made in its own write transaction (auth keylessWriter): refused there, nothing written,
    // and handed to the full stack with its body.
    const n = count();
    const keylessCreate = () => json({ domain: "sc-domain:after-key.example", name: "After key" });
    expect((await send(fastOnly.url, "/api/v1/sites", keylessCreate())).status).toBe(NOT_FAST);
    expect(count()).toBe(n);
    const createViaFull = await send(composed.url, "/api/v1/sites", keylessCreate());
    expect(createViaFull.status).toBe(401);
    sameAnswer(createViaFull, await send(full.url, "/api/v1/sites", keylessCreate()));
    expect(count()).toBe(n);
    const r = await send(fastOnly.url, "/api/v1/sites/1");
    expect(r.status).toBe(NOT_FAST);
    const viaFull = await send(composed.url, "/api/v1/sites/1");
    expect(viaFull.status).toBe(401);
    sameAnswer(viaFull, await send(full.url, "/api/v1/sites/1"));
    expect((await send(composed.url, "/api/v1/sites/1", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  });
});
