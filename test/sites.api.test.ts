import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, count, eq } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { call as apiCall } from "./helpers/api.ts";
import { tempDb } from "./helpers/db.ts";
import { storeOldRows } from "./helpers/rows.ts";

// The sites API in-process (app.request) over a real temp database: every endpoint, every error.

type Case = {
  name: string;
  method: string;
  path: string;
  /** An object is sent as JSON; a string is sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  /** Partial match on the JSON body. */
  json?: unknown;
  responseHeaders?: Record<string, string | RegExp>;
};

const JSON_CT = { "content-type": "application/json" };

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let seeded: { alpha: number; beta: number; inactive: number };

/** One request to the app; the answer is checked for leaked internals (test/helpers/api.ts). */
const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  apiCall(app, method, path, body, headers);

async function create(domain: string, name: string, extra: Record<string, unknown> = {}) {
  const r = await call("POST", "/api/v1/sites", { domain, name, ...extra });
  expect(r.status).toBe(201);
  return r.json as { id: number; domain: string; name: string; is_active: boolean };
}

const err = (code: string, message?: RegExp | string) => ({
  error: message === undefined ? { code } : { code, message: typeof message === "string" ? message : expect.stringMatching(message) },
});

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  const alpha = await create("sc-domain:alpha.example", "Alpha", { category: "blog" });
  const beta = await create("https://beta.example/", "Beta");
  const inactive = await create("sc-domain:inactive.example", "Inactive", { is_active: false });
  seeded = { alpha: alpha.id, beta: beta.id, inactive: inactive.id };
});

afterAll(() => t.cleanup());

