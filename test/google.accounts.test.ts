import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { gscProbeFromConfig } from "../src/diagnostics/gsc-probe.ts";
import { createGoogleAccounts, type GoogleAccounts } from "../src/google/accounts.ts";
import { listGoogleAccounts } from "../src/google/queries.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, daysBetween, FINAL_LAG_DAYS, MAX_RANGE_DAYS, newestDataDay } from "../src/sync/dates.ts";
import { accountFileOf, writeAuthorizedUser } from "../src/sync/gsc/user-auth.ts";
import { createTask, findJob, queueBackfill } from "../src/sync/queries.ts";
import { sourceFromConfig } from "../src/sync/source.ts";
import { startWorker, type Worker } from "../src/sync/worker.ts";
import { call } from "./helpers/api.ts";
import { cli } from "./helpers/cli.ts";
import { tempDb } from "./helpers/db.ts";
import { type FakeAccount, isDetailRequest, makeServiceAccount, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { waitFor as waitUpTo } from "./helpers/sync.ts";

// Several Google accounts (issue 20.3) and property discovery (issue 17.7), in this process against the
// fake Search Console serving two signed-in users and a service account, each seeing other properties
// (the fake answers 403 when a token's account does not see the property, as Google does).

setLogLevel("silent");
setDefaultTimeout(180_000);
// Conditions, not durations: a loaded machine (load ~25 while 9 agents test) gets a minute.
const waitFor = <T>(what: string, f: () => T | Promise<T>) => waitUpTo(what, f, 60_000);
const A: FakeAccount = {
  email: "a@example.com",
  properties: [
    { siteUrl: "sc-domain:alpha.example", permissionLevel: "siteOwner" },
    { siteUrl: "sc-domain:shared.example", permissionLevel: "siteFullUser" },
  ],
};
const B: FakeAccount = {
  email: "b@example.com",
  properties: [
    { siteUrl: "https://beta.example/", permissionLevel: "siteOwner" },
    { siteUrl: "sc-domain:shared.example", permissionLevel: "siteOwner" },
    { siteUrl: "sc-domain:unverified.example", permissionLevel: "siteUnverifiedUser" },
  ],
};
const SA_PROPS = [{ siteUrl: "sc-domain:gamma.example", permissionLevel: "siteFullUser" }];

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let accounts: GoogleAccounts;
let app: ReturnType<typeof createApp>;
let config: ReturnType<typeof loadConfig>;
let credentials: string;
let saEmail: string;
const workers: Worker[] = [];

beforeAll(async () => {
  t = tempDb();
  fake = startFakeGsc({ checkAccess: true, rows: (_s, _d, type) => (type === "web" ? 3 : 1) });
  credentials = join(t.dir, "data", "credentials.json");
  const client = { client_id: "test-client.apps.googleusercontent.com", client_secret: "test-secret", token_uri: fake.tokenUrl };
  fake.signInAs(A);
  writeAuthorizedUser(credentials, { ...client, refresh_token: fake.grantRefreshToken(), account: A.email });
  fake.signInAs(B);
  writeAuthorizedUser(accountFileOf(credentials, B.email), { ...client, refresh_token: fake.grantRefreshToken(), account: B.email });
  const sa = makeServiceAccount(t.dir, { tokenUri: fake.tokenUrl });
  saEmail = sa.email;
  fake.trustServiceAccount({ ...sa, properties: SA_PROPS });
  const clientSecret = join(t.dir, "client_secret.json");
  writeFileSync(clientSecret, JSON.stringify(fake.registerOAuthClient()));
  config = loadConfig([], {
    GSC_CLIENT_SECRET_FILE: clientSecret,
    GSC_AUTH_URL: fake.authUrl,
    GSC_API_BASE_URL: fake.url,
    GSC_TOKEN_URL: fake.tokenUrl,
    GSC_CREDENTIALS_FILE: credentials,
    GSC_SERVICE_ACCOUNT_FILE: sa.keyFile,
    SYNC_SOURCE: "gsc",
    GSC_QUOTA_PER_MINUTE: "100000",
    GSC_RETRY_BASE_MS: "1",
    // Retried as in production (default 5): with none, one transient failure of a request (the connection, a 5xx)
    // failed its day × type, which a one-attempt backfill then skips, out of the newest-first order checked below.
    GSC_MAX_RETRIES: "2",
    GSC_ROW_LIMIT: "100",
  });
  accounts = createGoogleAccounts(t.db, config);
  app = createApp(t.db, { google: accounts, gscProbe: gscProbeFromConfig(config, t.db) });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  setLogLevel("silent");
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});

function worker() {
  const w = startWorker({
    db: t.open(),
    source: sourceFromConfig(config, t.db),
    pollMs: 20,
    leaseMs: 5000,
    retryBaseMs: 50,
    batchSize: 50,
  });
  workers.push(w);
  return w;
}

const api = (method: string, path: string, body?: unknown) => call(app, method, path, body);

const siteIdOf = async (domain: string) => {
  const r = await api("GET", "/api/v1/sites?active_only=false");
  return (r.json as { id: number; domain: string }[]).find((s) => s.domain === domain)!.id;
};

const accountId = async (email: string) =>
  ((await api("GET", "/api/v1/google/accounts")).json as { id: number; email: string }[]).find((a) => a.email === email)!.id;

describe("accounts", () => {
  test("GETs are read-only: the accounts list, the properties and the dashboard page register nothing", async () => {
    // Two sign-ins and a service account on this machine, none registered yet.
    expect(await listGoogleAccounts(t.db)).toEqual([]);
    const listed = await api("GET", "/api/v1/google/accounts");
    expect(listed.status).toBe(200);
    expect(listed.json).toEqual([]);
    expect((await api("GET", "/api/v1/google/properties")).json).toEqual([]);
    const refresh = await api("GET", "/api/v1/google/properties?refresh=true");
    expect(refresh.status).toBe(400);
    expect(refresh.json.error.message).toContain("POST /api/v1/google/accounts/refresh");
    const page = await app.request("/ui/google");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("Signed in on this machine but not added yet");
    expect(html).toContain(A.email);
    expect(await listGoogleAccounts(t.db)).toEqual([]);
    expect(fake.requests).toEqual([]);
  });

  test("every sign-in on this machine and the service account are registered; refresh lists what each sees", async () => {
    const r = await api("POST", "/api/v1/google/accounts/refresh");
    expect(r.status).toBe(200);
    expect(
      r.json.map((a: { email: string; kind: string; project: string; on_this_machine: boolean; error: string | null }) => [
        a.email,
        a.kind,
        a.project,
        a.on_this_machine,
        a.error,
      ]),
    ).toEqual([
      [A.email, "user", "test-client.apps.googleusercontent.com", true, null],
      [B.email, "user", "test-client.apps.googleusercontent.com", true, null],
      [saEmail, "service", "example-project", true, null],
    ]);
    expect(r.json[1].properties).toEqual([
      { site_url: "https://beta.example/", permission_level: "siteOwner" },
      { site_url: "sc-domain:shared.example", permission_level: "siteOwner" },
      { site_url: "sc-domain:unverified.example", permission_level: "siteUnverifiedUser" },
    ]);
    expect(r.json[2].properties).toEqual([{ site_url: "sc-domain:gamma.example", permission_level: "siteFullUser" }]);
  });
});

describe("property discovery and import", () => {
  test("GET /google/properties: each property once, with the account a site would use (the owner first)", async () => {
    const r = await api("GET", "/api/v1/google/properties");
    expect(r.status).toBe(200);
    expect(
      r.json.map((p: { site_url: string; account: string; accounts: string[]; site_id: null }) => [
        p.site_url,
        p.account,
        p.accounts,
        p.site_id,
      ]),
    ).toEqual([
      ["https://beta.example/", B.email, [B.email], null],
      ["sc-domain:alpha.example", A.email, [A.email], null],
      ["sc-domain:gamma.example", saEmail, [saEmail], null],
      ["sc-domain:shared.example", B.email, [A.email, B.email], null],
      ["sc-domain:unverified.example", B.email, [B.email], null],
    ]);
  });

  test("import of named properties: added and bound; one nobody can read is refused with the reason", async () => {
    const r = await api("POST", "/api/v1/google/properties/import", {
      site_urls: [
        "sc-domain:alpha.example",
        "SC-DOMAIN:Shared.Example",
        "sc-domain:unverified.example",
        "sc-domain:nobody.example",
        "nonsense",
      ],
      backfill: false,
    });
    expect(r.status).toBe(200);
    expect(
      r.json.map((x: { site_url: string; status: string; account: string | null; job_id: null }) => [
        x.site_url,
        x.status,
        x.account,
        x.job_id,
      ]),
    ).toEqual([
      ["sc-domain:alpha.example", "added", A.email, null],
      ["sc-domain:shared.example", "added", B.email, null],
      ["sc-domain:unverified.example", "not_visible", null, null],
      ["sc-domain:nobody.example", "not_visible", null, null],
      ["nonsense", "invalid", null, null],
    ]);
    expect(r.json[2].message).toContain("siteUnverifiedUser");
    const shared = await api("GET", `/api/v1/sites/${await siteIdOf("sc-domain:shared.example")}/google-account`);
    expect(shared.json).toMatchObject({ account: B.email, chosen: "auto", note: null });
  });

  test("import of all: the others are added, each with a 16-month backfill queued newest day first", async () => {
    const r = await api("POST", "/api/v1/google/properties/import", {});
    expect(r.status).toBe(200);
    const byUrl = Object.fromEntries(r.json.map((x: { site_url: string }) => [x.site_url, x]));
    expect(Object.keys(byUrl).sort()).toEqual([
      "https://beta.example/",
      "sc-domain:alpha.example",
      "sc-domain:gamma.example",
      "sc-domain:shared.example",
    ]);
    expect(byUrl["sc-domain:alpha.example"]).toMatchObject({ status: "exists", job_id: null });
    for (const [url, who] of [
      ["https://beta.example/", B.email],
      ["sc-domain:gamma.example", saEmail],
    ] as const) {
      // (toMatchObject would write its matchers into byUrl[url].)
      expect({ ...byUrl[url] }).toMatchObject({ status: "added", account: who, job_id: expect.any(Number) });
      const job = (await findJob(t.db, byUrl[url].job_id))!;
      const end = newestDataDay();
      // The longest range a task may cover (480 days), not the 487 Search Console keeps: no backfill exceeds it.
      expect(job).toMatchObject({
        task_type: "daily_sync",
        status: "pending",
        start_date: addDays(end, -(MAX_RANGE_DAYS - 1)),
        end_date: end,
      });
      expect(daysBetween(job.start_date!, job.end_date!)).toBe(MAX_RANGE_DAYS);
      expect(job.progress_total).toBe(MAX_RANGE_DAYS);
      expect(job.params).toEqual({ sync_mode: "skip", order: "newest_first" });
    }
    // The backfills stay queued for the backfill test below; the others run no job.
  });
  test("POST /sites/{id}/backfill queues (or resumes) one newest-first backfill; a second while it is pending is 409", async () => {
    const alpha = await siteIdOf("sc-domain:alpha.example");
    const r = await api("POST", `/api/v1/sites/${alpha}/backfill`);
    expect(r.status).toBe(202);
    expect(r.json).toEqual({
      job_id: expect.any(Number),
      start_date: addDays(newestDataDay(), -(MAX_RANGE_DAYS - 1)),
      end_date: newestDataDay(),
      status_url: `/api/v1/sync/job/${r.json.job_id}`,
    });
    expect((await findJob(t.db, r.json.job_id))!.params).toEqual({ sync_mode: "skip", order: "newest_first" });
    const again = await api("POST", `/api/v1/sites/${alpha}/backfill`);
    expect(again.status).toBe(409);
    expect(again.json.error.details.job_id).toBe(r.json.job_id);
    expect((await api("POST", "/api/v1/sites/999999/backfill")).status).toBe(404);
    expect((await api("DELETE", `/api/v1/sync/job/${r.json.job_id}`)).status).toBe(200);
  });
});

describe("syncs", () => {
  test("several accounts' properties sync side by side, each request with its site's account's token", async () => {
    // The backfills queued by the import would take this test's worker for long: cancel them.
    for (const d of ["https://beta.example/", "sc-domain:gamma.example"]) {
      const jobs = await api("GET", `/api/v1/sync/jobs?site_id=${await siteIdOf(d)}&active_only=true`);
      for (const j of jobs.json.jobs) expect((await api("DELETE", `/api/v1/sync/job/${j.id}`)).status).toBeLessThan(300);
    }
    fake.reset();
    // Days far from the newest, which the backfill test below expects to find not yet stored.
    const end = addDays(newestDataDay(), -100);
    const expected: Record<string, string> = {
      "sc-domain:alpha.example": A.email,
      "https://beta.example/": B.email,
      "sc-domain:shared.example": B.email,
      "sc-domain:gamma.example": saEmail,
    };
    const jobs: number[] = [];
    for (const d of Object.keys(expected)) {
      const task = await createTask(t.db, {
        siteId: await siteIdOf(d),
        taskType: "daily_sync",
        startDate: addDays(end, -1),
        endDate: end,
        params: {},
        runAt: new Date(),
        maxAttempts: 1,
      });
      jobs.push(task.id);
    }
    worker();
    worker();
    for (const id of jobs) await waitFor(`job ${id} done`, async () => ((await findJob(t.db, id))?.status === "completed" ? true : null));
    const seen = new Map<string, Set<string | null>>();
    for (const r of fake.requests) {
      expect(r.status).toBe(200);
      if (!seen.has(r.site)) seen.set(r.site, new Set());
      seen.get(r.site)!.add(r.account);
    }
    expect(Object.fromEntries([...seen].map(([site, who]) => [site, [...who]]))).toEqual(
      Object.fromEntries(Object.entries(expected).map(([site, who]) => [site, [who]])),
    );
    // Query detail: 2 days × 4 search types per site, each one page (discover and googleNews have none).
    expect(fake.requests.filter(isDetailRequest).length).toBe(4 * 2 * 4);
  });

  test("quota is per Google project: two users of one OAuth client share one, the service account has its own", async () => {
    const p = async (d: string) => (await accounts.credentialsFor(d)).project;
    expect(await p("sc-domain:alpha.example")).toBe("test-client.apps.googleusercontent.com");
    expect(await p("https://beta.example/")).toBe("test-client.apps.googleusercontent.com");
    expect(await p("sc-domain:gamma.example")).toBe("example-project");
    // Not a registered site: the default credentials (the service account, as before accounts existed).
    expect(await p("sc-domain:nothing.example")).toBe("example-project");
  });

  test("test-gsc-connection asks a site's property with its own account's token", async () => {
    fake.reset();
    for (const [d, who] of [
      ["sc-domain:alpha.example", A.email],
      ["https://beta.example/", B.email],
    ] as const) {
      const r = await api("GET", `/api/v1/diagnostics/test-gsc-connection/${await siteIdOf(d)}`);
      expect(r.json.gsc_test).toMatchObject({ status: "ok", success: true });
      expect(fake.requests.at(-1)).toMatchObject({ site: d, account: who, status: 200 });
    }
  });

  test("a backfill fetches newest day first, and queued again resumes: final days stored are not fetched again", async () => {
    fake.reset();
    // A day that fails (its error logged) is skipped by the task and missing from the order: the log says why.
    setLogLevel("warn");
    const siteId = await siteIdOf("sc-domain:gamma.example");
    const first = await queueBackfill(t.db, { siteId, maxAttempts: 1 });
    worker();
    const webDays = () =>
      fake.requests
        .filter((r) => isDetailRequest(r) && r.site === "sc-domain:gamma.example" && r.type === "web" && r.status === 200)
        .map((r) => r.startDate);
    await waitFor("12 days fetched", () => (webDays().length >= 12 ? true : null));
    expect((await api("DELETE", `/api/v1/sync/job/${first.id}`)).status).toBeLessThan(300);
    await waitFor("cancelled", async () => ((await findJob(t.db, first.id))?.status === "cancelled" ? true : null));
    const fetched = webDays();
    // The task's own count of failed days beside the order (a missing day: its failure, not a reordering).
    expect({ first12: fetched.slice(0, 12), failedDays: (await findJob(t.db, first.id))?.stats_failed }).toEqual({
      first12: Array.from({ length: 12 }, (_, i) => addDays(first.end, -i)),
      failedDays: 0,
    });
    fake.reset();
    const again = await queueBackfill(t.db, { siteId, maxAttempts: 1 });
    await waitFor("the second run passed the first's days", () => (webDays().length >= 3 ? true : null));
    expect((await api("DELETE", `/api/v1/sync/job/${again.id}`)).status).toBeLessThan(300);
    await waitFor("cancelled", async () => ((await findJob(t.db, again.id))?.status === "cancelled" ? true : null));
    const newestFinal = addDays(new Date().toISOString().slice(0, 10), -FINAL_LAG_DAYS);
    const finalBefore = new Set(fetched.slice(0, 11).filter((d) => d <= newestFinal));
    const refetched = webDays().filter((d) => finalBefore.has(d));
    expect(refetched).toEqual([]);
    // Still newest first: the days not final yet again, then the first day the first run did not reach.
    expect(webDays()[0]).toBe(first.end);
  });
});

describe("binding and removal", () => {
  test("a site can be bound by hand to an account that sees it; one that does not is refused (409)", async () => {
    const shared = await siteIdOf("sc-domain:shared.example");
    const ok = await api("PUT", `/api/v1/sites/${shared}/google-account`, { account: A.email });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ account: A.email, chosen: "manual" });
    const alpha = await siteIdOf("sc-domain:alpha.example");
    const no = await api("PUT", `/api/v1/sites/${alpha}/google-account`, { account: await accountId(B.email) });
    expect(no.status).toBe(409);
    expect(no.json.error.message).toContain(`${B.email} cannot see sc-domain:alpha.example`);
    const missing = await api("PUT", `/api/v1/sites/${alpha}/google-account`, { account: "nobody@example.com" });
    expect(missing.status).toBe(404);
    // Back to B for the removal test.
    expect((await api("PUT", `/api/v1/sites/${shared}/google-account`, { account: B.email })).status).toBe(200);
  });

  test("removing an account deletes its sign-in, unbinds its sites with a note (or binds another account that sees them)", async () => {
    const bId = await accountId(B.email);
    const bFile = accountFileOf(credentials, B.email);
    expect(existsSync(bFile)).toBe(true);
    const r = await api("DELETE", `/api/v1/google/accounts/${bId}`);
    expect(r.status).toBe(200);
    expect(r.json.credentials_file_deleted).toBe(true);
    expect(existsSync(bFile)).toBe(false);
    const beta = await siteIdOf("https://beta.example/");
    const shared = await siteIdOf("sc-domain:shared.example");
    expect(r.json.unbound_sites).toEqual([
      { id: beta, domain: "https://beta.example/", note: expect.stringContaining(`${B.email} was removed`) },
    ]);
    // A sees shared.example too: bound to it at once.
    expect(r.json.rebound_sites).toEqual([{ id: shared, domain: "sc-domain:shared.example", account_id: await accountId(A.email) }]);
    const status = await api("GET", `/api/v1/sites/${beta}/google-account`);
    expect(status.json).toMatchObject({ account_id: null, account: null, note: expect.stringContaining("bun run cli auth login") });
    expect((await api("GET", "/api/v1/google/accounts")).json.map((a: { email: string }) => a.email)).toEqual([A.email, saEmail]);

    // Its sync fails at once with that note, and no request is sent for it.
    fake.reset();
    // A day no earlier test synced (skip mode would pass a stored one without asking).
    const end = addDays(newestDataDay(), -30);
    const task = await createTask(t.db, {
      siteId: beta,
      taskType: "daily_sync",
      startDate: end,
      endDate: end,
      params: {},
      runAt: new Date(),
      maxAttempts: 3,
    });
    worker();
    const job = await waitFor("failed", async () => {
      const j = await findJob(t.db, task.id);
      return j?.status === "failed" ? j : null;
    });
    expect(job.error).toContain(`site https://beta.example/ has no Google account: its Google account ${B.email} was removed`);
    expect(fake.requests.filter((x) => x.site === "https://beta.example/")).toEqual([]);
    // The service account cannot be removed while configured.
    const sa = await api("DELETE", `/api/v1/google/accounts/${await accountId(saEmail)}`);
    expect(sa.status).toBe(409);
    expect(sa.json.error.message).toContain("GSC_SERVICE_ACCOUNT_FILE");
  });
});

