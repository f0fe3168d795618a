import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { csrf } from "hono/csrf";
import type { Child } from "hono/jsx";
import { secureHeaders } from "hono/secure-headers";
import { streamSSE } from "hono/streaming";
import { join } from "node:path";
import type { Registry } from "../metrics/prom.ts";
import { z } from "zod";
import { fileHandler, packageFile } from "../assets.ts";
import { scopeAllows } from "../auth/keys.ts";
import { principalOf, type RateLimit, verifyKeyScope } from "../auth/middleware.ts";
import { createSession, revokeSession, UI_SESSION_COOKIE } from "../auth/sessions.ts";
import type { Db } from "../db/index.ts";
import { taskStatuses, type KeyScope } from "../db/model.ts";
import { searchTypeCodes } from "../db/enums.ts";
import { ApiError, apiErrorOf } from "../errors.ts";
import { boundedTurn, defaultBounds, heavyRequest, type Bounds } from "../analytics/bounds.ts";
import { boundedDb } from "../db/bounded.ts";
import { CONTROL_CHARACTERS } from "../db/sql.ts";
import { searchQueries } from "../search/queries.ts";
import { createSite, decodeCursor, encodeCursor, findSiteById, listSites, searchSites, updateSite } from "../sites/queries.ts";
import { siteNotFound } from "../sites/queries.ts";
import { CreateSiteSchema } from "../sites/schemas.ts";
import { countSyncedDaysBySite, findDailyTotals, findSyncedDays } from "../sync/data.ts";
import { addDays, dayOf, dayRange, FINAL_LAG_DAYS, isDate, MAX_RANGE_DAYS, newestDataDay } from "../sync/dates.ts";
import { syncModes } from "../sync/handlers/days.ts";
import { cancelJob, createTask, findJob, findLastSyncs, jobNotFound, listJobs, queueDailySync } from "../sync/queries.ts";
import { toJob } from "../sync/schemas.ts";
import { CoverageCalendar, dayStates } from "./calendar.tsx";
import { listCompletenessDays } from "../sync/completeness.ts";
import { LineChart } from "./chart.tsx";
import { filterQuery, JobFilterForm, JobsTable, type JobFilters } from "./jobs.tsx";
import { Layout, Live } from "./layout.tsx";
import { LoginPage } from "./login.tsx";
import { loadOverview, OverviewBody } from "./overview.tsx";
import { QueriesPage, type TopQueryRow } from "./queries.tsx";
import { openStreams } from "./entry.ts";
import { findNewestDataDay, findTop, replaceBrandTerms } from "../insights/queries.ts";
import { findPropertyDays } from "../analytics/totals.ts";
import { BrandTermsBody } from "../insights/schemas.ts";
import * as insights from "../insights/service.ts";
import { InsightsPage, type InsightsForm } from "./insights.tsx";
import { AlertsPage } from "./alerts.tsx";
import { randomBytes } from "node:crypto";
import {
  alertKinds,
  createChannel,
  deleteChannel,
  deleteRule,
  listChannels,
  listDeliveries,
  listRules,
  findChannel,
  raiseTestAlert,
  upsertRule,
  type AlertKind,
} from "../alerts/queries.ts";
import { SitePage, SitesPage, type SiteDraft } from "./sites.tsx";
import { IndexStatusSections } from "./index-status.tsx";
import { listLatestInspections } from "../inspection/queries.ts";
import { listSitemaps } from "../sitemaps/queries.ts";
import type { GoogleAccounts } from "../google/accounts.ts";
import { importProperties, listVisibleProperties, type ImportOutcome } from "../google/import.ts";
import { listGoogleAccounts, listSiteBindings } from "../google/queries.ts";
import { GooglePage } from "./google.tsx";

export type UiOptions = {
  /** Every process's metrics merged (null: not available right now). */
  metrics: () => Promise<Registry | null>;
  walWarnBytes: number;
  /** max_attempts of the tasks the dashboard queues. */
  maxAttempts: number;
  /** How long a dashboard session lasts (UI_SESSION_TTL). */
  sessionTtlMs?: number;
  /** Counts sign-in attempts per client address (LOGIN_ATTEMPTS_PER_MINUTE); 429 past it. */
  loginRateLimit?: RateLimit;
  /** The Google accounts and their properties (the Google page; none: the page says so). */
  google?: GoogleAccounts;
  /**
   * A live stream that sent nothing for this long sends an SSE comment: the server closes connections silent
   * for HTTP_IDLE_TIMEOUT_S (10 s), which cut a live part whose content did not change (default 5 s).
   */
  keepAliveMs?: number;
  /** The cost bounds of the pages that read analytics data (the API's heavy routes' own: ANALYTICS_*). */
  bounds?: Bounds;
};

const JS = "text/javascript; charset=utf-8";
/** The dashboard's Google sign-in in progress: `<state>.<PKCE verifier>`, for /ui/google/callback only. */
const GOOGLE_SIGNIN_COOKIE = "sitesync_google_signin";
const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;
/** Days of the coverage window in the sites list (final days only). */
const COVERAGE_DAYS = 30;
/** Days shown on a site's calendar and charts. */
const SITE_DAYS = 91;
const LIVE_MS = 1000;

