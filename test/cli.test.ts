import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, count, eq } from "drizzle-orm";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addDays, dayOf } from "../src/sync/dates.ts";
import { writeAuthorizedUser } from "../src/sync/gsc/user-auth.ts";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { cli, spawnCli } from "./helpers/cli.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { isDetailRequest, startFakeGsc, type FakeGsc } from "./helpers/fake-gsc.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";
import { withDb } from "./helpers/observe.ts";

// `bun run cli` as a real process against the real service (2 HTTP workers, 2 sync workers) whose
// sync workers read Search Console (the fake) with the stored Google sign-in: sites, syncs followed
// to the end with the exit code as outcome, hourly data, coverage, jobs, cancel, errors.

let fake: FakeGsc;
let server: RunningServer;
let dir: ReturnType<typeof tempDir>;
let credentials: string;

beforeAll(async () => {
  fake = startFakeGsc({ rows: (_s, _d, type) => (type === "web" ? 30 : 3), hourlyRows: () => 48 });
  fake.registerOAuthClient();
  fake.signInAs({ email: "owner@example.com", properties: [] });
  dir = tempDir();
  credentials = join(dir.dir, "credentials.json");
  // One of each: the CLI's requests and syncs need no second process (each idle sync worker polls every 50 ms).
  server = await startServer({
    workers: 1,
    syncWorkers: 1,
    env: {
      GSC_CREDENTIALS_FILE: credentials,
      GSC_TOKEN_URL: fake.tokenUrl,
      GSC_API_BASE_URL: fake.url,
      GSC_RETRY_BASE_MS: "10",
      GSC_MAX_RETRIES: "1",
      GSC_QUOTA_PER_MINUTE: "100000",
      SYNC_SCHEDULER: "false",
      SYNC_POLL_MS: "50",
      SYNC_RETRY_BASE_MS: "50",
      SYNC_MAX_ATTEMPTS: "1",
      // The following tests slow each Search Console answer to see a job running; fetching the next days
      // ahead (SYNC_FETCH_AHEAD) would overlap those waits and let a 5-day job finish before the CLI sees it run.
      SYNC_FETCH_AHEAD: "0",
      DEMO_ROWS_PER_DAY: "7",
    },
  });
});
afterAll(async () => {
  await server?.cleanup();
  fake.stop();
  dir.cleanup();
});

const run = (args: string[], opts: { stdin?: string; timeoutMs?: number } = {}) =>
  cli(args, { env: { SITESYNC_URL: server.url }, ...opts });
