import type { SqliteDb } from "../db/index.ts";
import type { Site } from "../db/model.ts";
import { hostnameOf, normalizeAddress } from "../auth/net.ts";
import type { HttpObserve } from "../metrics/http.ts";
import { logRequest, requestIdOf, SECURITY_HEADERS } from "../request-frame.ts";
import { decodeCursor, encodeCursor, readSiteById, readSitesPage } from "../sites/queries.ts";

// The hottest reads (GET one site, GET a page of sites), answered before Hono on SQLite: the same answer
// the full stack gives (status, body, headers, metrics, request log), composed once at start-up, without
// a Context, a middleware chain, a router or a validator per request. It answers only the plain case it
// can decide by itself; anything else (a key, an Origin, proxy headers, an unknown or repeated query
// field, an encoded character, a refusal, a site not found, an error) returns null and the request takes
// the full stack, which then answers it from the start (nothing here has side effects but the read).
// test/fast-path.test.ts compares its answers with the full stack's, request by request.

/** What the fast path needs from the app: the database, the auth middleware's keyless check, the frame's settings. */
export type FastPathOptions = {
  db: SqliteDb;
  /** The auth middleware's trustsKeyless: this keyless request passes auth without a rate-limit call. */
  trustsKeyless: (socket: string, host: string) => boolean;
  /** Records the answered request in the HTTP metrics (the request frame's). */
  observe: HttpObserve;
  /** Log one `request` line per request (REQUEST_LOG). */
  requestLog?: boolean;
};

/** The server Bun.serve passes as the app's env: the socket's peer address. */
type Peer = { requestIP?: (r: Request) => { address: string } | null };

const SITES = "/api/v1/sites";
const ONE_SITE = "/api/v1/sites/:id";
// The rules of SiteIdParams (src/sites/schemas.ts): a number past 2^53 is left to it.
const ID = /^[1-9]\d{0,15}$/;
// ListSitesQuery's rules for the fields the fast path reads.
const LIMIT = /^0*([1-9]\d?|[1-4]\d\d|500)$/;
const BOOLS: Record<string, boolean> = { true: true, "1": true, false: false, "0": false };

/** The answer's headers but X-Request-Id, as Hono's c.json and the request frame set them. */
function headersOf(id: string, link: string | null): Record<string, string> {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (link !== null) h.Link = link;
  h["X-Request-Id"] = id;
  for (let i = 0; i < SECURITY_HEADERS.length; i++) h[SECURITY_HEADERS[i]![0]] = SECURITY_HEADERS[i]![1];
  return h;
}

type ListQuery = { activeOnly: boolean; limit: number | undefined; cursor: string | undefined; includeArchived: boolean };

/** The list's query string as ListSitesQuery reads it, or null for anything it is not sure of. */
function listQueryOf(q: string): ListQuery | null {
  const out: ListQuery = { activeOnly: true, limit: undefined, cursor: undefined, includeArchived: false };
  if (q === "") return out;
  if (q.includes("%") || q.includes("+")) return null;
  let seen = 0;
  for (const part of q.split("&")) {
    const eq = part.indexOf("=");
    if (eq < 0) return null;
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    const bit = key === "limit" ? 1 : key === "active_only" ? 2 : key === "include_archived" ? 4 : key === "cursor" ? 8 : 0;
    if (bit === 0 || (seen & bit) !== 0) return null;
    seen |= bit;
    if (bit === 1) {
      if (!LIMIT.test(value)) return null;
      out.limit = Number(value);
    } else if (bit === 8) {
      if (value.length < 1 || value.length > 2048) return null;
      out.cursor = value;
    } else {
      const b = BOOLS[value];
      if (b === undefined) return null;
      if (bit === 2) out.activeOnly = b;
      else out.includeArchived = b;
    }
  }
  return out;
}

/**
 * Builds the fast path: `(request, server)` answers a plain keyless GET of one site or of a page of
 * sites, or returns null for the full stack to answer.
 */
export function createFastPath(opts: FastPathOptions): (req: Request, env: unknown) => Response | null {
  const { db, trustsKeyless, observe } = opts;
  const logRequests = opts.requestLog === true;

  function answer(id: string, route: string, path: string, body: unknown, link: string | null, start: number): Response {
    const res = new Response(JSON.stringify(body), { status: 200, headers: headersOf(id, link) });
    const ms = performance.now() - start;
    observe("GET", 200, route, ms / 1000);
    if (logRequests) logRequest(id, "GET", path, route, 200, ms);
    return res;
  }

  return (req, env) => {
    if (req.method !== "GET") return null;
    const start = performance.now();
    const url = req.url;
    const from = url.indexOf("/", url.indexOf("//") + 2);
    if (from < 0) return null;
    const q = url.indexOf("?", from);
    const path = q < 0 ? url.slice(from) : url.slice(from, q);
    let siteId = 0;
    if (path !== SITES) {
      if (!path.startsWith(SITES) || path.charCodeAt(SITES.length) !== 47 /* / */) return null;
      const raw = path.slice(SITES.length + 1);
      if (!ID.test(raw)) return null;
      siteId = Number(raw);
      if (!Number.isSafeInteger(siteId)) return null;
    }
    const list = siteId === 0 ? listQueryOf(q < 0 ? "" : url.slice(q + 1)) : null;
    if (siteId === 0 && list === null) return null;

    // Who is calling: only a keyless client on this machine, talking to us directly, with no page's Origin.
    const h = req.headers;
    if (h.has("authorization") || h.has("x-api-key") || h.has("origin") || h.has("x-forwarded-for") || h.has("forwarded")) return null;
    const host = h.get("host");
    const peer = (env as Peer | undefined)?.requestIP?.(req)?.address;
    if (host === null || peer === undefined || !trustsKeyless(normalizeAddress(peer), hostnameOf(host))) return null;

    try {
      if (siteId !== 0) {
        const site: Site | undefined = readSiteById(db, siteId);
        if (site === undefined) return null;
        return answer(requestIdOf(h.get("x-request-id") ?? undefined), ONE_SITE, path, site, null, start);
      }
      const page = readSitesPage(db, {
        activeOnly: list!.activeOnly,
        limit: list!.limit,
        cursor: list!.cursor === undefined ? undefined : decodeCursor(list!.cursor),
        includeArchived: list!.includeArchived,
      });
      let link: string | null = null;
      if (page.next) {
        // setNextLink's URL: this path and query with the cursor set (last) in it.
        const params = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
        params.set("cursor", encodeCursor(page.next));
        link = `<${path}?${params.toString()}>; rel="next"`;
      }
      return answer(requestIdOf(h.get("x-request-id") ?? undefined), SITES, path, page.items, link, start);
    } catch {
      // A bad cursor, a busy or broken file: the full stack answers it (its error shape, its logs).
      return null;
    }
  };
}