const notices: Record<string, (id: string) => string> = {
  "site-added": () => "Site added.",
  "site-updated": () => "Site updated.",
  "sync-queued": (id) => `Sync queued as job #${id}: the calendar below fills in as days are stored.`,
  "job-cancelled": (id) => `Job #${id} cancelled (a running job stops at its next checkpoint).`,
  "job-retried": (id) => `Queued again as job #${id}.`,
  "brand-terms-saved": () => "Brand terms saved.",
  "alert-removed": () => "Removed.",
  "alert-rule-set": () => "Rule set.",
  "alert-test": () => "Test alert queued: it is sent within a few seconds (see the delivery log).",
  "google-signed-in": () => "Signed in: the account is added and its properties listed below.",
};

// Form fields arrive as strings; empty ones mean "not given".
const formId = z
  .string()
  .regex(/^\d{1,9}$/)
  .transform(Number)
  .pipe(z.number().int().min(1));
const JobFilterSchema = z.object({
  status: z.enum(taskStatuses).optional().catch(undefined),
  site_id: formId.optional().catch(undefined),
  active_only: z.literal("true").optional().catch(undefined),
});
const SyncFormSchema = z.object({
  days: z
    .string()
    .regex(/^\d{1,4}$/, "days: a whole number")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_RANGE_DAYS)),
  sync_mode: z.enum(syncModes),
});

