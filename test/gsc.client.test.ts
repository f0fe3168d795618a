import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setLogLevel } from "../src/log.ts";
import { PermanentError } from "../src/sync/errors.ts";
import { serviceAccountToken, staticToken, type TokenProvider } from "../src/sync/gsc/auth.ts";
import {
  createGscClient,
  GscError,
  GscPermanentError,
  isQuotaRefusal,
  retryAfterMs,
  type GscClientOptions,
} from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { tempDir } from "./helpers/db.ts";
import { fakeRows, makeServiceAccount, quotaRefusal, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";

// The Search Console client against the fake Search Console over real HTTP.

setLogLevel("silent");
const SITE = "sc-domain:example.com";
const DAY = "2026-11-20";
let fake: FakeGsc;
let dir: ReturnType<typeof tempDir>;

beforeAll(() => {
  fake = startFakeGsc({ rows: (_s, _d, type) => (type === "web" ? 60_000 : type === "image" ? 25_000 : 0), keepAnswers: true });
  dir = tempDir();
});
afterAll(() => {
  fake.stop();
  dir.cleanup();
});
afterEach(() => fake.reset());

function client(over: Partial<GscClientOptions> = {}) {
  return createGscClient({
    baseUrl: fake.url,
    auth: staticToken("test-token"),
    limiter: createRateLimiter({ limit: 1000 }),
    rowLimit: 25_000,
    maxRetries: 3,
    retryBaseMs: 20,
    timeoutMs: 10_000,
    ...over,
  });
}

async function collect(c: ReturnType<typeof client>, type: "web" | "image" | "video" | "news" = "web", site = SITE) {
  const pages: number[] = [];
  let rows: { page: string; query: string; device: string; clicks?: number }[] = [];
  for await (const page of c.pages(site, DAY, type, new AbortController().signal)) {
    pages.push(page.length);
    rows = rows.concat(page);
  }
  return { pages, rows };
}

describe("fresh data (dataState all)", () => {
  test("fresh: every request asks dataState all and the totals carry Google's metadata.firstIncompleteDate; not fresh: Google's default", async () => {
    const signal = new AbortController().signal;
    fake.setFirstIncompleteDate(DAY);
    const fresh = await client().totals(SITE, DAY, "web", "property", signal, { fresh: true });
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.firstIncompleteDate).toBe(DAY);
    expect(fake.requests.map((r) => r.dataState)).toEqual(["all"]);
    // Final data only (the default): Google has no rows yet for a day it still collects.
    fake.requests.length = 0;
    const final = await client().totals(SITE, DAY, "web", "property", signal);
    expect(final).toEqual([]);
    expect(final.firstIncompleteDate).toBeUndefined();
    expect(fake.requests.map((r) => r.dataState)).toEqual([undefined]);
    // Once Google has finished the day: rows, and no metadata.
    fake.setFirstIncompleteDate(null);
    const done = await client().totals(SITE, DAY, "web", "property", signal, { fresh: true });
    expect(done.length).toBe(fresh.length);
    expect(done.firstIncompleteDate).toBeUndefined();
  });
});

describe("paging", () => {
  test("60,000 rows: Google exposes 50,000 a day (its cap), in pages of 25,000 by startRow, with the query the API expects", async () => {
    const { pages, rows } = await collect(client());
    expect(pages).toEqual([25_000, 25_000]);
    expect(rows.length).toBe(50_000);
    expect(new Set(rows.map((r) => `${r.page}|${r.query}|${r.device}`)).size).toBe(50_000);
    // Sorted by clicks, as Google sends them: the cut tail has the fewest clicks.
    const expected = fakeRows(SITE, DAY, "web", 60_000).sort((a, b) => b.clicks - a.clicks);
    expect(rows[49_999]!.clicks).toBe(expected[49_999]!.clicks);
    const one = expected.find((r) => r.keys[1] === rows[12_345]!.query)!;
    expect(rows[12_345]).toEqual({
      page: one.keys[0],
      query: one.keys[1],
      device: one.keys[2],
      clicks: one.clicks,
      impressions: one.impressions,
      ctr: one.ctr,
      position: one.position,
    } as never);
    expect(fake.requests.map((r) => [r.startRow, r.rowLimit])).toEqual([
      [0, 25_000],
      [25_000, 25_000],
      [50_000, 25_000],
    ]);
    for (const r of fake.requests) {
      expect(r).toMatchObject({ site: SITE, startDate: DAY, endDate: DAY, type: "web", dimensions: ["page", "query", "device"] });
    }
  });

  test("an exact multiple of rowLimit ends with one empty page; no rows means one request", async () => {
    expect((await collect(client(), "image")).pages).toEqual([25_000]);
    expect(fake.requests.map((r) => r.startRow)).toEqual([0, 25_000]);
    fake.requests.length = 0;
    expect((await collect(client(), "news")).pages).toEqual([]);
    expect(fake.requests.length).toBe(1);
  });

  test("a URL-prefix property is path-encoded", async () => {
    const url = "https://www.example.com/blog/";
    await collect(client({ rowLimit: 25_000 }), "news", url);
    expect(fake.requests[0]!.site).toBe(url);
  });
});

