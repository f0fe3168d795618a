import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { setLogLevel } from "../src/log.ts";
import { staticToken } from "../src/sync/gsc/auth.ts";
import { createGscClient, GscPermanentError } from "../src/sync/gsc/client.ts";
import type { QuotaRequest, RateLimiter } from "../src/sync/gsc/limiter.ts";
import {
  createDbQuota,
  pacificDayStart,
  QuotaExhausted,
  quotaChecks,
  readQuota,
  takeQuota,
  type QuotaLimits,
} from "../src/sync/gsc/quota.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { quotaRefusal, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

// Search Console's quota counted in the database: every process (and, on PostgreSQL, every host) draws
// from one budget per limit and window.

setDefaultTimeout(120_000);
setLogLevel("error");

const big: QuotaLimits = {
  sitePerMinute: 1000,
  projectPerMinute: 1000,
  projectPerDay: 1000,
  inspectPerMinute: 1000,
  inspectPerDay: 1000,
  otherPerMinute: 1000,
};
// The middle of a minute (no window boundary is crossed while a test runs on this clock).
const T0 = Date.UTC(2026, 11, 5, 12, 0, 30);

describe("Google's quota day", () => {
  test("starts at midnight in Los Angeles: -08:00 in winter, -07:00 in summer, and on both DST change days", () => {
    const cases = [
      { at: "2026-12-05T12:00:00Z", start: "2026-12-05T08:00:00.000Z" },
      { at: "2026-12-05T07:59:59Z", start: "2026-12-04T08:00:00.000Z" },
      { at: "2026-07-01T07:00:00Z", start: "2026-07-01T07:00:00.000Z" },
      { at: "2026-07-01T06:59:00Z", start: "2026-06-30T07:00:00.000Z" },
      // 2026-03-08: clocks go forward at 02:00 (the day starts at -08:00, has 23 hours).
      { at: "2026-03-08T20:00:00Z", start: "2026-03-08T08:00:00.000Z" },
      { at: "2026-03-09T06:59:00Z", start: "2026-03-08T08:00:00.000Z" },
      // 2026-11-01: clocks go back at 02:00 (the day starts at -07:00, has 25 hours).
      { at: "2026-11-01T20:00:00Z", start: "2026-11-01T07:00:00.000Z" },
      { at: "2026-11-02T07:59:00Z", start: "2026-11-01T07:00:00.000Z" },
    ];
    for (const c of cases) expect({ ...c, start: new Date(pacificDayStart(Date.parse(c.at))).toISOString() }).toEqual(c);
    // The day window of a check ends where the next day starts (25 hours on 2026-11-01).
    const day = quotaChecks({ site: "s", kind: "search" }, big, Date.parse("2026-11-01T20:00:00Z")).find((c) => c.bucket.endsWith("/day"))!;
    expect((day.windowEnd - day.windowStart) / 3_600_000).toBe(25);
  });

  test("search analytics counts per project (minute, day) and per property; inspection per property; others alone", () => {
    const names = (req: QuotaRequest) => quotaChecks(req, big, T0).map((c) => c.bucket);
    expect(names({ site: "sc-domain:a.example", kind: "search" })).toEqual([
      "search:project:default/day",
      "search:project:default/min",
      "search:site:sc-domain:a.example/min",
    ]);
    expect(names({ site: "sc-domain:a.example", kind: "inspect" })).toEqual([
      "inspect:site:sc-domain:a.example/day",
      "inspect:site:sc-domain:a.example/min",
    ]);
    expect(names({ site: "sc-domain:a.example", kind: "other" })).toEqual(["other/min"]);
  });
});

