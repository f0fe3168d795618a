import type { Context, MiddlewareHandler } from "hono";
import { principalOf, type Principal } from "../auth/middleware.ts";
import { requiredScope } from "../auth/policy.ts";
import { offerPendingAnswer, pendingSignal, rideThroughLeft, withRideThrough } from "../db/availability.ts";
import type { Db } from "../db/index.ts";
import { isProcessGone } from "../db/process-registry.ts";
import { ApiError, apiErrorOf } from "../errors.ts";
import { log, logOncePer } from "../log.ts";
import {
  claimIdempotencyKey,
  findIdempotencyKey,
  purgeExpiredIdempotencyKeys,
  recordPendingAnswer,
  releaseIdempotencyKey,
  storeIdempotentAnswer,
  type ClaimInput,
  type IdempotencyRow,
} from "./queries.ts";

// Idempotency-Key on the API's writes (POST, PUT, PATCH, DELETE under /api/): the first answer to a
// request sent with a key is stored with the request's fingerprint (method, path with its query, a
// hash of the body, the caller) and replayed byte for byte, with `Idempotent-Replayed: true`, to a
// retry with the same key within 24 h. The same key with another request: 422. A duplicate that
// arrives while the first is still running waits for its answer (at most the ride-through), then 409
// `idempotency_in_progress`. Answers 5xx (and 408, 429) are not stored: the key is given up, so a retry
// runs anew. Not on POST /api/v1/keys: its answer carries the new key's secret, which is never stored.

/** The methods an Idempotency-Key applies to: the app mounts the middleware for these alone. */
export const IDEMPOTENT_METHODS = ["POST", "PUT", "PATCH", "DELETE"];
const WRITE_METHODS = new Set(IDEMPOTENT_METHODS);
const KEY_RE = /^[\x21-\x7e]{1,255}$/;
/** How long a stored answer is replayed. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/**
 * How long a claimed key stays the first request's while it runs; after that, a retry may run it anew. A key
 * whose process is gone (SIGKILL, crash: see isProcessGone) is free before: at once on SQLite, after 10 s of
 * missed heartbeats on PostgreSQL.
 */
const LEASE_MS = 5 * 60_000;
const POLL_MS = 50;
/** Answers larger than this are not stored (the key is given up). */
const MAX_STORED_BYTES = 1024 * 1024;
const PURGE_EVERY_MS = 3600_000;
/**
 * Headers of the first answer that are replayed with it (the body is replayed byte for byte). Retry-After: a
 * pending write's final answer may be a 503 (its write did not commit), and every 503 says when to retry.
 */
const KEPT_HEADERS = ["content-type", "location", "link", "retry-after"];

