import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { createSession } from "../src/auth/sessions.ts";
import { createApiKey } from "../src/auth/queries.ts";
import { createSite } from "../src/sites/queries.ts";
import { dayStates } from "../src/ui/calendar.tsx";
import { tempDb, testEngine } from "./helpers/db.ts";

// The dashboard's pages and forms over HTTP, in-process (the browser tests drive the same pages in chromium).

const t = tempDb();
const app = createApp(t.db);
const origin = "http://localhost";
let siteId = 0;
beforeAll(async () => {
  siteId = (await createSite(t.db, { domain: "sc-domain:ui.example", name: "UI Example" })).id;
});
afterAll(() => t.cleanup());

const form = (fields: Record<string, string>, headers: Record<string, string> = { origin }) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  body: new URLSearchParams(fields).toString(),
});

describe("pages", () => {
  const cases: { path: () => string; status: number; contains: string }[] = [
    { path: () => "/ui", status: 200, contains: "Tasks by status" },
    { path: () => "/ui/sites", status: 200, contains: "UI Example" },
    { path: () => "/ui/sites?q=ui.exa", status: 200, contains: "UI Example" },
    { path: () => "/ui/sites?q=nomatch", status: 200, contains: "No site matches." },
    { path: () => `/ui/sites/${siteId}`, status: 200, contains: "Coverage" },
    { path: () => "/ui/sites/999999", status: 404, contains: "site 999999 not found" },
    { path: () => "/ui/sites/abc", status: 400, contains: "invalid id" },
    { path: () => "/ui/jobs", status: 200, contains: "No jobs match." },
    { path: () => "/ui/jobs?status=bogus&site_id=x", status: 200, contains: "No jobs match." },
    { path: () => "/ui/queries", status: 200, contains: "Query contains" },
    { path: () => `/ui/queries?site_id=${siteId}&q=x&start=2026-13-01`, status: 400, contains: "Dates must be YYYY-MM-DD." },
    { path: () => `/ui/queries?site_id=${siteId}&q=x`, status: 200, contains: "0 matching queries" },
  ];
  for (const c of cases) {
    test(`GET ${c.path()} -> ${c.status}`, async () => {
      const res = await app.request(c.path());
      expect(res.status).toBe(c.status);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      const html = await res.text();
      expect(html).toStartWith("<!doctype html>");
      expect(html).toContain(c.contains);
      // Nothing from elsewhere, and no inline script or style (the CSP would block them).
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=/);
    });
  }
});

