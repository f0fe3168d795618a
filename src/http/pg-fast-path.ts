import type { Principal } from "../auth/middleware.ts";
import { recordRefusal } from "../audit/context.ts";
import type { AuditedHandle } from "../audit/queries.ts";
import { pendingSignal, offerPendingAnswer, withRideThrough } from "../db/availability.ts";
import type { Db } from "../db/index.ts";
import type { Site } from "../db/model.ts";
import { type ApiError, apiErrorOf, errorBody } from "../errors.ts";
import { pendUnkeyedWrite } from "../idempotency/middleware.ts";
import { log, withLogContext } from "../log.ts";
import { requestIdOf } from "../request-frame.ts";
import { createSite, decodeCursor, findSiteById, listSites } from "../sites/queries.ts";
import {
  answerWith,
  createAuditRow,
  fastRequestOf,
  nextLinkOf,
  ONE_SITE,
  readCreate,
  SITES,
  type FastPathOptions,
  type Peer,
} from "./fast-path.ts";

// The request fast path on PostgreSQL (src/http/fast-path.ts is SQLite's): the same hot requests (GET one site,
// GET a page of sites, POST a site, keyless and plain: fastRequestOf decides), answered before Hono with the full
// stack's answer, audit row, metrics and request log. The full stack costs ~220 µs of CPU per PostgreSQL request
// (bench/pg-profile.ts). What the full stack does for PostgreSQL is kept:
// - an outage already known (the server marked down) leaves the request to the full stack, which waits for the
//   server's return within the ride-through (DB_RIDE_THROUGH_MS) from the start;
// - a create runs with the request's ride-through budget and offers the early answer: a write whose outcome
//   outlasts the ride-through (a lost connection while its statement runs) is answered 202 with a pending-write
//   token at once, and its final answer is stored under the token as the full stack's (src/idempotency/middleware.ts);
// - a 503 met here (the server went away meanwhile, an outcome not learnt in time) is answered here, with its
//   audit row of a failed request: handing it to the full stack would wait a second ride-through, and a write whose
//   outcome is unknown must not run again. Everything else that is not a plain success (a site not found, a
//   duplicate domain, a bad cursor, an invalid body, another error) goes to the full stack, which answers it from
//   the start: nothing was written.
// test/pg-fast-path.test.ts compares its answers with the full stack's; test/db-faults, pg-one-statement and
// idempotency.api send it keyless creates through outages.

/** What the PostgreSQL fast path needs from the app (FastPathOptions over a PostgreSQL handle). */
export type PgFastPathOptions = Omit<FastPathOptions, "db"> & { db: Db };