describe("table-driven scenarios", () => {
  const big = "x".repeat(1024 * 1024 + 10);
  const cases: Case[] = [
    // POST: validation
    {
      name: "malformed JSON",
      method: "POST",
      path: "/api/v1/sites",
      body: '{"domain": "sc-domain:a.example",',
      status: 400,
      json: err("invalid_json"),
    },
    { name: "empty body", method: "POST", path: "/api/v1/sites", body: "", headers: JSON_CT, status: 400, json: err("invalid_json") },
    { name: "JSON array body", method: "POST", path: "/api/v1/sites", body: [], status: 400, json: err("validation_failed") },
    {
      name: "JSON null body",
      method: "POST",
      path: "/api/v1/sites",
      body: "null",
      headers: JSON_CT,
      status: 400,
      json: err("validation_failed"),
    },
    {
      name: "missing domain",
      method: "POST",
      path: "/api/v1/sites",
      body: { name: "X" },
      status: 400,
      json: { error: { code: "validation_failed", details: [expect.objectContaining({ path: "domain" })] } },
    },
    {
      name: "missing name",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example" },
      status: 400,
      json: { error: { code: "validation_failed", details: [expect.objectContaining({ path: "name" })] } },
    },
    {
      name: "name of wrong type",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example", name: 5 },
      status: 400,
      json: err("validation_failed", /name/),
    },
    {
      name: "is_active of wrong type",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example", name: "N", is_active: "yes" },
      status: 400,
      json: err("validation_failed", /is_active/),
    },
    {
      name: "category of wrong type",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example", name: "N", category: 3 },
      status: 400,
      json: err("validation_failed", /category/),
    },
    {
      name: "blank name",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example", name: "   " },
      status: 400,
      json: err("validation_failed", /name/),
    },
    {
      name: "unknown field",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:n.example", name: "N", color: "red" },
      status: 400,
      json: err("validation_failed", /color/),
    },
    {
      name: "client-chosen id",
      method: "POST",
      path: "/api/v1/sites",
      body: { id: 7, domain: "sc-domain:n.example", name: "N" },
      status: 400,
      json: err("validation_failed"),
    },
    {
      name: "bad domain (plain host)",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "example.com", name: "N" },
      status: 400,
      json: err("validation_failed", /domain/),
    },
    {
      name: "bad domain (ftp)",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "ftp://example.com/", name: "N" },
      status: 400,
      json: err("validation_failed", /domain/),
    },
    {
      name: "bad domain (sc-domain without dot)",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:localhost", name: "N" },
      status: 400,
      json: err("validation_failed", /domain/),
    },
    {
      name: "bad domain (spaces)",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "https://exa mple.com/", name: "N" },
      status: 400,
      json: err("validation_failed", /domain/),
    },
    // Control characters and bidi formatting marks in the host (or anywhere): never a real property name.
    ...["\u0000", "\u0001", "\u001f", "\u007f", "\u0085", "\u202e", "\u200f", "\u2066"].map((ch) => ({
      name: `control character U+${ch.codePointAt(0)!.toString(16).padStart(4, "0")} in the host`,
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: `https://exa${ch}mple.com/`, name: "N" },
      status: 400,
      json: err("validation_failed", /control characters/),
    })),
    {
      name: "bidi mark in the path",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "https://example.com/\u202ede/", name: "N" },
      status: 400,
      json: err("validation_failed", /control characters/),
    },
    // POST: transport
    {
      name: "text/plain body",
      method: "POST",
      path: "/api/v1/sites",
      body: '{"domain":"sc-domain:t.example","name":"T"}',
      headers: { "content-type": "text/plain" },
      status: 415,
      json: err("unsupported_media_type"),
    },
    {
      name: "form body",
      method: "POST",
      path: "/api/v1/sites",
      body: "domain=x&name=y",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      status: 415,
      json: err("unsupported_media_type"),
    },
    {
      name: "body over 1 MiB",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:big.example", name: big },
      status: 413,
      json: err("payload_too_large"),
    },
    {
      name: "duplicate domain",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:alpha.example", name: "Again" },
      status: 409,
      json: err("conflict", /alpha\.example/),
    },
    {
      name: "duplicate domain in other case",
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "SC-DOMAIN:Alpha.Example", name: "Again" },
      status: 409,
      json: err("conflict", /sc-domain:alpha\.example/),
    },
    // GET one
    { name: "unknown id", method: "GET", path: "/api/v1/sites/999999", status: 404, json: err("not_found", "site 999999 not found") },
    { name: "non-integer id", method: "GET", path: "/api/v1/sites/abc", status: 400, json: err("validation_failed", /id/) },
    { name: "fractional id", method: "GET", path: "/api/v1/sites/1.5", status: 400, json: err("validation_failed", /id/) },
    { name: "zero id", method: "GET", path: "/api/v1/sites/0", status: 400, json: err("validation_failed", /id/) },
    { name: "negative id", method: "GET", path: "/api/v1/sites/-3", status: 400, json: err("validation_failed", /id/) },
    { name: "id beyond 2^53", method: "GET", path: "/api/v1/sites/9999999999999999", status: 400, json: err("validation_failed", /id/) },
    {
      name: "huge id",
      method: "GET",
      path: "/api/v1/sites/123456789012345678901234567890",
      status: 400,
      json: err("validation_failed", /id/),
    },
    // GET list: query params
    { name: "limit 0", method: "GET", path: "/api/v1/sites?limit=0", status: 400, json: err("validation_failed", /limit/) },
    { name: "limit 501", method: "GET", path: "/api/v1/sites?limit=501", status: 400, json: err("validation_failed", /limit/) },
    { name: "limit abc", method: "GET", path: "/api/v1/sites?limit=abc", status: 400, json: err("validation_failed", /limit/) },
    { name: "limit negative", method: "GET", path: "/api/v1/sites?limit=-1", status: 400, json: err("validation_failed", /limit/) },
    {
      name: "active_only=maybe",
      method: "GET",
      path: "/api/v1/sites?active_only=maybe",
      status: 400,
      json: err("validation_failed", /active_only/),
    },
    { name: "garbage cursor", method: "GET", path: "/api/v1/sites?cursor=zzz", status: 400, json: err("validation_failed", /cursor/) },
    {
      name: "well-formed base64 but not a cursor",
      method: "GET",
      path: `/api/v1/sites?cursor=${Buffer.from('{"a":1}').toString("base64url")}`,
      status: 400,
      json: err("validation_failed", /cursor/),
    },
    { name: "limit 500 is allowed", method: "GET", path: "/api/v1/sites?limit=500", status: 200 },
    // PATCH
    { name: "PATCH empty object", method: "PATCH", path: "/api/v1/sites/1", body: {}, status: 400, json: err("validation_failed") },
    {
      name: "PATCH unknown field",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: { owner: "me" },
      status: 400,
      json: err("validation_failed", /owner/),
    },
    {
      name: "PATCH name null",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: { name: null },
      status: 400,
      json: err("validation_failed", /name/),
    },
    {
      name: "PATCH bad domain",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: { domain: "nope" },
      status: 400,
      json: err("validation_failed", /domain/),
    },
    {
      name: "PATCH malformed JSON",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: "{",
      headers: JSON_CT,
      status: 400,
      json: err("invalid_json"),
    },
    {
      name: "PATCH text/plain",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: '{"name":"x"}',
      headers: { "content-type": "text/plain" },
      status: 415,
      json: err("unsupported_media_type"),
    },
    { name: "PATCH unknown id", method: "PATCH", path: "/api/v1/sites/999999", body: { name: "X" }, status: 404, json: err("not_found") },
    {
      name: "PATCH non-integer id",
      method: "PATCH",
      path: "/api/v1/sites/x1",
      body: { name: "X" },
      status: 400,
      json: err("validation_failed", /id/),
    },
    {
      name: "PATCH duplicate domain",
      method: "PATCH",
      path: "/api/v1/sites/1",
      body: { domain: "https://beta.example/" },
      status: 409,
      json: err("conflict", /beta\.example/),
    },
    // DELETE
    { name: "DELETE unknown id", method: "DELETE", path: "/api/v1/sites/999999", status: 404, json: err("not_found") },
    { name: "DELETE zero id", method: "DELETE", path: "/api/v1/sites/0", status: 400, json: err("validation_failed") },
    // Unknown routes and methods
    { name: "unknown route", method: "GET", path: "/api/v1/nothing", status: 404, json: err("not_found", /no route/) },
    { name: "unknown nested route", method: "GET", path: "/api/v1/sites/1/pages", status: 404, json: err("not_found") },
    {
      name: "method not routed on an existing path",
      method: "PUT",
      path: "/api/v1/sites/1",
      body: { name: "x" },
      status: 405,
      json: err("method_not_allowed", /allowed: GET, PATCH, DELETE|allowed: .*PATCH/),
    },
    { name: "method not routed on a collection", method: "DELETE", path: "/api/v1/sites", status: 405, json: err("method_not_allowed") },
    { name: "unknown path, any method", method: "PUT", path: "/api/v1/nothing-here", body: {}, status: 404, json: err("not_found") },
  ];

  for (const c of cases) {
    test(`${c.method} ${c.path.slice(0, 60)}: ${c.name} -> ${c.status}`, async () => {
      const r = await call(c.method, c.path, c.body, c.headers);
      expect({ name: c.name, status: r.status }).toEqual({ name: c.name, status: c.status });
      // Bun 1.4.5's toMatchObject writes asymmetric matchers into the received object: match a copy.
      if (c.json !== undefined) expect(structuredClone(r.json)).toMatchObject(c.json as object);
      if (c.status >= 400) {
        // Every error has the one shape and a human message, repeated as the original's `detail` (reference §0.4).
        expect(Object.keys(r.json)).toEqual(["error", "detail"]);
        expect(r.json.detail).toBe(r.json.error.message);
        expect(typeof r.json.error.message).toBe("string");
        expect(r.json.error.message.length).toBeGreaterThan(0);
        expect(r.headers.get("content-type")).toMatch(/application\/json/);
      }
      for (const [k, v] of Object.entries(c.responseHeaders ?? {})) {
        if (typeof v === "string") expect(r.headers.get(k)).toBe(v);
        else expect(r.headers.get(k) ?? "").toMatch(v);
      }
    });
  }
});