const json = async (args: string[]) => {
  const r = await run(["--json", ...args]);
  if (r.code !== 0) throw new Error(`cli ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};

/** Every site, from the API: for tests that only need their ids (a CLI process is ~0.2 s of CPU; the CLI's list has tests of its own). */
const allSites = async () =>
  (await request(server.url, "GET", "/api/v1/sites?limit=500&active_only=false")).body as { id: number; domain: string }[];

describe("sites", () => {
  const cases: { args: string[]; code: number; stdout?: RegExp; stderr?: RegExp }[] = [
    { args: ["sites", "add", "sc-domain:alpha.example"], code: 0, stdout: /Added site \d+: sc-domain:alpha\.example \(alpha\.example\)/ },
    {
      args: ["sites", "add", "https://beta.example/", "--name", "Beta", "--category", "blog"],
      code: 0,
      stdout: /Added site \d+: https:\/\/beta\.example\/ \(Beta\)/,
    },
    { args: ["sites", "add", "sc-domain:gamma.example", "--inactive"], code: 0 },
    { args: ["sites", "add", "sc-domain:alpha.example"], code: 1, stderr: /error: .*(already|exists|duplicate)/i },
    { args: ["sites", "add", "not a domain"], code: 1, stderr: /error: invalid body: domain/ },
    {
      args: ["sites", "list"],
      code: 0,
      stdout:
        /^ID\s+DOMAIN\s+NAME\s+CATEGORY\s+ACTIVE\n\d+\s+https:\/\/beta\.example\/\s+Beta\s+blog\s+yes\n\d+\s+sc-domain:alpha\.example\s+alpha\.example\s+-\s+yes\n\d+\s+sc-domain:gamma\.example\s+gamma\.example\s+-\s+no\n$/,
    },
    {
      args: ["sites", "show", "alpha.example"],
      code: 0,
      stdout: /domain\s+sc-domain:alpha\.example[\s\S]*Daily data: no data yet\nHourly data: no data yet[\s\S]*No sync jobs yet/,
    },
    { args: ["sites", "show", "https://beta.example/"], code: 0, stdout: /name\s+Beta/ },
    { args: ["sites", "show", "999999"], code: 1, stderr: /error: site 999999 not found/ },
    { args: ["sites", "show", "nowhere.example"], code: 1, stderr: /error: no site matches 'nowhere\.example'/ },
    { args: ["sites", "frobnicate"], code: 2, stderr: /unknown command 'frobnicate'/ },
    { args: ["sync", "alpha.example", "0"], code: 2, stderr: /days must be a positive integer/ },
    { args: ["sync", "alpha.example", "3", "merge"], code: 2, stderr: /expected skip or overwrite/ },
  ];
  for (const c of cases) {
    test(`cli ${c.args.join(" ")} -> exit ${c.code}`, async () => {
      const r = await run(c.args);
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: c.code });
      if (c.stdout) expect(r.stdout).toMatch(c.stdout);
      if (c.stderr) expect(r.stderr).toMatch(c.stderr);
      expect(r.stderr).not.toContain("    at ");
    });
  }

  test("--json: sites list is the API's array", async () => {
    const list = await json(["sites", "list", "--active-only"]);
    expect(list.map((s: { domain: string }) => s.domain)).toEqual(["https://beta.example/", "sc-domain:alpha.example"]);
  });
});

describe("sync", () => {
  test("before any sign-in the demo source answers; once signed in, both sync workers read Search Console with one refresh each", async () => {
    const demo = await run(["sync", "alpha.example", "2"]);
    expect(demo.code).toBe(0);
    expect(demo.stdout).toMatch(/job \d+ daily_sync alpha\.example: completed 2\/2 days \(100%\) synced 2, skipped 0, failed 0, 56 rows/);
    // Not a terminal: one progress line per change on stderr; the final state once, on stdout (not twice).
    expect(demo.stderr).toMatch(/Queued job \d+: daily_sync of site/);
    expect(demo.stderr).not.toContain(": completed");
    expect(demo.stdout.match(/: completed/g)).toHaveLength(1);
    expect(fake.requests.length).toBe(0);

    // `auth login` happened meanwhile (the file appears): no restart needed.
    writeAuthorizedUser(credentials, {
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: fake.grantRefreshToken(),
      account: "owner@example.com",
    });
    const [a, b] = await Promise.all([
      run(["--json", "sync", "alpha.example", "3", "overwrite"]),
      run(["--json", "sync", "https://beta.example/", "3"]),
    ]);
    for (const r of [a, b]) {
      expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toMatchObject({ code: 0 });
      expect(JSON.parse(r.stdout)).toMatchObject({
        status: "completed",
        total_tasks: 3,
        total_records: 3 * 39,
        progress: 100,
        stats: { synced: 3, failed: 0, skipped: 0 },
      });
    }
    expect(fake.requests.filter(isDetailRequest).length).toBe(2 * 3 * 4);
    // Each sync process refreshed the access token once from the shared file, however many requests it sent.
    const refreshes = fake.tokenRequests.filter((t) => t.grant === "refresh_token" && t.ok).length;
    expect(refreshes).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeLessThanOrEqual(2);
  });

  test("--hourly: hourly_sync of the last days up to today; coverage shows both kinds of data", async () => {
    fake.reset();
    const r = await run(["sync", "alpha.example", "3", "--hourly"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hourly_sync alpha\.example: completed 3\/3 days .* 144 rows/);
    expect(fake.requests.every((q) => q.dataState === "HOURLY_ALL" && q.dimensions[0] === "HOUR")).toBe(true);
    const today = dayOf(new Date());
    const cov = await json(["coverage", "alpha.example"]);
    expect(cov.hourly_data).toEqual({ total_days: 3, latest_date: today, oldest_date: addDays(today, -2) });
    expect(cov.daily_data.total_days).toBeGreaterThan(0);
    const text = await run(["coverage", "alpha.example"]);
    expect(text.stdout).toContain(`Hourly data: 3 days, ${addDays(today, -2)} .. ${today}`);
    // The service's per-day coverage (GET /api/v1/sync/status?site_id=&days=): one mark per day, oldest first.
    const days = await run(["coverage", "alpha.example", "--days", "7"]);
    expect(days.stdout).toMatch(new RegExp(`Last 8 days \\(${addDays(today, -7)} \\.\\. ${today}\\), # = has data:\\n {2}[#.]{8}\\n`));
  });

  test("sync-all follows every active site; a property Google refuses makes the exit code 1", async () => {
    fake.forbid("https://beta.example/");
    const r = await run(["--json", "sync-all", "2"]);
    expect(r.code).toBe(1);
    const jobs = JSON.parse(r.stdout) as { site_name: string; status: string; error: string | null }[];
    expect(jobs.map((j) => [j.site_name, j.status]).sort()).toEqual([
      ["Beta", "failed"],
      ["alpha.example", "completed"],
    ]);
    expect(jobs.find((j) => j.site_name === "Beta")!.error).toContain("refused access");
    fake.reset();
  });

  test("a revoked sign-in fails the sync with a message telling the user to sign in again (exit 1)", async () => {
    const rt = fake.grantRefreshToken();
    writeAuthorizedUser(credentials, {
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: rt,
    });
    fake.expireAccessTokens();
    fake.revokeRefreshToken(rt);
    const r = await run(["sync", "https://beta.example/", "1", "overwrite"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("failed");
    expect(r.stdout).toContain("Sign in again with: bun run cli auth login");
    // Signing in again repairs it, still without a restart.
    writeAuthorizedUser(credentials, {
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: fake.grantRefreshToken(),
    });
    expect((await run(["sync", "https://beta.example/", "1", "overwrite"])).code).toBe(0);
  });

  test("a site with a queued sync: --no-follow gives that job; cancel; follow exits 3 for a cancelled job", async () => {
    const sites = await allSites();
    const alpha = sites.find((s) => s.domain === "sc-domain:alpha.example")!.id;
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const queued = await request(server.url, "POST", `/api/v1/sites/${alpha}/sync-tasks`, { days: 2, run_at: later });
    expect(queued.status).toBe(202);
    const r = await run(["--json", "sync", String(alpha), "--no-follow"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ job_ids: [queued.body.job_id] });
    expect(r.stderr).toContain(`already has a daily_sync queued or running (job ${queued.body.job_id})`);
    const active = await json(["jobs", "--active", "--site", "alpha.example"]);
    expect(active.jobs.map((j: { id: number }) => j.id)).toEqual([queued.body.job_id]);
    const cancelled = await run(["cancel", String(queued.body.job_id)]);
    expect(cancelled.code).toBe(0);
    // It says what it did.
    expect(cancelled.stdout.trim()).toBe(
      `Cancelled job ${queued.body.job_id} (daily_sync of alpha.example): it was pending and will not run.`,
    );
    const again = await run(["cancel", String(queued.body.job_id)]);
    expect({ code: again.code, stderr: again.stderr.trim() }).toEqual({
      code: 1,
      stderr: `error: job ${queued.body.job_id} had already ended (cancelled): nothing to cancel`,
    });
    const followed = await run(["follow", String(queued.body.job_id)]);
    expect(followed.code).toBe(3);
    const listed = await run(["jobs", "--limit", "3"]);
    expect(listed.stdout).toMatch(/JOB\s+TYPE\s+SITE\s+STATUS/);
    expect(listed.stdout).toMatch(new RegExp(`${queued.body.job_id}\\s+daily_sync\\s+alpha\\.example\\s+cancelled`));
  });
});