describe("errors and retries", () => {
  test("429 with Retry-After: waits that long, then succeeds", async () => {
    fake.inject({ status: 429, headers: { "retry-after": "1" } });
    const t0 = performance.now();
    const { rows } = await collect(client({ retryBaseMs: 1 }), "news");
    const waited = performance.now() - t0;
    expect(rows.length).toBe(0);
    expect(fake.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(fake.requests[1]!.at - fake.requests[0]!.at).toBeGreaterThanOrEqual(950);
  });

  test("503 with Retry-After: waits that long too", async () => {
    fake.inject({ status: 503, headers: { "retry-after": "1" } });
    await collect(client({ retryBaseMs: 1 }), "news");
    expect(fake.requests.map((r) => r.status)).toEqual([503, 200]);
    expect(fake.requests[1]!.at - fake.requests[0]!.at).toBeGreaterThanOrEqual(950);
  });

  test("a 200 whose body is not JSON: retried, then a GscError (not a SyntaxError)", async () => {
    fake.inject({ status: 200, raw: "<html>gateway</html>", times: 1 });
    expect((await collect(client({ retryBaseMs: 1 }), "news")).pages).toEqual([]);
    expect(fake.requests.length).toBe(2);
    fake.reset();
    fake.inject({ status: 200, raw: "<html>gateway</html>", times: 10 });
    const err = await collect(client({ maxRetries: 1, retryBaseMs: 1 }), "news").catch((e) => e);
    expect(err).toBeInstanceOf(GscError);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/200 with a body that is not JSON: <html>gateway.*after 2 attempts/);
  });

  test("5xx twice, then OK: retried with growing backoff", async () => {
    fake.inject({ status: 503, times: 2 });
    const { rows } = await collect(client({ retryBaseMs: 100 }), "image");
    expect(rows.length).toBe(25_000);
    expect(fake.requests.slice(0, 3).map((r) => r.status)).toEqual([503, 503, 200]);
    // Backoff: base * 2^attempt * [0.5, 1.5): >= 50 ms, then >= 100 ms.
    expect(fake.requests[1]!.at - fake.requests[0]!.at).toBeGreaterThanOrEqual(45);
    expect(fake.requests[2]!.at - fake.requests[1]!.at).toBeGreaterThanOrEqual(95);
  });

  test("5xx until the retries run out: a GscError (transient, so the task retries later)", async () => {
    fake.inject({ status: 500, times: 10 });
    const err = await collect(client({ maxRetries: 2 }), "news").catch((e) => e);
    expect(err).toBeInstanceOf(GscError);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/500.*after 3 attempts/);
    expect(fake.requests.length).toBe(3);
  });

  test("a network error is retried", async () => {
    const c = createGscClient({
      baseUrl: "http://127.0.0.1:1",
      auth: staticToken("t"),
      limiter: createRateLimiter({ limit: 100 }),
      rowLimit: 10,
      maxRetries: 1,
      retryBaseMs: 1,
      timeoutMs: 2000,
    });
    const err = await c
      .query(SITE, { startDate: DAY, endDate: DAY, dimensions: [], type: "web", rowLimit: 10, startRow: 0 }, new AbortController().signal)
      .catch((e) => e);
    expect(err).toBeInstanceOf(GscError);
    expect(err.message).toMatch(/request failed.*after 2 attempts/);
  });

  const refusals = [
    {
      name: "401 (bad token)",
      client: () => client({ auth: staticToken("wrong") }),
      status: 401,
      message: /refused access to sc-domain:example\.com \(401 UNAUTHENTICATED/,
    },
    {
      name: "403 (no access to the property)",
      client: () => (fake.forbid(SITE), client()),
      status: 403,
      message: /403 PERMISSION_DENIED: User does not have sufficient permission/,
    },
  ];
  for (const r of refusals) {
    test(`${r.name}: fails at once with a clear, permanent error`, async () => {
      const err = await collect(r.client(), "news").catch((e) => e);
      expect(err).toBeInstanceOf(GscPermanentError);
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.status).toBe(r.status);
      expect(err.message).toMatch(r.message);
      expect(err.message).toMatch(/check that the credentials are valid and have access to this property/);
      expect(fake.requests.length).toBe(1);
    });
  }

  for (const reason of ["rateLimitExceeded", "quotaExceeded", "userRateLimitExceeded"] as const) {
    test(`403 usageLimits/${reason}: quota, backed off and retried, not a permission error`, async () => {
      fake.inject(quotaRefusal(reason, 2));
      const { rows } = await collect(client(), "image");
      expect(rows.length).toBe(25_000);
      expect(fake.requests.slice(0, 3).map((r) => r.status)).toEqual([403, 403, 200]);
    });
  }

  test("403 for quota until the retries run out: a transient GscError that names quota", async () => {
    fake.inject(quotaRefusal("dailyLimitExceeded", 10));
    const err = await collect(client({ maxRetries: 2 }), "news").catch((e) => e);
    expect(err).toBeInstanceOf(GscError);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/kept refusing for quota.*403.*after 3 attempts/);
    expect(fake.requests.length).toBe(3);
  });

  test("isQuotaRefusal: reasons and RESOURCE_EXHAUSTED are quota; a plain PERMISSION_DENIED is not", () => {
    const body = (e: unknown) => JSON.stringify({ error: e });
    expect(isQuotaRefusal(body({ code: 403, errors: [{ domain: "usageLimits", reason: "rateLimitExceeded" }] }))).toBe(true);
    expect(isQuotaRefusal(body({ code: 403, errors: [{ domain: "global", reason: "quotaExceeded" }] }))).toBe(true);
    expect(isQuotaRefusal(body({ code: 429, status: "RESOURCE_EXHAUSTED" }))).toBe(true);
    expect(isQuotaRefusal(body({ code: 403, status: "PERMISSION_DENIED", errors: [{ domain: "global", reason: "forbidden" }] }))).toBe(
      false,
    );
    expect(isQuotaRefusal("<html>forbidden</html>")).toBe(false);
  });

  test("another 4xx (bad request) is permanent and not retried", async () => {
    fake.inject({ status: 400, body: { error: { code: 400, message: "Invalid dimension", status: "INVALID_ARGUMENT" } } });
    const err = await collect(client(), "news").catch((e) => e);
    expect(err).toBeInstanceOf(GscPermanentError);
    expect(err.message).toMatch(/400 INVALID_ARGUMENT: Invalid dimension/);
    expect(fake.requests.length).toBe(1);
  });

  test("aborting the signal stops a request and a backoff wait at once", async () => {
    fake.inject({ status: 429, headers: { "retry-after": "30" } });
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(new Error("stop now")), 200);
    const err = await client()
      .query(SITE, { startDate: DAY, endDate: DAY, dimensions: [], type: "news", rowLimit: 10, startRow: 0 }, ac.signal)
      .catch((e) => e);
    expect(err.message).toBe("stop now");
    // Well under the 30 s Retry-After it would otherwise have waited (a hang guard, not a speed check).
    expect(performance.now() - t0).toBeLessThan(15_000);
  });

  test("Retry-After: seconds or an HTTP date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs("0.5")).toBe(500);
    expect(retryAfterMs(new Date(10_000 + 3000).toUTCString(), 10_000)).toBe(3000);
    expect(retryAfterMs(null)).toBeNull();
    expect(retryAfterMs("soon")).toBeNull();
  });
});