describe("POST /api/v1/sites", () => {
  test("201 with the site, Location, and defaults", async () => {
    const r = await call("POST", "/api/v1/sites", { domain: "sc-domain:new.example", name: "  New  " });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({
      id: expect.any(Number),
      domain: "sc-domain:new.example",
      name: "New",
      category: null,
      is_active: true,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      archived_at: null,
    });
    expect(r.headers.get("location")).toBe(`/api/v1/sites/${r.json.id}`);
    const again = await call("GET", r.headers.get("location")!);
    expect(again.status).toBe(200);
    expect(again.json).toEqual(r.json);
  });

  test("accepts a JSON content type with charset, URL-prefix domains and explicit nulls", async () => {
    const r = await call(
      "POST",
      "/api/v1/sites",
      JSON.stringify({ domain: "http://shop.example:8080/de/", name: "Shop", category: null, is_active: false }),
      { "content-type": "application/json; charset=utf-8" },
    );
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ domain: "http://shop.example:8080/de/", category: null, is_active: false });
  });

  test("a body just under 1 MiB is not rejected for its size", async () => {
    // Padding with spaces keeps the JSON valid and the body under the limit.
    const body = JSON.stringify({ domain: "sc-domain:pad.example", name: "P" }) + " ".repeat(1024 * 1024 - 100);
    const r = await call("POST", "/api/v1/sites", body, JSON_CT);
    expect(r.status).toBe(201);
  });

  test("a body over 1 MiB without Content-Length (streamed) is 413", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        if (sent === 0) ctrl.enqueue(new TextEncoder().encode('{"domain":"sc-domain:s.example","name":"S"}'));
        if (sent++ > 20) return ctrl.close();
        ctrl.enqueue(chunk);
      },
    });
    const res = await app.request("/api/v1/sites", { method: "POST", body: stream, headers: JSON_CT, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject(err("payload_too_large"));
  });
});

