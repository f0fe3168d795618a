import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { accountFileOf, writeAuthorizedUser } from "../src/sync/gsc/user-auth.ts";
import { haveChromium, launchChromium } from "./helpers/browser.ts";
import { tempDir } from "./helpers/db.ts";
import { startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(90_000);

// The dashboard's Google page in chromium (issue 20.3, 17.7): both signed-in accounts with the properties
// each sees, "Add" for one property and "Add all" for the rest, each new site bound to its account with
// its backfill queued newest day first.

const chromiumHere = haveChromium("ui.google.browser");

describe.skipIf(!chromiumHere)("Google accounts page in chromium", () => {
  let s: RunningServer;
  let fake: FakeGsc;
  let browser: Browser;
  let page: Page;
  const dir = tempDir();

  beforeAll(async () => {
    fake = startFakeGsc();
    const clientSecret = join(dir.dir, "client_secret.json");
    writeFileSync(clientSecret, JSON.stringify(fake.registerOAuthClient()));
    const credentials = join(dir.dir, "credentials.json");
    const client = { client_id: "test-client.apps.googleusercontent.com", client_secret: "test-secret", token_uri: fake.tokenUrl };
    fake.signInAs({ email: "a@example.com", properties: [{ siteUrl: "sc-domain:alpha.example", permissionLevel: "siteOwner" }] });
    writeAuthorizedUser(credentials, { ...client, refresh_token: fake.grantRefreshToken(), account: "a@example.com" });
    fake.signInAs({
      email: "b@example.com",
      properties: [
        { siteUrl: "https://beta.example/", permissionLevel: "siteOwner" },
        { siteUrl: "sc-domain:gamma.example", permissionLevel: "siteFullUser" },
      ],
    });
    writeAuthorizedUser(accountFileOf(credentials, "b@example.com"), {
      ...client,
      refresh_token: fake.grantRefreshToken(),
      account: "b@example.com",
    });
    s = await startServer({
      workers: 1,
      syncWorkers: 0,
      env: {
        GSC_CREDENTIALS_FILE: credentials,
        GSC_API_BASE_URL: fake.url,
        GSC_TOKEN_URL: fake.tokenUrl,
        GSC_AUTH_URL: fake.authUrl,
        GSC_CLIENT_SECRET_FILE: clientSecret,
        SYNC_SCHEDULER: "false",
      },
    });
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await s?.cleanup();
    fake?.stop();
    dir.cleanup();
  });

  const sites = async () => (await request(s.url, "GET", "/api/v1/sites?active_only=false")).body as { id: number; domain: string }[];
  const jobsOf = async (id: number) =>
    (await request(s.url, "GET", `/api/v1/sync/jobs?site_id=${id}`)).body.jobs as { status: string; end_date: string }[];

  test("lists each account with its properties; Add adds one, Add all the rest, each with its backfill", async () => {
    // Search Console asked once, through the page's own button.
    expect((await page.goto(`${s.url}/ui/google`))?.status()).toBe(200);
    await page.getByRole("button", { name: "Ask Search Console again" }).click();
    await page.waitForURL(`${s.url}/ui/google`);
    expect(await page.locator('article[data-account="a@example.com"] li').allTextContents()).toEqual([
      "sc-domain:alpha.example (siteOwner)",
    ]);
    expect(await page.locator('article[data-account="b@example.com"] li').allTextContents()).toEqual([
      "https://beta.example/ (siteOwner)",
      "sc-domain:gamma.example (siteFullUser)",
    ]);
    expect(await page.locator("tr[data-property]").count()).toBe(3);

    await page.getByRole("button", { name: "Add https://beta.example/" }).click();
    await page.locator('li[data-outcome="added"]').waitFor();
    expect(await page.locator("li[data-outcome]").allTextContents()).toEqual([
      expect.stringContaining("https://beta.example/: added — added; backfill"),
    ]);
    const beta = (await sites()).find((x) => x.domain === "https://beta.example/")!;
    expect(await jobsOf(beta.id)).toEqual([
      expect.objectContaining({ status: "pending", task_type: "daily_sync", sync_mode: "skip", total_tasks: 480 }),
    ]);
    // Its account is the one that sees it, and the page says so.
    expect((await request(s.url, "GET", `/api/v1/sites/${beta.id}/google-account`)).body).toMatchObject({ account: "b@example.com" });
    expect(await page.locator("tr[data-property]").count()).toBe(2);

    await page.getByRole("button", { name: "Add all 2" }).click();
    await page.locator('li[data-outcome="added"]').first().waitFor();
    expect(await page.locator('li[data-outcome="added"]').count()).toBe(2);
    const all = await sites();
    expect(all.map((x) => x.domain).sort()).toEqual(["https://beta.example/", "sc-domain:alpha.example", "sc-domain:gamma.example"]);
    for (const x of all) expect((await jobsOf(x.id)).length).toBe(1);
    expect(await page.locator("tr[data-property]").count()).toBe(0);
    await page.goto(`${s.url}/ui/google`);
    expect(await page.locator('article[data-account="a@example.com"] a').allTextContents()).toEqual(["synced with this account"]);
  });

  test("Sign in with another Google account: Google's consent, then the account is listed with its properties", async () => {
    fake.signInAs({ email: "c@example.com", properties: [{ siteUrl: "sc-domain:delta.example", permissionLevel: "siteOwner" }] });
    await page.goto(`${s.url}/ui/google`);
    // The fake consent page agrees at once and redirects back to the dashboard's callback.
    await page.getByRole("link", { name: "Sign in with another Google account" }).click();
    await page.waitForURL(/\/ui\/google\?notice=google-signed-in/);
    expect(await page.locator(".notice, [role=status]").first().textContent()).toContain("Signed in");
    expect(await page.locator('article[data-account="c@example.com"] li').allTextContents()).toEqual([
      "sc-domain:delta.example (siteOwner)",
    ]);
    expect(await page.locator('tr[data-property="sc-domain:delta.example"]').count()).toBe(1);
  });
});
