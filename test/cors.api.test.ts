import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { createApiKey } from "../src/auth/queries.ts";
import { loadConfig } from "../src/config.ts";
import { tempDb } from "./helpers/db.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";

// CORS (reference §0.5): off by default; CORS_ORIGINS as an allow-list, or `*` for the original's
// any-origin behaviour (the Origin echoed, with credentials); preflights answered.

// t: no key exists (protected mode: loopback trusted); k: a key exists and every table call sends it.
let t: ReturnType<typeof tempDb>;
let k: ReturnType<typeof tempDb>;
let key: string;
beforeAll(async () => {
  t = tempDb();
  k = tempDb();
  key = (await createApiKey(k.db, { name: "page", scope: "write" })).key;
});
afterAll(async () => {
  await t.cleanup();
  await k.cleanup();
});

const APP = "https://app.example";
const EVIL = "https://evil.example";
const preflight = (origin: string, method = "POST", headers = "content-type, x-api-key") => ({
  method: "OPTIONS",
  headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers },
});

type Case = {
  name: string;
  origins?: "*" | string[];
  init: RequestInit;
  path?: string;
  status: number;
  /** Expected response headers; null: absent. */
  headers: Record<string, string | RegExp | null>;
};

const cases: Case[] = [
  // Default: no foreign origin. Loopback callers are trusted, so an open default would let any web page drive the API.
  {
    name: "default: a page on another origin gets no CORS header",
    init: { headers: { origin: APP } },
    status: 200,
    headers: { "access-control-allow-origin": null, "access-control-allow-credentials": null },
  },
  { name: "default: no preflight answer", init: preflight(APP), status: 404, headers: { "access-control-allow-origin": null } },
  {
    name: "list: an allowed origin is echoed, with credentials",
    origins: [APP],
    init: { headers: { origin: APP } },
    status: 200,
    headers: {
      "access-control-allow-origin": APP,
      "access-control-allow-credentials": "true",
      vary: /Origin/,
      "access-control-expose-headers": /Location.*Link.*Retry-After/,
    },
  },
  // Hono still sends Allow-Credentials; without Allow-Origin the browser refuses the response all the same.
  {
    name: "list: another origin gets no Allow-Origin",
    origins: [APP],
    init: { headers: { origin: EVIL } },
    status: 200,
    headers: { "access-control-allow-origin": null },
  },
  {
    name: "list: a request without Origin (curl) gets no CORS header",
    origins: [APP],
    init: {},
    status: 200,
    headers: { "access-control-allow-origin": null, "access-control-allow-credentials": null },
  },
  {
    name: "list: preflight of an allowed origin",
    origins: [APP, "http://localhost:3000"],
    init: preflight(APP, "DELETE"),
    status: 204,
    headers: {
      "access-control-allow-origin": APP,
      "access-control-allow-credentials": "true",
      "access-control-allow-methods": "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT",
      "access-control-allow-headers": "content-type,x-api-key",
      "access-control-max-age": "600",
      vary: /Origin/,
    },
  },
  {
    name: "list: preflight of another origin is not allowed",
    origins: [APP],
    init: preflight(EVIL),
    status: 204,
    headers: { "access-control-allow-origin": null },
  },
  {
    name: "list: error responses carry the headers too (the page can read the error)",
    origins: [APP],
    path: "/api/v1/sites/999999",
    init: { headers: { origin: APP } },
    status: 404,
    headers: { "access-control-allow-origin": APP },
  },
  {
    name: "list: unknown routes too",
    origins: [APP],
    path: "/nothing",
    init: { headers: { origin: APP } },
    status: 404,
    headers: { "access-control-allow-origin": APP },
  },
  {
    name: "*: any origin is echoed (never a literal *, credentials are allowed)",
    origins: "*",
    init: { headers: { origin: EVIL } },
    status: 200,
    headers: { "access-control-allow-origin": EVIL, "access-control-allow-credentials": "true", vary: /Origin/ },
  },
  {
    name: "*: a file:// page (Origin: null) too, as the original",
    origins: "*",
    init: { headers: { origin: "null" } },
    status: 200,
    headers: { "access-control-allow-origin": "null" },
  },
  {
    name: "*: preflight of any origin",
    origins: "*",
    init: preflight("http://localhost:5173", "PATCH"),
    status: 204,
    headers: {
      "access-control-allow-origin": "http://localhost:5173",
      "access-control-allow-methods": /PATCH/,
      "access-control-allow-headers": "content-type,x-api-key",
      "access-control-max-age": "600",
    },
  },
];