/** The dashboard at /ui: server-rendered pages, plain forms (no JavaScript needed), live parts over SSE. */
export function uiRoutes(db: Db, opts: UiOptions) {
  const app = new Hono();

  // Everything from this server only: scripts, styles, the event streams, form targets.
  const pageHeaders = (hsts: boolean) =>
    secureHeaders({
      // HSTS means nothing over plain HTTP (and a browser ignores it there): sent only when the client came over TLS.
      strictTransportSecurity: hsts ? "max-age=15552000; includeSubDomains" : false,
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
      },
    });
  const overTls = pageHeaders(true);
  const plain = pageHeaders(false);
  app.use((c, next) => (c.get("tls") ? overTls(c, next) : plain(c, next)));
  // Forms are only accepted from our own pages (Origin / Sec-Fetch-Site checked).
  app.use(csrf());
  app.onError((e, c) => {
    // Anything else goes on to the app's onError (logged with the request id, answered without a stack).
    // A bounded read's refusal arrives wrapped by Drizzle (its cause).
    const err = apiErrorOf(e);
    if (!err) throw e;
    return c.html(
      <Layout title="Something went wrong" active="" error={err.message}>
        <p>
          <a href="/ui">Back to the overview</a>
        </p>
      </Layout>,
      err.status,
      err.headers,
    );
  });

  app.get("/static/htmx.min.js", fileHandler(packageFile("htmx.org", "dist/htmx.min.js"), JS));
  app.get("/static/sse.js", fileHandler(packageFile("htmx-ext-sse", "dist/sse.min.js"), JS));
  app.get("/static/app.css", fileHandler(join(import.meta.dir, "static/app.css"), "text/css; charset=utf-8"));
  app.get("/static/favicon.svg", fileHandler(join(import.meta.dir, "static/favicon.svg"), "image/svg+xml"));

  // Login: only asked for once API keys exist (before that, loopback clients need none: protected mode).
  app.get("/login", (c) => c.html(<LoginPage next={returnTo(c.req.query("next"), "/ui")} error={null} />));
  app.post("/login", async (c) => {
    // Limited like the API, per client address and loopback included: guessing keys costs a minute per N tries.
    await opts.loginRateLimit?.({ kind: "ip", id: `login:${c.get("clientIp") ?? "local"}` });
    const form = await c.req.parseBody();
    const next = returnTo(form.next, "/ui");
    const key = await verifyKeyScope(db, text(form.key), "read");
    if (!key) return c.html(<LoginPage next={next} error="That key is not valid (unknown, revoked or expired)." />, 401);
    // The cookie holds a random session token, never the key. HttpOnly: no script can read it; SameSite=Strict:
    // no other site's page can send it; Path: only the dashboard; Secure whenever the client came over TLS.
    const token = await createSession(db, key.id, opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS);
    setCookie(c, UI_SESSION_COOKIE, token, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/ui",
      secure: c.get("tls") === true,
      maxAge: Math.floor((opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS) / 1000),
    });
    return c.redirect(next, 303);
  });
  app.post("/logout", async (c) => {
    // Signed out for good: the session is revoked server-side, not only forgotten by this browser.
    const token = getCookie(c, UI_SESSION_COOKIE);
    if (token) await revokeSession(db, token);
    deleteCookie(c, UI_SESSION_COOKIE, { path: "/ui" });
    return c.redirect("/ui/login", 303);
  });

  // Pages that read the analytics data (a site's calendar and charts, insights, queries) are heavy requests
  // like the API's: the caller's concurrency (429 past it), the time limit, the row and byte caps and
  // cancellation when the browser leaves (docs/security.md, "Cost bounds"). Their reads go through `bdb`:
  // SQLite's in the query processes (off this event loop), PostgreSQL's in bounded cursors.
  const bounds = opts.bounds ?? defaultBounds;
  const bdb = boundedDb(db);
  // Keyless callers (this machine's, protected mode) take no place, as on /mcp.
  for (const path of ["/sites/:id", "/insights", "/queries"]) app.get(path, heavyRequest(bounds, "query", { keysOnly: true }));
  // The sites list reads a bounded number of small rows per site: its budget, without taking a place.
  app.get("/sites", heavyRequest(bounds, "query", { unplaced: true }));

  const overview = (c: Context) => loadOverview(db, opts.metrics, opts.walWarnBytes, accessOf(c).admin);

  app.get("/", async (c) =>
    c.html(
      <Layout title="Overview" active="/ui" who={accessOf(c).who}>
        <Live src="/ui/overview/stream" event="overview" label="Live overview">
          <OverviewBody o={await overview(c)} />
        </Live>
      </Layout>,
    ),
  );
  const keepAliveMs = opts.keepAliveMs ?? 5000;
  app.get("/overview/stream", (c) => live(c, "overview", 2000, keepAliveMs, async () => <OverviewBody o={await overview(c)} />));

  app.get("/sites", async (c) =>
    c.html(
      <Layout title="Sites" active="/ui/sites" notice={notice(c)} who={accessOf(c).who}>
        {await sitesPage(c, c.req.query("q") ?? "", c.req.query("cursor"))}
      </Layout>,
    ),
  );

  app.post("/sites", async (c) => {
    const form = await c.req.parseBody();
    const draft: SiteDraft = { domain: text(form.domain), name: text(form.name), category: text(form.category) };
    const parsed = CreateSiteSchema.safeParse({ domain: draft.domain, name: draft.name, category: draft.category || undefined });
    let error: ApiError;
    if (parsed.success) {
      try {
        const site = await createSite(db, parsed.data);
        return c.redirect(`/ui/sites/${site.id}?notice=site-added`, 303);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        error = err;
      }
    } else {
      error = new ApiError("validation_failed", parsed.error.issues.map((i) => `${String(i.path[0] ?? "form")}: ${i.message}`).join("; "));
    }
    return c.html(
      <Layout title="Sites" active="/ui/sites" error={error.message} who={accessOf(c).who}>
        {await sitesPage(c, "", undefined, draft)}
      </Layout>,
      error.status,
    );
  });

  /**
   * A site's calendar window: its days, their states and rows, and (with `charts`) the daily totals
   * behind the charts: Search Console's web property totals (anonymized queries included).
   */
  async function coverageOf(id: number, charts = false) {
    const end = newestDataDay();
    const start = addDays(end, -(SITE_DAYS - 1));
    const days = dayRange(start, end);
    const [markers, totals, failed, property, complete] = await Promise.all([
      findSyncedDays(bdb, id, start, end),
      findDailyTotals(bdb, id, start, end),
      listJobs(bdb, { activeOnly: false, siteId: id, status: "failed", limit: 100 }),
      charts ? findPropertyDays(bdb, { siteId: id, start, end, searchType: "web" }) : [],
      listCompletenessDays(bdb, id, start, end),
    ]);
    const completeness = new Map(complete.map((c) => [c.date, c]));
    const finalDays = new Set([...markers.values()].map((m) => m.date));
    const rowsByDay = new Map(totals.map((t) => [t.date, t.rows]));
    const failedRanges = failed.jobs.flatMap((j) => (j.start_date && j.end_date ? [{ start: j.start_date, end: j.end_date }] : []));
    const states = dayStates(days, finalDays, rowsByDay, failedRanges);
    // Chart values: the days with rows, and the days synced completely with none (a real 0); any other day is a gap.
    const clicks = new Map<string, number>();
    const impressions = new Map<string, number>();
    for (const d of finalDays) {
      clicks.set(d, 0);
      impressions.set(d, 0);
    }
    for (const t of property) {
      clicks.set(t.date, t.clicks);
      impressions.set(t.date, t.impressions);
    }
    return { start, end, days, states, rowsByDay, clicks, impressions, completeness };
  }

  const calendarOf = async (id: number) => {
    const cov = await coverageOf(id);
    return (
      <CoverageCalendar start={cov.start} end={cov.end} states={cov.states} rowsByDay={cov.rowsByDay} completeness={cov.completeness} />
    );
  };

  app.get("/sites/:id", async (c) => {
    const id = pathId(c.req.param("id"));
    const site = await findSiteById(db, id);
    if (!site) throw siteNotFound(id);
    const [cov, recent, sitemaps, inspections] = await Promise.all([
      coverageOf(id, true),
      listJobs(db, { activeOnly: false, siteId: id, limit: 10 }),
      listSitemaps(bdb, id, { current: true }),
      listLatestInspections(bdb, id, { limit: 200 }),
    ]);
    const here = `/ui/sites/${id}`;
    const canWrite = accessOf(c).write;
    return c.html(
      <Layout title={site.name} active="/ui/sites" notice={notice(c)} who={accessOf(c).who}>
        <SitePage
          site={site}
          canWrite={canWrite}
          calendar={
            <Live src={`/ui/sites/${id}/calendar/stream`} event="calendar" label={`Live coverage of ${site.name}`}>
              <CoverageCalendar
                start={cov.start}
                end={cov.end}
                states={cov.states}
                rowsByDay={cov.rowsByDay}
                completeness={cov.completeness}
              />
            </Live>
          }
          charts={
            <>
              <LineChart title="Clicks" series="clicks" days={cov.days} values={cov.clicks} />
              <LineChart title="Impressions" series="impressions" days={cov.days} values={cov.impressions} />
            </>
          }
          index={<IndexStatusSections siteId={id} sitemaps={sitemaps} inspections={inspections} />}
          jobs={
            <Live src={`/ui/jobs/stream?site_id=${id}&limit=10`} event="jobs" label={`Live jobs of ${site.name}`}>
              <JobsTable jobs={recent.jobs.map(toJob)} total={recent.total} returnTo={here} canWrite={canWrite} />
            </Live>
          }
        />
      </Layout>,
    );
  });

  app.get("/sites/:id/calendar/stream", (c) => {
    const id = pathId(c.req.param("id"));
    return live(c, "calendar", LIVE_MS, keepAliveMs, () => calendarOf(id), bounds);
  });

  app.post("/sites/:id/active", async (c) => {
    const id = pathId(c.req.param("id"));
    const form = await c.req.parseBody();
    await updateSite(db, id, { is_active: text(form.is_active) === "true" });
    return c.redirect(withNotice(returnTo(form.return_to, `/ui/sites/${id}`), "site-updated"), 303);
  });

  app.post("/sites/:id/sync", async (c) => {
    const id = pathId(c.req.param("id"));
    const form = await c.req.parseBody();
    const parsed = SyncFormSchema.safeParse({ days: text(form.days), sync_mode: text(form.sync_mode) });
    if (!parsed.success) throw new ApiError("validation_failed", parsed.error.issues.map((i) => i.message).join("; "));
    const task = await queueDailySync(db, {
      siteId: id,
      days: parsed.data.days,
      syncMode: parsed.data.sync_mode,
      maxAttempts: opts.maxAttempts,
    });
    // Back to the site page: its calendar and job list are live, so the days fill in as they are stored.
    return c.redirect(withNotice(`/ui/sites/${id}`, "sync-queued", task.id), 303);
  });

  app.get("/jobs", async (c) => {
    const filters = jobFilters(c);
    const [page, sites] = await Promise.all([jobsPage(filters, 50), listSites(db, { activeOnly: false, limit: 500 })]);
    const here = `/ui/jobs${filterQuery(filters)}`;
    return c.html(
      <Layout title="Jobs" active="/ui/jobs" notice={notice(c)} who={accessOf(c).who}>
        <JobFilterForm filters={filters} sites={sites.items} />
        <Live src={`/ui/jobs/stream${filterQuery(filters)}`} event="jobs" label="Live job list">
          <JobsTable jobs={page.jobs} total={page.total} returnTo={here} canWrite={accessOf(c).write} />
        </Live>
      </Layout>,
    );
  });

  app.get("/jobs/stream", (c) => {
    const filters = jobFilters(c);
    const limit = c.req.query("limit") === "10" ? 10 : 50;
    const back = filters.site_id !== undefined && limit === 10 ? `/ui/sites/${filters.site_id}` : `/ui/jobs${filterQuery(filters)}`;
    return live(c, "jobs", LIVE_MS, keepAliveMs, async () => {
      const page = await jobsPage(filters, limit);
      return <JobsTable jobs={page.jobs} total={page.total} returnTo={back} canWrite={accessOf(c).write} />;
    });
  });

  app.post("/jobs/:id/cancel", async (c) => {
    const id = pathId(c.req.param("id"));
    const form = await c.req.parseBody();
    await cancelJob(db, id);
    return c.redirect(withNotice(returnTo(form.return_to, "/ui/jobs"), "job-cancelled", id), 303);
  });

  app.post("/jobs/:id/retry", async (c) => {
    const id = pathId(c.req.param("id"));
    const form = await c.req.parseBody();
    const job = await findJob(db, id);
    if (!job) throw jobNotFound(id);
    if (job.status !== "failed" && job.status !== "cancelled") {
      throw new ApiError("conflict", `job ${id} is ${job.status}: only a failed or cancelled job can be retried`);
    }
    // A new task over the same range and settings: the failed one stays as it was, with its error.
    const task = await createTask(db, {
      siteId: job.site_id,
      taskType: job.task_type,
      startDate: job.start_date ?? dayOf(new Date()),
      endDate: job.end_date ?? dayOf(new Date()),
      params: job.params,
      runAt: new Date(),
      maxAttempts: opts.maxAttempts,
    });
    return c.redirect(withNotice(returnTo(form.return_to, "/ui/jobs"), "job-retried", task.id), 303);
  });

  app.get("/insights", async (c) => {
    const sites = (await listSites(db, { activeOnly: false, limit: 500 })).items;
    const q = c.req.query();
    const siteId = formId.safeParse(q.site_id).data ?? sites[0]?.id;
    const device = ["DESKTOP", "MOBILE", "TABLET"].includes(q.device ?? "") ? q.device! : "";
    const form: InsightsForm = {
      site_id: siteId,
      start: q.start ?? "",
      end: q.end ?? "",
      device,
      country: (q.country ?? "").trim().toLowerCase(),
      search_type: (searchTypeCodes as readonly string[]).includes(q.search_type ?? "") ? q.search_type! : "web",
      compare_by: q.compare_by === "query" ? "query" : "page",
    };
    let error: string | null = null;
    let data = null;
    if (siteId !== undefined) {
      if ((form.start && !isDate(form.start)) || (form.end && !isDate(form.end))) error = "Dates must be YYYY-MM-DD.";
      else if (form.country && !/^[a-z]{3}$/.test(form.country))
        error = "Country: an ISO 3166-1 alpha-3 code such as usa, deu or fra (Search Console's own codes).";
      else if (form.search_type === "discover" && device) error = "Discover has no device dimension: choose all devices.";
      else {
        const country = form.country || undefined;
        const search_type = form.search_type;
        const w = { start: form.start || undefined, end: form.end || undefined, device: device || undefined, country, search_type };
        // The query detail has no country (Search Console's 50,000-row cap), and discover and googleNews have no
        // query at all: then the query reports are not shown (the API answers them 400), the totals and page
        // reports are.
        const noQueries = country !== undefined || search_type === "discover" || search_type === "googleNews";
        const byQuery = <T,>(run: () => Promise<T>) => (noQueries ? Promise.resolve(null) : run());
        const [overview, compare, decay, cannibalization, brand, topQueries, topPages, index] = await Promise.all([
          insights.overviewInsight(bdb, siteId, w),
          // The comparison: the window's period against the one as long just before (default 28 vs 28).
          noQueries && form.compare_by === "query"
            ? null
            : insights.compareInsight(bdb, siteId, {
                by: form.compare_by,
                current_start: w.start,
                current_end: w.end,
                search_type,
                device: w.device,
                country,
                limit: 10,
              }),
          insights.decayInsight(bdb, siteId, {
            end: w.end,
            weeks: 8,
            min_drop: 0.2,
            min_clicks: 10,
            search_type,
            device: w.device,
            country,
            limit: 20,
          }),
          byQuery(() => insights.cannibalizationInsight(bdb, siteId, { ...w, min_share: 0.1, min_impressions: 50, limit: 20 })),
          byQuery(() => insights.brandInsight(bdb, siteId, w)),
          byQuery(() => insights.topInsight(bdb, siteId, { ...w, by: "query", limit: 10 })),
          insights.topInsight(bdb, siteId, { ...w, by: "page", limit: 10 }),
          insights.indexInsight(bdb, siteId, { ...w, limit: 20 }),
        ]);
        data = { overview, compare, decay, cannibalization, brand, topQueries, topPages, index };
      }
    }
    return c.html(
      <Layout title="Insights" active="/ui/insights" error={error} notice={notice(c)} who={accessOf(c).who}>
        {sites.length === 0 ? (
          <p>No sites yet: add one on the Sites page.</p>
        ) : (
          <InsightsPage sites={sites} form={form} data={data} canWrite={accessOf(c).write} />
        )}
      </Layout>,
      error ? 400 : 200,
    );
  });

  app.post("/sites/:id/brand-terms", async (c) => {
    const id = pathId(c.req.param("id"));
    if (!(await findSiteById(db, id))) throw siteNotFound(id);
    const form = await c.req.parseBody();
    const terms = text(form.terms)
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    const parsed = BrandTermsBody.safeParse({ terms });
    if (!parsed.success) throw new ApiError("validation_failed", `brand terms: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
    await replaceBrandTerms(db, id, parsed.data.terms);
    return c.redirect(withNotice(`/ui/insights?site_id=${id}`, "brand-terms-saved"), 303);
  });

  /** The alerts page for admins (a channel makes this server send requests and mail). */
  const alertsPage = async (c: Context, extra: { notice?: string; error?: string } = {}, status: 200 | 400 = 200) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    const [sites, channels, rules, deliveries] = await Promise.all([
      listSites(db, { activeOnly: false, limit: 500 }),
      listChannels(db),
      listRules(db),
      listDeliveries(db, 50),
    ]);
    return c.html(
      <Layout title="Alerts" active="/ui/alerts" notice={extra.notice ?? notice(c)} error={extra.error} who={accessOf(c).who}>
        <AlertsPage sites={sites.items} channels={channels} rules={rules} deliveries={deliveries} />
      </Layout>,
      status,
    );
  };
  app.get("/alerts", (c) => alertsPage(c));

  // Google accounts and property discovery: the accounts, what each sees, and the import buttons.
  const googlePage = async (c: Context, outcomes: ImportOutcome[] | null, error?: string) => {
    // Read-only (a GET): this machine's sign-ins are registered by "Ask Search Console again" (a POST), the
    // dashboard's sign-in, `auth login` and the sync workers; one not registered yet is named on the page.
    const google = opts.google;
    const local = google?.localSignIns();
    const sa = google?.serviceAccountEmail() ?? null;
    const [accounts, bindings, properties] = await Promise.all([listGoogleAccounts(db), listSiteBindings(db), listVisibleProperties(db)]);
    const rows = accounts.map((a) => ({
      ...a,
      on_this_machine: a.kind === "user" ? (local?.has(a.email.toLowerCase()) ?? false) : sa === a.email,
      sites: bindings.filter((b) => b.account_id === a.id).map((b) => ({ id: b.site_id, domain: b.domain })),
    }));
    const known = new Set(accounts.map((a) => a.email.toLowerCase()));
    const unregistered = [...(local?.keys() ?? [])].filter((e) => !known.has(e));
    if (sa && !known.has(sa.toLowerCase())) unregistered.push(sa);
    const access = accessOf(c);
    return c.html(
      <Layout title="Google" active="/ui/google" notice={notice(c)} error={error} who={access.who}>
        <GooglePage
          accounts={rows}
          properties={properties}
          outcomes={outcomes}
          canWrite={access.write}
          canRemove={access.admin}
          unregistered={unregistered}
        />
      </Layout>,
    );
  };
  const needGoogle = () => {
    if (!opts.google) throw new ApiError("unavailable", "Google accounts are not configured in this process");
    return opts.google;
  };
  app.get("/google", (c) => googlePage(c, null));
  app.post("/google/refresh", async (c) => {
    await needGoogle().refresh();
    return c.redirect("/ui/google", 303);
  });
  app.post("/google/import", async (c) => {
    const form = await c.req.parseBody();
    const one = text(form.site_url);
    const outcomes = await importProperties(db, needGoogle(), {
      siteUrls: one ? [one] : undefined,
      backfill: true,
      maxAttempts: opts.maxAttempts,
    });
    return googlePage(c, outcomes);
  });
  // Signing in with Google from the dashboard (admin): the OAuth web flow with PKCE, redirecting back to
  // /ui/google/callback. The state and verifier ride in a short-lived HttpOnly cookie (SameSite=Lax: it
  // comes back on Google's top-level redirect, where the Strict session cookie does not), so the callback
  // (an open path) completes only the sign-in this browser started.
  const callbackOf = (c: Context) => {
    const url = new URL(c.req.url);
    return `${c.get("tls") ? "https:" : url.protocol}//${url.host}/ui/google/callback`;
  };
  app.get("/google/signin", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "adding a Google account needs an admin key");
    const { url, state, verifier } = await needGoogle().beginSignIn(callbackOf(c));
    setCookie(c, GOOGLE_SIGNIN_COOKIE, `${state}.${verifier}`, {
      httpOnly: true,
      sameSite: "Lax",
      path: "/ui/google/callback",
      secure: c.get("tls") === true,
      maxAge: 600,
    });
    return c.redirect(url, 302);
  });
  app.get("/google/callback", async (c) => {
    const [state, verifier] = (getCookie(c, GOOGLE_SIGNIN_COOKIE) ?? "").split(".");
    deleteCookie(c, GOOGLE_SIGNIN_COOKIE, { path: "/ui/google/callback" });
    const q = c.req.query();
    if (q.error) throw new ApiError("validation_failed", `Google did not grant access: ${q.error}`);
    if (!state || !verifier || q.state !== state || !q.code)
      throw new ApiError(
        "validation_failed",
        "this sign-in was not started from this browser (or took over 10 minutes): start it again from the Google page",
      );
    const r = await needGoogle().finishSignIn(q.code, verifier, callbackOf(c));
    return c.redirect(`/ui/google?notice=google-signed-in&account=${encodeURIComponent(r.account ?? "")}`, 303);
  });
  app.post("/google/accounts/:id/remove", async (c) => {
    await needGoogle().remove(pathId(c.req.param("id")));
    return c.redirect("/ui/google", 303);
  });
  app.post("/alerts/channels", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    const form = await c.req.parseBody({ all: true });
    const events = ([] as unknown[]).concat(form.events ?? []).map(String);
    const siteId = formId.safeParse(text(form.site_id)).data ?? null;
    const kind = text(form.kind) === "email" ? "email" : "webhook";
    const target = text(form.target);
    const valid = kind === "webhook" ? /^https?:\/\/[^\s/]+/i.test(target) : /^[^\s@]+@[^\s@]+$/.test(target);
    const known = events.every((e) => (alertKinds as readonly string[]).includes(e));
    if (!valid || !known || target.length > 2048) {
      return alertsPage(c, { error: kind === "webhook" ? "A webhook needs an http(s) URL." : "An e-mail channel needs an address." }, 400);
    }
    const secret = kind === "webhook" ? randomBytes(24).toString("hex") : null;
    const ch = await createChannel(db, { kind, target, secret, events: events as AlertKind[], site_id: siteId });
    // The secret is shown here once (never again): the receiver verifies X-Sitesync-Signature with it.
    return alertsPage(c, {
      notice: secret ? `Channel ${ch.id} added. Its signing secret (shown once): ${secret}` : `Channel ${ch.id} added.`,
    });
  });
  app.post("/alerts/channels/:id/delete", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    await deleteChannel(db, pathId(c.req.param("id")));
    return c.redirect(withNotice("/ui/alerts", "alert-removed"), 303);
  });
  app.post("/alerts/channels/:id/test", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    const ch = await findChannel(db, pathId(c.req.param("id")));
    if (!ch) throw new ApiError("not_found", "alert channel not found");
    await raiseTestAlert(db, ch);
    return c.redirect(withNotice("/ui/alerts", "alert-test"), 303);
  });
  app.post("/alerts/rules", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    const form = await c.req.parseBody();
    const siteId = formId.safeParse(text(form.site_id)).data;
    const drop = Number(text(form.drop_pct));
    const minClicks = Number(text(form.min_clicks));
    if (siteId === undefined || !(drop >= 1 && drop <= 99) || !(Number.isInteger(minClicks) && minClicks >= 1)) {
      return alertsPage(c, { error: "A rule needs a site, a drop between 1 and 99 % and at least 1 click." }, 400);
    }
    if (!(await findSiteById(db, siteId))) throw siteNotFound(siteId);
    await upsertRule(db, {
      site_id: siteId,
      scope: text(form.scope) === "page" ? "page" : "site",
      drop_share: drop / 100,
      min_clicks: minClicks,
    });
    return c.redirect(withNotice("/ui/alerts", "alert-rule-set"), 303);
  });
  app.post("/alerts/rules/:id/delete", async (c) => {
    if (!accessOf(c).admin) throw new ApiError("forbidden", "alerts need an admin key");
    await deleteRule(db, pathId(c.req.param("id")));
    return c.redirect(withNotice("/ui/alerts", "alert-removed"), 303);
  });

  app.get("/queries", async (c) => {
    const sites = (await listSites(db, { activeOnly: false, limit: 500 })).items;
    const q = c.req.query();
    // Before any search: the first site's top queries, so the page is never blank.
    const siteId = formId.safeParse(q.site_id).data ?? sites[0]?.id;
    const form = { site_id: siteId, q: q.q ?? "", start: q.start ?? "", end: q.end ?? "" };
    let error: string | null = null;
    let result = null;
    let top = null;
    if (form.site_id !== undefined) {
      if ((form.start && !isDate(form.start)) || (form.end && !isDate(form.end))) error = "Dates must be YYYY-MM-DD.";
      else if (form.q.length > 200) error = "The search term is longer than 200 characters.";
      else if (CONTROL_CHARACTERS.test(form.q)) error = "The search term contains control characters.";
      else {
        if (!(await findSiteById(db, form.site_id))) throw siteNotFound(form.site_id);
        if (form.q.trim() === "") {
          const end = form.end || ((await findNewestDataDay(bdb, form.site_id, "web")) ?? newestDataDay());
          const start = form.start || addDays(end, -27);
          const rows = await findTop(bdb, { siteId: form.site_id, start, end, searchType: "web", by: "query", limit: 50 });
          top = { start, end, rows: rows as TopQueryRow[] };
        } else {
          result = await searchQueries(bdb, {
            siteId: form.site_id,
            term: form.q,
            startDate: form.start || null,
            endDate: form.end || null,
            limit: 100,
          });
        }
      }
    }
    return c.html(
      <Layout title="Queries" active="/ui/queries" error={error} who={accessOf(c).who}>
        {sites.length === 0 ? <p>No sites yet.</p> : <QueriesPage sites={sites} form={form} result={result} top={top} />}
      </Layout>,
      error ? 400 : 200,
    );
  });

  async function sitesPage(c: Context, q: string, cursor: string | undefined, draft: SiteDraft = { domain: "", name: "", category: "" }) {
    const term = q.trim();
    let items;
    let more: string | null = null;
    if (term) items = await searchSites(bdb, { term, limit: 200 });
    else {
      const page = await listSites(db, { activeOnly: false, limit: 100, cursor: cursor ? decodeCursor(cursor) : undefined });
      items = page.items;
      if (page.next) more = `/ui/sites?cursor=${encodeCursor(page.next)}`;
    }
    const end = addDays(dayOf(new Date()), -FINAL_LAG_DAYS);
    const start = addDays(end, -(COVERAGE_DAYS - 1));
    const [last, covered] = await Promise.all([findLastSyncs(bdb), countSyncedDaysBySite(bdb, start, end)]);
    const sites = items.map((s) => ({
      ...s,
      last_completed_at: last.get(s.id)?.last_completed_at ?? null,
      latest_status: last.get(s.id)?.latest_status ?? null,
      covered_days: covered.get(s.id) ?? 0,
    }));
    return (
      <SitesPage
        q={term}
        sites={sites}
        window={{ days: COVERAGE_DAYS, start, end }}
        draft={draft}
        more={more}
        canWrite={accessOf(c).write}
      />
    );
  }

  async function jobsPage(f: JobFilters, limit: number) {
    const page = await listJobs(db, { activeOnly: f.active_only, siteId: f.site_id, status: f.status, limit });
    return { total: page.total, jobs: page.jobs.map(toJob) };
  }

  return app;
}

