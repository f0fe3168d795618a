import { actorOf, type KeylessWrite, type Principal } from "../auth/middleware.ts";
import { hostnameOf, normalizeAddress } from "../auth/net.ts";
import type { Orm, SqliteDb } from "../db/index.ts";
import type { Site } from "../db/model.ts";
import { withLogContext } from "../log.ts";
import type { HttpObserve } from "../metrics/http.ts";
import { logRequest, requestIdOf, SECURITY_HEADERS } from "../request-frame.ts";
import { decodeCursor, encodeCursor, insertSiteRow, readSiteById, readSitesPage, type SiteCursor } from "../sites/queries.ts";
import { insertAuditRow, type AuditInsert } from "../audit/queries.ts";
import { type CreateSite, CreateSiteSchema, ListSitesQuery, plainCreateSite, siteIdFrom } from "../sites/schemas.ts";

// The hottest requests (GET one site, GET a page of sites, POST a site), answered before Hono on SQLite:
// the same answer the full stack gives (status, body, headers, audit row, metrics, request log), composed
// once at start-up, without a Context, a middleware chain, a router or an async validator per request. It
// answers only the plain case it can decide by itself; anything else (a key, an Origin, proxy headers, an
// Idempotency-Key, an unknown or repeated query field, an encoded character, a refusal, a site not found,
// an invalid body, a conflict, an error) goes to the full stack, which then answers it from the start:
// before a body is read by returning null, after it by handing the full stack the same request rebuilt
// (same URL, headers, body, client address). Nothing here has a side effect but a committed create.
// test/fast-path.test.ts compares its answers with the full stack's, request by request.

/** What the fast path needs from the app. */
export type FastPathOptions = {
  db: SqliteDb;
  /** The auth middleware's keylessPrincipal: who this keyless request is, when auth lets it through without a rate-limit call. */
  keylessPrincipal: (socket: string, host: string) => Principal | null;
  /** SQLite: the auth middleware's keylessWriter, for a create (its key check made inside the create's transaction). */
  keylessWriter?: (socket: string, host: string) => KeylessWrite | null;
  /** Records the answered request in the HTTP metrics (the request frame's). */
  observe: HttpObserve;
  /** Log one `request` line per request (REQUEST_LOG). */
  requestLog?: boolean;
  /** The full stack (Hono's fetch), for a request whose body the fast path has read and then leaves to it. */
  fallback: (req: Request, env: unknown) => Response | Promise<Response>;
  /** Bodies past this size are the full stack's (its 413). */
  maxBodyBytes: number;
};

/** The server Bun.serve passes as the app's env: the socket's peer address (and a request's timeout). */
type Server = {
  requestIP?: (r: Request) => { address: string; family: string; port: number } | null;
  timeout?: (r: Request, s: number) => void;
};

/** The routes the fast path answers (their templates, as the metrics and the request log name them). */
export const SITES = "/api/v1/sites";
export const ONE_SITE = "/api/v1/sites/:id";

// The answer's headers, as Hono's c.json / c.header and the request frame set them: one Headers built at
// start-up, copied natively into each answer, which then gets its request id (and Location or Link).
// ~0.7 µs an answer less than an object literal of the 8 headers, which Bun converts name by name.
const HEADERS = new Headers([["Content-Type", "application/json"], ...SECURITY_HEADERS] as [string, string][]);

// The id and the list query are judged by the routes' own rules (SiteIdParams' siteIdFrom, ListSitesQuery), not by
// rules restated here; what the fast path adds is only what it leaves to the full stack (an encoded
// character, a repeated or unknown field). The list query's successful parse is remembered per raw string, as
// the full stack's validators do (src/openapi.ts memoizedQuery): at most MEMO_MAX strings, none longer
// than MEMO_KEY_MAX (page cursors are parsed every time), refusals never kept. An id needs no memory: its rule
// is a pattern and a number (a zod parse per new id cost ~6-8 µs of a cold worker's CPU, and its compiles).
const MEMO_MAX = 1000;
const MEMO_KEY_MAX = 200;

/** `parse` with its successful (non-null) results remembered per key, within the bounds above. */
function remembered<T>(parse: (key: string) => T | null): (key: string) => T | null {
  const memo = new Map<string, T>();
  return (key) => {
    const known = memo.get(key);
    if (known !== undefined) return known;
    const v = parse(key);
    if (v !== null && key.length <= MEMO_KEY_MAX) {
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(key, v);
    }
    return v;
  };
}

