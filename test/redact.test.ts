// Secrets never leave through text (issue 21): an upstream error that echoes the token is redacted before
// it is stored in a job's error (readable with a read key), answered by diagnostics, or logged.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { gscProbeFromConfig } from "../src/diagnostics/gsc-probe.ts";
import { redact, registerSecret } from "../src/redact.ts";
import { tempDb } from "./helpers/db.ts";
import { startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

const TOKEN = "ya29.a0AfB_byC-secret-access-token-0123456789";
const ECHO = (auth: string) => ({
  error: { code: 403, message: `The caller does not have permission (request had Authorization: ${auth}; access_token=${TOKEN})` },
});

describe("redact()", () => {
  const cases: [string, string, string][] = [
    ["Google access token", `token ${TOKEN} expired`, "token [redacted] expired"],
    ["Google refresh token", "refresh 1//0gAbCdEfGhIjKlMnOpQrStUvWxYz-123 failed", "refresh [redacted] failed"],
    ["Bearer header", "Authorization: Bearer abc.def-ghi~jkl", "Authorization: Bearer [redacted]"],
    ["JSON field", '{"access_token":"s3cr3t-value","expires_in":3599}', '{"access_token":"[redacted]","expires_in":3599}'],
    ["form field", "client_secret=GOCSPX-abcdef&grant_type=refresh_token", "client_secret=[redacted]&grant_type=refresh_token"],
    ["sitesync key (prefix kept)", "key ssk_0123456789ab_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", "key ssk_0123456789ab_[redacted]"],
    ["PEM key", "x -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- y", "x [redacted] y"],
    ["nothing secret", "Search Console answered 500 (backend error)", "Search Console answered 500 (backend error)"],
  ];
  for (const [name, input, output] of cases) test(name, () => expect(redact(input)).toBe(output));

  test("a registered secret of any shape is blanked wherever it appears", () => {
    registerSecret("plain-looking-static-token-42");
    expect(redact("upstream said: plain-looking-static-token-42 is invalid")).toBe("upstream said: [redacted] is invalid");
    registerSecret("short");
    expect(redact("a short word")).toBe("a short word");
  });
});

describe("upstream text that echoes the token", () => {
  let fake: FakeGsc;
  let s: RunningServer;
  let t: ReturnType<typeof tempDb>;
  beforeAll(async () => {
    fake = startFakeGsc();
    t = tempDb();
    s = await startServer({
      workers: 1,
      syncWorkers: 1,
      env: {
        GSC_ACCESS_TOKEN: TOKEN,
        GSC_API_BASE_URL: fake.url,
        GSC_MAX_RETRIES: "0",
        SYNC_SCHEDULER: "false",
        SYNC_POLL_MS: "50",
        SYNC_MAX_ATTEMPTS: "1",
        LOG_LEVEL: "info",
      },
    });
  });
  afterAll(async () => {
    await s?.cleanup();
    fake.stop();
    await t.cleanup();
  });

  test("diagnostics answer it redacted", async () => {
    fake.inject({ status: 403, body: ECHO(`Bearer ${TOKEN}`), times: 5 });
    const { sites } = t.db.t;
    const [site] = await t.db.tx((tx) => tx.insert(sites).values({ domain: "sc-domain:redact.example", name: "R" }).returning());
    const base = { GSC_API_BASE_URL: fake.url, GSC_CREDENTIALS_FILE: join(t.dir, "none.json"), GSC_ACCESS_TOKEN: TOKEN };
    const app = createApp(t.db, { gscProbe: gscProbeFromConfig(loadConfig([], base)) });
    const text = await (await app.request(`/api/v1/diagnostics/test-gsc-connection/${site!.id}`)).text();
    expect(text).toContain("[redacted]");
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain("secret-access-token");
  });

  test("a failed job's error (readable with a read key) and the service's log carry no token", async () => {
    fake.reset();
    fake.inject({ status: 403, body: ECHO(`Bearer ${TOKEN}`), times: 50 });
    const created = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:redact.example", name: "R" });
    expect(created.status).toBe(201);
    const trig = await request(s.url, "POST", `/api/v1/sync/trigger/${created.body.id}`, { days: 1 });
    expect(trig.status).toBe(202);
    const jobId = trig.body.job_id;
    let job: { status: string; error: string | null } = { status: "pending", error: null };
    for (let i = 0; i < 200 && !["failed", "completed"].includes(job.status); i++) {
      await Bun.sleep(50);
      job = (await request(s.url, "GET", `/api/v1/sync/job/${jobId}`)).body;
    }
    expect(job.status).toBe("failed");
    expect(job.error).toContain("[redacted]");
    expect(job.error).not.toContain(TOKEN);
    expect(s.output()).not.toContain(TOKEN);
  });
});
