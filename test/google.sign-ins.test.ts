// Google sign-ins shared by every host of one database (issue 20.3): host A has the sign-in's file, host B
// none; A copies the sign-in into the database (google_sign_ins, sealed with GSC_SIGN_IN_KEY) and B's sync
// worker reads the site with it. Two instances in this process, each with its own Db connection and its own
// data folder, on one database of the suite's engine (PostgreSQL: two machines; the whole-instance version of
// "two hosts" is test/multimachine.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { loadConfig } from "../src/config.ts";
import { gscProbeFromConfig } from "../src/diagnostics/gsc-probe.ts";
import { createGoogleAccounts } from "../src/google/accounts.ts";
import { seal, signInKey, unseal } from "../src/google/sealing.ts";
import { setLogLevel } from "../src/log.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { writeAuthorizedUser } from "../src/sync/gsc/user-auth.ts";
import { createTask, findJob } from "../src/sync/queries.ts";
import { sourceFromConfig } from "../src/sync/source.ts";
import { startWorker, type Worker } from "../src/sync/worker.ts";
import { tempDb } from "./helpers/db.ts";
import { stableNow } from "./helpers/day.ts";
import { type FakeAccount, isDetailRequest, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { waitFor } from "./helpers/sync.ts";

setLogLevel("silent");
setDefaultTimeout(120_000);

const A: FakeAccount = {
  email: "a@example.com",
  properties: [{ siteUrl: "sc-domain:shared-signin.example", permissionLevel: "siteOwner" }],
};
const KEY = Buffer.alloc(32, 7).toString("base64");
const OTHER_KEY = Buffer.alloc(32, 9).toString("base64");
const DAY = addDays(newestDataDay(await stableNow()), -20);

let t: ReturnType<typeof tempDb>;
let fake: FakeGsc;
let refreshToken: string;
const workers: Worker[] = [];

/** One host's configuration: its own data folder (sign-in files), the shared database, this key. */
function hostConfig(name: string, key: string | undefined) {
  const dir = join(t.dir, name);
  mkdirSync(dir, { recursive: true });
  return loadConfig([], {
    GSC_API_BASE_URL: fake.url,
    GSC_TOKEN_URL: fake.tokenUrl,
    GSC_CREDENTIALS_FILE: join(dir, "credentials.json"),
    GSC_CLIENT_SECRET_FILE: join(dir, "client_secret.json"),
    ...(key ? { GSC_SIGN_IN_KEY: key } : {}),
    GSC_QUOTA_PER_MINUTE: "100000",
    GSC_RETRY_BASE_MS: "1",
    GSC_MAX_RETRIES: "0",
  });
}

/** Host `name`'s sync worker (its own connection) running one daily_sync of DAY for the site; the finished job. */
async function syncOn(config: ReturnType<typeof hostConfig>, siteId: number) {
  const db = t.open();
  const w = startWorker({ db, source: sourceFromConfig(config, db), pollMs: 20, leaseMs: 5000, retryBaseMs: 50, batchSize: 50 });
  workers.push(w);
  const { id } = await createTask(t.db, {
    siteId,
    taskType: "daily_sync",
    startDate: DAY,
    endDate: DAY,
    params: { sync_mode: "overwrite" },
    runAt: new Date(),
    maxAttempts: 1,
  });
  return waitFor(`job ${id}`, async () => {
    const j = (await findJob(t.db, id))!;
    return j.status !== "pending" && j.status !== "running" ? j : null;
  });
}

beforeAll(() => {
  t = tempDb();
  fake = startFakeGsc({ checkAccess: true, rows: (_s, _d, type) => (type === "web" ? 3 : 0) });
  fake.registerOAuthClient();
  fake.signInAs(A);
  refreshToken = fake.grantRefreshToken();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  fake.stop();
  await t.cleanup();
});

describe("sealing", () => {
  test("with a key: AES-256-GCM, the secret not readable; another key or none is refused with a clear message; without a key: plain", () => {
    const key = signInKey(KEY);
    const sealed = seal('{"refresh_token":"rt-secret"}', key);
    expect(sealed).not.toContain("rt-secret");
    expect(unseal(sealed, key)).toBe('{"refresh_token":"rt-secret"}');
    // A fresh IV each time.
    expect(seal("x", key)).not.toBe(seal("x", key));
    expect(() => unseal(sealed, signInKey(OTHER_KEY))).toThrow(/not the key it was stored with/);
    expect(() => unseal(sealed, null)).toThrow(/GSC_SIGN_IN_KEY is not set/);
    expect(unseal(seal("y", null), key)).toBe("y");
    expect(() => signInKey("c2hvcnQ=")).toThrow(/32 bytes/);
    expect(() => hostConfig("bad-key", "c2hvcnQ=")).toThrow(/GSC_SIGN_IN_KEY/);
  });
});

describe("two hosts on one database", () => {
  test("host B, without the sign-in's file, syncs with the sign-in host A stored (sealed) in the database", async () => {
    const hostA = hostConfig("host-a", KEY);
    const hostB = hostConfig("host-b", KEY);
    writeAuthorizedUser(hostA.GSC_CREDENTIALS_FILE, {
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: refreshToken,
      token_uri: fake.tokenUrl,
      account: A.email,
    });
    const { sites } = t.db.t;
    const [site] = await t.db.tx((tx) =>
      tx.insert(sites).values({ domain: "sc-domain:shared-signin.example", name: "Shared" }).returning({ id: sites.id }),
    );

    // Before A registers its sign-in, B has none at all: Search Console is not used (demo source, no requests).
    expect(await syncOn(hostB, site!.id)).toMatchObject({ status: "completed" });
    expect(fake.requests.length).toBe(0);
    // B's test-gsc-connection probe says so too.
    const probeB = gscProbeFromConfig(hostB, t.open());
    expect(await probeB("sc-domain:shared-signin.example")).toMatchObject({ status: "demo", source: "demo" });

    // A registers (at start, on any accounts call, or a sync): the account, its properties, its sign-in sealed in the database.
    await createGoogleAccounts(t.open(), hostA).refresh();
    const stored = await t.db.q.select().from(t.db.t.googleSignIns);
    expect(stored.length).toBe(1);
    expect(stored[0]!.sealed.startsWith("aes256gcm:v1:")).toBe(true);
    expect(stored[0]!.sealed).not.toContain(refreshToken);
    expect(JSON.parse(unseal(stored[0]!.sealed, signInKey(KEY)))).toMatchObject({ refresh_token: refreshToken, account: A.email });

    // B syncs the site with A's account: every request carries a token issued for A's refresh token.
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    fake.requests.length = 0;
    expect(await syncOn(hostB, site!.id)).toMatchObject({ status: "completed" });
    const ours = fake.requests.filter((r) => r.site === "sc-domain:shared-signin.example");
    expect(ours.filter(isDetailRequest).length).toBe(1);
    expect(ours.every((r) => r.status === 200 && r.account === A.email)).toBe(true);
    const d = t.db.t.gscQueryDetail;
    expect((await t.db.q.select().from(d).where(eq(d.site_id, site!.id))).length).toBe(3);
    // B never wrote a file of its own.
    expect(() => readFileSync(hostB.GSC_CREDENTIALS_FILE)).toThrow();
    // B's probe now checks what its syncs use: A's stored sign-in against Search Console (was `demo`: it
    // looked at B's own files only).
    expect(await probeB("sc-domain:shared-signin.example")).toMatchObject({ status: "ok", source: "gsc", success: true });
  });

  test("a host with another key (or none) fails the sync saying why; removing the account removes its stored sign-in", async () => {
    const site = (await t.db.q.select({ id: t.db.t.sites.id }).from(t.db.t.sites))[0]!.id;
    for (const key of [OTHER_KEY, undefined]) {
      const job = await syncOn(hostConfig(`host-${key ? "other" : "none"}`, key), site);
      expect(job.status).toBe("failed");
      expect(job.error).toMatch(key ? /not the key it was stored with/ : /GSC_SIGN_IN_KEY is not set/);
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    }
    const hostA = hostConfig("host-a", KEY);
    const accounts = createGoogleAccounts(t.open(), hostA);
    const [account] = await accounts.register();
    await accounts.remove(account!.id);
    expect(await t.db.q.select().from(t.db.t.googleSignIns)).toEqual([]);
    rmSync(hostA.GSC_CREDENTIALS_FILE, { force: true });
  });
});