describe("GET /api/v1/sites", () => {
  test("a JSON array ordered by name then id; active_only defaults to true", async () => {
    const r = await call("GET", "/api/v1/sites");
    expect(r.status).toBe(200);
    expect(Array.isArray(r.json)).toBe(true);
    const names = r.json.map((s: { name: string }) => s.name);
    expect(names).toEqual([...names].sort());
    expect(r.json.every((s: { is_active: boolean }) => s.is_active)).toBe(true);
    expect(r.json.map((s: { id: number }) => s.id)).not.toContain(seeded.inactive);
    expect(r.headers.get("link")).toBeNull();
  });

  test("active_only=false includes inactive sites; 0/1 work too", async () => {
    for (const q of ["active_only=false", "active_only=0"]) {
      const r = await call("GET", `/api/v1/sites?${q}`);
      expect(r.status).toBe(200);
      expect(r.json.map((s: { id: number }) => s.id)).toContain(seeded.inactive);
    }
    const r = await call("GET", "/api/v1/sites?active_only=1");
    expect(r.json.map((s: { id: number }) => s.id)).not.toContain(seeded.inactive);
  });

  test("the trailing-slash path answers the same", async () => {
    const a = await call("GET", "/api/v1/sites?active_only=false");
    const b = await call("GET", "/api/v1/sites/?active_only=false");
    expect(b.status).toBe(200);
    expect(b.json).toEqual(a.json);
  });

  test("without limit every matching site comes back in one array, as the original (a client with 150 sites saw 100)", async () => {
    for (let i = 0; i < 150; i++) await create(`sc-domain:many${i}.all.example`, `Many ${String(i).padStart(3, "0")}`);
    const { sites } = t.db.t;
    const total = async (activeOnly: boolean) =>
      (
        await t.db.q
          .select({ n: count() })
          .from(sites)
          .where(activeOnly ? eq(sites.is_active, true) : undefined)
      )[0]!.n;
    for (const [path, activeOnly] of [
      ["/api/v1/sites", true],
      ["/api/v1/sites/", true],
      ["/api/v1/sites?active_only=false", false],
    ] as const) {
      const r = await call("GET", path);
      expect(r.status).toBe(200);
      expect(r.json.length).toBe(await total(activeOnly));
      expect(r.json.length).toBeGreaterThan(150);
      expect(r.headers.get("link")).toBeNull();
      const names = r.json.map((s: { name: string }) => s.name);
      expect(names).toEqual([...names].sort());
    }
    const paged = await call("GET", "/api/v1/sites?limit=100");
    expect(paged.json.length).toBe(100);
    expect(paged.headers.get("link")).toMatch(/rel="next"/);
  });

  test("limit + cursor paging walks every site exactly once, in order, following Link rel=next", async () => {
    // Repeated names make the id tie-break matter; some inactive sites must be skipped by default.
    const made: { id: number; name: string; is_active: boolean }[] = [];
    for (let i = 0; i < 37; i++) {
      const name = `Page ${String(i % 9).padStart(2, "0")}`;
      made.push(await create(`sc-domain:page${i}.paging.example`, name, { is_active: i % 5 !== 0 }));
    }
    const all = (await call("GET", "/api/v1/sites?active_only=false&limit=500")).json as typeof made;
    const expected = (activeOnly: boolean) =>
      all
        .filter((s) => !activeOnly || s.is_active)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id))
        .map((s) => s.id);

    for (const [start, activeOnly] of [
      ["/api/v1/sites?limit=4", true],
      ["/api/v1/sites/?limit=7&active_only=false", false],
      ["/api/v1/sites?limit=1&active_only=true", true],
    ] as const) {
      const seen: number[] = [];
      let next: string | null = start;
      let pages = 0;
      while (next) {
        const r = await call("GET", next);
        expect(r.status).toBe(200);
        const limit = Number(new URL(next, "http://x").searchParams.get("limit"));
        expect(r.json.length).toBeLessThanOrEqual(limit);
        seen.push(...r.json.map((s: { id: number }) => s.id));
        const link = r.headers.get("link");
        if (link) {
          const m = /^<([^>]+)>; rel="next"$/.exec(link);
          expect(m).not.toBeNull();
          expect(r.json.length).toBe(limit);
          next = m![1]!;
        } else next = null;
        expect(++pages).toBeLessThan(1000);
      }
      expect(seen).toEqual(expected(activeOnly));
      expect(new Set(seen).size).toBe(seen.length);
    }
    expect(made.every((m) => all.some((s) => s.id === m.id))).toBe(true);
  });
});