export type ListQuery = { activeOnly: boolean; limit: number | undefined; cursor: string | undefined; includeArchived: boolean };
/** The query fields ListSitesQuery knows: any other field is the full stack's to judge. */
const LIST_FIELDS = new Set(Object.keys(ListSitesQuery.shape));

/**
 * The list's query string as ListSitesQuery reads it, or null for anything the fast path leaves to the
 * full stack: an encoded character (`%`, `+`), a field without `=`, repeated or unknown, or a refusal.
 */
const listQueryOf = remembered((q: string): ListQuery | null => {
  if (q.includes("%") || q.includes("+")) return null;
  const fields: Record<string, string> = {};
  if (q !== "") {
    for (const part of q.split("&")) {
      const eq = part.indexOf("=");
      if (eq < 0) return null;
      const key = part.slice(0, eq);
      if (!LIST_FIELDS.has(key) || Object.hasOwn(fields, key)) return null;
      fields[key] = part.slice(eq + 1);
    }
  }
  const r = ListSitesQuery.safeParse(fields);
  if (!r.success) return null;
  const d = r.data;
  return Object.freeze({ activeOnly: d.active_only, limit: d.limit, cursor: d.cursor, includeArchived: d.include_archived });
});

// A query (fields `name=value` joined by `&`) and a value made only of characters URLSearchParams.toString
// writes as they are.
const PLAIN_QUERY = /^[\w.*-]+=[\w.*-]*(&[\w.*-]+=[\w.*-]*)*$/;
const PLAIN_VALUE = /^[\w.*-]*$/;

/**
 * `query` with `cursor` set as URLSearchParams.set then toString would write it (the first cursor field's
 * value replaced, or the field appended), built as a string when the query holds only characters that
 * need no encoding (a query the fast path answers has no repeated field), else through URLSearchParams
 * (~6 % of a served list's samples).
 */
function withCursor(query: string, cursor: string): string {
  if ((query !== "" && !PLAIN_QUERY.test(query)) || !PLAIN_VALUE.test(cursor)) {
    const params = new URLSearchParams(query);
    params.set("cursor", cursor);
    return params.toString();
  }
  if (query === "") return `cursor=${cursor}`;
  const parts = query.split("&");
  const at = parts.findIndex((p) => p.startsWith("cursor="));
  if (at < 0) return `${query}&cursor=${cursor}`;
  parts[at] = `cursor=${cursor}`;
  return parts.join("&");
}

/** The peer address Bun.serve's requestIP gives. */
export type Peer = { address: string; family: string; port: number };

/** A request the fast path may answer, as judged from its method, URL, headers and peer alone. */
export type FastRequest =
  | { kind: "one"; id: number; path: string; start: number; headers: Headers }
  | { kind: "list"; list: ListQuery; path: string; query: string; start: number; headers: Headers }
  | { kind: "create"; peer: Peer; principal: Principal; start: number; allowedIn?: (tx: Orm) => boolean };

/**
 * Which hot request `req` is, when nothing but the plain case applies (see the top of this file): a keyless
 * GET of one site or of a page of sites, or POST of a site (its body not read yet); else null.
 */