describe("following", () => {
  test("--progress bar draws the live bar even into a pipe; Ctrl-C stops following (exit 130) while the job goes on", async () => {
    // A delay per Search Console request keeps the job running long enough to be seen moving: a day is
    // ~20 requests since the grains (totals, pages, appearance, detail per search type), so 30 ms makes a
    // day ~0.6 s; the bar's follower looks every 100 ms (it was 150 ms and the default 500 ms poll: 30 s).
    fake.setDelay(30);
    try {
      const bar = await run(["sync", "https://beta.example/", "3", "overwrite", "--progress", "bar", "--poll-ms", "100"]);
      expect(bar.code).toBe(0);
      expect(bar.stderr).toMatch(/█+░*\s+\d+% \| \d\/3 days \| job \d+ daily_sync Beta \| running/);
      expect(bar.stderr).toMatch(/█{40} 100% \| 3\/3 days \| job \d+ daily_sync Beta \| completed/);

      const p = spawnCli(["sync", "https://beta.example/", "5", "overwrite"], { env: { SITESYNC_URL: server.url } });
      const [, id] = await p.waitForStderr(/Queued job (\d+)/);
      await p.waitForStderr(/running/);
      p.proc.kill("SIGINT");
      const r = await p.done();
      expect(r.code).toBe(130);
      expect(r.stderr).toContain(`Stopped following; the job goes on in the service (bun run cli follow ${id}`);
      // The rest of the job needs no delay to be seen finishing (it went on without a follower).
      fake.setDelay(0);
      const after = await run(["--json", "follow", id!]);
      expect(after.code).toBe(0);
      expect(JSON.parse(after.stdout)).toMatchObject({ id: Number(id), status: "completed", stats: { synced: 5 } });
    } finally {
      fake.setDelay(0);
    }
  });

  test("auth status beside the running service: which registered (active) sites the account can read", async () => {
    fake.signInAs({ email: "reader@example.com", properties: [{ siteUrl: "sc-domain:alpha.example", permissionLevel: "siteOwner" }] });
    const file = join(dir.dir, "reader.json");
    writeAuthorizedUser(file, {
      client_id: "test-client.apps.googleusercontent.com",
      client_secret: "test-secret",
      refresh_token: fake.grantRefreshToken(),
      account: "reader@example.com",
    });
    const r = await cli(["--json", "auth", "status"], {
      env: { SITESYNC_URL: server.url, GSC_CREDENTIALS_FILE: file, GSC_TOKEN_URL: fake.tokenUrl, GSC_API_BASE_URL: fake.url },
    });
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    const sites = await allSites();
    const idOf = (d: string) => sites.find((x) => x.domain === d)!.id;
    expect(s.properties).toEqual([
      { site_url: "sc-domain:alpha.example", permission_level: "siteOwner", registered_site_id: idOf("sc-domain:alpha.example") },
    ]);
    expect(s.unreadable_sites).toEqual([{ id: idOf("https://beta.example/"), domain: "https://beta.example/" }]);
  });
});