describe("cli", () => {
  test("sites properties, sites import (named; one nobody sees: exit 1), sites account", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
    const env = { SITESYNC_URL: server.url.origin, GSC_CREDENTIALS_FILE: credentials };
    try {
      A.properties.push({ siteUrl: "sc-domain:delta.example", permissionLevel: "siteOwner" });
      const props = await cli(["--json", "sites", "properties"], { env });
      expect(props.code).toBe(0);
      expect(JSON.parse(props.stdout).find((p: { site_url: string }) => p.site_url === "sc-domain:delta.example")).toMatchObject({
        account: A.email,
        site_id: null,
      });
      const imp = await cli(["sites", "import", "sc-domain:delta.example", "--no-backfill"], { env });
      expect(imp.code).toBe(0);
      expect(imp.stdout).toMatch(/sc-domain:delta\.example\s+added\s+\d+\s+a@example\.com\s+-/);
      const none = await cli(["sites", "import", "sc-domain:nobody.example"], { env });
      expect(none.code).toBe(1);
      expect(none.stdout).toContain("not_visible");
      expect(none.stderr).toContain("some properties were not added");
      const acc = await cli(["sites", "account", "delta.example"], { env });
      expect(acc.code).toBe(0);
      expect(acc.stdout).toContain(`sc-domain:delta.example syncs with ${A.email} (chosen automatically)`);
      const bind = await cli(["sites", "account", "delta.example", saEmail], { env });
      expect(bind.code).toBe(1);
      expect(bind.stderr).toContain(`${saEmail} cannot see sc-domain:delta.example`);
    } finally {
      server.stop(true);
    }
  });
});