describe("static files from node_modules and src/ui/static", () => {
  const cases = [
    { path: "/ui/static/htmx.min.js", type: "javascript", contains: "htmx" },
    { path: "/ui/static/sse.js", type: "javascript", contains: "sse" },
    { path: "/ui/static/app.css", type: "text/css", contains: ".calendar" },
    { path: "/ui/static/favicon.svg", type: "image/svg+xml", contains: "<svg" },
  ];
  for (const c of cases) {
    test(c.path, async () => {
      const res = await app.request(c.path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain(c.type);
      expect(await res.text()).toContain(c.contains);
    });
  }
  test("htmx is the pinned 2.x", async () => {
    expect(await (await app.request("/ui/static/htmx.min.js")).text()).toContain('version:"2.');
  });
});

describe("forms", () => {
  test("add a site: 303 to its page; invalid and duplicate re-render the form with the reason", async () => {
    const ok = await app.request("/ui/sites", form({ domain: "https://forms.example/", name: "Forms", category: "" }));
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toMatch(/^\/ui\/sites\/\d+\?notice=site-added$/);
    const bad = await app.request("/ui/sites", form({ domain: "not a property", name: "X" }));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("domain: expected");
    const dup = await app.request("/ui/sites", form({ domain: "https://forms.example/", name: "Again" }));
    expect(dup.status).toBe(409);
    const html = await dup.text();
    expect(html).toContain("already exists");
    expect(html).toContain('value="Again"');
  });

  test("deactivate, then start a sync, cancel it and retry it", async () => {
    const off = await app.request(`/ui/sites/${siteId}/active`, form({ is_active: "false", return_to: "/ui/sites?q=ui" }));
    expect(off.status).toBe(303);
    expect(off.headers.get("location")).toBe("/ui/sites?q=ui&notice=site-updated");
    expect(await (await app.request(`/ui/sites/${siteId}`)).text()).toContain("inactive");

    expect((await app.request(`/ui/sites/${siteId}/sync`, form({ days: "0", sync_mode: "skip" }))).status).toBe(400);
    expect((await app.request(`/ui/sites/${siteId}/sync`, form({ days: "3", sync_mode: "sideways" }))).status).toBe(400);
    const sync = await app.request(`/ui/sites/${siteId}/sync`, form({ days: "3", sync_mode: "overwrite" }));
    expect(sync.status).toBe(303);
    const job = Number(new URL(sync.headers.get("location")!, origin).searchParams.get("id"));
    // A second one while the first is pending: the API's 409, as a page.
    const again = await app.request(`/ui/sites/${siteId}/sync`, form({ days: "3", sync_mode: "skip" }));
    expect(again.status).toBe(409);

    const retryPending = await app.request(`/ui/jobs/${job}/retry`, form({}));
    expect(retryPending.status).toBe(409);
    // return_to may only point into the dashboard.
    const cancel = await app.request(`/ui/jobs/${job}/cancel`, form({ return_to: "https://evil.example/" }));
    expect(cancel.status).toBe(303);
    expect(cancel.headers.get("location")).toBe(`/ui/jobs?notice=job-cancelled&id=${job}`);
    expect((await app.request(`/ui/jobs/${job}/cancel`, form({}))).status).toBe(409);
    const retry = await app.request(`/ui/jobs/${job}/retry`, form({ return_to: `/ui/sites/${siteId}` }));
    expect(retry.status).toBe(303);
    const retried = Number(new URL(retry.headers.get("location")!, origin).searchParams.get("id"));
    const jobs = (await (await app.request(`/api/v1/sync/jobs?site_id=${siteId}`)).json()) as { jobs: any[] };
    const [a, b] = [jobs.jobs.find((j: { id: number }) => j.id === job), jobs.jobs.find((j: { id: number }) => j.id === retried)];
    expect(a.status).toBe("cancelled");
    expect({ status: b.status, start: b.start_date, end: b.end_date, mode: b.sync_mode }).toEqual({
      status: "pending",
      start: a.start_date,
      end: a.end_date,
      mode: "overwrite",
    });
    expect(await (await app.request(`/ui/jobs?site_id=${siteId}`)).text()).toContain(`data-job="${retried}"`);
  });

  test("a post from another origin is refused (CSRF) and changes nothing", async () => {
    const res = await app.request("/ui/sites", form({ domain: "sc-domain:csrf.example", name: "CSRF" }, { origin: "http://evil.example" }));
    expect(res.status).toBe(403);
    const sites = (await (await app.request("/api/v1/sites")).json()) as { domain: string }[];
    expect(sites.some((s: { domain: string }) => s.domain === "sc-domain:csrf.example")).toBe(false);
  });
});

test("the live job stream sends the table as an SSE event", async () => {
  const ac = new AbortController();
  const res = await app.request(`/ui/jobs/stream?site_id=${siteId}`, { signal: ac.signal });
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const reader = res.body!.getReader();
  let text = "";
  while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
  ac.abort();
  await reader.cancel();
  expect(text).toStartWith("event: jobs\ndata: ");
  expect(text).toContain("<table");
});

test("dayStates: final, provisional, failed, missing", () => {
  const days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"];
  const states = dayStates(
    days,
    new Set(["2026-11-01"]),
    new Map([
      ["2026-11-02", 5],
      ["2026-11-03", 0],
    ]),
    [{ start: "2026-11-03", end: "2026-11-03" }],
  );
  expect([...states]).toEqual([
    ["2026-11-01", "final"],
    ["2026-11-02", "provisional"],
    ["2026-11-03", "failed"],
    ["2026-11-04", "missing"],
  ]);
});

describe("once API keys exist: the login page, the cookie, and what each scope sees", () => {
  const k = tempDb();
  const keyed = createApp(k.db);
  const keys: Record<string, string> = {};
  const sessions: Record<string, string> = {};
  let jobId = 0;
  beforeAll(async () => {
    for (const scope of ["read", "write", "admin"] as const) {
      const created = await createApiKey(k.db, { name: `ui-${scope}`, scope });
      keys[scope] = created.key;
      sessions[scope] = await createSession(k.db, created.info.id, 3_600_000);
    }
    const site = await keyed.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.write}` },
      body: JSON.stringify({ domain: "sc-domain:keyed.example", name: "Keyed" }),
    });
    const id = ((await site.json()) as { id: number }).id;
    const job = await keyed.request(`/api/v1/sync/trigger/${id}?days=2`, {
      method: "POST",
      headers: { authorization: `Bearer ${keys.write}` },
    });
    jobId = ((await job.json()) as { job_id: number }).job_id;
  });
  afterAll(() => k.cleanup());
  const cookie = (scope: string) => ({ cookie: `sitesync_session=${sessions[scope]}` });

  test("pages without a key go to the login page; the login page and static files are open", async () => {
    for (const [path, next] of [
      ["/ui", "/ui"],
      ["/ui/sites?q=x", "/ui/sites?q=x"],
      ["/ui/jobs", "/ui/jobs"],
    ]) {
      const r = await keyed.request(path!);
      expect(r.status).toBe(303);
      expect(r.headers.get("location")).toBe(`/ui/login?next=${encodeURIComponent(next!)}`);
    }
    expect((await keyed.request("/ui/login")).status).toBe(200);
    expect((await keyed.request("/ui/static/app.css")).status).toBe(200);
    // Event streams and forms get the API's 401, not a redirect.
    expect((await keyed.request("/ui/jobs/stream")).status).toBe(401);
    expect((await keyed.request("/ui/sites", form({ domain: "sc-domain:x.example", name: "X" }))).status).toBe(401);
    // An unknown session in the cookie is the same as none; so is an API key put there (the cookie never holds one).
    expect(
      (await keyed.request("/ui", { headers: { cookie: "sitesync_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } })).status,
    ).toBe(303);
    expect((await keyed.request("/ui", { headers: { cookie: `sitesync_key=${keys.admin}; sitesync_session=${keys.admin}` } })).status).toBe(
      303,
    );
  });

  test("login sets an HttpOnly, SameSite=Strict cookie for /ui; a bad key is refused; logout clears it", async () => {
    const bad = await keyed.request("/ui/login", form({ key: "ssk_nope", next: "/ui/jobs" }));
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain("not valid");
    const ok = await keyed.request("/ui/login", form({ key: keys.read!, next: "/ui/jobs" }));
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/ui/jobs");
    const set = ok.headers.get("set-cookie")!;
    // A random session token, not the key (issue 21: the cookie used to be the raw API key).
    expect(set).toMatch(/^sitesync_session=[\w-]{43};/);
    expect(set).not.toContain(keys.read!);
    expect(set).not.toContain("Secure");
    const session = /^sitesync_session=([\w-]+);/.exec(set)![1]!;
    expect((await keyed.request("/ui/jobs", { headers: { cookie: `sitesync_session=${session}` } })).status).toBe(200);
    expect(set).toContain("HttpOnly");
    expect(set).toContain("SameSite=Strict");
    expect(set).toContain("Path=/ui");
    // next may only lead into the dashboard.
    const away = await keyed.request("/ui/login", form({ key: keys.read!, next: "https://evil.example/" }));
    expect(away.headers.get("location")).toBe("/ui");
    const out = await keyed.request("/ui/logout", form({}, { origin, cookie: `sitesync_session=${session}` }));
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toMatch(/sitesync_session=;.*Max-Age=0/);
    // Signed out for good: the same cookie, replayed, opens nothing (it stayed valid before).
    expect((await keyed.request("/ui/jobs", { headers: { cookie: `sitesync_session=${session}` } })).status).toBe(303);
  });

  test("a read key sees pages but no forms that change anything, and cannot post them", async () => {
    const overview = await (await keyed.request("/ui", { headers: cookie("read") })).text();
    expect(overview).toContain("ui-read (read)");
    expect(overview).toContain("shown to admin keys");
    expect(overview).not.toContain("Processes</h2>");
    const sites = await (await keyed.request("/ui/sites", { headers: cookie("read") })).text();
    expect(sites).toContain("Keyed");
    expect(sites).not.toContain("Add a site");
    expect(sites).not.toContain("Deactivate");
    const jobs = await (await keyed.request("/ui/jobs", { headers: cookie("read") })).text();
    expect(jobs).toContain(`data-job="${jobId}"`);
    expect(jobs).not.toContain("Cancel job");
    const post = await keyed.request("/ui/sites", form({ domain: "sc-domain:ro.example", name: "RO" }, { origin, ...cookie("read") }));
    expect(post.status).toBe(403);
  });

  test("a write key gets the forms; an admin key also the processes and database report", async () => {
    const jobs = await (await keyed.request("/ui/jobs", { headers: cookie("write") })).text();
    expect(jobs).toContain(`Cancel job ${jobId}`);
    const write = await (await keyed.request("/ui", { headers: cookie("write") })).text();
    expect(write).not.toContain("Processes</h2>");
    const admin = await (await keyed.request("/ui", { headers: cookie("admin") })).text();
    expect(admin).toContain("Processes</h2>");
    // The database report is the engine's own: the WAL of the SQLite file, the server's facts on PostgreSQL.
    expect(admin).toContain(testEngine === "pg" ? "Database size" : "WAL size");
    const add = await keyed.request("/ui/sites", form({ domain: "sc-domain:rw.example", name: "RW" }, { origin, ...cookie("write") }));
    expect(add.status).toBe(303);
  });

  test("the cookie counts only for the dashboard; /metrics needs a key like any read", async () => {
    expect((await keyed.request("/api/v1/sites", { headers: cookie("admin") })).status).toBe(401);
    expect((await keyed.request("/metrics")).status).toBe(401);
    expect((await keyed.request("/metrics", { headers: { authorization: `Bearer ${keys.read}` } })).status).toBe(200);
  });
});

describe("a draining worker ends the dashboard's event streams instead of waiting for them", () => {
  test("SIGTERM with a live stream open: the drain does not time out", async () => {
    const { startServer } = await import("./helpers/server.ts");
    const s = await startServer({ workers: 1, env: { SHUTDOWN_TIMEOUT_MS: "30000", LOG_LEVEL: "info" } });
    try {
      const res = await fetch(`${s.url}/ui/jobs/stream`);
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      const reader = res.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toStartWith("event: jobs");
      // The stream stays open; the worker must end it for its drain to finish.
      const ended = (async () => {
        while (!(await reader.read()).done);
        return true;
      })();
      expect(await s.stop("SIGTERM")).toBe(0);
      expect(await ended).toBe(true);
      expect(s.output()).toContain("http worker draining");
      expect(s.output()).not.toContain("drain timed out");
    } finally {
      await s.cleanup();
    }
  }, 60_000);
});

describe("a live part whose content does not change outlives the server's idle timeout", () => {
  test("HTTP_IDLE_TIMEOUT_S=2: the jobs stream stays open on keep-alive comments (it was cut after 2 s of silence)", async () => {
    const { startServer } = await import("./helpers/server.ts");
    const s = await startServer({ workers: 1, env: { HTTP_IDLE_TIMEOUT_S: "2" } });
    try {
      const res = await fetch(`${s.url}/ui/jobs/stream`);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      // No job changes here: after the first render only keep-alives come. Three of them span over 2 idle timeouts.
      while ((text.match(/: keep-alive/g) ?? []).length < 3) {
        const chunk = await reader.read();
        expect({ closed: chunk.done, received: text.length > 0 }).toEqual({ closed: false, received: text.length > 0 });
        text += decoder.decode(chunk.value);
      }
      expect(text).toStartWith("event: jobs");
      await reader.cancel();
    } finally {
      await s.cleanup();
    }
  }, 60_000);

  // PostgreSQL only: a lock held on the jobs' table is how a test makes a render wait (SQLite's readers never wait).
  test.if(testEngine === "pg")(
    "HTTP_IDLE_TIMEOUT_S=2: a render waiting longer than the idle timeout does not leave the stream silent",
    async () => {
      const { startServer } = await import("./helpers/server.ts");
      const pg = (await import("pg")).default;
      const s = await startServer({ workers: 1, env: { HTTP_IDLE_TIMEOUT_S: "2" } });
      const locker = new pg.Client({ connectionString: s.dbPath });
      try {
        await locker.connect();
        const res = await fetch(`${s.url}/ui/jobs/stream`);
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        expect(decoder.decode((await reader.read()).value)).toStartWith("event: jobs");
        // Every render from now on waits for the lock, 3.5 s: keep-alives had come only between renders, so the
        // connection fell silent and Bun closed it after 2 s.
        await locker.query("BEGIN");
        await locker.query("LOCK TABLE sync_tasks IN ACCESS EXCLUSIVE MODE");
        const released = Bun.sleep(3_500).then(() => locker.query("COMMIT"));
        let text = "";
        while ((text.match(/: keep-alive/g) ?? []).length < 3) {
          const chunk = await reader.read();
          expect(chunk.done).toBe(false);
          text += decoder.decode(chunk.value);
        }
        await released;
        await reader.cancel();
      } finally {
        await locker.end().catch(() => {});
        await s.cleanup();
      }
    },
    60_000,
  );
});