describe("quota in the database", () => {
  let t: ReturnType<typeof tempDb>;
  beforeAll(() => {
    t = tempDb();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  test("two handles (as two processes or hosts) taking at once get exactly the limit between them", async () => {
    const other = t.open();
    const limits = { ...big, sitePerMinute: 17 };
    const req: QuotaRequest = { site: "sc-domain:race.example", kind: "search" };
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => takeQuota(i % 2 ? other : t.db, quotaChecks(req, limits, T0)).then((full) => full === null)),
    );
    expect(results.filter(Boolean).length).toBe(17);
    const used = (await readQuota(t.db, T0)).filter((r) => r.bucket.startsWith("search:"));
    // The site's minute is full; the project's buckets rolled back with each refused take (17, not 60).
    expect(Object.fromEntries(used.map((r) => [r.bucket, r.used]))).toEqual({
      "search:project:default/day": 17,
      "search:project:default/min": 17,
      "search:site:sc-domain:race.example/min": 17,
    });
  });

  test("a full window waits for the next one when that is near, else fails with QuotaExhausted naming the limit", async () => {
    let now = Date.UTC(2026, 11, 5, 13, 0, 59, 800); // 200 ms before the minute ends
    const limits = { ...big, otherPerMinute: 2 };
    const quota = createDbQuota(t.db, { limits, maxWaitMs: 5_000, now: () => now });
    const req: QuotaRequest = { site: "x", kind: "other" };
    await quota.acquire(undefined, req);
    await quota.acquire(undefined, req);
    // The third waits the ~200 ms to the next minute (the clock moves on meanwhile).
    const third = quota.acquire(undefined, req).then(() => "granted");
    await Bun.sleep(50);
    now += 1_000;
    expect(await third).toBe("granted");
    // A window 55 s away is more than maxWaitMs of 5 s: the request fails at once.
    const strict = createDbQuota(t.db, { limits, maxWaitMs: 5_000, now: () => Date.UTC(2026, 11, 5, 14, 0, 5) });
    await strict.acquire(undefined, req);
    await strict.acquire(undefined, req);
    const err = await strict.acquire(undefined, req).catch((e) => e);
    expect(err).toBeInstanceOf(QuotaExhausted);
    expect(err.message).toContain("2 per minute for sitemaps and sites");
    expect(err.retryAt).toBe(Date.UTC(2026, 11, 5, 14, 1, 0));
  });

  test("a quota refusal from Google closes the property's window for every handle", async () => {
    const now = () => Date.UTC(2026, 11, 5, 15, 0, 10);
    const req: QuotaRequest = { site: "sc-domain:refused.example", kind: "search" };
    const a = createDbQuota(t.db, { limits: big, maxWaitMs: 0, now });
    const b = createDbQuota(t.open(), { limits: big, maxWaitMs: 0, now });
    await b.acquire(undefined, req);
    await a.refused!(req);
    expect(await b.acquire(undefined, req).catch((e) => e)).toBeInstanceOf(QuotaExhausted);
    // Another property is not affected.
    await b.acquire(undefined, { site: "sc-domain:other.example", kind: "search" });
  });
});

describe("the client and the quota", () => {
  let fake: FakeGsc;
  beforeAll(() => {
    fake = startFakeGsc({ rows: () => 3 });
  });
  afterAll(() => fake?.stop());

  test("a 403 rateLimitExceeded is reported to the limiter (refused) and retried; a 403 without a quota reason is not", async () => {
    const seen: string[] = [];
    const limiter: RateLimiter = {
      acquire: async (_s, req) => void seen.push(`acquire ${req?.kind} ${req?.site}`),
      refused: async (req) => void seen.push(`refused ${req.kind} ${req.site}`),
    };
    const client = createGscClient({
      baseUrl: fake.url,
      auth: staticToken("test-token"),
      limiter,
      rowLimit: 1000,
      maxRetries: 3,
      retryBaseMs: 1,
      timeoutMs: 10_000,
    });
    fake.inject(quotaRefusal("rateLimitExceeded"));
    const body = {
      startDate: "2026-11-01",
      endDate: "2026-11-01",
      dimensions: ["page"],
      type: "web" as const,
      rowLimit: 1000,
      startRow: 0,
    };
    const rows = await client.query("sc-domain:q.example", body, new AbortController().signal);
    expect(rows).toHaveLength(3);
    expect(seen).toEqual([
      "acquire search sc-domain:q.example",
      "refused search sc-domain:q.example",
      "acquire search sc-domain:q.example",
    ]);
    seen.length = 0;
    fake.inject({
      status: 403,
      body: { error: { code: 403, message: "User does not have sufficient permission", status: "PERMISSION_DENIED" } },
    });
    const err = await client.query("sc-domain:q.example", body, new AbortController().signal).catch((e) => e);
    expect(err).toBeInstanceOf(GscPermanentError);
    expect(seen).toEqual(["acquire search sc-domain:q.example"]);
  });
});

