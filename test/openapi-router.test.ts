import { describe, expect, test } from "bun:test";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { errorResponse } from "../src/app.ts";
import { createRouter, memoizedParams, memoizedQuery, validationHook } from "../src/openapi.ts";

// createRouter's synchronous query/param validators against @hono/zod-openapi's own: the same
// answers (validated data, 400 bodies) and the same OpenAPI document.

const Params = z.object({
  id: z.coerce
    .number()
    .int()
    .positive()
    .openapi({ param: { name: "id", in: "path" } }),
});
const Query = z.object({
  limit: z
    .string()
    .regex(/^\d+$/)
    .transform(Number)
    .optional()
    .openapi({ param: { name: "limit", in: "query" } }),
  tag: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .openapi({ param: { name: "tag", in: "query" } }),
  // An async refinement: the synchronous parse cannot run it and falls back to the async one.
  slow: z
    .string()
    .refine(async (v) => v !== "no", "not allowed")
    .optional()
    .openapi({ param: { name: "slow", in: "query" } }),
});
const Body = z.object({ name: z.string().min(1) });

function build(app: OpenAPIHono) {
  app.openapi(
    createRoute({
      method: "post",
      path: "/things/{id}",
      request: { params: Params, query: Query, body: { required: true, content: { "application/json": { schema: Body } } } },
      responses: { 200: { description: "ok" } },
    }),
    (c) => c.json({ param: c.req.valid("param"), query: c.req.valid("query"), json: c.req.valid("json") }, 200),
  );
  app.openapi(createRoute({ method: "get", path: "/plain", responses: { 200: { description: "ok" } } }), (c) => c.json({ ok: true }, 200));
  app.onError((err, c) => errorResponse(err, c));
  return app;
}

describe("createRouter", () => {
  const ours = build(createRouter());
  const reference = build(new OpenAPIHono({ defaultHook: validationHook }));
  const cases: [string, string, unknown][] = [
    ["/things/7?limit=5&tag=a&tag=b", "POST", { name: "x" }],
    ["/things/7?tag=a", "POST", { name: "x" }],
    ["/things/0", "POST", { name: "x" }],
    ["/things/abc?limit=5", "POST", { name: "x" }],
    ["/things/7?limit=five", "POST", { name: "x" }],
    ["/things/7?slow=yes", "POST", { name: "x" }],
    ["/things/7?slow=no", "POST", { name: "x" }],
    ["/things/7", "POST", { name: "" }],
    ["/things/7", "POST", "not json"],
    ["/plain", "GET", undefined],
  ];
  for (const [path, method, body] of cases) {
    test(`${method} ${path} ${JSON.stringify(body)}: the same answer as @hono/zod-openapi's validators`, async () => {
      const init = (): RequestInit => ({
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const a = await ours.request(path, init());
      const b = await reference.request(path, init());
      expect([a.status, await a.text()]).toEqual([b.status, await b.text()]);
    });
  }

  test("the OpenAPI document is the one @hono/zod-openapi writes", () => {
    const info = { openapi: "3.1.0", info: { title: "t", version: "1" } };
    expect(ours.getOpenAPI31Document(info)).toEqual(reference.getOpenAPI31Document(info));
  });
});

describe("memoizedQuery: a pure query schema is parsed once per distinct query string", () => {
  let parses = 0;
  const Pure = memoizedQuery(
    z.object({
      n: z
        .string()
        .regex(/^\d+$/)
        .transform((v) => {
          parses++;
          return Number(v);
        })
        .openapi({ param: { name: "n", in: "query" } }),
      note: z
        .string()
        .optional()
        .openapi({ param: { name: "note", in: "query" } }),
    }),
  );
  const app = createRouter();
  app.openapi(
    createRoute({
      method: "get",
      path: "/pure",
      request: { query: Pure },
      responses: { 200: { description: "ok" } },
    }),
    (c) => {
      const q = c.req.valid("query");
      return c.json({ n: q.n, note: q.note ?? null, frozen: Object.isFrozen(q) }, 200);
    },
  );
  app.onError((err, c) => errorResponse(err, c));
  const get = async (qs: string) => {
    const res = await app.request(`/pure?${qs}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test("the same query string reuses the frozen result; a new one, an invalid one and a long one are parsed", async () => {
    parses = 0;
    for (let i = 0; i < 3; i++) expect(await get("n=7")).toEqual({ status: 200, body: { n: 7, note: null, frozen: true } });
    expect(parses).toBe(1);
    expect((await get("n=8")).body.n).toBe(8);
    expect(parses).toBe(2);
    // Refusals are never remembered: each one is answered by the parse (and the hook) again.
    for (let i = 0; i < 2; i++) expect((await get("n=x")).status).toBe(400);
    expect((await get("n=7")).body.n).toBe(7);
    expect(parses).toBe(2);
    const long = `n=9&note=${"a".repeat(300)}`;
    for (let i = 0; i < 2; i++) expect((await get(long)).body.n).toBe(9);
    expect(parses).toBe(4);
  });
});

describe("memoizedParams: a pure path-parameter schema is parsed once per distinct path", () => {
  let parses = 0;
  const Pure = memoizedParams(
    z.object({
      id: z
        .string()
        .regex(/^\d+$/)
        .transform((v) => {
          parses++;
          return Number(v);
        })
        .openapi({ param: { name: "id", in: "path" } }),
    }),
  );
  const app = createRouter();
  app.openapi(
    createRoute({
      method: "get",
      path: "/things/{id}",
      request: { params: Pure },
      responses: { 200: { description: "ok" } },
    }),
    (c) => {
      const p = c.req.valid("param");
      return c.json({ id: p.id, frozen: Object.isFrozen(p) }, 200);
    },
  );
  app.onError((err, c) => errorResponse(err, c));
  const get = async (id: string) => {
    const res = await app.request(`/things/${id}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test("the same path reuses the frozen result; another path, a refused one and a long one are parsed", async () => {
    parses = 0;
    for (let i = 0; i < 3; i++) expect(await get("7")).toEqual({ status: 200, body: { id: 7, frozen: true } });
    expect(parses).toBe(1);
    expect((await get("8")).body.id).toBe(8);
    expect(parses).toBe(2);
    // Refusals are never remembered: each one is answered by the parse (and the hook) again.
    for (let i = 0; i < 2; i++) expect((await get("x")).status).toBe(400);
    expect((await get("7")).body.id).toBe(7);
    expect(parses).toBe(2);
    const long = "9".repeat(250);
    for (let i = 0; i < 2; i++) expect((await get(long)).status).toBe(200);
    expect(parses).toBe(4);
  });
});