/** The Idempotency-Key middleware (mounted once, after auth and the body limit). */
export function idempotencyMiddleware(db: Db): MiddlewareHandler {
  let purgedAt = 0;
  return async (c, next) => {
    if (!WRITE_METHODS.has(c.req.method)) return next();
    if (!c.req.path.startsWith("/api/")) {
      // The dashboard's form writes (no key to send): a lost COMMIT is answered at the ride-through as for the
      // API, with a page instead of JSON.
      return db.engine === "pg" && c.req.path.startsWith("/ui/") ? runUnkeyed(db, c, next, "page") : next();
    }
    // Reads sent as POST (analytics queries) answer the same anyway; a new key's secret is never stored.
    if (requiredScope(c.req.method, c.req.path) === "read" || (c.req.method === "POST" && /^\/api\/v1\/keys\/?$/.test(c.req.path))) {
      return next();
    }
    const key = c.req.header("idempotency-key");
    // Without a key: only PostgreSQL can lose a COMMIT's outcome (SQLite answers its COMMIT itself).
    if (key === undefined) return db.engine === "pg" ? runUnkeyed(db, c, next) : next();
    if (!KEY_RE.test(key)) {
      throw new ApiError("validation_failed", "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)");
    }
    const now = Date.now();
    if (now - purgedAt > PURGE_EVERY_MS) {
      purgedAt = now;
      purgeExpiredIdempotencyKeys(db, now).catch((err) => log("warn", "idempotency keys purge failed", { error: String(err) }));
    }
    const input: ClaimInput = {
      owner: ownerOf(c),
      key,
      fingerprint: await fingerprintOf(c),
      method: c.req.method,
      path: c.req.path,
    };
    // The claim's own COMMIT may be lost too. Nothing of the request has run then: at the end of the
    // ride-through it is answered 503 (not applied; send it again with the key) and the claim's outcome is
    // learnt in the background; a claim that turns out committed is given up, so the retry can take the key.
    const claimPending = pendingSignal();
    offerPendingAnswer(claimPending.announce);
    const claiming = claimKey(db, c, input);
    const claimed = await Promise.race([claiming, claimPending.promise]);
    if (claimed === "pending") {
      void claiming
        .then((r) => {
          if (r instanceof Response) return;
          return withRideThrough(db.availability.rideThroughMs, () =>
            persist(db, () => releaseIdempotencyKey(db, input.owner, input.key, input.fingerprint, r.lockedUntil)),
          );
        })
        .catch((err) => {
          if (!db.closed) log("warn", "idempotency claim of a refused request not given up", { key: input.key, error: String(err) });
        });
      throw new ApiError(
        "unavailable",
        "the database went away while this request's Idempotency-Key was being recorded; the request was not run: send it again with the same key",
        { outcome: "not_applied" },
        { "Retry-After": String(db.availability.retryAfterSeconds()) },
      );
    }
    offerPendingAnswer(undefined);
    if (claimed instanceof Response) return claimed;
    // A write whose COMMIT lost the server may learn its outcome only once the server is back: rather than
    // hold the request past the ride-through, it is answered 202 (outcome pending) then, and its handler goes
    // on; the final answer is stored for the key, where a retry with it finds it (docs/operations.md).
    const pending = await runOrPend(
      c,
      next,
      () => (final) =>
        withRideThrough(db.availability.rideThroughMs, () => settle(db, c, input, final)).catch((err) =>
          log("warn", "idempotency answer of a pending write not stored", { key: input.key, error: String(err) }),
        ),
    );
    if (pending) return pendingAnswer(c, db, { idempotency_key: input.key });
    await settle(db, c, input);
  };
}

/** Claims the key for this request, or answers from it (a replay; 422; 409 in progress after the ride-through). */
async function claimKey(db: Db, c: Context, input: ClaimInput): Promise<Response | { lockedUntil: number }> {
  const deadline = performance.now() + db.availability.rideThroughMs;
  for (;;) {
    const t = Date.now();
    const lockedUntil = t + LEASE_MS;
    const claim = await claimIdempotencyKey(db, input, t, lockedUntil, t + IDEMPOTENCY_TTL_MS);
    if (claim.kind === "claimed") return { lockedUntil };
    if (claim.kind === "mismatch") {
      throw new ApiError(
        "idempotency_key_reused",
        "this Idempotency-Key was used for another request (method, path, body or caller differ) in the last 24 h; use a new key for a new request",
      );
    }
    if (claim.kind === "answered") return replay(c, claim.row);
    // The first request is still running: wait for its answer, within the ride-through.
    const answered = await waitForAnswer(db, input, deadline);
    if (answered) return replay(c, answered);
    if (performance.now() >= deadline) {
      throw new ApiError(
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still running; retry shortly to get its answer",
        undefined,
        {
          "Retry-After": "1",
        },
      );
    }
    // Given up by the first request (it failed): claim it for this one.
  }
}

/**
 * Runs the rest of the request; if a write of it must wait for its COMMIT's outcome past the ride-through,
 * returns true at once (the caller answers 202) and hands the final answer to what `onPending` (called then,
 * once) returns when the handler is done.
 */
async function runOrPend(c: Context, next: () => Promise<void>, onPending: () => (final: Response) => Promise<void>): Promise<boolean> {
  const signal = pendingSignal();
  offerPendingAnswer(signal.announce);
  const run = next().then(() => "done" as const);
  if ((await Promise.race([run, signal.promise])) === "done") {
    offerPendingAnswer(undefined);
    return false;
  }
  const answer = captureAnswer(c);
  const onFinal = onPending();
  void run
    .then(() => {
      const final = c.error ? c.res : answer();
      // No answer seen (a handler that built its Response itself): nothing to store (a key stays locked to its lease).
      if (!final) return log("warn", "answer of a pending write not seen", { path: c.req.path });
      return onFinal(final);
    })
    .catch((err) => log("warn", "pending write failed", { path: c.req.path, error: String(err) }));
  return true;
}