describe("processes sharing one quota", () => {
  const SITES = 4;
  const DAYS = 5;
  const PER_DAY = 13;
  let fake: FakeGsc;
  let servers: RunningServer[] = [];
  let dropDb: (() => Promise<void>) | null = null;

  beforeAll(async () => {
    // Slow answers, so that the workers' tasks run at the same time and their requests interleave.
    fake = startFakeGsc({ rows: () => 2, delayMs: 100 });
    const env = {
      SYNC_SOURCE: "gsc",
      GSC_ACCESS_TOKEN: "test-token",
      GSC_API_BASE_URL: fake.url,
      GSC_RETRY_BASE_MS: "10",
      GSC_QUOTA_PER_MINUTE: "100000",
      // The budget under test: 13 search-analytics requests for the whole (Pacific) day, for everyone.
      GSC_QUOTA_PER_DAY: String(PER_DAY),
      SYNC_SCHEDULER: "false",
      SYNC_POLL_MS: "20",
      SYNC_MAX_ATTEMPTS: "1",
    };
    if (testEngine === "pg") {
      // Two hosts on one PostgreSQL database: two whole instances, two sync workers each.
      const t = tempDb();
      dropDb = t.cleanup;
      servers = await Promise.all(
        ["host-a.test", "host-b.test"].map((host) =>
          startServer({ dbPath: t.databaseUrl, workers: 1, syncWorkers: 2, timeoutMs: 90_000, env: { ...env, SITESYNC_HOST_NAME: host } }),
        ),
      );
    } else {
      // One SQLite file belongs to one machine: three sync worker processes on it.
      servers.push(await startServer({ workers: 1, syncWorkers: 3, timeoutMs: 90_000, env }));
    }
  }, 200_000);

  afterAll(async () => {
    for (const s of servers) await s.cleanup();
    servers = [];
    await dropDb?.();
    fake?.stop();
  });

  test(`${SITES} daily syncs needing ${SITES * DAYS * 4} requests send exactly the day's ${PER_DAY}, from every process together`, async () => {
    const via = (i: number) => servers[i % servers.length]!.url;
    const jobs: number[] = [];
    for (let i = 0; i < SITES; i++) {
      const site = await request(via(i), "POST", "/api/v1/sites", { domain: `sc-domain:q${i}.quota.example`, name: `Quota ${i}` });
      expect(site.status).toBe(201);
      const job = await request(via(i), "POST", `/api/v1/sites/${site.body.id}/sync-tasks`, { task_type: "daily_sync", days: DAYS });
      expect(job.status).toBe(202);
      jobs.push(job.body.job_id);
    }
    const finished = await waitFor(
      async () => {
        const all = await Promise.all(jobs.map(async (id, i) => (await request(via(i), "GET", `/api/v1/sync/job/${id}`)).body));
        return all.every((j) => j.status === "failed" || j.status === "completed") ? all : null;
      },
      { timeout: 90_000, every: 200, what: "every sync to end" },
    );
    const searches = fake.requests.filter((r) => r.site.endsWith(".quota.example"));
    expect(searches.length).toBe(PER_DAY);
    // Not one process's share: the tasks ran in more than one worker process, and they stopped for quota.
    expect(new Set(finished.map((j) => j.worker_pid)).size).toBeGreaterThan(1);
    expect(finished.some((j) => j.status === "failed")).toBe(true);
    expect(
      finished
        .filter((j) => j.status === "failed")
        .every((j) => /quota of 13 per day for search analytics \(project access-token\)/.test(j.error ?? "")),
    ).toBe(true);
  });
});
