import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { gscProbeFromConfig } from "../src/diagnostics/gsc-probe.ts";
import { newestDataDay } from "../src/sync/dates.ts";
import { freePort } from "../src/free-port.ts";
import { tempDb } from "./helpers/db.ts";
import { makeServiceAccount, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";

// GET /api/v1/diagnostics/test-gsc-connection/{site_id} (reference §1.13, where it only said "simulated"):
// one real searchAnalytics.query of one row through the project's client, against the fake Search Console.

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let siteId: number;
const DOMAIN = "sc-domain:probe.example";

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc();
  const { sites } = t.db.t;
  [{ id: siteId }] = (await t.db.tx((tx) => tx.insert(sites).values({ domain: DOMAIN, name: "Probe" }).returning({ id: sites.id }))) as [
    { id: number },
  ];
});
afterAll(() => {
  fake.stop();
  t.cleanup();
});
beforeEach(() => fake.reset());

/** The app with the probe the given environment configures. */
function appWith(env: Record<string, string>) {
  // No stored sign-in unless a test writes one (never the developer's own ./data/credentials.json).
  const base = { GSC_API_BASE_URL: fake.url, GSC_CREDENTIALS_FILE: join(t.dir, "no-sign-in.json") };
  return createApp(t.db, { gscProbe: gscProbeFromConfig(loadConfig([], { ...base, ...env })) });
}

async function check(app: ReturnType<typeof createApp>, id = siteId) {
  const res = await app.request(`/api/v1/diagnostics/test-gsc-connection/${id}`);
  const text = await res.text();
  expect(text).not.toMatch(/stack|SQLITE/);
  return { status: res.status, json: JSON.parse(text) };
}

const gscTest = (x: Record<string, unknown>) => ({
  site_id: siteId,
  site_domain: DOMAIN,
  gsc_test: { expected_latency_ms: "2000-5000", latency_ms: expect.any(Number), ...x },
});