/**
 * A write sent without a key whose COMMIT's outcome outlasts the ride-through: answered 202 with a token the
 * server made up, and a Location (`/api/v1/pending-writes/{token}`) that gives the final answer once it is
 * stored under the token (by this process, when the database is back). Nothing is recorded before then: the
 * database is away; the token names this process, so a lookup can tell "not yet" from "lost" (docs/operations.md).
 */
async function runUnkeyed(db: Db, c: Context, next: () => Promise<void>, as: "json" | "page" = "json"): Promise<Response | undefined> {
  let token = "";
  const pending = await runOrPend(c, next, () => {
    // Made only now: the common case (no lost COMMIT) pays nothing for it.
    token = newPendingToken(db.host);
    const owner = pendingOwnerOf(c);
    const { method, path } = c.req;
    return (final) => storePendingAnswer(db, { owner, token, method, path }, final);
  });
  if (!pending) return undefined;
  const location = pendingLocation(token);
  if (as === "page") return pendingPage(c, db, location);
  c.header("Location", location);
  return pendingAnswer(c, db, { token, location });
}

/** Stores the final answer of an unkeyed write answered 202 under its token (for GET /api/v1/pending-writes/{token}). */
async function storePendingAnswer(db: Db, w: { owner: string; token: string; method: string; path: string }, final: Response) {
  const { status, headers, body } = await storedAnswer(final);
  // The 202's own headers may have been copied onto the final answer (Hono builds it from the context's).
  if (headers.location === pendingLocation(w.token)) delete headers.location;
  const t = Date.now();
  await withRideThrough(db.availability.rideThroughMs, () =>
    persist(db, () =>
      recordPendingAnswer(db, {
        owner: w.owner,
        key: w.token,
        method: w.method,
        path: w.path,
        status,
        headers: JSON.stringify(headers),
        body,
        expiresAt: t + IDEMPOTENCY_TTL_MS,
      }),
    ),
  );
}

/**
 * For an unkeyed write answered outside Hono (the PostgreSQL fast path, src/http/pg-fast-path.ts) whose outcome
 * outlasts the ride-through: its 202 (status, body, headers) as runUnkeyed answers it, and `final` (the write's
 * own answer, once known) stored under the new token, for the caller `principal`.
 */
export function pendUnkeyedWrite(
  db: Db,
  principal: Principal,
  method: string,
  path: string,
  final: Promise<Response>,
): { status: 202; body: unknown; headers: Record<string, string> } {
  const token = newPendingToken(db.host);
  const owner = `pending:${ownerOfPrincipal(principal)}`;
  void final
    .then((res) => storePendingAnswer(db, { owner, token, method, path }, res))
    .catch((err) => log("warn", "pending write failed", { path, error: String(err) }));
  const location = pendingLocation(token);
  return {
    status: 202,
    body: pendingBody({ token, location }),
    headers: { Location: location, "Retry-After": String(db.availability.retryAfterSeconds()), "Idempotent-Pending": "true" },
  };
}