describe("dashboard sign-in", () => {
  test("Google's redirect back adds the account (PKCE, state in a cookie); a callback this browser did not start is refused", async () => {
    const C: FakeAccount = { email: "c@example.com", properties: [{ siteUrl: "sc-domain:epsilon.example", permissionLevel: "siteOwner" }] };
    fake.signInAs(C);
    const start = await app.request("/ui/google/signin");
    expect(start.status).toBe(302);
    const consent = new URL(start.headers.get("location")!);
    expect(consent.origin + consent.pathname).toBe(fake.authUrl);
    expect(consent.searchParams.get("code_challenge_method")).toBe("S256");
    expect(consent.searchParams.get("redirect_uri")).toBe("http://localhost/ui/google/callback");
    const cookie = start.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^sitesync_google_signin=[^;]+;.*HttpOnly.*SameSite=Lax/i);
    const back = new URL((await fetch(consent, { redirect: "manual" })).headers.get("location")!);
    // Without the cookie (another browser, or a forged link): refused, nothing stored.
    expect((await app.request(back.pathname + back.search)).status).toBe(400);
    expect(existsSync(accountFileOf(credentials, C.email))).toBe(false);
    const done = await app.request(back.pathname + back.search, { headers: { cookie: cookie.split(";")[0]! } });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toStartWith("/ui/google?notice=google-signed-in");
    expect(existsSync(accountFileOf(credentials, C.email))).toBe(true);
    const listed = (await api("GET", "/api/v1/google/accounts")).json.find((a: { email: string }) => a.email === C.email);
    expect(listed.properties).toEqual([{ site_url: "sc-domain:epsilon.example", permission_level: "siteOwner" }]);
  });
});
