import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHmac } from "node:crypto";
import { SMTPServer } from "smtp-server";
import { errorKinds } from "../src/alerts/detect.ts";
import type { Senders } from "../src/alerts/deliver.ts";
import { createSenders } from "../src/alerts/deliver.ts";
import { retryDelayMs, runAlertPass } from "../src/alerts/loop.ts";
import { createApp } from "../src/app.ts";
import { addDays } from "../src/sync/dates.ts";
import { cli } from "./helpers/cli.ts";
import { tempDb } from "./helpers/db.ts";
import { startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { withDb } from "./helpers/observe.ts";
import { addSite, storeRows } from "./helpers/rows.ts";
import { freePort, request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(90_000);

// Alerts (issue 20): raised once per event, delivered to a local HTTP receiver (signed with
// HMAC-SHA256, retried with backoff, logged) and a local SMTP sink; and end to end, a sync that fails
// in the real service posts a signed webhook within a minute.

type Received = { body: string; headers: Headers };

/** A local webhook receiver: answers with the next status of `statuses` (then 200), records every request. */
function receiver(statuses: number[] = []) {
  const got: Received[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      got.push({ body: await req.text(), headers: req.headers });
      return new Response(null, { status: statuses.shift() ?? 200 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}/hook`, got, stop: () => server.stop(true) };
}

/** A local SMTP sink (smtp-server): no TLS, no auth, keeps every message. */
async function smtpSink() {
  const mails: { to: string[]; text: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, done) {
      let text = "";
      stream.on("data", (c: Buffer) => (text += c.toString("utf8")));
      stream.on("end", () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), text });
        done();
      });
    },
  });
  const port = freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { url: `smtp://127.0.0.1:${port}`, mails, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

const verify = (secret: string, r: Received) =>
  r.headers.get("x-sitesync-signature") === `sha256=${createHmac("sha256", secret).update(r.body).digest("hex")}`;

describe("alerts in one process (the API, the checks, the senders)", () => {
  let t: ReturnType<typeof tempDb>;
  let app: ReturnType<typeof createApp>;
  let siteId = 0;
  let smtp: Awaited<ReturnType<typeof smtpSink>>;
  let senders: Senders;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const pass = (o: { retryBaseMs?: number; checkDrops?: boolean } = {}) =>
    runAlertPass(t.db, {
      pollMs: 10,
      retryBaseMs: o.retryBaseMs ?? 20,
      maxAttempts: 3,
      timeoutMs: 5000,
      smtpUrl: smtp.url,
      from: "sitesync <alerts@test.invalid>",
      since: "2000-01-01T00:00:00.000Z",
      checkDrops: o.checkDrops ?? false,
      senders,
    });
  /** Marks a new task of the site failed with this error. */
  const failTask = (error: string) =>
    t.db.tx(async (tx) => {
      const st = t.db.t.syncTasks;
      const [row] = await tx
        .insert(st)
        .values({
          site_id: siteId,
          task_type: "daily_sync",
          status: "failed",
          start_date: "2026-06-01",
          end_date: "2026-06-07",
          params: {},
          error,
          completed_at: new Date().toISOString(),
        } as never)
        .returning({ id: st.id });
      return Number(row!.id);
    });

  beforeAll(async () => {
    t = tempDb();
    app = createApp(t.db);
    smtp = await smtpSink();
    senders = createSenders({ timeoutMs: 5000, smtpUrl: smtp.url, from: "sitesync <alerts@test.invalid>" });
    siteId = await addSite(t.db, "sc-domain:alerts.example", "Alerts");
  });
  afterAll(async () => {
    await smtp?.stop();
    t?.cleanup();
  });

  test("a failed sync: one signed webhook and one e-mail, logged as delivered; raising it again sends nothing", async () => {
    const hook = receiver();
    try {
      const ch = await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: hook.url, events: ["sync_failed"] });
      expect(ch.status).toBe(201);
      expect(ch.body.secret).toMatch(/^[0-9a-f]{48}$/);
      const mail = await call("POST", "/api/v1/alerts/channels", { kind: "email", target: "seo@example.com", site_id: siteId });
      expect(mail.status).toBe(201);
      // The list never shows a secret.
      const list = await call("GET", "/api/v1/alerts/channels");
      expect(list.body.map((c: { has_secret: boolean; secret?: string }) => [c.has_secret, c.secret])).toEqual([
        [true, undefined],
        [false, undefined],
      ]);
      const job = await failTask("Search Console refused access to sc-domain:alerts.example (403 forbidden)");
      expect(await pass()).toEqual({ raised: 1, sent: 2, failed: 0 });
      expect(hook.got).toHaveLength(1);
      expect(verify(ch.body.secret, hook.got[0]!)).toBe(true);
      expect(verify("another secret", hook.got[0]!)).toBe(false);
      expect(JSON.parse(hook.got[0]!.body)).toMatchObject({ kind: "sync_failed", site_id: siteId, job_id: job, site_name: "Alerts" });
      expect(hook.got[0]!.headers.get("x-sitesync-event")).toBe("sync_failed");
      expect(smtp.mails).toHaveLength(1);
      expect(smtp.mails[0]!.to).toEqual(["seo@example.com"]);
      expect(smtp.mails[0]!.text).toContain(`Subject: [sitesync] Sync failed for Alerts: job ${job}`);
      // Again: already raised, nothing new.
      expect(await pass()).toEqual({ raised: 0, sent: 0, failed: 0 });
      const log = await call("GET", "/api/v1/alerts/deliveries");
      expect(log.body.map((d: { status: string; kind: string; attempts: number }) => [d.kind, d.status, d.attempts])).toEqual([
        ["sync_failed", "delivered", 1],
        ["sync_failed", "delivered", 1],
      ]);
      for (const c of [...list.body]) await call("DELETE", `/api/v1/alerts/channels/${c.id}`);
    } finally {
      hook.stop();
    }
  });

  test("a refused delivery is retried with backoff until it goes through; the log keeps each attempt's status", async () => {
    const hook = receiver([500, 503]);
    try {
      const ch = await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: hook.url, secret: "s".repeat(32) });
      await failTask("Search Console kept failing (500)");
      const first = await pass({ retryBaseMs: 200 });
      expect(first).toMatchObject({ raised: 1, sent: 0, failed: 1 });
      let log = (await call("GET", "/api/v1/alerts/deliveries?limit=1")).body[0];
      expect(log).toMatchObject({ status: "pending", attempts: 1, last_status: 500, last_error: "HTTP 500" });
      // Not due yet: the next pass sends nothing.
      expect((await pass({ retryBaseMs: 200 })).failed + (await pass({ retryBaseMs: 200 })).sent).toBeLessThanOrEqual(1);
      const deadline = Date.now() + 20_000;
      while ((log = (await call("GET", "/api/v1/alerts/deliveries?limit=1")).body[0]).status === "pending") {
        if (Date.now() > deadline) throw new Error("not delivered");
        await pass({ retryBaseMs: 200 });
        await Bun.sleep(50);
      }
      expect(log).toMatchObject({ status: "delivered", attempts: 3, last_status: 200 });
      expect(hook.got).toHaveLength(3);
      // Every attempt carried the same signed body.
      expect(new Set(hook.got.map((g) => g.body)).size).toBe(1);
      expect(hook.got.every((g) => verify("s".repeat(32), g))).toBe(true);
      await call("DELETE", `/api/v1/alerts/channels/${ch.body.id}`);
    } finally {
      hook.stop();
    }
  });

  test("backoff doubles per failed attempt, capped at an hour", () => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(1000, n))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelayMs(1000, 40)).toBe(3_600_000);
  });

  test("a delivery that keeps failing stops after ALERT_MAX_ATTEMPTS, marked failed", async () => {
    const ch = await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: "http://127.0.0.1:9/closed" });
    await failTask("boom");
    for (let i = 0; i < 3; i++) {
      await pass({ retryBaseMs: 1 });
      await Bun.sleep(5);
    }
    const log = (await call("GET", "/api/v1/alerts/deliveries?limit=1")).body[0];
    expect(log).toMatchObject({ status: "failed", attempts: 3, last_status: null });
    await call("DELETE", `/api/v1/alerts/channels/${ch.body.id}`);
  });

  test("sign-in and quota errors raise their own alerts", async () => {
    expect(errorKinds("Search Console refused access to x (401 Request had invalid authentication credentials)")).toEqual(["auth_expired"]);
    expect(errorKinds("token refresh failed: invalid_grant (Token has been expired or revoked.)")).toEqual(["auth_expired"]);
    expect(errorKinds("Search Console kept failing for x (429 Quota exceeded for quota metric, after 6 attempts)")).toEqual([
      "quota_exhausted",
    ]);
    expect(errorKinds("Search Console refused access to x (403 User does not have sufficient permission)")).toEqual([]);
    const hook = receiver();
    try {
      await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: hook.url, events: ["auth_expired", "quota_exhausted"] });
      await failTask("token refresh failed: invalid_grant (Token has been expired or revoked.)");
      await failTask("Search Console kept failing for x (429 rateLimitExceeded, after 6 attempts)");
      await pass();
      expect(hook.got.map((g) => JSON.parse(g.body).kind).sort()).toEqual(["auth_expired", "quota_exhausted"]);
    } finally {
      hook.stop();
    }
  });

  test("per-site rules: clicks down more than the set share week over week, for the site and for a page; once a week", async () => {
    const other = await addSite(t.db, "sc-domain:drops.example", "Drops");
    const end = "2026-06-28";
    // The 7 days before: /a 20 clicks a day, /b 10; the last 7 days: /a 6, /b 10 (site: 210 -> 112, -46.7%; /a -70%; /b 0%).
    for (let i = 0; i < 14; i++) {
      const day = addDays(end, -i);
      const recent = i < 7;
      await storeRows(t.db, other, day, "web", [
        { page: "https://drops.example/a", query: "a", device: "DESKTOP", clicks: recent ? 6 : 20, impressions: 100, ctr: 0, position: 3 },
        { page: "https://drops.example/b", query: "b", device: "DESKTOP", clicks: 10, impressions: 100, ctr: 0, position: 3 },
      ]);
    }
    expect((await call("POST", "/api/v1/alerts/rules", { site_id: other, scope: "site", drop_share: 0.5 })).status).toBe(201);
    expect((await call("POST", "/api/v1/alerts/rules", { site_id: other, scope: "page", drop_share: 0.3, min_clicks: 50 })).status).toBe(
      201,
    );
    const hook = receiver();
    try {
      await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: hook.url, events: ["clicks_drop"], site_id: other });
      await pass({ checkDrops: true });
      // The site fell 46.7%: under its 50% rule; page /a fell 70%: over its 30% rule.
      expect(hook.got.map((g) => JSON.parse(g.body))).toEqual([
        expect.objectContaining({
          kind: "clicks_drop",
          site_id: other,
          scope: "page",
          page: "https://drops.example/a",
          clicks_before: 140,
          clicks_after: 42,
          drop_pct: 70,
        }),
      ]);
      // A stricter site rule (replaces the first): now the site's drop alerts too.
      await call("POST", "/api/v1/alerts/rules", { site_id: other, scope: "site", drop_share: 0.4 });
      await pass({ checkDrops: true });
      expect(hook.got.map((g) => [JSON.parse(g.body).scope, JSON.parse(g.body).drop_pct])).toEqual([
        ["page", 70],
        ["site", 46.7],
      ]);
      // The same week again: nothing new.
      expect((await pass({ checkDrops: true })).raised).toBe(0);
      expect((await call("GET", `/api/v1/alerts/rules?site_id=${other}`)).body).toHaveLength(2);
    } finally {
      hook.stop();
    }
  });

  test("bad channels and rules are refused", async () => {
    expect((await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: "ftp://x" })).status).toBe(400);
    expect((await call("POST", "/api/v1/alerts/channels", { kind: "email", target: "not-an-address" })).status).toBe(400);
    expect((await call("POST", "/api/v1/alerts/channels", { kind: "webhook", target: "http://x.example/", events: ["nope"] })).status).toBe(
      400,
    );
    expect((await call("POST", "/api/v1/alerts/rules", { site_id: siteId, drop_share: 1.5 })).status).toBe(400);
    expect((await call("POST", "/api/v1/alerts/rules", { site_id: 99999, drop_share: 0.5 })).status).toBe(404);
    expect((await call("DELETE", "/api/v1/alerts/channels/99999")).status).toBe(404);
  });
});