/** Builds the PostgreSQL fast path: `(request, server)` answers a plain hot request, or returns null for the full stack. */
export function createPgFastPath(opts: PgFastPathOptions): (req: Request, env: unknown) => Promise<Response> | null {
  const { db, keylessPrincipal, fallback, maxBodyBytes } = opts;
  const answer = answerWith(opts.observe, opts.requestLog);

  /** The full stack's answer to an ApiError (errorResponse in src/app.ts), with the frame's headers. */
  function errorAnswer(id: string, method: string, route: string, path: string, err: ApiError, start: number): Response {
    const retryAfter = err.headers["Retry-After"] ?? (err.code === "unavailable" ? "1" : null);
    const res = answer(
      id,
      method,
      err.status,
      route,
      path,
      errorBody(err.code, err.message, err.details),
      retryAfter === null ? null : "Retry-After",
      retryAfter ?? "",
      start,
    );
    for (const [k, v] of Object.entries(err.headers)) if (k !== "Retry-After") res.headers.set(k, v);
    return res;
  }

  /** A 503 met by a read or a write: ApiError "unavailable" (the engine's own, after its ride-through), else null. */
  const unavailableOf = (err: unknown) => {
    const e = apiErrorOf(err);
    return e?.code === "unavailable" ? e : null;
  };

  async function one(req: Request, env: unknown, r: { id: number; path: string; start: number; headers: Headers }) {
    const id = requestIdOf(r.headers.get("x-request-id") ?? undefined);
    let site: Site | undefined;
    try {
      site = await withLogContext({ request_id: id }, () => findSiteById(db, r.id));
    } catch (err) {
      const e = unavailableOf(err);
      if (e) return errorAnswer(id, "GET", ONE_SITE, r.path, e, r.start);
      return fallback(req, env);
    }
    if (site === undefined) return fallback(req, env);
    return answer(id, "GET", 200, ONE_SITE, r.path, site, null, "", r.start);
  }

  async function list(req: Request, env: unknown, r: Extract<ReturnType<typeof fastRequestOf>, { kind: "list" }>): Promise<Response> {
    const id = requestIdOf(r.headers.get("x-request-id") ?? undefined);
    const q = r.list;
    let page: Awaited<ReturnType<typeof listSites>>;
    try {
      page = await withLogContext({ request_id: id }, () =>
        listSites(db, {
          activeOnly: q.activeOnly,
          limit: q.limit,
          cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
          includeArchived: q.includeArchived,
        }),
      );
    } catch (err) {
      const e = unavailableOf(err);
      if (e) return errorAnswer(id, "GET", SITES, r.path, e, r.start);
      // A bad cursor and the like: the full stack's answer.
      return fallback(req, env);
    }
    const link = page.next ? nextLinkOf(r.path, r.query, page.next) : null;
    return answer(id, "GET", 200, SITES, r.path, page.items, link === null ? null : "Link", link ?? "", r.start);
  }

  async function create(req: Request, env: unknown, peer: Peer, principal: Principal, start: number): Promise<Response> {
    // Known down: the full stack waits for the server from the start of its ride-through.
    const read = await readCreate(req, env, peer, fallback, () => db.availability.downSince !== null);
    if (read instanceof Response) return read;
    const { input, id, replay } = read;
    // The audit row the full stack's audit context has the create's one statement insert (auditedDb's auditTemplate).
    const row = createAuditRow(principal, peer, id, null);
    const audited: Db = Object.create(db, {
      auditTemplate: {
        value: (() => ({
          template: { row, siteIdFromResult: true, targetPrefix: "site:" },
          done() {},
        })) satisfies AuditedHandle["auditTemplate"],
      },
    });
    return withRideThrough(db.availability.rideThroughMs, async () => {
      // As runUnkeyed: a write whose outcome must wait past the ride-through is answered 202 then.
      const signal = pendingSignal();
      offerPendingAnswer(signal.announce);
      const write = withLogContext({ request_id: id }, () => createSite(audited, input));
      let site: Site | "pending";
      try {
        site = await Promise.race([write, signal.promise]);
      } catch (err) {
        const e = unavailableOf(err);
        if (!e) return replay();
        await recordRefusal(db, { ...row, outcome: "failed", status: e.status });
        return errorAnswer(id, "POST", SITES, SITES, e, start);
      } finally {
        offerPendingAnswer(undefined);
      }
      if (site !== "pending") return answer(id, "POST", 201, SITES, SITES, site, "Location", `${SITES}/${site.id}`, start);
      const final = write.then(
        (s) =>
          new Response(JSON.stringify(s), { status: 201, headers: { "Content-Type": "application/json", Location: `${SITES}/${s.id}` } }),
        (err) => finalErrorOf(err),
      );
      const pending = pendUnkeyedWrite(db, principal, "POST", SITES, final);
      const res = answer(id, "POST", 202, SITES, SITES, pending.body, null, "", start);
      for (const [k, v] of Object.entries(pending.headers)) res.headers.set(k, v);
      return res;
    });
  }

  return (req, env) => {
    const r = fastRequestOf(req, env, keylessPrincipal, maxBodyBytes);
    if (r === null) return null;
    if (r.kind === "create") return create(req, env, r.peer, r.principal, r.start);
    // Known down: the full stack's ride-through.
    if (db.availability.downSince !== null) return null;
    return r.kind === "one" ? one(req, env, r) : list(req, env, r);
  };
}

/** The full stack's answer to a write that failed after its 202 (stored for its pending-write token). */
function finalErrorOf(err: unknown): Response {
  const e = apiErrorOf(err);
  if (!e) {
    log("error", "unhandled error", { error: String(err), stack: (err as Error)?.stack });
    return Response.json(errorBody("internal", "internal error"), { status: 500 });
  }
  const headers: Record<string, string> = { "Content-Type": "application/json", ...e.headers };
  if (e.code === "unavailable") headers["Retry-After"] ??= "1";
  return new Response(JSON.stringify(errorBody(e.code, e.message, e.details)), { status: e.status, headers });
}
