import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setLogLevel } from "../src/log.ts";
import { PermanentError } from "../src/sync/errors.ts";
import { gscSource } from "../src/sync/gsc/client.ts";
import { createRateLimiter } from "../src/sync/gsc/limiter.ts";
import { accountFileOf, authorizedUserToken, readAuthorizedUser, writeAuthorizedUser } from "../src/sync/gsc/user-auth.ts";
import { cli, spawnCli } from "./helpers/cli.ts";
import { tempDir } from "./helpers/db.ts";
import { startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";

// Google sign-in: `bun run cli auth login` as a real process against the fake consent page and token
// endpoint (authorization-code grant with PKCE, loopback redirect or pasted URL), the stored
// authorized-user file, refreshing from it (refresh-token grant, expiry, revocation), and `auth status`.

setLogLevel("silent");
let fake: FakeGsc;
let dir: ReturnType<typeof tempDir>;
let clientSecretFile: string;
let n = 0;

beforeAll(() => {
  fake = startFakeGsc();
  dir = tempDir();
  clientSecretFile = join(dir.dir, "client_secret.json");
  writeFileSync(clientSecretFile, JSON.stringify(fake.registerOAuthClient()));
  fake.signInAs({
    email: "owner@example.com",
    properties: [
      { siteUrl: "sc-domain:owned.example", permissionLevel: "siteOwner" },
      { siteUrl: "https://blog.example/", permissionLevel: "siteFullUser" },
    ],
  });
});
afterEach(() => fake.reset());
afterAll(() => {
  fake.stop();
  dir.cleanup();
});

const env = (credentials: string) => ({
  GSC_AUTH_URL: fake.authUrl,
  GSC_TOKEN_URL: fake.tokenUrl,
  GSC_API_BASE_URL: fake.url,
  GSC_CREDENTIALS_FILE: credentials,
  // No service there: login does not find one to register the account with.
  SITESYNC_URL: "http://127.0.0.1:9",
});
const newFile = () => join(dir.dir, `creds-${++n}`, "credentials.json");

/** The browser's part: opens the consent URL (the fake agrees at once) and returns where Google redirects it. */
async function consent(url: string): Promise<string> {
  const res = await fetch(url, { redirect: "manual" });
  expect(res.status).toBe(302);
  return res.headers.get("location")!;
}

/** Runs `auth login` to its end, answering through the loopback redirect or by pasting the URL. */
async function login(credentials: string, how: "loopback" | "paste", extra: string[] = []) {
  const p = spawnCli(["auth", "login", "--client-secret", clientSecretFile, "--no-browser", ...extra], { env: env(credentials) });
  const [, url] = await p.waitForStderr(/\n {2}(http\S+)\n/);
  const redirect = await consent(url!);
  if (how === "loopback") {
    const page = await fetch(redirect);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Signed in to sitesync");
  } else {
    await p.type(redirect);
  }
  return { url: new URL(url!), redirect, ...(await p.done()) };
}

/** A stored sign-in for the fake, made through the real login. */
async function signedIn() {
  const file = newFile();
  const r = await login(file, "loopback");
  expect(r.code).toBe(0);
  return { file, refreshToken: readAuthorizedUser(file).refresh_token };
}

describe("auth login", () => {
  test("loopback redirect: PKCE S256, offline access, state; stores authorized-user JSON readable only by its owner", async () => {
    const file = newFile();
    const r = await login(file, "loopback");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Signed in as owner@example.com");
    const q = r.url.searchParams;
    expect(r.url.origin + r.url.pathname).toBe(fake.authUrl);
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("code_challenge")).toMatch(/^[\w-]{43}$/);
    expect(q.get("access_type")).toBe("offline");
    expect(q.get("scope")!.split(" ")).toContain("https://www.googleapis.com/auth/webmasters.readonly");
    expect(q.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(q.get("state")).toBeTruthy();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(file, "utf8"));
    expect(stored).toEqual({
      type: "authorized_user",
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: expect.stringMatching(/^rt-/),
      token_uri: fake.tokenUrl,
      account: "owner@example.com",
    });
    expect(fake.tokenRequests.filter((t) => t.grant === "authorization_code" && t.ok).length).toBe(1);
  });

  test("headless: the redirected URL pasted on stdin signs in just the same; a wrong paste is refused and asked again", async () => {
    const file = newFile();
    const p = spawnCli(["auth", "login", "--client-secret", clientSecretFile, "--no-browser", "--json"], { env: env(file) });
    const [, url] = await p.waitForStderr(/\n {2}(http\S+)\n/);
    const redirect = await consent(url!);
    await p.type("not a url");
    await p.waitForStderr(/not the URL the browser was redirected to.*; try again/);
    await p.type(redirect);
    const r = await p.done();
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ signed_in: true, account: "owner@example.com", credentials_file: file, accounts: null });
    expect(readAuthorizedUser(file).refresh_token).toMatch(/^rt-/);
  });

  test("a redirect from another sign-in (state mismatch) is refused and nothing is stored", async () => {
    const file = newFile();
    const p = spawnCli(["auth", "login", "--client-secret", clientSecretFile, "--no-browser"], { env: env(file) });
    const [, url] = await p.waitForStderr(/\n {2}(http\S+)\n/);
    const forged = new URL(await consent(url!));
    forged.searchParams.set("state", "someone-else");
    await p.type(forged.toString());
    const r = await p.done();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("state does not match");
    expect(() => statSync(file)).toThrow();
  });

  test("the user denies access: a clear error", async () => {
    const file = newFile();
    const p = spawnCli(["auth", "login", "--client-secret", clientSecretFile, "--no-browser"], { env: env(file) });
    const [, url] = await p.waitForStderr(/\n {2}(http\S+)\n/);
    const redirect = new URL(new URL(url!).searchParams.get("redirect_uri")!);
    redirect.searchParams.set("error", "access_denied");
    expect((await fetch(redirect)).status).toBe(400);
    const r = await p.done();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Google did not grant access: access_denied");
  });

  test("no client secret file: says how to get one", async () => {
    const r = await cli(["auth", "login", "--client-secret", join(dir.dir, "missing.json"), "--no-browser"], { env: env(newFile()) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Desktop app");
    expect(r.stderr).not.toContain("    at ");
  });
});

