import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { tempDb } from "./helpers/db.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";

// CORS (reference §0.5): off by default; CORS_ORIGINS as an allow-list, or `*` for the original's
// any-origin behaviour (the Origin echoed, with credentials); preflights answered.

let t: ReturnType<typeof tempDb>;
beforeAll(() => {
  t = tempDb();
});
afterAll(() => t.cleanup());

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

describe("table-driven", () => {
  for (const c of cases) {
    test(`${c.name} -> ${c.status}`, async () => {
      const app = createApp(t.db, { corsOrigins: c.origins });
      const res = await app.request(c.path ?? "/api/v1/sites", c.init);
      expect({ name: c.name, status: res.status }).toEqual({ name: c.name, status: c.status });
      for (const [k, v] of Object.entries(c.headers)) {
        const got = res.headers.get(k);
        if (v === null) expect({ header: k, value: got }).toEqual({ header: k, value: null });
        else if (typeof v === "string") expect({ header: k, value: got }).toEqual({ header: k, value: v });
        else expect(got ?? "").toMatch(v);
      }
    });
  }

  test("a cross-origin create: 201 with Location exposed to the page", async () => {
    const app = createApp(t.db, { corsOrigins: [APP] });
    const res = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { origin: APP, "sec-fetch-site": "cross-site", "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:cors.example", name: "Cors" }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("location")).toMatch(/^\/api\/v1\/sites\/\d+$/);
  });

  // Without a key, a state-changing call from another site's page is refused (protected mode): an origin
  // the operator listed in CORS_ORIGINS (or any, with *) is trusted like a client on this machine.
  const writes = [
    { origins: undefined, origin: APP, status: 403 },
    { origins: [APP], origin: EVIL, status: 403 },
    { origins: [APP], origin: APP, status: 201 },
    { origins: "*" as const, origin: EVIL, status: 201 },
  ];
  for (const [i, w] of writes.entries()) {
    test(`cross-site POST without a key from ${w.origin}, CORS_ORIGINS=${JSON.stringify(w.origins ?? "")} -> ${w.status}`, async () => {
      const app = createApp(t.db, { corsOrigins: w.origins });
      const res = await app.request("/api/v1/sites", {
        method: "POST",
        headers: { origin: w.origin, "sec-fetch-site": "cross-site", "content-type": "application/json" },
        body: JSON.stringify({ domain: `sc-domain:write${i}.cors.example`, name: "W" }),
      });
      expect(res.status).toBe(w.status);
      if (w.status === 403) expect(((await res.json()) as { detail: string }).detail).toMatch(/cross-site/);
    });
  }
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
        expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
        const other = await fetch(`${s.url}/api/v1/sites`, { headers: { origin: EVIL } });
        expect(other.headers.get("access-control-allow-origin")).toBeNull();
      }
    });
  });
});