export function fastRequestOf(
  req: Request,
  env: unknown,
  keylessPrincipal: FastPathOptions["keylessPrincipal"],
  maxBodyBytes: number,
  keylessWriter?: FastPathOptions["keylessWriter"],
): FastRequest | null {
  const method = req.method;
  if (method !== "GET" && method !== "POST") return null;
  const start = performance.now();
  const url = req.url;
  const from = url.indexOf("/", url.indexOf("//") + 2);
  if (from < 0) return null;
  const q = url.indexOf("?", from);
  const path = q < 0 ? url.slice(from) : url.slice(from, q);
  let siteId = 0;
  if (path !== SITES) {
    if (method !== "GET" || !path.startsWith(SITES) || path.charCodeAt(SITES.length) !== 47 /* / */) return null;
    // SiteIdParams' own rule (an encoded character never matches it: the full stack's).
    const id = siteIdFrom(path.slice(SITES.length + 1));
    if (id === null) return null;
    siteId = id;
  }
  const query = q < 0 ? "" : url.slice(q + 1);
  const list = method === "GET" && siteId === 0 ? listQueryOf(query) : null;
  if (method === "GET" && siteId === 0 && list === null) return null;

  // Who is calling: only a keyless client on this machine, talking to us directly, with no page's Origin.
  const h = req.headers;
  if (h.has("authorization") || h.has("x-api-key") || h.has("origin") || h.has("x-forwarded-for") || h.has("forwarded")) return null;
  if (method === "POST") {
    // A write: no query, a JSON body of a known size within the limit, no idempotency key, no browser's site marker.
    if (q >= 0 || h.get("content-type") !== "application/json" || h.has("idempotency-key") || h.has("sec-fetch-site")) return null;
    const length = h.get("content-length");
    if (length === null || !/^\d{1,9}$/.test(length) || Number(length) > maxBodyBytes) return null;
  }
  const host = h.get("host");
  const peer = (env as Server | undefined)?.requestIP?.(req);
  if (host === null || !peer) return null;
  if (method === "POST" && keylessWriter) {
    const w = keylessWriter(normalizeAddress(peer.address), hostnameOf(host));
    return w === null ? null : { kind: "create", peer, principal: w.principal, start, allowedIn: w.allowedIn };
  }
  const principal = keylessPrincipal(normalizeAddress(peer.address), hostnameOf(host));
  if (principal === null) return null;
  if (method === "POST") return { kind: "create", peer, principal, start };
  if (siteId !== 0) return { kind: "one", id: siteId, path, start, headers: h };
  return { kind: "list", list: list!, path, query, start, headers: h };
}

/** An answer as the full stack's frame makes it (headers, metrics, request log), recorded when built. */
export type Answer = (
  id: string,
  method: string,
  status: number,
  route: string,
  path: string,
  body: unknown,
  extra: string | null,
  extraValue: string,
  start: number,
) => Response;

/** The fast path's answer function: JSON with the frame's headers, the HTTP metrics and the request log line. */
export function answerWith(observe: HttpObserve, requestLog: boolean | undefined): Answer {
  const logRequests = requestLog === true;
  return (id, method, status, route, path, body, extra, extraValue, start) => {
    // Response.json serializes natively into the body (the same bytes as JSON.stringify): ~3.6 µs less a page of 50
    // sites in process than a JSON string handed to new Response, ~0.1 µs a site. HEADERS' Content-Type is kept.
    const res = Response.json(body, { status, headers: HEADERS });
    const headers = res.headers;
    headers.set("X-Request-Id", id);
    if (extra !== null) headers.set(extra, extraValue);
    const ms = performance.now() - start;
    observe(method, status, route, ms / 1000);
    if (logRequests) logRequest(id, method, path, route, status, ms);
    return res;
  };
}

/** The Link header of a page of sites with more after it (setNextLink's URL: this path and query with the cursor set in it). */
export function nextLinkOf(path: string, query: string, next: SiteCursor): string {
  return `<${path}?${withCursor(query, encodeCursor(next))}>; rel="next"`;
}

/** The audit row the full stack's audit context writes for a create of a site (target and site_id from the result). */
export function createAuditRow(principal: Principal, peer: Peer, requestId: string, siteId: number | null, at?: string): AuditInsert {
  return {
    at,
    actor: actorOf(principal),
    key_id: null,
    ip: normalizeAddress(peer.address),
    method: "POST",
    action: "POST /api/v1/sites",
    target: siteId === null ? null : `site:${siteId}`,
    site_id: siteId,
    request_id: requestId,
    outcome: "ok",
    status: null,
  };
}

/**
 * The full stack's answer to a create whose body (`text`) the fast path has read: the same request rebuilt
 * (same URL, headers, body, client address) and handed to `fallback`.
 */
function replayCreate(req: Request, env: unknown, peer: Peer, text: string, fallback: FastPathOptions["fallback"]) {
  const again = new Request(req.url, { method: "POST", headers: req.headers, body: text });
  const server = env as Server;
  return fallback(again, {
    requestIP: (r: Request) => (r === again ? peer : (server.requestIP?.(r) ?? null)),
    timeout: (r: Request, s: number) => server.timeout?.(r === again ? req : r, s),
  });
}

