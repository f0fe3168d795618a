import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, Hono, MiddlewareHandler, NotFoundHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { authMiddleware, defaultAuthOptions, type AuthOptions, type RateLimit } from "./auth/middleware.ts";
import { createGoogleAccounts, type GoogleAccounts } from "./google/accounts.ts";
import { auditedDb, auditMiddleware } from "./audit/context.ts";
import { backupDirOf } from "./backup/backup.ts";
import type { BackupApiOptions } from "./backup/routes.ts";
import { defaults } from "./config.ts";
import type { Bounds } from "./analytics/bounds.ts";
import { defaultSocketTimeoutS, idleTimeoutFirst } from "./analytics/idle-timeout.ts";
import { compatPath } from "./compat/paths.ts";
import { withRideThrough } from "./db/availability.ts";
import type { Db } from "./db/index.ts";
import { defaultGscProbe, type GscProbe } from "./diagnostics/gsc-probe.ts";
import { healthRoutes } from "./diagnostics/health.ts";
import { apiInfoRoutes, scalarRoutes } from "./docs.ts";
import { ApiError, apiErrorOf, dbErrorCode, errorBody, isBusyError, isStorageError, type ErrorCode } from "./errors.ts";
import { IDEMPOTENT_METHODS, idempotencyMiddleware } from "./idempotency/middleware.ts";
import { log, logOncePer } from "./log.ts";
import type { McpOptions } from "./mcp/tools.ts";
import type { Registry } from "./metrics/prom.ts";
import { observeHttpRequest, registry } from "./metrics/registry.ts";
import { createRouter, validationHook } from "./openapi.ts";
import { createFastPath } from "./http/fast-path.ts";
import { createPgFastPath } from "./http/pg-fast-path.ts";
import { requestFrame } from "./request-frame.ts";
import type { SyncApiOptions } from "./sync/routes.ts";
import { uiLoginRedirect } from "./ui/entry.ts";
import { mountGroups, mountLazy, type RouteGroup, type RouteTable } from "./lazy-routes.ts";

export const MAX_BODY_BYTES = 1024 * 1024;

const openApiInfo = {
  openapi: "3.1.0",
  info: {
    title: "sitesync",
    version: "0.1.0",
    description: "Registry of web sites and their Search Console syncs, served by several processes over one SQLite file.",
  },
};

export type AppOptions = {
  /** Log one JSON line per request. */
  requestLog?: boolean;
  /** WAL size past which check-locks recommends a look. */
  walWarnBytes?: number;
  /** Settings of the sync API (max_attempts of the tasks it creates). */
  sync?: SyncApiOptions;
  /**
   * The /metrics exposition: under the supervisor, every process's metrics merged (null: it did not
   * answer in time); unset, this process's own.
   */
  metrics?: () => Promise<Registry | null>;
  /** Who may call (default: protected mode, loopback = 127.0.0.0/8 and ::1). */
  auth?: AuthOptions;
  /** Shared request rate limit, asked once per identified caller. */
  rateLimit?: RateLimit;
  /** Dashboard sign-in attempts per client address (LOGIN_ATTEMPTS_PER_MINUTE). */
  loginRateLimit?: RateLimit;
  /** How long a dashboard session lasts (UI_SESSION_TTL). */
  sessionTtlMs?: number;
  /** Seconds Bun.serve lets a connection stay silent (HTTP_IDLE_TIMEOUT_S): the dashboard's live streams send a keep-alive well within it. */
  idleTimeoutS?: number;
  /** Cost bounds of analytics, search and downloads (ANALYTICS_*, EXPORT_CONCURRENCY_PER_KEY). */
  bounds?: Bounds;
  /** Limits of the MCP `query` tool. */
  mcp?: McpOptions;
  /** Where POST/GET /api/v1/admin/backups put and find backups (default: backups/ beside the file). */
  backups?: BackupApiOptions | null;
  /** The Google accounts (several sign-ins, the service account) and their properties (default: from the default settings). */
  google?: GoogleAccounts;
  /** Checks Search Console access for test-gsc-connection (default: the demo source, nothing to check). */
  gscProbe?: GscProbe;
  /** Browser origins allowed by CORS (CORS_ORIGINS): `*` for any, else a list; none when unset or empty. */
  corsOrigins?: "*" | string[];
  /**
   * Wraps each middleware of the stack by name (bench/request-path.ts times them one by one); unset,
   * the middleware is used as it is.
   */
  step?: (name: string, mw: MiddlewareHandler) => MiddlewareHandler;
  /** Answer plain keyless reads and creates of sites before Hono (src/http/fast-path.ts, pg-fast-path.ts); default on (off with `step`). */
  fastPath?: boolean;
  /** The route groups' routes, read without loading them (the start bundle's routes.json); unset, every group is loaded at once to read them. */
  routeTable?: RouteTable;
};