describe("export", () => {
  const rowsOf = (domain: string, searchType?: string) =>
    withDb(server.dbPath, async (db) => {
      const { gscPerformanceData: g, sites: s } = db.t;
      const [row] = await db.q
        .select({ n: count() })
        .from(g)
        .innerJoin(s, eq(s.id, g.site_id))
        .where(and(eq(s.domain, domain), searchType ? eq(g.search_type, searchType) : undefined));
      return row!.n;
    });

  test("csv to stdout: the header and every stored row", async () => {
    const r = await run(["export", "alpha.example"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split(/\r?\n/);
    expect(lines[0]).toBe("date,page,query,device,search_type,clicks,impressions,ctr,position");
    expect(lines.length - 1).toBe(await rowsOf("sc-domain:alpha.example"));
    expect(lines.length - 1).toBeGreaterThan(100);
    expect(r.stderr.trim()).toBe(`Exported ${lines.length - 1} rows of sc-domain:alpha.example`);
  });

  test("json to a file: one array, streamed; filters go to the service", async () => {
    const file = join(dir.dir, "alpha.json");
    const r = await run(["export", "alpha.example", "--format", "json", "-o", file]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(readFileSync(file, "utf8")) as { search_type: string; clicks: number }[];
    expect(rows.length).toBe(await rowsOf("sc-domain:alpha.example"));
    // Rows, not bytes.
    expect(r.stderr.trim()).toBe(`Exported ${rows.length} rows of sc-domain:alpha.example to ${file}`);
    expect(typeof rows[0]!.clicks).toBe("number");
    const images = await run(["export", "alpha.example", "--format", "jsonl", "--search-type", "image"]);
    const lines = images.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(await rowsOf("sc-domain:alpha.example", "image"));
    expect(lines.every((l) => l.search_type === "image")).toBe(true);
  });

  test("parquet to a file: the same rows as JSON lines (read back with hyparquet), the count from the footer", async () => {
    const file = join(dir.dir, "alpha.parquet");
    const r = await run(["export", "alpha.example", "--format", "parquet", "--search-type", "web", "-o", file]);
    expect(r.code).toBe(0);
    const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
    const jsonl = await run(["export", "alpha.example", "--format", "jsonl", "--search-type", "web"]);
    const expected = jsonl.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.length).toBe(expected.length);
    expect(rows.length).toBeGreaterThan(50);
    // Counts are INT64 columns (bigints to hyparquet).
    const asJson = rows.map((x) => ({
      ...x,
      date: (x.date as Date).toISOString().slice(0, 10),
      clicks: Number(x.clicks as bigint),
      impressions: Number(x.impressions as bigint),
    }));
    expect(asJson).toEqual(expected);
    expect(r.stderr.trim()).toBe(`Exported ${rows.length} rows of sc-domain:alpha.example to ${file}`);
  });

  test("a site without data: an empty JSON array; a bad date is the service's 400", async () => {
    const empty = await run(["export", "sc-domain:gamma.example", "--format", "json"]);
    expect(empty.code).toBe(0);
    expect(JSON.parse(empty.stdout)).toEqual([]);
    const bad = await run(["export", "alpha.example", "--start-date", "2026-02-30"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("start_date");
  });
});

describe("terminal safety", () => {
  test("control characters in names (ANSI escapes from a stranger) are shown as \\xHH, never sent to the terminal", async () => {
    const evil = "Evil \u001b[2J\u001b]0;pwned\u0007 name";
    const created = await request(server.url, "POST", "/api/v1/sites", { domain: "sc-domain:ansi.example", name: evil });
    expect(created.status).toBe(201);
    const r = await run(["sites", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("\u001b");
    expect(r.stdout).not.toContain("\u0007");
    expect(r.stdout).toContain("Evil \\x1b[2J\\x1b]0;pwned\\x07 name");
    // --json keeps the exact text (JSON escapes it itself).
    const j = (await json(["sites", "list"])) as { name: string }[];
    expect(j.some((s) => s.name === evil)).toBe(true);
    expect((await request(server.url, "DELETE", `/api/v1/sites/${created.body.id}?purge=true&confirm=sc-domain:ansi.example`)).status).toBe(
      204,
    );
  });
});

describe("talking to the service", () => {
  // Engine-neutral (no service at that address): run once, with SQLite.
  test.skipIf(testEngine === "pg")("not running: exit 1 and how to start it", async () => {
    const r = await cli(["--url", "http://127.0.0.1:9", "sites", "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach sitesync at http:\/\/127\.0\.0\.1:9 .*Is it running\? Start it with: bun run start/);
  });

  // Last: once a key exists the service wants one from everybody, loopback included.
  test("--api-key / SITESYNC_API_KEY is sent as a Bearer token; without one the refusal says which option to give", async () => {
    const admin = await request(server.url, "POST", "/api/v1/keys", { name: "cli-admin", scope: "admin" });
    expect(admin.status).toBe(201);
    const asAdmin = { authorization: `Bearer ${admin.body.key}` };
    const created = await request(server.url, "POST", "/api/v1/keys", { name: "cli-test", scope: "write" }, asAdmin);
    expect(created.status).toBe(201);
    const readOnly = await request(server.url, "POST", "/api/v1/keys", { name: "cli-read", scope: "read" }, asAdmin);
    const key = created.body.key as string;
    const refused = await run(["sites", "list"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("(give the service's API key with --api-key or SITESYNC_API_KEY)");
    const byFlag = await run(["--api-key", key, "--json", "sites", "list"]);
    expect(byFlag.code).toBe(0);
    expect(JSON.parse(byFlag.stdout).length).toBe(3);
    // A key whose scope is too narrow: the hint names the scope the call needs.
    const reader = await run(["--api-key", readOnly.body.key, "sites", "add", "sc-domain:readonly.example"]);
    expect(reader.code).toBe(1);
    expect(reader.stderr).toContain("(this needs a key with the 'write' scope: give one with --api-key or SITESYNC_API_KEY)");
    // The flag still works, but says why it is a bad place for a secret.
    expect(byFlag.stderr).toMatch(/warning: --api-key puts the key in process lists/);
    const keyFile = join(dir.dir, "key.txt");
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    const byFile = await run(["--api-key-file", keyFile, "--json", "sites", "list"]);
    expect(byFile.code).toBe(0);
    expect(JSON.parse(byFile.stdout).length).toBe(3);
    expect(byFile.stderr).not.toContain(key);
    expect(byFile.stderr).not.toMatch(/warning/);
    const missing = await run(["--api-key-file", join(dir.dir, "nope.txt"), "sites", "list"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--api-key-file: cannot read .*nope\.txt \(ENOENT\)/);
    const byEnv = await cli(["sync", "alpha.example", "1"], { env: { SITESYNC_URL: server.url, SITESYNC_API_KEY: key } });
    expect(byEnv.code).toBe(0);
    expect(byEnv.stdout).toContain("completed");
  });
});