describe("quota", () => {
  test("at most `limit` requests per window; later ones wait for the window to slide", async () => {
    const limiter = createRateLimiter({ limit: 3, windowMs: 400 });
    const t0 = performance.now();
    const at: number[] = [];
    await Promise.all(Array.from({ length: 7 }, () => limiter.acquire().then(() => at.push(performance.now() - t0))));
    at.sort((a, b) => a - b);
    // Lower bounds only: a loaded machine can only make the waits longer.
    expect(at.slice(3, 6).every((t) => t >= 390)).toBe(true);
    expect(at[6]!).toBeGreaterThanOrEqual(790);
  });

  test("the client spends one quota slot per request", async () => {
    const c = client({ limiter: createRateLimiter({ limit: 2, windowMs: 300 }), rowLimit: 25_000 });
    const t0 = performance.now();
    await collect(c, "web"); // 3 requests: the third waits for the window
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });
});

describe("service-account key file", () => {
  async function withKey(fn: (tokens: TokenProvider, keyFile: string) => Promise<void>) {
    const sa = makeServiceAccount(dir.dir, { tokenUri: fake.tokenUrl });
    fake.trustServiceAccount({ email: sa.email, publicKey: sa.publicKey });
    fake.tokenRequests.length = 0;
    await fn(serviceAccountToken({ keyFile: sa.keyFile }), sa.keyFile);
  }

  test("JWT (RS256) exchanged for an access token at the token URL, cached across requests", async () => {
    await withKey(async (auth) => {
      const { rows } = await collect(client({ auth }), "web");
      expect(rows.length).toBe(50_000);
      expect(fake.tokenRequests.length).toBe(1);
      expect(fake.tokenRequests[0]).toMatchObject({
        ok: true,
        claims: {
          iss: "sync-test@example-project.iam.gserviceaccount.com",
          aud: fake.tokenUrl,
          scope: "https://www.googleapis.com/auth/webmasters.readonly",
        },
      });
      expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    });
  });

  test("a token the API refuses (401) is exchanged again once", async () => {
    await withKey(async (auth) => {
      await auth.token();
      fake.inject({ status: 401, times: 1 });
      const { pages } = await collect(client({ auth }), "news");
      expect(pages).toEqual([]);
      expect(fake.requests.map((r) => r.status)).toEqual([401, 200]);
      expect(fake.tokenRequests.filter((t) => t.ok).length).toBe(2);
    });
  });

  test("GSC_TOKEN_URL overrides the key file's token_uri", async () => {
    const sa = makeServiceAccount(dir.dir, { tokenUri: "http://127.0.0.1:1/never" });
    fake.trustServiceAccount({ email: sa.email, publicKey: sa.publicKey });
    const auth = serviceAccountToken({ keyFile: sa.keyFile, tokenUrl: fake.tokenUrl });
    expect(await auth.token()).toMatch(/^sa-token-/);
  });

  test("a key the token server rejects: permanent error naming the account and the reason", async () => {
    const trusted = makeServiceAccount(dir.dir, { tokenUri: fake.tokenUrl });
    fake.trustServiceAccount({ email: trusted.email, publicKey: trusted.publicKey });
    const other = makeServiceAccount(join(dir.dir), { tokenUri: fake.tokenUrl }); // new key pair, same file name
    const err = await serviceAccountToken({ keyFile: other.keyFile })
      .token()
      .catch((e) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/token exchange for sync-test@.* refused \(400\): invalid_grant: Invalid JWT Signature/);
  });

  const tokenFailures = [
    {
      name: "429 (rate limited)",
      x: { status: 429, body: { error: "rate_limit_exceeded" } },
      message: /refused \(429\): rate_limit_exceeded/,
    },
    { name: "503", x: { status: 503 }, message: /refused \(503\)/ },
    {
      name: "200 with a non-JSON body",
      x: { status: 200, raw: "<html>oops</html>" },
      message: /answered 200 with a body that is not JSON/,
    },
  ];
  for (const f of tokenFailures) {
    test(`token endpoint ${f.name}: a transient GscError (the task is retried), and a later exchange works`, async () => {
      await withKey(async (auth) => {
        fake.injectToken(f.x);
        const err = await auth.token().catch((e) => e);
        expect(err).toBeInstanceOf(GscError);
        expect(err).not.toBeInstanceOf(PermanentError);
        expect(err.message).toMatch(f.message);
        expect(await auth.token()).toMatch(/^sa-token-/);
      });
    });
  }

  const badFiles = [
    { name: "missing", content: null, message: /cannot read the service-account key file \(GSC_SERVICE_ACCOUNT_FILE\) \(ENOENT\)/ },
    { name: "not JSON", content: "{oops", message: /key file \(GSC_SERVICE_ACCOUNT_FILE\) is not JSON/ },
    // Someone pointed the setting at /etc/passwd: the task's error (readable by any API client) must not quote it.
    { name: "passwd-like", content: "root:x:0:0:root:/root:/bin/bash\n", message: /key file \(GSC_SERVICE_ACCOUNT_FILE\) is not JSON/ },
    {
      name: "not a service account",
      content: JSON.stringify({ type: "authorized_user" }),
      message: /is not a Google service-account key file \(check: type, client_email, private_key\)/,
    },
    {
      name: "a key that cannot sign",
      content: JSON.stringify({
        type: "service_account",
        client_email: "a@b",
        private_key: "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n",
      }),
      message: /private key cannot sign/,
    },
  ];
  for (const b of badFiles) {
    test(`key file ${b.name}: permanent error saying what is wrong`, async () => {
      const path = join(dir.dir, `bad-${b.name.replaceAll(" ", "-")}.json`);
      if (b.content !== null) writeFileSync(path, b.content);
      const err = await serviceAccountToken({ keyFile: path, tokenUrl: fake.tokenUrl })
        .token()
        .catch((e) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(b.message);
      // Neither the path nor any of the file's bytes.
      expect(err.message).not.toContain(dir.dir);
      if (b.content)
        for (const piece of ["root", "oops", "BEGIN PRIVATE", "authorized_user"])
          if (b.content.includes(piece)) expect(err.message).not.toContain(piece);
    });
  }
});