describe("PATCH and DELETE", () => {
  test("PATCH changes only the given fields and bumps updated_at", async () => {
    const site = await create("sc-domain:patch.example", "Patch me", { category: "news" });
    const before = (await call("GET", `/api/v1/sites/${site.id}`)).json;
    await Bun.sleep(5);
    const r = await call("PATCH", `/api/v1/sites/${site.id}`, { name: "Patched" });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ...before, name: "Patched", updated_at: expect.any(String) });
    expect(r.json.updated_at > before.updated_at).toBe(true);

    const r2 = await call("PATCH", `/api/v1/sites/${site.id}`, { category: null, is_active: false });
    expect(r2.json).toMatchObject({ name: "Patched", category: null, is_active: false, domain: "sc-domain:patch.example" });
    const stored = await call("GET", `/api/v1/sites/${site.id}`);
    expect(stored.json).toEqual(r2.json);
  });

  test("PATCH to its own domain is not a conflict", async () => {
    const r = await call("PATCH", `/api/v1/sites/${seeded.beta}`, { domain: "https://beta.example/" });
    expect(r.status).toBe(200);
  });

  const seedData = async (ids: number[]) => {
    const { syncTasks } = t.db.t;
    await t.db.tx(async (tx) => {
      for (const site of ids) {
        await tx.insert(syncTasks).values({ site_id: site, task_type: "daily", status: "completed" });
        await tx.insert(syncTasks).values({ site_id: site, task_type: "backfill", status: "pending" });
      }
    });
    for (const site of ids) {
      for (let d = 1; d <= 3; d++) {
        await storeOldRows(t.db, [
          { site_id: site, date: `2026-01-0${d}`, page: "/", query: "q", device: "DESKTOP", search_type: "web", clicks: d },
        ]);
      }
    }
  };
  const n = async (q: Promise<{ n: number }[]>) => (await q)[0]!.n;
  const counts = async (id: number) => {
    const { syncTasks, gscPerformanceData } = t.db.t;
    return {
      tasks: await n(t.db.q.select({ n: count() }).from(syncTasks).where(eq(syncTasks.site_id, id))),
      pending: await n(
        t.db.q
          .select({ n: count() })
          .from(syncTasks)
          .where(and(eq(syncTasks.site_id, id), eq(syncTasks.status, "pending"))),
      ),
      rows: await n(t.db.q.select({ n: count() }).from(gscPerformanceData).where(eq(gscPerformanceData.site_id, id))),
    };
  };
  const listed = async (query = "") =>
    ((await call("GET", `/api/v1/sites?active_only=false&limit=500${query}`)).json as { id: number }[]).map((x) => x.id);

  test("DELETE archives: 204, hidden from lists, no syncs, every row kept; restore brings it back", async () => {
    const archived = await create("sc-domain:archived.example", "Archived");
    const kept = await create("sc-domain:kept.example", "Kept");
    await seedData([archived.id, kept.id]);
    expect(await counts(archived.id)).toEqual({ tasks: 2, pending: 1, rows: 3 });

    const del = await call("DELETE", `/api/v1/sites/${archived.id}`);
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    // Data kept; its pending task cancelled; the other site untouched.
    expect(await counts(archived.id)).toEqual({ tasks: 2, pending: 0, rows: 3 });
    expect(await counts(kept.id)).toEqual({ tasks: 2, pending: 1, rows: 3 });
    expect(await listed()).not.toContain(archived.id);
    expect(await listed("&include_archived=true")).toContain(archived.id);
    const one = await call("GET", `/api/v1/sites/${archived.id}`);
    expect(one.status).toBe(200);
    expect(one.json.archived_at).toEqual(expect.any(String));
    // No syncs for an archived site.
    const trig = await call("POST", `/api/v1/sync/trigger/${archived.id}`);
    expect(trig.status).toBe(409);
    expect(trig.json.error.message).toContain("archived");
    // Archiving twice is harmless; the domain stays taken.
    expect((await call("DELETE", `/api/v1/sites/${archived.id}`)).status).toBe(204);
    expect((await call("POST", "/api/v1/sites", { domain: "sc-domain:archived.example", name: "again" })).status).toBe(409);

    const restored = await call("POST", `/api/v1/sites/${archived.id}/restore`);
    expect(restored.status).toBe(200);
    expect(restored.json.archived_at).toBeNull();
    expect(await listed()).toContain(archived.id);
    expect((await call("POST", `/api/v1/sync/trigger/${archived.id}`)).status).toBe(202);
    expect((await call("POST", "/api/v1/sites/999999/restore")).status).toBe(404);
  });

  test("purge needs purge=true and the domain repeated in confirm; then the site and its data are gone", async () => {
    const doomed = await create("sc-domain:doomed.example", "Doomed");
    const kept = await create("sc-domain:kept2.example", "Kept2");
    await seedData([doomed.id, kept.id]);
    for (const q of ["?purge=true", "?purge=true&confirm=sc-domain:other.example", "?purge=true&confirm=doomed.example"]) {
      const r = await call("DELETE", `/api/v1/sites/${doomed.id}${q}`);
      expect(r.status).toBe(400);
      expect(r.json.error.message).toContain("confirm=sc-domain:doomed.example");
      expect((await counts(doomed.id)).rows).toBe(3);
    }
    const del = await call("DELETE", `/api/v1/sites/${doomed.id}?purge=true&confirm=sc-domain:doomed.example`);
    expect(del.status).toBe(204);
    expect((await call("GET", `/api/v1/sites/${doomed.id}`)).status).toBe(404);
    expect((await call("DELETE", `/api/v1/sites/${doomed.id}`)).status).toBe(404);
    expect((await call("PATCH", `/api/v1/sites/${doomed.id}`, { name: "ghost" })).status).toBe(404);
    expect(await counts(doomed.id)).toEqual({ tasks: 0, pending: 0, rows: 0 });
    expect(await counts(kept.id)).toEqual({ tasks: 2, pending: 1, rows: 3 });
    expect(await n(t.db.q.select({ n: count() }).from(t.db.t.sites).where(eq(t.db.t.sites.id, doomed.id)))).toBe(0);
  });
});