/** The dashboard's 202 for a form write whose outcome is not known yet: what happened, where to look, no resend. */
function pendingPage(c: Context, db: Db, location: string): Response {
  const retry = db.availability.retryAfterSeconds();
  c.header("Retry-After", String(retry));
  c.header("Idempotent-Pending", "true");
  // The token is base64url and dots: nothing to escape in the link.
  return c.html(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Saving: outcome not known yet · sitesync</title>` +
      `<link rel="stylesheet" href="/ui/static/app.css"></head><body><main><h1>Saving: outcome not known yet</h1>` +
      `<p>The database went away while this change was being saved. Whether it was applied is known once the database is back (in about ${retry} s); it is applied at most once.</p>` +
      `<p><strong>Do not submit the form again yet.</strong> <a href="${location}">Check the outcome</a> (202 while not known; then the change's own answer), or <a href="/ui">go back to the dashboard</a> and look for it there.</p>` +
      `</main></body></html>`,
    202,
  );
}

const pendingLocation = (token: string) => `/api/v1/pending-writes/${token}`;

/**
 * Records the answer the handler makes from here on (the 202 left already, so Hono's compose no longer
 * puts it in `c.res`; an error's answer still goes there, with `c.error`). Handlers answer through these.
 */
function captureAnswer(c: Context): () => Response | undefined {
  let answer: Response | undefined;
  const ctx = c as unknown as Record<string, unknown>;
  for (const name of ["body", "text", "json", "html", "redirect", "newResponse"]) {
    const f = ctx[name];
    if (typeof f !== "function") continue;
    ctx[name] = (...args: unknown[]) => {
      const r = (f as (...a: unknown[]) => unknown)(...args);
      if (r instanceof Response) answer = r;
      return r;
    };
  }
  return () => answer;
}

/**
 * 202: the write may or may not have been applied yet. With a key, a retry with it gets the final answer;
 * without one, the token's Location does.
 */
function pendingAnswer(c: Context, db: Db, ref: { idempotency_key: string } | { token: string; location: string }): Response {
  c.header("Retry-After", String(db.availability.retryAfterSeconds()));
  c.header("Idempotent-Pending", "true");
  return c.json(pendingBody(ref), 202);
}

/** The body of a 202 pending answer. */
function pendingBody(ref: { idempotency_key: string } | { token: string; location: string }) {
  const how =
    "idempotency_key" in ref
      ? "Its final answer is kept for this Idempotency-Key: send the same request again with the same key (after Retry-After) to get it"
      : "Its final answer will be at `location` (GET it after Retry-After; 202 while not known yet). Do not send the write again before: it may have been applied";
  return {
    status: "pending",
    ...ref,
    message: `the database went away while this write was committing; whether it was applied is known once it is back. ${how}`,
  };
}

/** Who sent the request: keys are per caller (a key of another API key is another key). */
function ownerOf(c: Context): string {
  return ownerOfPrincipal(principalOf(c));
}

function ownerOfPrincipal(p: Principal | undefined): string {
  return p?.kind === "key" ? `key:${p.key.id}` : (p?.kind ?? "anonymous");
}

async function fingerprintOf(c: Context): Promise<string> {
  const body = new Uint8Array(await c.req.arrayBuffer());
  const url = new URL(c.req.url);
  const h = new Bun.CryptoHasher("sha256");
  h.update(`${c.req.method}\n${url.pathname}${url.search}\n${ownerOf(c)}\n`);
  h.update(new Bun.CryptoHasher("sha256").update(body).digest("hex"));
  return h.digest("hex");
}

/** Polls the key until its first request stored an answer (the row), gave it up (null) or the deadline passed (null). */
async function waitForAnswer(db: Db, input: ClaimInput, deadline: number): Promise<IdempotencyRow | null> {
  for (;;) {
    await Bun.sleep(POLL_MS);
    const row = await findIdempotencyKey(db, input.owner, input.key).catch(() => undefined);
    if (row?.status != null && row.fingerprint === input.fingerprint) return row;
    if (!row || row.fingerprint !== input.fingerprint || row.locked_until <= Date.now()) return null;
    if (performance.now() >= deadline) return null;
  }
}

function replay(c: Context, row: IdempotencyRow): Response {
  const headers = JSON.parse(row.headers ?? "{}") as Record<string, string>;
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  c.header("Idempotent-Replayed", "true");
  return c.body(row.body ?? "", row.status as 200);
}

/** Stores the answer (or gives the key up) after the handler ran. */
async function settle(db: Db, c: Context, input: ClaimInput, res: Response = c.res) {
  const unknownOutcome = (apiErrorOf(c.error)?.details as { outcome?: string } | undefined)?.outcome === "unknown";
  if (unknownOutcome) return; // keep the key locked: whether the write happened is not known yet
  const { status, headers, body } = await storedAnswer(res);
  const run =
    body === null || status >= 500 || status === 408 || status === 429
      ? () => releaseIdempotencyKey(db, input.owner, input.key, input.fingerprint)
      : () => storeIdempotentAnswer(db, input.owner, input.key, input.fingerprint, { status, headers: JSON.stringify(headers), body });
  // Awaited (a retry then finds the answer at once), but never past the request's ride-through: a database that
  // went away meanwhile gets it later, retried in the background while the key is still ours.
  const done = persist(db, run);
  // Known down: the answer leaves now; the record follows when the database is back.
  if (db.availability.downSince !== null) return;
  let timer: Timer | undefined;
  const wait = Math.max(0, rideThroughLeft(db.availability.rideThroughMs));
  await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
  clearTimeout(timer);
}

/** An answer as stored: status, the kept headers, the body as text (null: not text, or past MAX_STORED_BYTES). */
async function storedAnswer(res: Response): Promise<{ status: number; headers: Record<string, string>; body: string | null }> {
  let body: string | null = null;
  const bytes = new Uint8Array(await res.clone().arrayBuffer());
  if (bytes.byteLength <= MAX_STORED_BYTES) {
    try {
      body = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      body = null; // not text: not stored
    }
  }
  const headers: Record<string, string> = {};
  for (const h of KEPT_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) headers[h] = v;
  }
  return { status: res.status, headers, body };
}