type GoogleRoutes = typeof import("./google/routes.ts");

/** Builds the HTTP application over one process's database handle. */
export function createApp(db: Db, opts: AppOptions = {}) {
  // Routing ignores trailing slashes and maps the original's old paths to today's (src/compat).
  const app = new OpenAPIHono({ getPath: compatPath, defaultHook: validationHook });
  const step = opts.step ?? ((_name: string, mw: MiddlewareHandler) => mw);

  // The request path, composed once from the configuration: a middleware the configuration does not
  // need is not mounted at all (no per-request test of a setting). One line per middleware, in order.
  // Request id, log context, metrics, security headers and the request log: one frame (src/request-frame.ts).
  app.use(step("frame", requestFrame({ observe: observeHttpRequest, requestLog: opts.requestLog })));
  // Before anything that can wait (the ride-through, the auth's queries): a GET's connection gets a heavy request's
  // idle timeout until no heavy route took it (src/analytics/idle-timeout.ts); not mounted when HTTP_IDLE_TIMEOUT_S covers the limits.
  const heavyS = opts.bounds ? opts.bounds.socketTimeoutS : defaultSocketTimeoutS;
  if (heavyS !== null)
    app.on(["GET", "HEAD"], "*", step("idle-timeout", idleTimeoutFirst(heavyS, opts.idleTimeoutS ?? defaults.HTTP_IDLE_TIMEOUT_S)));
  // PostgreSQL: one ride-through budget per request for waiting on an unreachable server (src/db/availability.ts).
  if (db.engine === "pg") app.use(step("ride-through", (_c, next) => withRideThrough(db.availability.rideThroughMs, next)));
  // Before auth: a preflight carries no credentials and is answered here; refusals get the CORS headers too.
  const cors = corsFor(opts.corsOrigins);
  if (cors) app.use(step("cors", cors));
  // Before auth, so refused writes are recorded too; the auth middleware reads and never writes.
  app.use(step("audit", auditMiddleware(db)));
  // The dashboard's pages answer a missing key with its login page rather than a JSON 401.
  app.use("/ui/*", step("ui-login", uiLoginRedirect));
  // CORS_ORIGINS never grants rights: pages of those origins call with a key (see authMiddleware).
  const auth = authMiddleware(db, opts.auth ?? defaultAuthOptions, opts.rateLimit);
  app.use(step("auth", auth));
  // Only where a body is accepted: on every GET it cost ~1 µs of a ~24 µs request (bun run bench).
  app.on(
    ["POST", "PUT", "PATCH"],
    "*",
    step(
      "body-limit",
      bodyLimit({
        maxSize: MAX_BODY_BYTES,
        onError: () => {
          throw new ApiError("payload_too_large", `request body is larger than ${MAX_BODY_BYTES} bytes`);
        },
      }),
    ),
  );

  // Only the methods a key applies to: reads (most requests) skip a step and an async frame.
  app.on(IDEMPOTENT_METHODS, "*", step("idempotency", idempotencyMiddleware(db)));

  // The WAL bound of /health: twice the size the checkpointer truncates at means it is starved.
  app.route("/", healthRoutes(db, { walBoundBytes: 2 * (opts.walWarnBytes ?? defaults.CHECKPOINT_TRUNCATE_BYTES) }));
  // Route handlers write through this handle: each write made for a request carries its audit row.
  const audited = auditedDb(db);
  const google = opts.google ?? createGoogleAccounts(db, defaults);
  const maxAttempts = opts.sync?.maxAttempts ?? defaults.SYNC_MAX_ATTEMPTS;
  // The API's routes in groups, each loaded (its modules imported, its schemas built) by the first request one of its
  // routes takes (src/lazy-routes.ts): a worker builds only the groups its requests need. `require`, not `import`: the
  // app is built synchronously. Full paths from the root; a path belongs to one group.
  const group =
    (base: string, routes: () => Hono<any>): RouteGroup =>
    () =>
      createRouter({ getPath: compatPath }).route(base, routes());
  const groups: RouteGroup[] = [
    group("/api/v1/sites", () => (require("./google/routes.ts") as GoogleRoutes).siteAccountRoutes(audited, google, { maxAttempts })),
    group("/api/v1/sites", () => (require("./sites/routes.ts") as typeof import("./sites/routes.ts")).sitesRoutes(audited)),
    group("/api/v1/sites", () =>
      (require("./sitemaps/routes.ts") as typeof import("./sitemaps/routes.ts")).sitemapsRoutes(audited, { maxAttempts }),
    ),
    group("/api/v1/sites", () =>
      (require("./inspection/routes.ts") as typeof import("./inspection/routes.ts")).inspectionRoutes(audited, { maxAttempts }),
    ),
    group("/api/v1/google", () => (require("./google/routes.ts") as GoogleRoutes).googleRoutes(audited, google, { maxAttempts })),
    group("/api/v1/diagnostics", () =>
      (require("./diagnostics/routes.ts") as typeof import("./diagnostics/routes.ts")).diagnosticsRoutes(db, {
        walWarnBytes: opts.walWarnBytes ?? defaults.CHECKPOINT_TRUNCATE_BYTES,
        gscProbe: opts.gscProbe ?? defaultGscProbe,
      }),
    ),
    group("/api/v1", () => (require("./sync/routes.ts") as typeof import("./sync/routes.ts")).syncRoutes(audited, opts.sync)),
    group("/api/v1", () => (require("./search/routes.ts") as typeof import("./search/routes.ts")).searchRoutes(audited, opts.bounds)),
    group("/api/v1/analytics", () => (require("./hourly/routes.ts") as typeof import("./hourly/routes.ts")).hourlyRoutes(audited)),
    // One group: the compatibility routes run before the analytics routes on the same paths (v2-era ranking-data
    // bodies), and answer the v3 tool endpoints.
    group("/", () =>
      createRouter({ getPath: compatPath })
        .route("/", (require("./compat/routes.ts") as typeof import("./compat/routes.ts")).compatRoutes(audited, opts.bounds))
        .route(
          "/api/v1",
          (require("./analytics/routes.ts") as typeof import("./analytics/routes.ts")).analyticsRoutes(audited, {
            maxAttempts: opts.sync?.maxAttempts,
            bounds: opts.bounds,
          }),
        ),
    ),
    group("/api/v1", () => (require("./insights/routes.ts") as typeof import("./insights/routes.ts")).insightsRoutes(audited, opts.bounds)),
    group("/api/v1/alerts", () => (require("./alerts/routes.ts") as typeof import("./alerts/routes.ts")).alertsRoutes(audited)),
    group("/api/v1/keys", () => (require("./auth/routes.ts") as typeof import("./auth/routes.ts")).keysRoutes(audited)),
    group("/api/v1/pending-writes", () =>
      (require("./idempotency/routes.ts") as typeof import("./idempotency/routes.ts")).pendingWritesRoutes(db),
    ),
    group("/api/v1/audit", () => (require("./audit/routes.ts") as typeof import("./audit/routes.ts")).auditRoutes(db)),
    group("/mcp", () =>
      (require("./mcp/routes.ts") as typeof import("./mcp/routes.ts")).mcpRoutes(
        db,
        opts.mcp ?? {
          queryTimeoutMs: defaults.MCP_QUERY_TIMEOUT_MS,
          queryMaxRows: defaults.MCP_QUERY_MAX_ROWS,
          queryConcurrency: defaults.MCP_QUERY_CONCURRENCY,
        },
        opts.bounds,
      ),
    ),
    group("/api/v1/admin", () =>
      (require("./backup/routes.ts") as typeof import("./backup/routes.ts")).backupRoutes(
        audited,
        opts.backups !== undefined
          ? opts.backups
          : db.engine === "sqlite"
            ? { dir: backupDirOf(db.path), keep: defaults.BACKUP_KEEP, intervalMs: 0 }
            : null,
      ),
    ),
  ];
  const api = mountGroups(app, groups, { table: opts.routeTable, getPath: compatPath });

  const metrics = opts.metrics ?? (async () => registry);
  // The dashboard's modules are loaded by its first request (src/lazy-routes.ts): most workers never serve a page.
  const uiOptions = {
    metrics,
    walWarnBytes: opts.walWarnBytes ?? defaults.CHECKPOINT_TRUNCATE_BYTES,
    maxAttempts,
    sessionTtlMs: opts.sessionTtlMs,
    loginRateLimit: opts.loginRateLimit,
    google,
    keepAliveMs: Math.max(500, ((opts.idleTimeoutS ?? defaults.HTTP_IDLE_TIMEOUT_S) * 1000) / 2),
    bounds: opts.bounds,
  };
  mountLazy(app, "/ui", {
    load: async () => (await import("./ui/routes.tsx")).uiRoutes(audited, uiOptions),
    getPath: compatPath,
    notFound: notRouted,
  });

  // The OpenAPI document of every route, with every group loaded: made by its first request, then kept (the routes
  // do not change while the process runs).
  let document: ReturnType<OpenAPIHono["getOpenAPI31Document"]> | undefined;
  const openApiDocument = () => {
    if (!document) {
      const all = new OpenAPIHono().route("/", app);
      for (const routes of api.loaded()) all.route("/", routes);
      document = all.getOpenAPI31Document(openApiInfo);
    }
    return document;
  };
  app.get("/openapi.json", (c) => c.json(openApiDocument()));
  // The reference page's script comes from node_modules, so /docs works offline (src/docs.ts).
  // The reference pages are HTML too: a CSP that lets them load only from this server (no outside calls).
  const referenceCsp: MiddlewareHandler = async (c, next) => {
    await next();
    c.header(
      "Content-Security-Policy",
      "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    );
  };
  app.use("/docs", referenceCsp);
  app.use("/redoc", referenceCsp);
  app.route("/", scalarRoutes());
  app.route("/", apiInfoRoutes(openApiDocument));

  app.get("/metrics", async (c) => {
    const merged = await metrics();
    if (merged === null) throw new ApiError("unavailable", "the supervisor did not answer the metrics request in time");
    return c.body(await merged.metrics(), 200, { "content-type": registry.contentType });
  });

  app.notFound(notRouted(() => [...app.routes, ...api.routes()]));
  app.onError((err, c) => errorResponse(err, c));

  // The hottest requests answered before Hono when nothing but the plain case applies (src/http/fast-path.ts,
  // and src/http/pg-fast-path.ts on PostgreSQL).
  if (opts.fastPath !== false && !opts.step) {
    const dispatch = app.fetch;
    const fastOpts = {
      keylessPrincipal: auth.keylessPrincipal,
      observe: observeHttpRequest,
      requestLog: opts.requestLog,
      fallback: (req: Request, env: unknown) => dispatch(req, env),
      maxBodyBytes: MAX_BODY_BYTES,
    };
    const fast =
      db.engine === "sqlite"
        ? createFastPath({ ...fastOpts, db, keylessWriter: auth.keylessWriter })
        : createPgFastPath({ ...fastOpts, db });
    app.fetch = (req, env, ctx) => fast(req, env) ?? dispatch(req, env, ctx);
  }
  return app;
}

/**
 * The answer for a path no route takes, given the routes: 405 with Allow when the path exists for other methods,
 * else 404. (Methods Bun's parser does not know, like BREW, never get here: Bun closes the connection.)
 */
function notRouted(routes: () => { method: string; path: string }[]): NotFoundHandler {
  let routed: { method: string; re: RegExp }[] | null = null;
  return (c) => {
    routed ??= routes()
      .filter((r) => r.method !== "ALL" && !r.path.includes("*"))
      .map((r) => ({ method: r.method, re: new RegExp(`^${r.path.replace(/:[^/]+/g, "[^/]+")}/?$`) }));
    const allow = [...new Set(routed.filter((r) => r.re.test(c.req.path)).map((r) => r.method))];
    // OPTIONS is the CORS middleware's (a preflight it does not answer stays 404, as before).
    if (allow.length === 0 || c.req.method === "OPTIONS")
      return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
    c.header("Allow", allow.join(", "));
    return c.json(errorBody("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path} (allowed: ${allow.join(", ")})`), 405);
  };
}

/**
 * Hono's CORS middleware for the allow-list, as the original's Starlette CORSMiddleware answered for
 * `*`: the Origin echoed (never a literal `*`, since credentials are allowed), any method and requested
 * header, preflights cached 600 s. The headers clients need (Location, Link, Retry-After, X-Request-Id) are exposed.
 */
function corsFor(origins: "*" | string[] | undefined): MiddlewareHandler | null {
  if (origins === undefined || (origins !== "*" && origins.length === 0)) return null;
  const allowed = origins === "*" ? null : new Set(origins);
  const handler = cors({
    origin: (origin) => (allowed === null || allowed.has(origin) ? origin : null),
    credentials: true,
    allowMethods: ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"],
    exposeHeaders: ["Location", "Link", "Retry-After", "X-Request-Id"],
    maxAge: 600,
  });
  // Only browser requests (they carry Origin) get CORS headers; curl and server-side clients none.
  return (c, next) => (c.req.header("origin") ? handler(c, next) : next());
}

/** Repeated identical storage errors are logged once per this interval, with a count. */
const STORAGE_LOG_INTERVAL_MS = 10_000;

/**
 * Retry-After (s) of a storage 503, by what failed: a full disk or an I/O error can pass any moment (space freed,
 * a device back) and the refusal costs under a millisecond, so 5; a server that dropped the connection, 2 (a
 * restart); a broken, unreadable or read-only file needs an operator, 30.
 */
function storageRetryAfterSeconds(code: string): number {
  if (/^SQLITE_(FULL|IOERR)/.test(code)) return 5;
  if (/^SQLITE_/.test(code)) return 30;
  return 2;
}

const httpCodes: Record<number, ErrorCode> = {
  404: "not_found",
  413: "payload_too_large",
  415: "unsupported_media_type",
};

/** Maps any thrown error to the JSON error shape; unknown errors are logged and answered 500. */
export function errorResponse(thrown: Error, c: Context) {
  const err = apiErrorOf(thrown) ?? thrown;
  if (err instanceof ApiError) {
    if (err.code === "unavailable") c.header("Retry-After", "1");
    for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
    return c.json(errorBody(err.code, err.message, err.details), err.status);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 400 && /json/i.test(err.message)) {
      return c.json(errorBody("invalid_json", "request body is not valid JSON"), 400);
    }
    const code = httpCodes[status] ?? (status >= 500 ? "internal" : "validation_failed");
    return c.json(errorBody(code, err.message || code), status >= 500 ? 500 : (status as 400));
  }
  if (isBusyError(err)) {
    // Never show SQLite's "database is locked" to a client: it is our problem, and it is temporary.
    logOncePer("busy read", STORAGE_LOG_INTERVAL_MS, "warn", "database busy on a read", {
      request_id: c.get("requestId"),
      error: String(err),
    });
    c.header("Retry-After", "1");
    return c.json(errorBody("unavailable", "the database is busy; retry the request"), 503);
  }
  if (isStorageError(err)) {
    // The file is broken or full: nothing the client did. One log line per kind of failure and
    // interval (a full disk fails every write), and a Retry-After for the kind of failure.
    const code = String(dbErrorCode(err));
    logOncePer(`storage ${code}`, STORAGE_LOG_INTERVAL_MS, "error", "database storage error", {
      request_id: c.get("requestId"),
      code,
      error: String(err),
    });
    c.header("Retry-After", String(storageRetryAfterSeconds(code)));
    return c.json(errorBody("unavailable", `the database is unavailable (request id ${c.get("requestId")})`), 503);
  }
  log("error", "unhandled error", { request_id: c.get("requestId"), error: String(err), stack: err.stack });
  return c.json(errorBody("internal", `internal error (request id ${c.get("requestId")})`), 500);
}