/** What the caller may do here: a key's scope decides; without keys (protected mode, AUTH=off) everything. */
function accessOf(c: Context): { write: boolean; admin: boolean; who: { name: string; scope: KeyScope } | null } {
  const p = principalOf(c);
  if (p?.kind !== "key") return { write: true, admin: true, who: null };
  return {
    write: scopeAllows(p.key.scope, "write"),
    admin: scopeAllows(p.key.scope, "admin"),
    who: { name: p.key.name, scope: p.key.scope },
  };
}

/**
 * An SSE response that sends `render()` as `event` now and whenever it changes, checking every `everyMs`;
 * after `keepAliveMs` without sending, a comment line, so the server's idle timeout never cuts the stream.
 * With `bounds`, each render is a bounded turn (analytics/bounds.ts, boundedTurn): its own time limit and
 * caps, one of the caller's places while it runs; a turn refused (places taken, time limit, caps) keeps
 * what was sent and tries again at the next check.
 */
function live(c: Context, event: string, everyMs: number, keepAliveMs: number, render: () => Promise<Child>, bounds?: Bounds) {
  return streamSSE(c, async (stream) => {
    let stopped = false;
    const stop = () => {
      stopped = true;
    };
    openStreams.add(stop);
    stream.onAbort(stop);
    let last = "";
    let sentAt = Date.now();
    // Keep-alives on a timer of their own, not between renders: a render slower than keepAliveMs (a loaded database)
    // left the connection silent past the idle timeout, and Bun closed it (seen at load ~19 with HTTP_IDLE_TIMEOUT_S=2).
    const beat = setInterval(
      () => {
        if (stopped || stream.aborted || Date.now() - sentAt < keepAliveMs) return;
        sentAt = Date.now();
        // Chunks are written whole and in order: a comment between two events keeps the stream valid.
        stream.write(": keep-alive\n\n").catch(() => {});
      },
      Math.max(100, keepAliveMs / 4),
    );
    try {
      while (!stopped && !stream.aborted) {
        // null: a bounded turn refused (nothing new to send this time).
        let html: string | null;
        try {
          html = bounds ? await boundedRender(c, bounds, render) : String(await render());
        } catch (err) {
          // The client left (or the worker drains) during the render: nobody waits for it any more.
          if (stopped || stream.aborted) break;
          throw err;
        }
        if (html !== null && html !== last) {
          await stream.writeSSE({ event, data: html });
          last = html;
          sentAt = Date.now();
        }
        await stream.sleep(Math.min(everyMs, keepAliveMs));
      }
    } finally {
      clearInterval(beat);
      openStreams.delete(stop);
    }
  });
}

