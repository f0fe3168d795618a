// Dashboard sessions and what sits in front of the service (issue 21): the cookie is a random session id
// stored hashed server-side (expiry, revoked at sign-out and with its key), Secure and HSTS only over TLS,
// sign-in attempts rate-limited; TRUST_PROXY decides whose X-Forwarded-For counts.
import { afterAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { createApiKey, revokeApiKey } from "../src/auth/queries.ts";
import { createRateLimiter } from "../src/ratelimit/limiter.ts";
import { tempDb } from "./helpers/db.ts";

const origin = "http://localhost";
/** As Bun.serve passes itself: the socket's peer address. */
const from = (address: string) => ({ requestIP: () => ({ address, family: "IPv4", port: 40000 }) });
const loginForm = (key: string, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", origin, ...headers },
  body: new URLSearchParams({ key, next: "/ui/jobs" }).toString(),
});
const sessionOf = (res: Response) => /^sitesync_session=([\w-]+);/.exec(res.headers.get("set-cookie") ?? "")?.[1];

describe("dashboard sessions", () => {
  const t = tempDb();
  afterAll(() => t.cleanup());

  test("revoking the key ends its sessions at once", async () => {
    const app = createApp(t.db);
    await createApiKey(t.db, { name: "stays", scope: "admin" }); // keys stay in force after the revoke
    const { key, info } = await createApiKey(t.db, { name: "revoked-later", scope: "read" });
    const s = sessionOf(await app.request("/ui/login", loginForm(key)))!;
    const page = () => app.request("/ui/jobs", { headers: { cookie: `sitesync_session=${s}` } });
    expect((await page()).status).toBe(200);
    await revokeApiKey(t.db, info.id);
    expect((await page()).status).toBe(303);
  });

  test("a session expires after its time", async () => {
    const app = createApp(t.db, { sessionTtlMs: 300 });
    const { key } = await createApiKey(t.db, { name: "short", scope: "read" });
    const s = sessionOf(await app.request("/ui/login", loginForm(key)))!;
    const page = () => app.request("/ui/jobs", { headers: { cookie: `sitesync_session=${s}` } });
    expect((await page()).status).toBe(200);
    await Bun.sleep(400);
    expect((await page()).status).toBe(303);
  });

  test("sign-in attempts are rate-limited per client address (300 bad keys used to get 300 answers)", async () => {
    const app = createApp(t.db, { loginRateLimit: createRateLimiter(t.db, { perKey: 0, perIp: 5 }) });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await app.request("/ui/login", loginForm(`ssk_guess${i}`), from("198.51.100.7"))).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const limited = await app.request("/ui/login", loginForm("ssk_guess"), from("198.51.100.7"));
    expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
    // Another address still gets its own tries.
    expect((await app.request("/ui/login", loginForm("ssk_other"), from("198.51.100.8"))).status).toBe(401);
  });

  test("Secure cookie and HSTS only when the client came over TLS (told by a trusted proxy); never over plain HTTP", async () => {
    const { key } = await createApiKey(t.db, { name: "tls", scope: "read" });
    const app = createApp(t.db, {
      auth: { mode: "auto", localAddresses: ["127.0.0.0/8"], allowedHosts: ["sitesync.example"], trustProxy: ["10.0.0.2"] },
    });
    const plain = await app.request("/ui/login", loginForm(key), from("127.0.0.1"));
    expect(plain.headers.get("set-cookie")).not.toContain("Secure");
    expect(plain.headers.get("strict-transport-security")).toBeNull();
    const viaProxy = { "x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https", host: "sitesync.example" };
    const tls = await app.request(
      "http://sitesync.example/ui/login",
      loginForm(key, { ...viaProxy, origin: "http://sitesync.example" }),
      from("10.0.0.2"),
    );
    expect(tls.status).toBe(303);
    expect(tls.headers.get("set-cookie")).toContain("Secure");
    expect(tls.headers.get("strict-transport-security")).toMatch(/max-age=\d+/);
    // X-Forwarded-Proto from a client that is not a trusted proxy is ignored.
    const forged = await app.request("/ui/login", loginForm(key, { "x-forwarded-proto": "https" }), from("127.0.0.1"));
    expect(forged.headers.get("set-cookie")).not.toContain("Secure");
  });

  test("every HTML page has a CSP: the dashboard, /docs and /redoc", async () => {
    const app = createApp(t.db);
    for (const path of ["/ui/login", "/docs", "/redoc"]) {
      const res = await app.request(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect({ path, csp: res.headers.get("content-security-policy") }).toEqual({
        path,
        csp: expect.stringContaining("default-src 'self'"),
      });
    }
  });
});

describe("TRUST_PROXY: whose address counts", () => {
  const t = tempDb(); // no key: protected mode
  afterAll(() => t.cleanup());
  const auth = (trustProxy: string[]) => ({ mode: "auto" as const, localAddresses: ["127.0.0.0/8", "::1"], allowedHosts: [], trustProxy });

  test("off (default): a request proxied by a reverse proxy on this machine is not trusted as local", async () => {
    const app = createApp(t.db, { auth: auth([]) });
    // Before: the proxy's loopback address made every remote client a trusted local one.
    const proxied = await app.request("/api/v1/sites", { headers: { "x-forwarded-for": "203.0.113.9" } }, from("127.0.0.1"));
    expect(proxied.status).toBe(403);
    const body = (await proxied.json()) as { error: { message: string } };
    // The advice names TRUST_PROXY and a key, never "add the host to ALLOWED_HOSTS" (that would open it to everyone).
    expect(body.error.message).toMatch(/TRUST_PROXY/);
    expect(body.error.message).not.toMatch(/ALLOWED_HOSTS/);
    // A program on this machine talking directly is still local.
    expect((await app.request("/api/v1/sites", {}, from("127.0.0.1"))).status).toBe(200);
  });

  test("on: the forwarded client is judged, not the proxy", async () => {
    const app = createApp(t.db, { auth: auth(["127.0.0.1"]) });
    const remote = await app.request("/api/v1/sites", { headers: { "x-forwarded-for": "203.0.113.9" } }, from("127.0.0.1"));
    expect(remote.status).toBe(403);
    expect(((await remote.json()) as { error: { message: string } }).error.message).toMatch(/protected mode/);
    // A client on the proxy's machine itself (X-Forwarded-For: 127.0.0.1) is local.
    expect((await app.request("/api/v1/sites", { headers: { "x-forwarded-for": "127.0.0.1" } }, from("127.0.0.1"))).status).toBe(200);
    // A spoofed left-most entry does not help: the right-most untrusted hop is the client.
    const spoofed = await app.request("/api/v1/sites", { headers: { "x-forwarded-for": "127.0.0.1, 203.0.113.9" } }, from("127.0.0.1"));
    expect(spoofed.status).toBe(403);
  });

  test("X-Forwarded-For from a client that is not a trusted proxy is ignored (the socket counts)", async () => {
    const app = createApp(t.db, { auth: auth(["10.0.0.2"]) });
    const r = await app.request("/api/v1/sites", { headers: { "x-forwarded-for": "127.0.0.1" } }, from("198.51.100.4"));
    expect(r.status).toBe(403);
  });
});