describe("end to end: the service", () => {
  let s: RunningServer;
  let fake: FakeGsc;
  let hook: ReturnType<typeof receiver>;

  beforeAll(async () => {
    fake = startFakeGsc();
    hook = receiver();
    s = await startServer({
      workers: 1,
      syncWorkers: 1,
      env: {
        SYNC_SOURCE: "gsc",
        GSC_ACCESS_TOKEN: "test-token",
        GSC_API_BASE_URL: fake.url,
        GSC_MAX_RETRIES: "0",
        SYNC_MAX_ATTEMPTS: "1",
        SYNC_POLL_MS: "50",
        SYNC_SCHEDULER: "false",
      },
    });
  });
  afterAll(async () => {
    await s?.cleanup();
    fake?.stop?.();
    hook?.stop();
  });

  test("a failing sync posts a signed webhook within a minute", async () => {
    const site = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:refused.example", name: "Refused" });
    fake.forbid("sc-domain:refused.example");
    // Configured with the CLI: the secret is shown once.
    const added = await cli(["alerts", "add-webhook", hook.url, "--events", "sync_failed"], { env: { SITESYNC_URL: s.url } });
    expect({ code: added.code, stderr: added.stderr }).toEqual({ code: 0, stderr: "" });
    const secret = /Signing secret .*: ([0-9a-f]{48})$/m.exec(added.stdout)![1]!;
    const ch = { body: { secret } };
    const rule = await cli(["--json", "alerts", "rule", "refused.example", "--drop", "0.3", "--scope", "page"], {
      env: { SITESYNC_URL: s.url },
    });
    expect(JSON.parse(rule.stdout)).toMatchObject({ site_id: site.body.id, scope: "page", drop_share: 0.3, min_clicks: 50 });
    const listed = await cli(["--json", "alerts", "list"], { env: { SITESYNC_URL: s.url } });
    expect(JSON.parse(listed.stdout)).toMatchObject({
      channels: [{ kind: "webhook", target: hook.url, events: ["sync_failed"], has_secret: true }],
    });
    const trigger = await request(s.url, "POST", `/api/v1/sync/trigger/${site.body.id}?days=2`);
    expect(trigger.status).toBe(202);
    const started = Date.now();
    while (hook.got.length === 0) {
      if (Date.now() - started > 60_000) throw new Error("no webhook within a minute");
      await Bun.sleep(100);
    }
    const job = await request(s.url, "GET", `/api/v1/sync/job/${trigger.body.job_id}`);
    expect(job.body.status).toBe("failed");
    expect(verify(ch.body.secret, hook.got[0]!)).toBe(true);
    expect(JSON.parse(hook.got[0]!.body)).toMatchObject({ kind: "sync_failed", site_id: site.body.id, job_id: trigger.body.job_id });
    const log = await withDb(s.dbPath, async (db) => db.q.select().from(db.t.alertDeliveries));
    expect(log.map((d) => d.status)).toEqual(["delivered"]);
    const shown = await cli(["--json", "alerts", "deliveries"], { env: { SITESYNC_URL: s.url } });
    expect(JSON.parse(shown.stdout)).toEqual([
      expect.objectContaining({ kind: "sync_failed", status: "delivered", attempts: 1, last_status: 200 }),
    ]);
  });
});