describe("with Search Console credentials", () => {
  test("ok: one request of one row for the newest day, for the site's property, with the token", async () => {
    const r = await check(appWith({ GSC_ACCESS_TOKEN: "test-token" }));
    expect(r.status).toBe(200);
    expect(r.json).toEqual(
      gscTest({
        status: "ok",
        success: true,
        source: "gsc",
        message: `the credentials can read ${DOMAIN}`,
        checked_date: newestDataDay(),
        rows: 1,
        http_status: null,
      }),
    );
    expect(fake.requests).toEqual([
      expect.objectContaining({
        site: DOMAIN,
        startDate: newestDataDay(),
        endDate: newestDataDay(),
        rowLimit: 1,
        startRow: 0,
        dimensions: ["date"],
        status: 200,
      }),
    ]);
  });

  test("a property these credentials cannot read: error with Search Console's 403 and reason", async () => {
    fake.forbid(DOMAIN);
    const r = await check(appWith({ GSC_ACCESS_TOKEN: "test-token" }));
    expect(r.status).toBe(200);
    expect(r.json).toEqual(
      gscTest({
        status: "error",
        success: false,
        source: "gsc",
        message: expect.stringMatching(
          /refused access to sc-domain:probe\.example \(403 PERMISSION_DENIED.*check that the credentials are valid and have access/,
        ),
        checked_date: newestDataDay(),
        rows: null,
        http_status: 403,
      }),
    );
  });

  test("a token Search Console does not accept: error 401", async () => {
    const r = await check(appWith({ GSC_ACCESS_TOKEN: "expired-token" }));
    expect(r.json.gsc_test).toMatchObject({
      status: "error",
      success: false,
      http_status: 401,
      message: expect.stringMatching(/401 UNAUTHENTICATED/),
    });
  });

  test("a 5xx is reported at once, not retried (someone is waiting on this request)", async () => {
    fake.inject({ status: 503, times: 5 });
    const r = await check(appWith({ GSC_ACCESS_TOKEN: "test-token" }));
    expect(r.json.gsc_test).toMatchObject({ status: "error", success: false, message: expect.stringMatching(/503/) });
    expect(fake.requests.length).toBe(1);
  });

  test("Search Console unreachable: error naming the failure", async () => {
    const r = await check(
      createApp(t.db, {
        gscProbe: gscProbeFromConfig(
          loadConfig([], { GSC_API_BASE_URL: `http://127.0.0.1:${freePort()}`, GSC_ACCESS_TOKEN: "test-token" }),
        ),
      }),
    );
    expect(r.status).toBe(200);
    expect(r.json.gsc_test).toMatchObject({
      status: "error",
      success: false,
      source: "gsc",
      message: expect.stringMatching(/request failed/),
    });
  });

  test("a service account: the token exchange, then the query", async () => {
    const sa = makeServiceAccount(t.dir, { tokenUri: fake.tokenUrl });
    fake.trustServiceAccount(sa);
    const r = await check(appWith({ GSC_SERVICE_ACCOUNT_FILE: sa.keyFile }));
    expect(r.json.gsc_test).toMatchObject({ status: "ok", success: true, rows: 1 });
    expect(fake.tokenRequests.map((x) => x.ok)).toEqual([true]);
  });

  test("SYNC_SOURCE=auto: demo until a sign-in is stored, then that account's token, without a restart", async () => {
    const file = join(t.dir, "credentials.json");
    const app = appWith({ GSC_CREDENTIALS_FILE: file, GSC_TOKEN_URL: fake.tokenUrl });
    expect((await check(app)).json.gsc_test).toMatchObject({ status: "demo", source: "demo" });
    const client = fake.registerOAuthClient().installed;
    writeFileSync(
      file,
      JSON.stringify({
        type: "authorized_user",
        client_id: client.client_id,
        client_secret: client.client_secret,
        refresh_token: fake.grantRefreshToken(),
      }),
    );
    const r = await check(app);
    expect(r.json.gsc_test).toMatchObject({ status: "ok", success: true, source: "gsc", rows: 1 });
    expect(fake.tokenRequests.map((x) => x.ok)).toEqual([true]);
  });

  test("a service-account key file that is not there: error saying so", async () => {
    const r = await check(appWith({ GSC_SERVICE_ACCOUNT_FILE: join(t.dir, "missing.json") }));
    expect(r.json.gsc_test).toMatchObject({
      status: "error",
      success: false,
      message: expect.stringMatching(/cannot read the service-account key file/),
    });
    expect(fake.requests.length).toBe(0);
  });
});

describe("without credentials (demo source)", () => {
  for (const [name, app] of [
    ["no configuration", () => createApp(t.db)],
    ["no credentials in the environment", () => appWith({})],
    ["SYNC_SOURCE=demo beside a token", () => appWith({ SYNC_SOURCE: "demo", GSC_ACCESS_TOKEN: "test-token" })],
  ] as const) {
    test(`${name}: says the demo source is configured, contacts nothing`, async () => {
      const r = await check(app());
      expect(r.status).toBe(200);
      expect(r.json).toEqual(
        gscTest({
          status: "demo",
          success: true,
          source: "demo",
          message: expect.stringMatching(/demo source is configured/),
          latency_ms: 0,
          checked_date: null,
          rows: null,
          http_status: null,
        }),
      );
      expect(fake.requests.length).toBe(0);
    });
  }
});

test("unknown site -> 404, bad id -> 400, in the error shape with detail", async () => {
  const app = appWith({ GSC_ACCESS_TOKEN: "test-token" });
  const missing = await check(app, 999_999);
  expect(missing).toEqual({
    status: 404,
    json: { error: { code: "not_found", message: "site 999999 not found" }, detail: "site 999999 not found" },
  });
  const bad = await app.request("/api/v1/diagnostics/test-gsc-connection/abc");
  expect(bad.status).toBe(400);
  expect(fake.requests.length).toBe(0);
});