/** One bounded render of a live part, or null when the turn was refused (see live). */
async function boundedRender(c: Context, bounds: Bounds, render: () => Promise<Child>): Promise<string | null> {
  try {
    const html = await boundedTurn(c, bounds, render);
    return html === null ? null : String(html);
  } catch (e) {
    // The time limit, the caps, or the client gone (the loop ends as it sees the stream aborted).
    if (apiErrorOf(e)) return null;
    throw e;
  }
}

function text(v: unknown): string {
  return typeof v === "string" ? v.trim() : "";
}

function pathId(raw: string): number {
  const id = formId.safeParse(raw);
  if (!id.success) throw new ApiError("validation_failed", `invalid id '${raw}': expected a positive integer`);
  return id.data;
}

function jobFilters(c: Context): JobFilters {
  const f = JobFilterSchema.parse(c.req.query());
  return { status: f.status, site_id: f.site_id, active_only: f.active_only === "true" };
}

/** Where a form asked to go back to: a dashboard path only (never another site). */
function returnTo(v: unknown, fallback: string): string {
  const s = text(v);
  return /^\/ui(\/|\?|$)/.test(s) && !s.startsWith("//") ? s : fallback;
}

/** `path` with the notice to show there (replacing one it may already carry). */
function withNotice(path: string, key: keyof typeof notices, id?: number): string {
  const url = new URL(path, "http://ui.invalid");
  url.searchParams.set("notice", key);
  if (id === undefined) url.searchParams.delete("id");
  else url.searchParams.set("id", String(id));
  return url.pathname + url.search;
}

function notice(c: Context): string | null {
  const f = notices[c.req.query("notice") ?? ""];
  return f ? f(formId.safeParse(c.req.query("id")).data?.toString() ?? "") : null;
}
