import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error code the API can answer with, and its HTTP status. */
export const errorStatus = {
  validation_failed: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  idempotency_in_progress: 409,
  // A write answered 202 pending whose outcome the process holding it could not store (it stopped).
  outcome_lost: 410,
  payload_too_large: 413,
  result_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  rate_limited: 429,
  // nginx's "client closed request": the client left before the answer; only logs and metrics see it.
  client_closed: 499 as ContentfulStatusCode,
  internal: 500,
  not_implemented: 501,
  unavailable: 503,
  query_timeout: 504,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

/** An error meant for the client: its code picks the status, its message is shown as is. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  /** Response headers that go with the error (WWW-Authenticate, Retry-After). */
  readonly headers: Record<string, string>;
  constructor(code: ErrorCode, message: string, details?: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
  get status(): ContentfulStatusCode {
    return errorStatus[this.code];
  }
}

/** The ApiError `err` is, or carries as its cause (Drizzle wraps what a query threw in DrizzleQueryError); else null. */
export function apiErrorOf(err: unknown): ApiError | null {
  for (let e = err, depth = 0; e && depth < 3; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ApiError) return e;
  }
  return null;
}

/**
 * The JSON body of an error response: `{"error": {"code", "message", "details"?}, "detail": message}`.
 * `detail` is the original (FastAPI) tool's field, kept so its clients that print it still work.
 */
export function errorBody(code: ErrorCode, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details }, detail: message };
}

/** The driver's error code of a database failure; Drizzle wraps driver errors (DrizzleQueryError) with the original as `cause`. */
export function dbErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | null, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === "string") return e.code;
  }
  return undefined;
}

function dbErrorMessage(err: unknown): string {
  for (let e = err as { message?: unknown; cause?: unknown } | null, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.cause === undefined && typeof e.message === "string") return e.message;
  }
  return String((err as { message?: unknown } | null)?.message ?? err);
}

// PostgreSQL SQLSTATEs: a transaction that lost a race (retry it) ...
const PG_RETRYABLE = new Set(["40001", "40P01", "55P03"]);
// ... and a server that is going away, starting, out of connections or space, or a statement past its timeout.
const PG_UNAVAILABLE = /^(08|57P0[1-4]|53)/;
const CONNECTION_LOST = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)$/;
// "timeout expired": pg's own connect timeout (the engine bounds each new connection: a silent server).
const CONNECTION_LOST_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed|^timeout expired$/i;

/** True for SQLite's "busy"/"locked" failures (SQLITE_BUSY*, SQLITE_LOCKED*) and PostgreSQL's lost races and statement timeouts. */
export function isBusyError(err: unknown): boolean {
  const code = dbErrorCode(err);
  if (code === undefined) return false;
  return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED") || PG_RETRYABLE.has(code) || code === "57014";
}

/**
 * True for failures of the storage itself: SQLite's file (corrupt, not a database, I/O, disk full,
 * read-only), or a PostgreSQL server that cannot be reached or is shutting down, full or out of connections.
 */
export function isStorageError(err: unknown): boolean {
  const code = dbErrorCode(err);
  if (code !== undefined && /^SQLITE_(NOTADB|CORRUPT|IOERR|CANTOPEN|FULL|READONLY)/.test(code)) return true;
  return isUnavailableDbError(err);
}

/** True when the PostgreSQL server could not be reached or dropped the connection (worth retrying later). */
export function isUnavailableDbError(err: unknown): boolean {
  const code = dbErrorCode(err);
  if (code !== undefined && (PG_UNAVAILABLE.test(code) || CONNECTION_LOST.test(code))) return true;
  return code === undefined && CONNECTION_LOST_MESSAGE.test(dbErrorMessage(err));
}

/** True for PostgreSQL failures a transaction retry can cure: serialization failure, deadlock, lock wait, lost connection. */
export function isRetryableDbError(err: unknown): boolean {
  const code = dbErrorCode(err);
  return (code !== undefined && PG_RETRYABLE.has(code)) || isUnavailableDbError(err);
}

/** True for a UNIQUE (or primary key) constraint violation, on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  const code = dbErrorCode(err);
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505";
}