/** A create's body read and judged: its input, its request id and the full stack's answer to the same request (`replay`). */
export type CreateBody = { input: CreateSite; id: string; replay: () => Response | Promise<Response> };

/**
 * Reads a create's body: the input CreateSiteSchema accepts with the request id, or (an unreadable body, not JSON,
 * refused by the schema, `refuse` true before parsing) the full stack's answer to the same request.
 */
export async function readCreate(
  req: Request,
  env: unknown,
  peer: Peer,
  fallback: FastPathOptions["fallback"],
  refuse: () => boolean = () => false,
): Promise<CreateBody | Response> {
  const text = await req.text();
  const replay = () => replayCreate(req, env, peer, text, fallback);
  if (refuse()) return replay();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return replay();
  }
  // The plain body judged by the schema's own rules without a zod parse; anything else by the schema itself.
  let input = plainCreateSite(body);
  if (input === null) {
    const parsed = CreateSiteSchema.safeParse(body);
    if (!parsed.success) return replay();
    input = parsed.data;
  }
  return { input, id: requestIdOf(req.headers.get("x-request-id") ?? undefined), replay };
}

/** Thrown inside a create's transaction when a key is active: the write rolls back and the full stack answers. */
const KEY_NOW_ACTIVE = new Error("a key is active: a keyless create is the full stack's to answer");

/**
 * Builds the fast path: `(request, server)` answers a plain keyless GET of one site or of a page of
 * sites, or POST of a site, or returns null for the full stack to answer.
 */
export function createFastPath(opts: FastPathOptions): (req: Request, env: unknown) => Response | Promise<Response> | null {
  const { db, keylessPrincipal, keylessWriter, fallback, maxBodyBytes } = opts;
  const answer = answerWith(opts.observe, opts.requestLog);

  /** A create whose body was read: answered here when it commits, else by the full stack from the same request. */
  async function create(req: Request, env: unknown, peer: Peer, principal: Principal, start: number, allowedIn?: (tx: Orm) => boolean) {
    const read = await readCreate(req, env, peer, fallback);
    if (read instanceof Response) return read;
    const { input, id, replay } = read;
    let site: Site;
    try {
      // The site and the audit row the full stack's audit context writes for it, in one write (one
      // transaction); request_id on any line logged while writing, as in the full stack's request frame.
      site = await withLogContext({ request_id: id }, () =>
        db.write((tx) => {
          // A key active by now (committed since, anywhere): nothing written, the full stack answers (its 401).
          if (allowedIn !== undefined && !allowedIn(tx)) throw KEY_NOW_ACTIVE;
          const created = insertSiteRow(tx, input);
          // The audit row's time is the site's (taken in the same transaction): one clock read and ISO string less.
          insertAuditRow(db, tx, createAuditRow(principal, peer, id, created.id, created.created_at));
          return created;
        }),
      );
    } catch {
      // Nothing was written (a duplicate domain, a busy or broken file): the full stack answers it.
      return replay();
    }
    return answer(id, "POST", 201, SITES, SITES, site, "Location", `${SITES}/${site.id}`, start);
  }

  return (req, env) => {
    const r = fastRequestOf(req, env, keylessPrincipal, maxBodyBytes, keylessWriter);
    if (r === null) return null;
    if (r.kind === "create") return create(req, env, r.peer, r.principal, r.start, r.allowedIn);
    try {
      if (r.kind === "one") {
        const site: Site | undefined = readSiteById(db, r.id);
        if (site === undefined) return null;
        return answer(requestIdOf(r.headers.get("x-request-id") ?? undefined), "GET", 200, ONE_SITE, r.path, site, null, "", r.start);
      }
      const { list } = r;
      const page = readSitesPage(db, {
        activeOnly: list.activeOnly,
        limit: list.limit,
        cursor: list.cursor === undefined ? undefined : decodeCursor(list.cursor),
        includeArchived: list.includeArchived,
      });
      const link = page.next ? nextLinkOf(r.path, r.query, page.next) : null;
      const id = requestIdOf(r.headers.get("x-request-id") ?? undefined);
      return answer(id, "GET", 200, SITES, r.path, page.items, link === null ? null : "Link", link ?? "", r.start);
    } catch {
      // A bad cursor, a busy or broken file: the full stack answers it (its error shape, its logs).
      return null;
    }
  };
}
