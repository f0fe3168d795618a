import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApiKey, revokeApiKey } from "../src/auth/queries.ts";
import { requestFrom, runScript } from "./helpers/client.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { makeServiceAccount, startFakeGsc } from "./helpers/fake-gsc.ts";
import { withDb } from "./helpers/observe.ts";
import { request, startServer } from "./helpers/server.ts";

// Rate limits shared by all workers, idle connections closed, and no secret in any log line, error,
// diagnostics answer or the OpenAPI document — against the real service.

const root = join(import.meta.dir, "..");
const REMOTE = "127.0.0.2";
const LOCAL_ONLY = { LOCAL_ADDRESSES: "127.0.0.1,::1" };

async function cliKey(dbPath: string, name: string, scope: string) {
  const r = await runScript(root, ["src/auth/cli.ts", "create", "--name", name, "--scope", scope], { DATABASE_URL: dbPath });
  expect(r.code).toBe(0);
  return { key: r.stdout.split("\n").find((l) => l.startsWith("ssk_"))!, stderr: r.stderr };
}

/** A key written straight into the service's database, as the CLI writes it (a CLI process is ~0.3 s of CPU). */
const directKey = (dbPath: string, name: string, scope: "read" | "admin") =>
  withDb(dbPath, async (db) => (await createApiKey(db, { name, scope })).key);

/** Waits until the current one-minute window has at least `seconds` left, so a burst stays inside it. */
async function awayFromWindowEnd(seconds: number) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < seconds * 1000) await Bun.sleep(left + 50);
}

describe("rate limit", () => {
  // Concurrent with the idle-client test below (its own 1-worker server): that one mostly waits out Bun's fixed
  // ~10-12 s bound, this one waits for the minute's window and then loads its 4 workers.
  test.concurrent("per key and per IP, over 4 workers: exactly the limit per minute in total, then 429 with Retry-After", async () => {
    const s = await startServer({ workers: 4, env: { ...LOCAL_ONLY, RATE_LIMIT_PER_MINUTE: "40", RATE_LIMIT_IP_PER_MINUTE: "10" } });
    try {
      const key = await directKey(s.dbPath, "limited", "read");
      const other = await directKey(s.dbPath, "other", "read");
      await awayFromWindowEnd(20);
      // Fresh connections (spread over the 4 workers by the kernel), 10 at a time.
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let round = 0; round < 12; round++) {
        const rs = await Promise.all(
          Array.from({ length: 10 }, () =>
            requestFrom(REMOTE, s.url, "GET", "/api/v1/sites", undefined, { authorization: `Bearer ${key}` }),
          ),
        );
        for (const r of rs) {
          statuses.push(r.status);
          if (r.status === 429) {
            retryAfter = r.headers["retry-after"] as string;
            expect(r.body.error.code).toBe("rate_limited");
          }
        }
      }
      expect(statuses.filter((x) => x === 200)).toHaveLength(40);
      expect(statuses.filter((x) => x === 429)).toHaveLength(80);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
      // Another key has its own budget.
      expect((await requestFrom(REMOTE, s.url, "GET", "/api/v1/sites", undefined, { authorization: `Bearer ${other}` })).status).toBe(200);
      // Calls without a valid key count per address: 10 answers (401), then 429.
      const bad = [];
      for (let i = 0; i < 15; i++)
        bad.push((await requestFrom(REMOTE, s.url, "GET", "/api/v1/sites", undefined, { authorization: "Bearer nope" })).status);
      expect(bad).toEqual([...Array(10).fill(401), ...Array(5).fill(429)]);
      // Loopback without a key is not limited by the per-address budget (protected mode's trusted client).
      const local = await Promise.all(Array.from({ length: 20 }, () => request(s.url, "GET", "/health")));
      expect(local.every((r) => r.status === 200)).toBe(true);
    } finally {
      await s.cleanup();
    }
    // A hang guard only: a 4-worker start (up to its 20 s bound at load ~20), up to 20 s for the window, the burst.
  }, 120_000);
});

/** Opens a raw connection, sends `first`, then stays silent; resolves with ms until the server closed it (-1: not within `waitMs`). */
function silentClient(port: number, first: string, waitMs: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(-1), waitMs);
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(sock) {
          if (first) sock.write(first);
        },
        data() {},
        close() {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        },
        error() {},
      },
    });
  });
}