describe("API description", () => {
  test("/openapi.json lists the paths with their methods", async () => {
    const r = await call("GET", "/openapi.json");
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe("3.1.0");
    const paths = r.json.paths as Record<string, Record<string, unknown>>;
    expect(Object.keys(paths["/api/v1/sites"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(Object.keys(paths["/api/v1/sites/{id}"] ?? {}).sort()).toEqual(["delete", "get", "patch"]);
    for (const p of [
      "/health",
      "/api/v1/diagnostics/connections",
      "/api/v1/diagnostics/check-locks",
      "/api/v1/diagnostics/test-db-connection",
    ]) {
      expect(paths[p]?.get).toBeDefined();
    }
    expect(r.json.components.schemas.Site).toBeDefined();
    expect(r.json.components.schemas.Error).toBeDefined();
    // The documented patterns are real ECMA-262 patterns a client can use as is.
    const create = r.json.components.schemas.CreateSite;
    expect(create.required).toEqual(["domain", "name"]);
    const domain = new RegExp(create.properties.domain.pattern);
    for (const ok of ["sc-domain:example.com", "SC-DOMAIN:Example.com", "https://example.com/", "HTTP://example.com:8080/de/"]) {
      expect(domain.test(ok)).toBe(true);
    }
    for (const bad of ["example.com", "https://example.com", "ftp://example.com/"]) expect(domain.test(bad)).toBe(false);
  });

  test("/docs is an HTML page pointing at the description", async () => {
    const r = await call("GET", "/docs");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/text\/html/);
    expect(r.text).toContain("/openapi.json");
  });
});
