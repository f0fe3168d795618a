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
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
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

/**
 * The JSON body of an error response: `{"error": {"code", "message", "details"?}, "detail": message}`.
 * `detail` is the original (FastAPI) tool's field, kept so its clients that print it still work.
 */
export function errorBody(code: ErrorCode, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details }, detail: message };
}

/** True for SQLite's "busy"/"locked" failures (SQLITE_BUSY*, SQLITE_LOCKED*). */
export function isBusyError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** True for SQLite failures of the file itself (corrupt, not a database, I/O, disk full, read-only). */
export function isStorageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^SQLITE_(NOTADB|CORRUPT|IOERR|CANTOPEN|FULL|READONLY)/.test(code);
}

/** True for a UNIQUE constraint violation. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
