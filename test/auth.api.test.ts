import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { createApp } from "../src/app.ts";
import { createApiKey, verifyApiKey } from "../src/auth/queries.ts";
import { setLogLevel } from "../src/log.ts";
import { requestFrom, runScript } from "./helpers/client.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { psql } from "./helpers/engine.ts";
import { startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

// Keys, scopes and protected mode against the real service (supervisor + 2 HTTP workers). Only
// 127.0.0.1 and ::1 count as local here (LOCAL_ADDRESSES), so a client bound to 127.0.0.2 is "remote".

const root = join(import.meta.dir, "..");
const LOCAL = "127.0.0.1";
const REMOTE = "127.0.0.2";
const env = { LOCAL_ADDRESSES: "127.0.0.1,::1", KEY_LAST_USED_FLUSH_MS: "200" };

let s: RunningServer;
const call = (from: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  requestFrom(from, s.url, method, path, body, headers);
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function cliCreateKey(name: string, scope: string, extra: string[] = []) {
  const r = await runScript(root, ["src/auth/cli.ts", "create", "--name", name, "--scope", scope, ...extra], { DATABASE_URL: s.dbPath });
  expect(r.code).toBe(0);
  const key = r.stdout.split("\n").find((l) => l.startsWith("ssk_"));
  expect(key).toMatch(/^ssk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  return key!;
}

beforeAll(async () => {
  s = await startServer({ workers: 2, env });
});
afterAll(async () => {
  await s.cleanup();
});

describe("protected mode (no key exists)", () => {
  const cases: {
    name: string;
    from: string;
    method: string;
    path: string;
    body?: unknown;
    headers?: Record<string, string>;
    status: number;
    message?: RegExp;
  }[] = [
    { name: "loopback list", from: LOCAL, method: "GET", path: "/api/v1/sites", status: 200 },
    {
      name: "loopback create",
      from: LOCAL,
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:pm.example", name: "PM" },
      status: 201,
    },
    {
      name: "remote list",
      from: REMOTE,
      method: "GET",
      path: "/api/v1/sites",
      status: 403,
      message: /protected mode.*bun run keys create/s,
    },
    {
      name: "remote create",
      from: REMOTE,
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:no.example", name: "No" },
      status: 403,
      message: /protected mode/,
    },
    { name: "remote diagnostics", from: REMOTE, method: "GET", path: "/api/v1/diagnostics/check-locks", status: 403 },
    { name: "remote health stays open", from: REMOTE, method: "GET", path: "/health", status: 200 },
    { name: "remote openapi stays open", from: REMOTE, method: "GET", path: "/openapi.json", status: 200 },
    { name: "remote docs stay open", from: REMOTE, method: "GET", path: "/docs", status: 200 },
    { name: "remote unknown route", from: REMOTE, method: "GET", path: "/api/v1/nothing", status: 403 },
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    {
      name: "loopback with a foreign Host",
      from: LOCAL,
      method: "GET",
      path: "/api/v1/sites",
      headers: { host: "evil.example:8000" },
      status: 403,
      message: /not a loopback name/,
    },
    {
      name: "loopback with Host localhost",
      from: LOCAL,
      method: "GET",
      path: "/api/v1/sites",
      headers: { host: "localhost" },
      status: 200,
    },
    // A form or fetch from another site's page.
    {
      name: "cross-site POST (Origin)",
      from: LOCAL,
      method: "POST",
      path: "/api/v1/sync/trigger/1?sync_mode=overwrite",
      headers: { origin: "https://evil.example" },
      status: 403,
      message: /cross-site/,
    },
    {
      name: "cross-site form POST (text/plain)",
      from: LOCAL,
      method: "POST",
      path: "/api/v1/sites",
      body: "x=1",
      headers: { origin: "null", "content-type": "text/plain" },
      status: 403,
      message: /cross-site/,
    },
    {
      name: "cross-site POST (Sec-Fetch-Site)",
      from: LOCAL,
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:cs.example", name: "CS" },
      headers: { "sec-fetch-site": "cross-site" },
      status: 403,
    },
    {
      // Origins never authorise: loopback trust is for programs on this machine, not for scripts of other origins.
      name: "cross-origin GET without a key (a script of another origin)",
      from: LOCAL,
      method: "GET",
      path: "/api/v1/sites",
      headers: { origin: "https://evil.example" },
      status: 403,
    },
    {
      name: "GET after following a link from another site (no Origin)",
      from: LOCAL,
      method: "GET",
      path: "/api/v1/sites",
      headers: { "sec-fetch-site": "cross-site" },
      status: 200,
    },
    {
      name: "same-origin POST",
      from: LOCAL,
      method: "POST",
      path: "/api/v1/sites",
      body: { domain: "sc-domain:so.example", name: "SO" },
      headers: { origin: "http://localhost:1", host: "localhost:1" },
      status: 201,
    },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.method} ${c.path} -> ${c.status}`, async () => {
      const r = await call(c.from, c.method, c.path, c.body, c.headers);
      expect(r.status).toBe(c.status);
      if (c.status >= 400) expect(r.body.error.code).toBe(c.status === 401 ? "unauthorized" : "forbidden");
      if (c.message) expect(r.body.error.message).toMatch(c.message);
    });
  }

  test("secure headers on every answer", async () => {
    const r = await call(LOCAL, "GET", "/api/v1/sites");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["x-frame-options"]).toBe("SAMEORIGIN");
  });
});

describe("with keys", () => {
  const keys: Record<string, string> = {};
  let siteId: number;

  beforeAll(async () => {
    keys.admin = await cliCreateKey("ops", "admin");
    keys.write = await cliCreateKey("ci", "write");
    keys.read = await cliCreateKey("dashboard", "read");
    const r = await call(REMOTE, "POST", "/api/v1/sites", { domain: "sc-domain:keyed.example", name: "Keyed" }, bearer(keys.write));
    expect(r.status).toBe(201);
    siteId = r.body.id;
  });

  test("a key exists: loopback without a key gets 401 with WWW-Authenticate", async () => {
    const r = await call(LOCAL, "GET", "/api/v1/sites");
    expect(r.status).toBe(401);
    expect(r.headers["www-authenticate"]).toBe('Bearer realm="sitesync"');
    expect(r.body).toEqual({
      error: { code: "unauthorized", message: expect.stringContaining("API key is required") },
      detail: r.body.error.message,
    });
  });

  test("bad, malformed and wrongly framed keys: 401 invalid_token / invalid_request", async () => {
    const forged = `${keys.read!.slice(0, -4)}AAAA`;
    for (const h of [bearer(forged), bearer("nope"), { "x-api-key": forged }]) {
      const r = await call(REMOTE, "GET", "/api/v1/sites", undefined, h);
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toContain('error="invalid_token"');
      expect(r.text).not.toContain(forged);
    }
    const basic = await call(REMOTE, "GET", "/api/v1/sites", undefined, { authorization: `Basic ${btoa("a:b")}` });
    expect(basic.status).toBe(401);
    expect(basic.headers["www-authenticate"]).toContain('error="invalid_request"');
  });

  type Scope = "none" | "read" | "write" | "admin";
  // Per route, the lowest scope that passes; lower ones get 403, no key gets 401.
  const routes: { method: string; path: () => string; body?: () => unknown; needs: Scope; ok: number }[] = [
    { method: "GET", path: () => "/api/v1/sites", needs: "read", ok: 200 },
    { method: "GET", path: () => `/api/v1/sites/${siteId}`, needs: "read", ok: 200 },
    { method: "GET", path: () => "/api/v1/sync/jobs", needs: "read", ok: 200 },
    { method: "GET", path: () => `/api/v1/sites/${siteId}/queries/search?search_term=x`, needs: "read", ok: 200 },
    { method: "PATCH", path: () => `/api/v1/sites/${siteId}`, body: () => ({ category: "c" }), needs: "write", ok: 200 },
    {
      method: "POST",
      path: () => "/api/v1/sites",
      body: () => ({ domain: `sc-domain:t${Math.random().toString(36).slice(2)}.example`, name: "T" }),
      needs: "write",
      ok: 201,
    },
    { method: "DELETE", path: () => "/api/v1/sync/job/999999", needs: "write", ok: 404 },
    { method: "GET", path: () => "/api/v1/diagnostics/check-locks", needs: "admin", ok: 200 },
    { method: "GET", path: () => "/api/v1/keys", needs: "admin", ok: 200 },
    { method: "DELETE", path: () => "/api/v1/sites/999999", needs: "admin", ok: 404 },
  ];
  const order: Scope[] = ["none", "read", "write", "admin"];
  for (const r of routes) {
    for (const scope of order) {
      const allowed = order.indexOf(scope) >= order.indexOf(r.needs);
      const expected = scope === "none" ? 401 : allowed ? r.ok : 403;
      test(`${r.method} ${r.path.toString().replace(/^\(\) => /, "")} with ${scope} key -> ${expected}`, async () => {
        const res = await call(REMOTE, r.method, r.path(), r.body?.(), scope === "none" ? {} : bearer(keys[scope]!));
        expect(res.status).toBe(expected);
        if (expected === 403)
          expect(res.body.error).toMatchObject({ code: "forbidden", details: { required_scope: r.needs, key_scope: scope } });
      });
    }
  }

  test("MCP (POST /mcp) needs a read key, not write", async () => {
    const rpc = { jsonrpc: "2.0", id: 1, method: "tools/list", params: {} };
    const headers = { accept: "application/json, text/event-stream" };
    expect((await call(REMOTE, "POST", "/mcp", rpc, headers)).status).toBe(401);
    const r = await call(REMOTE, "POST", "/mcp", rpc, { ...headers, ...bearer(keys.read!) });
    expect(r.status).toBe(200);
    expect(r.text).toContain("tools");
  });

  test("the dashboard's key cookie is ambient: a cross-site (or same-site) form with it is refused", async () => {
    // The dashboard's session cookie, from a real sign-in.
    const login = await call(REMOTE, "POST", "/ui/login", `key=${encodeURIComponent(keys.admin!)}`, {
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-origin",
    });
    expect(login.status).toBe(303);
    const cookie = { cookie: /^(sitesync_session=[\w-]+);/.exec(login.headers["set-cookie"] as unknown as string)![1]! };
    const forged = await call(REMOTE, "POST", "/ui/no-such-form", "x=1", {
      ...cookie,
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-site",
    });
    expect(forged.status).toBe(403);
    expect(forged.body.error.message).toContain("cross-site");
    const own = await call(REMOTE, "POST", "/ui/no-such-form", "x=1", {
      ...cookie,
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-origin",
    });
    expect(own.status).toBe(404);
    // The same key in a header is not ambient: no Origin check.
    const header = await call(
      REMOTE,
      "PATCH",
      `/api/v1/sites/${siteId}`,
      { name: "K" },
      { ...bearer(keys.write!), origin: "https://elsewhere.example" },
    );
    expect(header.status).toBe(200);
  });

  test("X-API-Key works like Bearer", async () => {
    expect((await call(REMOTE, "GET", "/api/v1/sites", undefined, { "x-api-key": keys.read! })).status).toBe(200);
  });

  test("keys API: create (key shown once), list without secrets, last_used_at recorded without a write per request", async () => {
    const created = await call(REMOTE, "POST", "/api/v1/keys", { name: "temp", scope: "read" }, bearer(keys.admin!));
    expect(created.status).toBe(201);
    // (toMatchObject with matchers would replace the body's strings in place.)
    expect([created.body.name, created.body.scope]).toEqual(["temp", "read"]);
    expect(created.body.key.startsWith(`${created.body.prefix}_`)).toBe(true);
    expect(created.body.key_hash).toBeUndefined();
    for (let i = 0; i < 5; i++) expect((await call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(created.body.key))).status).toBe(200);
    // last_used_at is written by a timer for all keys used meanwhile: wait for that write, not a fixed time.
    const listed = async () => {
      const r = await call(REMOTE, "GET", "/api/v1/keys", undefined, bearer(keys.admin!));
      return r.body.find?.((k: { id: number }) => k.id === created.body.id)?.last_used_at ? r : null;
    };
    const list = await waitFor(listed, { timeout: 20_000, every: 100, what: "last_used_at of the used key" });
    expect(list.status).toBe(200);
    const temp = list.body.find((k: { id: number }) => k.id === created.body.id);
    expect(temp.last_used_at).toEqual(expect.any(String));
    expect(list.text).not.toContain(created.body.key);
    expect(list.text).not.toContain("key_hash");
    const bad = await call(REMOTE, "POST", "/api/v1/keys", { name: "x", scope: "root" }, bearer(keys.admin!));
    expect(bad.status).toBe(400);
  });

  test("an expired key is refused", async () => {
    const created = await call(REMOTE, "POST", "/api/v1/keys", { name: "short", scope: "read", expires_in: "1s" }, bearer(keys.admin!));
    expect(created.status).toBe(201);
    expect((await call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(created.body.key))).status).toBe(200);
    await Bun.sleep(1100);
    const r = await call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(created.body.key));
    expect(r.status).toBe(401);
    expect(r.body.error.message).toContain("expired");
  });

  test("revoke takes effect in every worker at once", async () => {
    const created = await call(REMOTE, "POST", "/api/v1/keys", { name: "doomed", scope: "read" }, bearer(keys.admin!));
    const key = created.body.key as string;
    // Fresh connections spread over both workers (reusePort): every one accepts the key first.
    const pids = new Set<number>();
    for (let i = 0; i < 20; i++) pids.add((await call(REMOTE, "GET", "/health")).body.process_id);
    expect(pids.size).toBe(2);
    const before = await Promise.all(Array.from({ length: 20 }, () => call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(key))));
    expect(before.map((r) => r.status)).toEqual(Array(20).fill(200));
    const revoked = await call(REMOTE, "DELETE", `/api/v1/keys/${created.body.id}`, undefined, bearer(keys.admin!));
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toEqual(expect.any(String));
    const after = await Promise.all(Array.from({ length: 20 }, () => call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(key))));
    expect(after.map((r) => r.status)).toEqual(Array(20).fill(401));
    expect(after[0]!.body.error.message).toContain("revoked");
    expect((await call(REMOTE, "DELETE", "/api/v1/keys/999999", undefined, bearer(keys.admin!))).status).toBe(404);
  });

  test("CLI: list shows keys without secrets; revoke by prefix", async () => {
    // A name with an ANSI escape (clear screen) is shown escaped, not sent to the terminal.
    const ansi = await call(REMOTE, "POST", "/api/v1/keys", { name: "evil\u001b[2Jname", scope: "read" }, bearer(keys.admin!));
    expect(ansi.status).toBe(201);
    const list = await runScript(root, ["src/auth/cli.ts", "list"], { DATABASE_URL: s.dbPath });
    expect(list.code).toBe(0);
    expect(list.stdout).toContain("evil\\x1b[2Jname");
    expect(list.stdout).not.toContain("\u001b");
    expect(list.stdout).toContain("dashboard\tread\tactive");
    expect(list.stdout).not.toContain(keys.read!);
    const prefix = keys.read!.slice(0, 16);
    const rv = await runScript(root, ["src/auth/cli.ts", "revoke", prefix], { DATABASE_URL: s.dbPath });
    expect(rv.code).toBe(0);
    expect((await call(REMOTE, "GET", "/api/v1/sites", undefined, bearer(keys.read!))).status).toBe(401);
    const bad = await runScript(root, ["src/auth/cli.ts", "create", "--name", "x", "--scope", "root"], { DATABASE_URL: s.dbPath });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--scope");
    const unknown = await runScript(root, ["src/auth/cli.ts", "revoke", "ssk_000000000000"], { DATABASE_URL: s.dbPath });
    expect(unknown.code).toBe(1);
  });
});

describe("AUTH settings", () => {
  test("AUTH=required refuses loopback without a key even before any key exists", async () => {
    const r = await startServer({ workers: 1, env: { ...env, AUTH: "required" } });
    try {
      const res = await requestFrom(LOCAL, r.url, "GET", "/api/v1/sites");
      expect(res.status).toBe(401);
      expect((await requestFrom(LOCAL, r.url, "GET", "/health")).status).toBe(200);
    } finally {
      await r.cleanup();
    }
  });

  test("AUTH=off answers any client without a key; ALLOWED_HOSTS still guards the Host", async () => {
    const r = await startServer({ workers: 1, env: { ...env, AUTH: "off", ALLOWED_HOSTS: "sitesync.internal" } });
    try {
      expect((await requestFrom(REMOTE, r.url, "GET", "/api/v1/sites")).status).toBe(200);
      expect((await requestFrom(REMOTE, r.url, "GET", "/api/v1/sites", undefined, { host: "sitesync.internal:8000" })).status).toBe(200);
      expect((await requestFrom(REMOTE, r.url, "GET", "/api/v1/sites", undefined, { host: "evil.example" })).status).toBe(403);
    } finally {
      await r.cleanup();
    }
  });
});

describe("revocation is read back", () => {
  // A restored file once carried a trigger that set revoked_at back to null after each revoke: RETURNING shows
  // the row before AFTER triggers run, so DELETE /api/v1/keys/{id} answered 200 and the key stayed valid.
  test("a trigger that undoes the revoke: 500 and the key is reported, not a 200", async () => {
    setLogLevel("silent");
    const t = tempDb();
    try {
      const admin = await createApiKey(t.db, { name: "admin", scope: "admin" });
      const planted = await createApiKey(t.db, { name: "planted", scope: "admin" });
      if (testEngine === "pg") {
        psql(
          "create function keep_key() returns trigger language plpgsql as $$ begin update api_keys set revoked_at = null where id = new.id and revoked_at is not null; return null; end $$;" +
            " create trigger keep after update of revoked_at on api_keys for each row execute function keep_key();",
          t.databaseUrl,
        );
      } else {
        const raw = new Database(t.path);
        raw.run(
          "create trigger keep after update of revoked_at on api_keys begin update api_keys set revoked_at = null where id = new.id; end",
        );
        raw.close();
      }
      const app = createApp(t.db);
      const res = await app.request(`/api/v1/keys/${planted.info.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${admin.key}` },
      });
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain("still active after revoking it");
      expect(await verifyApiKey(t.db, planted.key)).toMatchObject({ ok: true });
    } finally {
      await t.cleanup();
    }
  });
});