/** Runs `run` until it succeeds, again each second while the database is away, for at most LEASE_MS (or until `db` closes). */
async function persist(db: Db, run: () => Promise<unknown>): Promise<void> {
  const giveUpAt = Date.now() + LEASE_MS;
  for (;;) {
    try {
      await run();
      return;
    } catch (err) {
      if (db.closed) return;
      logOncePer("idempotency settle", 10_000, "warn", "idempotency answer not stored yet; retrying", { error: String(err) });
      if (Date.now() + 1000 >= giveUpAt) return;
      await Bun.sleep(1000);
    }
  }
}

// Tokens of unkeyed pending writes: `p1.<issued, base 36>.<pid, base 36>.<host, base64url>.<random>`. The
// answer is stored under the token with the caller as `pending:<owner>` (a client's own keys never meet it).
const TOKEN_RE = /^p1\.([0-9a-z]{1,12})\.([0-9a-z]{1,8})\.([A-Za-z0-9_-]{0,340})\.([0-9a-f]{32})$/;
/** Past this age with no answer stored, a pending write's outcome is lost (its process would have stored it by then). */
const PENDING_LOST_MS = LEASE_MS + 5 * 60_000;

function newPendingToken(host: string): string {
  const random = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
  return `p1.${Date.now().toString(36)}.${process.pid.toString(36)}.${Buffer.from(host).toString("base64url")}.${random}`;
}

function pendingOwnerOf(c: Context): string {
  return `pending:${ownerOf(c)}`;
}

/**
 * GET /api/v1/pending-writes/{token}: the final answer of a write answered 202 without a key, replayed as it
 * was (status, body; `Idempotent-Replayed: true`); 202 while not known yet; 410 `outcome_lost` when the process
 * that held it stopped without storing it; 404 for a token that is not the caller's, malformed or past 24 h.
 */
export async function pendingWriteAnswer(db: Db, c: Context, token: string): Promise<Response> {
  const m = TOKEN_RE.exec(token);
  const issuedAt = m ? Number.parseInt(m[1]!, 36) : Number.NaN;
  const age = Date.now() - issuedAt;
  if (!m || !(age >= 0 && age < IDEMPOTENCY_TTL_MS))
    throw new ApiError("not_found", "no pending write has this token (or it is past 24 h)");
  const row = await findIdempotencyKey(db, pendingOwnerOf(c), token);
  if (row?.status != null) return replay(c, row);
  const host = Buffer.from(m[3]!, "base64url").toString();
  const pid = Number.parseInt(m[2]!, 36);
  if (age > PENDING_LOST_MS || (await isProcessGone(db, db.q, host, pid))) {
    throw new ApiError(
      "outcome_lost",
      "the process holding this write's outcome stopped before the database told it; the write may or may not have been applied: check (e.g. read the resource) before sending it again",
    );
  }
  c.header("Retry-After", String(db.availability.retryAfterSeconds()));
  return c.json(
    { status: "pending", token, message: "not known yet: the database has not told this write's outcome; ask again after Retry-After" },
    202,
  );
}