describe("table-driven (the page sends a key; preflights carry none)", () => {
  for (const c of cases) {
    test(`${c.name} -> ${c.status}`, async () => {
      const app = createApp(k.db, { corsOrigins: c.origins });
      const init =
        c.init.method === "OPTIONS" ? c.init : { ...c.init, headers: { ...(c.init.headers as object), authorization: `Bearer ${key}` } };
      const res = await app.request(c.path ?? "/api/v1/sites", init);
      expect({ name: c.name, status: res.status }).toEqual({ name: c.name, status: c.status });
      for (const [k, v] of Object.entries(c.headers)) {
        const got = res.headers.get(k);
        if (v === null) expect({ header: k, value: got }).toEqual({ header: k, value: null });
        else if (typeof v === "string") expect({ header: k, value: got }).toEqual({ header: k, value: v });
        else expect(got ?? "").toMatch(v);
      }
    });
  }

  test("a cross-origin create with a key: 201 with Location exposed to the page", async () => {
    const app = createApp(k.db, { corsOrigins: [APP] });
    const res = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { origin: APP, "sec-fetch-site": "cross-site", "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ domain: "sc-domain:cors.example", name: "Cors" }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("location")).toMatch(/^\/api\/v1\/sites\/\d+$/);
  });

  // Origins never authorise (issue 21): without a key, a page of another origin gets nothing from loopback
  // trust — not even when CORS_ORIGINS lists it or is `*`. Before, a listed origin could create sites and
  // mint an admin key (POST /api/v1/keys -> 201).
  const keyless = [
    { origins: undefined, origin: APP, method: "POST", path: "/api/v1/sites" },
    { origins: [APP], origin: EVIL, method: "POST", path: "/api/v1/sites" },
    { origins: [APP], origin: APP, method: "POST", path: "/api/v1/sites" },
    { origins: "*" as const, origin: EVIL, method: "POST", path: "/api/v1/sites" },
    { origins: [APP], origin: APP, method: "POST", path: "/api/v1/keys" },
    { origins: "*" as const, origin: EVIL, method: "POST", path: "/api/v1/keys" },
    { origins: "*" as const, origin: "null", method: "POST", path: "/api/v1/keys" },
    { origins: [APP], origin: APP, method: "GET", path: "/api/v1/sites" },
    { origins: "*" as const, origin: EVIL, method: "GET", path: "/api/v1/keys" },
    { origins: "*" as const, origin: EVIL, method: "GET", path: "/api/v1/admin/backups" },
  ];
  for (const [i, w] of keyless.entries()) {
    test(`keyless ${w.method} ${w.path} from ${w.origin}, CORS_ORIGINS=${JSON.stringify(w.origins ?? "")} -> 403`, async () => {
      const app = createApp(t.db, { corsOrigins: w.origins });
      const body =
        w.method === "GET"
          ? undefined
          : JSON.stringify(
              w.path === "/api/v1/keys" ? { name: `evil${i}`, scope: "admin" } : { domain: `sc-domain:w${i}.cors.example`, name: "W" },
            );
      const res = await app.request(w.path, {
        method: w.method,
        headers: { origin: w.origin, "sec-fetch-site": "cross-site", "content-type": "application/json" },
        body,
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/cross-(site|origin)/);
    });
  }

  test("no key was minted and no site created by the refused calls; the same calls from this machine (no Origin) work", async () => {
    const app = createApp(t.db, { corsOrigins: "*" });
    expect(((await (await app.request("/api/v1/keys")).json()) as unknown[]).length).toBe(0);
    expect(((await (await app.request("/api/v1/sites")).json()) as unknown[]).length).toBe(0);
    const res = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:local.cors.example", name: "Local" }),
    });
    expect(res.status).toBe(201);
  });

  test("same-origin pages (the dashboard) and links followed from elsewhere keep loopback trust", async () => {
    const app = createApp(t.db, { corsOrigins: [APP] });
    const same = await app.request("http://localhost:8000/api/v1/sites", {
      headers: { origin: "http://localhost:8000", host: "localhost:8000" },
    });
    expect(same.status).toBe(200);
    const link = await app.request("/ui/sites", { headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" } });
    expect(link.status).toBe(200);
  });
});

describe("CORS_ORIGINS", () => {
  test("parsed as an allow-list of origins, * alone, or nothing; anything else stops the start", () => {
    const parse = (v: string) => loadConfig([], { CORS_ORIGINS: v }).CORS_ORIGINS;
    expect(parse("")).toEqual([]);
    expect(parse("*")).toBe("*");
    expect(parse("https://a.example, HTTP://LOCALHOST:3000/,https://b.example:443")).toEqual([
      "https://a.example",
      "http://localhost:3000",
      "https://b.example",
    ]);
    for (const bad of ["a.example", "https://a.example/app", "*,https://a.example", "ftp://a.example", "https://a.example?x=1"]) {
      expect(() => parse(bad)).toThrow(/CORS_ORIGINS: .* is not an origin/);
    }
  });

  describe("the real service", () => {
    let s: RunningServer;
    beforeAll(async () => {
      s = await startServer({ workers: 2, env: { CORS_ORIGINS: APP } });
    });
    afterAll(async () => {
      await s?.cleanup();
    });

    test("every worker answers preflights and requests of the allowed origin, and only those", async () => {
      for (let i = 0; i < 6; i++) {
        const pre = await fetch(`${s.url}/api/v1/sites`, preflight(APP));
        expect(pre.status).toBe(204);
        expect(pre.headers.get("access-control-allow-origin")).toBe(APP);
        const ok = await fetch(`${s.url}/api/v1/sites`, { headers: { origin: APP } });
        // The page gets the CORS headers (it can read the answer), here a 403: it sent no key.
        expect(ok.status).toBe(403);
        expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
        const other = await fetch(`${s.url}/api/v1/sites`, { headers: { origin: EVIL } });
        expect(other.headers.get("access-control-allow-origin")).toBeNull();
      }
    });
  });
});