describe("refreshing from the stored sign-in", () => {
  const source = (file: string) =>
    gscSource({
      baseUrl: fake.url,
      auth: authorizedUserToken({ file, tokenUrl: fake.tokenUrl }),
      limiter: createRateLimiter({ limit: 100_000 }),
      rowLimit: 25_000,
      maxRetries: 0,
      retryBaseMs: 5,
      timeoutMs: 5000,
    });
  const fetchDay = async (s: ReturnType<typeof source>, day = "2026-11-20") => {
    let rows = 0;
    for await (const page of s.pages("sc-domain:owned.example", day, "web", new AbortController().signal)) rows += page.length;
    return rows;
  };

  test("one refresh serves many requests; a token Search Console stops accepting is refreshed once", async () => {
    const { file } = await signedIn();
    fake.reset();
    const s = source(file);
    for (const day of ["2026-11-18", "2026-11-19", "2026-11-20"]) expect(await fetchDay(s, day)).toBe(100);
    expect(fake.tokenRequests.map((t) => t.grant)).toEqual(["refresh_token"]);
    fake.expireAccessTokens();
    expect(await fetchDay(s)).toBe(100);
    expect(fake.tokenRequests.map((t) => t.grant)).toEqual(["refresh_token", "refresh_token"]);
    expect(fake.requests.filter((r) => r.status === 401).length).toBe(1);
  });

  test("a revoked grant fails with a message telling the user to sign in again; a new login is picked up without a restart", async () => {
    const { file, refreshToken } = await signedIn();
    const auth = authorizedUserToken({ file, tokenUrl: fake.tokenUrl });
    fake.revokeRefreshToken(refreshToken);
    const err = await auth.token().catch((e) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toContain("invalid_grant");
    expect(err.message).toContain("bun run cli auth login");
    // The user signs in again (same file): the same provider, in the same process, works again.
    const again = await login(file, "loopback");
    expect(again.code).toBe(0);
    expect(await auth.token()).toMatch(/^user-token-/);
  });

  test("the original tool's credentials.json (google-auth-oauthlib's JSON, no type) is accepted", async () => {
    const { refreshToken } = await signedIn();
    const file = join(dir.dir, "original-credentials.json");
    writeFileSync(
      file,
      JSON.stringify({
        token: "ya29.stale",
        refresh_token: refreshToken,
        token_uri: fake.tokenUrl,
        client_id: "test-client.apps.googleusercontent.com",
        client_secret: "test-secret",
        scopes: ["https://www.googleapis.com/auth/webmasters"],
        universe_domain: "googleapis.com",
        account: "",
        expiry: "2025-07-21T10:11:12.123456Z",
      }),
    );
    expect(await fetchDay(source(file))).toBe(100);
  });

  test("no sign-in, or a broken file: a PermanentError saying what to do", async () => {
    const missing = await authorizedUserToken({ file: join(dir.dir, "nope.json") })
      .token()
      .catch((e) => e);
    expect(missing).toBeInstanceOf(PermanentError);
    expect(missing.message).toContain("not signed in");
    const bad = join(dir.dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ type: "authorized_user", client_id: "x" }));
    const broken = await authorizedUserToken({ file: bad })
      .token()
      .catch((e) => e);
    expect(broken.message).toMatch(/not a Google authorized-user credentials file \(check: client_secret, refresh_token\)/);
  });

  test("the file is replaced atomically with mode 0600 even over a wider one", () => {
    const file = join(dir.dir, "atomic", "c.json");
    writeAuthorizedUser(file, { client_id: "a", client_secret: "b", refresh_token: "c" });
    writeFileSync(file, "{}", { mode: 0o644 });
    writeAuthorizedUser(file, { client_id: "a", client_secret: "b", refresh_token: "d" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readAuthorizedUser(file).refresh_token).toBe("d");
  });
});

