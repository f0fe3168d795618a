import type { Context, MiddlewareHandler } from "hono";
import { principalOf } from "../auth/middleware.ts";
import { requiredScope } from "../auth/policy.ts";
import { offerPendingAnswer, rideThroughLeft, withRideThrough } from "../db/availability.ts";
import type { Db } from "../db/index.ts";
import { ApiError, apiErrorOf } from "../errors.ts";
import { log, logOncePer } from "../log.ts";
import {
  claimIdempotencyKey,
  findIdempotencyKey,
  purgeExpiredIdempotencyKeys,
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
/** Headers of the first answer that are replayed with it (the body is replayed byte for byte). */
const KEPT_HEADERS = ["content-type", "location", "link"];

/** The Idempotency-Key middleware (mounted once, after auth and the body limit). */
export function idempotencyMiddleware(db: Db): MiddlewareHandler {
  let purgedAt = 0;
  return async (c, next) => {
    const key = c.req.header("idempotency-key");
    if (key === undefined || !WRITE_METHODS.has(c.req.method) || !c.req.path.startsWith("/api/")) return next();
    // Reads sent as POST (analytics queries) answer the same anyway; a new key's secret is never stored.
    if (requiredScope(c.req.method, c.req.path) === "read" || (c.req.method === "POST" && /^\/api\/v1\/keys\/?$/.test(c.req.path))) {
      return next();
    }
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
    const deadline = performance.now() + db.availability.rideThroughMs;
    for (;;) {
      const t = Date.now();
      const claim = await claimIdempotencyKey(db, input, t, t + LEASE_MS, t + IDEMPOTENCY_TTL_MS);
      if (claim.kind === "claimed") break;
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
          { "Retry-After": "1" },
        );
      }
      // Given up by the first request (it failed): claim it for this one.
    }
    // A write whose COMMIT lost the server may learn its outcome only once the server is back: rather than
    // hold the request past the ride-through, it is answered 202 (outcome pending) then, and its handler goes
    // on; the final answer is stored for the key, where a retry with it finds it (docs/operations.md).
    let announce!: () => void;
    const pending = new Promise<"pending">((r) => (announce = () => r("pending")));
    offerPendingAnswer(announce);
    const run = next().then(() => "done" as const);
    if ((await Promise.race([run, pending])) === "pending") {
      const answer = captureAnswer(c);
      void run
        .then(() => {
          const final = c.error ? c.res : answer();
          // No answer seen (a handler that built its Response itself): the key stays locked to its lease.
          if (!final) return log("warn", "idempotency answer of a pending write not seen", { key: input.key });
          return withRideThrough(db.availability.rideThroughMs, () => settle(db, c, input, final));
        })
        .catch((err) => log("warn", "idempotency answer of a pending write not stored", { key: input.key, error: String(err) }));
      return pendingAnswer(c, db, input.key);
    }
    offerPendingAnswer(undefined);
    await settle(db, c, input);
  };
}

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

/** 202: the write may or may not have been applied yet; a retry with the same key gets its final answer. */
function pendingAnswer(c: Context, db: Db, key: string): Response {
  c.header("Retry-After", String(db.availability.retryAfterSeconds()));
  c.header("Idempotent-Pending", "true");
  return c.json(
    {
      status: "pending",
      idempotency_key: key,
      message:
        "the database went away while this write was committing; whether it was applied is known once it is back. Its final answer is kept for this Idempotency-Key: send the same request again with the same key (after Retry-After) to get it",
    },
    202,
  );
}

/** Who sent the request: keys are per caller (a key of another API key is another key). */
function ownerOf(c: Context): string {
  const p = principalOf(c);
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
  const status = res.status;
  const unknownOutcome = (apiErrorOf(c.error)?.details as { outcome?: string } | undefined)?.outcome === "unknown";
  if (unknownOutcome) return; // keep the key locked: whether the write happened is not known yet
  let body: string | null = null;
  if (status < 500 && status !== 408 && status !== 429) {
    const bytes = new Uint8Array(await res.clone().arrayBuffer());
    if (bytes.byteLength <= MAX_STORED_BYTES) {
      try {
        body = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        body = null; // not text: not stored
      }
    }
  }
  const headers: Record<string, string> = {};
  for (const h of KEPT_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) headers[h] = v;
  }
  const run =
    body === null
      ? () => releaseIdempotencyKey(db, input.owner, input.key, input.fingerprint)
      : () => storeIdempotentAnswer(db, input.owner, input.key, input.fingerprint, { status, headers: JSON.stringify(headers), body });
  // Awaited (a retry then finds the answer at once), but never past the request's ride-through: a database that
  // went away meanwhile gets it later, retried in the background while the key is still ours.
  const giveUpAt = Date.now() + LEASE_MS;
  const attempt = async (): Promise<void> => {
    try {
      await run();
    } catch (err) {
      logOncePer("idempotency settle", 10_000, "warn", "idempotency answer not stored yet; retrying", { error: String(err) });
      if (Date.now() + 1000 < giveUpAt) {
        await Bun.sleep(1000);
        return attempt();
      }
    }
  };
  const done = attempt();
  // Known down: the answer leaves now; the record follows when the database is back.
  if (db.availability.downSince !== null) return;
  let timer: Timer | undefined;
  const wait = Math.max(0, rideThroughLeft(db.availability.rideThroughMs));
  await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
  clearTimeout(timer);
}
