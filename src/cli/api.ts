// The CLI's HTTP client for the running service: JSON in and out, the API key as a Bearer token,
// the service's error bodies turned into one-line messages, "not running" said plainly.

export type ApiOptions = { url: string; apiKey?: string };

/** A request the service answered with an error status (its JSON error body, when it sent one). */
export class ServiceError extends Error {
  override name = "ServiceError";
  readonly status: number;
  readonly code: string | undefined;
  readonly details: unknown;
  constructor(status: number, message: string, code?: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The service could not be reached at all. */
export class ServiceDown extends Error {
  override name = "ServiceDown";
}

/** The message of an error body: `{"error": {"code", "message"}}`, or the original's `{"detail"}`. */
function errorMessage(status: number, text: string): { message: string; code?: string; details?: unknown } {
  try {
    const j = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown }; detail?: unknown };
    if (j.error?.message) return { message: j.error.message, code: j.error.code, details: j.error.details };
    if (typeof j.detail === "string") return { message: j.detail };
  } catch {
    // Not JSON.
  }
  return { message: `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}` };
}

/** Tries of a write answered 503 (same Idempotency-Key each time), and the longest Retry-After waited for. */
const WRITE_ATTEMPTS = 3;
const MAX_RETRY_WAIT_S = 5;
/** Tries of a write whose answer is pending (202 `Idempotent-Pending`, then 409 idempotency_in_progress): ~30 s and more. */
const PENDING_ATTEMPTS = 30;

/** True for a 409 `idempotency_in_progress` (the body is read from a clone). */
async function inProgress(res: Response): Promise<boolean> {
  const body = (await res
    .clone()
    .json()
    .catch(() => null)) as { error?: { code?: unknown } } | null;
  return body?.error?.code === "idempotency_in_progress";
}

/** A client for the service at `opts.url`. */
export function createApi(opts: ApiOptions) {
  const base = opts.url.replace(/\/+$/, "");

  /** Sends one request; resolves with the response when its status is 2xx. */
  async function send(method: string, path: string, body?: unknown, accept = "application/json"): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    // Every write carries an Idempotency-Key: a write answered 503 (the database restarting) is sent
    // again with the same key, so it is applied once and its answer is the first one (docs/api.md).
    const write = method !== "GET" && method !== "HEAD";
    if (write) headers["idempotency-key"] = crypto.randomUUID();
    let res: Response;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (err) {
        throw new ServiceDown(
          `cannot reach sitesync at ${base} (${(err as Error).message}). Is it running? Start it with: bun run start --workers 4 (or give --url / SITESYNC_URL)`,
        );
      }
      const retryAfter = Number(res.headers.get("retry-after"));
      // 202 pending (the write's outcome not known yet) and 409 idempotency_in_progress: its final answer is
      // on the way; asked for again with the same key, for up to PENDING_ATTEMPTS tries.
      const pending = write && (res.headers.get("idempotent-pending") === "true" || (res.status === 409 && (await inProgress(res))));
      if (pending && attempt < PENDING_ATTEMPTS && retryAfter <= MAX_RETRY_WAIT_S) {
        await res.body?.cancel();
        await Bun.sleep(Math.max(1, retryAfter) * 1000);
        continue;
      }
      if (!write || res.status !== 503 || attempt >= WRITE_ATTEMPTS || !(retryAfter <= MAX_RETRY_WAIT_S)) break;
      await res.body?.cancel();
      await Bun.sleep(Math.max(1, retryAfter) * 1000);
    }
    if (res.ok) return res;
    const e = errorMessage(res.status, await res.text());
    if (res.status === 401 || res.status === 403) {
      // A key with too narrow a scope: name the scope this call needs, not just "give a key".
      const needs = (e.details as { required_scope?: unknown } | undefined)?.required_scope;
      const hint =
        typeof needs === "string"
          ? `(this needs a key with the '${needs}' scope: give one with --api-key or SITESYNC_API_KEY)`
          : "(give the service's API key with --api-key or SITESYNC_API_KEY)";
      throw new ServiceError(res.status, `${e.message} ${hint}`, e.code, e.details);
    }
    throw new ServiceError(res.status, e.message, e.code, e.details);
  }

  /** Sends one request and parses the JSON answer (undefined for 204). */
  async function json<T>(method: string, path: string, body?: unknown): Promise<{ body: T; headers: Headers }> {
    const res = await send(method, path, body);
    const text = await res.text();
    return { body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
  }

  return {
    base,
    send,
    get: <T>(path: string) => json<T>("GET", path).then((r) => r.body),
    post: <T>(path: string, body?: unknown) => json<T>("POST", path, body).then((r) => r.body),
    /** Every item of a paged list, following `Link: <…>; rel="next"`. */
    async all<T>(path: string): Promise<T[]> {
      const out: T[] = [];
      for (let next: string | null = path; next; ) {
        const r: { body: T[]; headers: Headers } = await json<T[]>("GET", next);
        out.push(...r.body);
        next = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get("link") ?? "")?.[1] ?? null;
      }
      return out;
    },
  };
}

export type Api = ReturnType<typeof createApi>;