// Engine-neutral (Bun's and the HTTP layer's bounds on idle sockets, whatever the engine behind them): run once, with SQLite.
test.concurrent.skipIf(testEngine === "pg")(
  "idle and slow clients are disconnected: between requests after HTTP_IDLE_TIMEOUT_S, mid-request by Bun's own bound",
  async () => {
    const s = await startServer({ workers: 1, env: { HTTP_IDLE_TIMEOUT_S: "1" } });
    try {
      const [keepAlive, silent, slowloris] = await Promise.all([
        silentClient(s.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 30_000),
        silentClient(s.port, "", 30_000),
        // Half a request, then silence.
        silentClient(s.port, "GET /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\n", 30_000),
      ]);
      // Bun checks timeouts every 4 s: an idle keep-alive connection goes within ~1-5 s, one that never
      // finishes its request head within ~10-12 s (uWebSockets' fixed bound), whatever HTTP_IDLE_TIMEOUT_S says.
      expect(keepAlive).toBeGreaterThan(900);
      expect(keepAlive).toBeLessThan(8000);
      for (const ms of [silent, slowloris]) {
        expect(ms).toBeGreaterThan(900);
        expect(ms).toBeLessThan(20_000);
      }
    } finally {
      await s.cleanup();
    }
  },
);

describe("no secrets in logs, errors, diagnostics or the OpenAPI document", () => {
  // Everything a client could read back, collected with the server's own output.
  async function exercise(base: string, admin: string, read: string) {
    const seen: string[] = [];
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const calls: [string, string, unknown?, Record<string, string>?][] = [
      ["GET", "/openapi.json"],
      ["GET", "/health"],
      ["GET", "/api/v1/diagnostics/connections", undefined, as(admin)],
      ["GET", "/api/v1/diagnostics/check-locks", undefined, as(admin)],
      ["GET", "/api/v1/diagnostics/test-db-connection", undefined, as(admin)],
      ["GET", "/api/v1/keys", undefined, as(admin)],
      ["GET", "/api/v1/audit", undefined, as(admin)],
      ["POST", "/api/v1/sites", { domain: "sc-domain:secret.example", name: "S" }, as(read)],
      ["GET", "/api/v1/sites", undefined, { authorization: `Bearer ${read.slice(0, -3)}xyz` }],
      ["GET", "/api/v1/sites", undefined, { "x-api-key": `${admin}x` }],
      ["GET", "/api/v1/sites", undefined, { authorization: `Token ${admin}` }],
      ["POST", "/api/v1/keys", { name: "n", scope: "read", key: admin }, as(admin)],
    ];
    for (const [m, p, b, h] of calls) seen.push((await requestFrom(REMOTE, base, m, p, b, h)).text);
    return seen.join("\n");
  }

  /**
   * `viaCli`: the keys are made, revoked and listed by the keys CLI and its output is searched too (it never sees the
   * service's settings, so once is enough); else written straight into the database.
   */
  async function run(
    env: Record<string, string>,
    secrets: string[],
    trigger: (base: string, admin: string) => Promise<void>,
    viaCli = false,
  ) {
    // One HTTP worker: every process kind (supervisor, HTTP worker, sync worker) logs; a second HTTP worker logs the same.
    const s = await startServer({
      workers: 1,
      syncWorkers: 1,
      env: { ...LOCAL_ONLY, REQUEST_LOG: "true", LOG_LEVEL: "debug", SYNC_POLL_MS: "50", SYNC_SCHEDULER: "false", ...env },
    });
    let cliErr = "";
    let answers = "";
    let keys: string[] = [];
    try {
      const admin = viaCli ? await cliKey(s.dbPath, "admin", "admin") : { key: await directKey(s.dbPath, "admin", "admin"), stderr: "" };
      const read = viaCli ? await cliKey(s.dbPath, "reader", "read") : { key: await directKey(s.dbPath, "reader", "read"), stderr: "" };
      keys = [admin.key, read.key];
      cliErr = admin.stderr + read.stderr;
      answers = await exercise(s.url, admin.key, read.key);
      await trigger(s.url, admin.key);
      if (viaCli) {
        const revoked = await runScript(root, ["src/auth/cli.ts", "revoke", read.key.slice(0, 16)], { DATABASE_URL: s.dbPath });
        const list = await runScript(root, ["src/auth/cli.ts", "list"], { DATABASE_URL: s.dbPath });
        cliErr += revoked.stdout + revoked.stderr + list.stdout + list.stderr;
      } else await withDb(s.dbPath, (db) => revokeApiKey(db, read.key.slice(0, 16)));
      answers += (await requestFrom(REMOTE, s.url, "GET", "/api/v1/sites", undefined, { authorization: `Bearer ${read.key}` })).text;
    } finally {
      await s.stop();
    }
    const everything = [s.output(), cliErr, answers].join("\n");
    expect(s.output()).toContain('"msg":"request"'); // the request log was on
    if (viaCli) expect(cliErr).toMatch(/revoked key \d+ 'reader'/);
    for (const secret of [...secrets, ...keys]) expect(everything).not.toContain(secret);
    await s.cleanup();
    return everything;
  }

  test("GSC_ACCESS_TOKEN and API keys", async () => {
    const fake = startFakeGsc({ tokens: ["other-token"] });
    const token = "ya29.SECRET-access-token-0123456789";
    try {
      const out = await run(
        { SYNC_SOURCE: "gsc", GSC_ACCESS_TOKEN: token, GSC_API_BASE_URL: fake.url, GSC_MAX_RETRIES: "0" },
        [token],
        async (base, admin) => {
          const site = await requestFrom(
            REMOTE,
            base,
            "POST",
            "/api/v1/sites",
            { domain: "sc-domain:tok.example", name: "T" },
            { authorization: `Bearer ${admin}` },
          );
          const job = await requestFrom(REMOTE, base, "POST", `/api/v1/sync/trigger/${site.body.id}?days=1`, undefined, {
            authorization: `Bearer ${admin}`,
          });
          expect(job.status).toBe(202);
          // The fake refuses the token: the task fails and its error is logged and stored.
          for (let i = 0; i < 100; i++) {
            const j = await requestFrom(REMOTE, base, "GET", job.body.status_url, undefined, { authorization: `Bearer ${admin}` });
            if (j.body.status === "failed") return;
            await Bun.sleep(100);
          }
          throw new Error("the sync did not fail");
        },
        true,
      );
      expect(out).toContain("401");
    } finally {
      fake.stop();
    }
  });

  test("a service-account key file", async () => {
    const fake = startFakeGsc();
    const dir = tempDir();
    try {
      const sa = makeServiceAccount(dir.dir, { tokenUri: fake.tokenUrl });
      const file = JSON.parse(readFileSync(sa.keyFile, "utf8")) as { private_key: string; private_key_id?: string };
      // Every line of the PEM body is a secret.
      const pemLines = file.private_key.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
      fake.injectToken({ status: 400, body: { error: "invalid_grant", error_description: "refused" }, times: 100 });
      await run(
        { SYNC_SOURCE: "gsc", GSC_SERVICE_ACCOUNT_FILE: sa.keyFile, GSC_API_BASE_URL: fake.url, GSC_MAX_RETRIES: "0" },
        pemLines,
        async (base, admin) => {
          const site = await requestFrom(
            REMOTE,
            base,
            "POST",
            "/api/v1/sites",
            { domain: "sc-domain:sa.example", name: "SA" },
            { authorization: `Bearer ${admin}` },
          );
          const job = await requestFrom(REMOTE, base, "POST", `/api/v1/sync/trigger/${site.body.id}?days=1`, undefined, {
            authorization: `Bearer ${admin}`,
          });
          for (let i = 0; i < 100; i++) {
            const j = await requestFrom(REMOTE, base, "GET", job.body.status_url, undefined, { authorization: `Bearer ${admin}` });
            if (j.body.status === "failed" || (j.body.attempts ?? 0) >= 1) return;
            await Bun.sleep(100);
          }
          throw new Error("the sync never ran");
        },
      );
    } finally {
      fake.stop();
      dir.cleanup();
    }
  });

  test("a Google sign-in (authorized-user credentials: refresh token, client secret)", async () => {
    const fake = startFakeGsc();
    const dir = tempDir();
    const refresh = "1//SECRET-refresh-token-0123456789";
    const clientSecret = "GOCSPX-SECRET-client-secret-0123";
    try {
      const file = join(dir.dir, "credentials.json");
      writeFileSync(
        file,
        JSON.stringify({
          type: "authorized_user",
          client_id: "cid.apps.googleusercontent.com",
          client_secret: clientSecret,
          refresh_token: refresh,
          token_uri: fake.tokenUrl,
        }),
      );
      fake.injectToken({
        status: 400,
        body: { error: "invalid_grant", error_description: "Token has been expired or revoked." },
        times: 100,
      });
      await run(
        { SYNC_SOURCE: "gsc", GSC_CREDENTIALS_FILE: file, GSC_TOKEN_URL: fake.tokenUrl, GSC_API_BASE_URL: fake.url, GSC_MAX_RETRIES: "0" },
        [refresh, clientSecret],
        async (base, admin) => {
          const site = await requestFrom(
            REMOTE,
            base,
            "POST",
            "/api/v1/sites",
            { domain: "sc-domain:oauth.example", name: "O" },
            { authorization: `Bearer ${admin}` },
          );
          const job = await requestFrom(REMOTE, base, "POST", `/api/v1/sync/trigger/${site.body.id}?days=1`, undefined, {
            authorization: `Bearer ${admin}`,
          });
          for (let i = 0; i < 100; i++) {
            const j = await requestFrom(REMOTE, base, "GET", job.body.status_url, undefined, { authorization: `Bearer ${admin}` });
            if (j.body.status === "failed") return;
            await Bun.sleep(100);
          }
          throw new Error("the sync did not fail");
        },
      );
    } finally {
      fake.stop();
      dir.cleanup();
    }
  });
});