describe("auth status", () => {
  test("who is signed in and which properties are readable (table and --json)", async () => {
    const { file } = await signedIn();
    // No service at this URL: the properties alone answer.
    const r = await cli(["--url", "http://127.0.0.1:9", "auth", "status"], { env: env(file) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Signed in as owner@example.com");
    expect(r.stdout).toMatch(/https:\/\/blog\.example\/\s+siteFullUser/);
    expect(r.stdout).toMatch(/sc-domain:owned\.example\s+siteOwner/);
    const j = await cli(["--json", "--url", "http://127.0.0.1:9", "auth", "status"], { env: env(file) });
    const properties = [
      { site_url: "https://blog.example/", permission_level: "siteFullUser", registered_site_id: null },
      { site_url: "sc-domain:owned.example", permission_level: "siteOwner", registered_site_id: null },
    ];
    expect(JSON.parse(j.stdout)).toEqual({
      signed_in: true,
      account: "owner@example.com",
      credentials_file: file,
      file_mode: "0600",
      properties,
      accounts: [
        {
          account: "owner@example.com",
          kind: "user",
          credentials_file: file,
          file_mode: "0600",
          project: "test-client.apps.googleusercontent.com",
          properties,
          bound_sites: null,
          error: null,
        },
      ],
      unreadable_sites: null,
    });
  });

  test("not signed in, or revoked: exit 1 and what to do", async () => {
    const none = await cli(["auth", "status"], { env: env(join(dir.dir, "nobody.json")) });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("Not signed in to Google");
    const { file, refreshToken } = await signedIn();
    fake.revokeRefreshToken(refreshToken);
    const revoked = await cli(["auth", "status"], { env: env(file) });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toContain("revoked or has expired. Sign in again with: bun run cli auth login");
  });

  test("logout forgets the sign-in", async () => {
    const { file } = await signedIn();
    const r = await cli(["auth", "logout"], { env: env(file) });
    expect(r.code).toBe(0);
    expect(() => statSync(file)).toThrow();
  });
});

describe("several accounts", () => {
  test("another account signing in is added beside the first, the same one renews its file; status lists each; logout removes one", async () => {
    const file = newFile();
    expect((await login(file, "loopback")).code).toBe(0);
    const second = { email: "second@example.com", properties: [{ siteUrl: "sc-domain:second.example", permissionLevel: "siteOwner" }] };
    const owner = {
      email: "owner@example.com",
      properties: [
        { siteUrl: "sc-domain:owned.example", permissionLevel: "siteOwner" },
        { siteUrl: "https://blog.example/", permissionLevel: "siteFullUser" },
      ],
    };
    try {
      fake.signInAs(second);
      const added = await login(file, "loopback");
      expect(added.code).toBe(0);
      const secondFile = accountFileOf(file, "second@example.com");
      expect(added.stdout).toContain(`Signed in as second@example.com. Stored in ${secondFile}`);
      expect(readAuthorizedUser(file).account).toBe("owner@example.com");
      expect(statSync(secondFile).mode & 0o777).toBe(0o600);
      const firstToken = readAuthorizedUser(secondFile).refresh_token;
      // The same account again: its own file is renewed, nothing added.
      expect((await login(file, "loopback")).code).toBe(0);
      expect(readAuthorizedUser(secondFile).refresh_token).not.toBe(firstToken);
      expect(readdirSync(join(file, "..", "google-accounts"))).toEqual(["second@example.com.json"]);

      const s = await cli(["--json", "auth", "status"], { env: env(file) });
      expect(s.code).toBe(0);
      const status = JSON.parse(s.stdout);
      expect(
        status.accounts.map((a: { account: string; credentials_file: string; properties: { site_url: string }[] }) => [
          a.account,
          a.credentials_file,
          a.properties.map((p) => p.site_url),
        ]),
      ).toEqual([
        ["owner@example.com", file, ["https://blog.example/", "sc-domain:owned.example"]],
        ["second@example.com", secondFile, ["sc-domain:second.example"]],
      ]);
      const table = await cli(["auth", "status"], { env: env(file) });
      expect(table.stdout).toContain("Signed in as owner@example.com");
      expect(table.stdout).toContain("Signed in as second@example.com");

      const ambiguous = await cli(["auth", "logout"], { env: env(file) });
      expect(ambiguous.code).toBe(2);
      expect(ambiguous.stderr).toContain("Several Google accounts are signed in (owner@example.com, second@example.com)");
      const out = await cli(["auth", "remove", "second@example.com"], { env: env(file) });
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`Removed second@example.com (${secondFile})`);
      expect(() => statSync(secondFile)).toThrow();
      expect(readAuthorizedUser(file).account).toBe("owner@example.com");
    } finally {
      fake.signInAs(owner);
    }
  });
});
