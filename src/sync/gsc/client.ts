import { log } from "../../log.ts";
import { gscRequests } from "../../metrics/registry.ts";
import { PermanentError } from "../errors.ts";
import { typeRules } from "../search-types.ts";
import type {
  Grain,
  HourlySourceRow,
  SearchAnalyticsSource,
  SearchType,
  FetchOptions,
  SourceRow,
  TotalsRow,
  TotalsRows,
} from "../source.ts";
import type { TokenProvider } from "./auth.ts";
import type { QuotaRequest, RateLimiter } from "./limiter.ts";
import { sleep } from "./sleep.ts";

export type GscClientOptions = {
  /** e.g. https://searchconsole.googleapis.com (tests: a fake server on loopback). */
  baseUrl: string;
  auth: TokenProvider;
  limiter: RateLimiter;
  /** Rows per request (Search Console allows up to 25,000). */
  rowLimit: number;
  /** Retries of one request on 5xx, 429 and network errors. */
  maxRetries: number;
  /** First backoff; doubles per retry, with jitter. */
  retryBaseMs: number;
  timeoutMs: number;
  /** Longest Retry-After honoured as is. */
  maxRetryAfterMs?: number;
  /**
   * The token and limiter for one property (several Google accounts: each site's account, each Google
   * project's quota); unset, `auth` and `limiter` serve every property.
   */
  route?: (siteUrl: string) => Promise<{ auth: TokenProvider; limiter: RateLimiter }>;
};

/** The searchAnalytics.query request body. */
export type SearchAnalyticsQuery = {
  startDate: string;
  endDate: string;
  dimensions: string[];
  type: SearchType;
  rowLimit: number;
  startRow: number;
  /** `all`: fresh (still-changing) days included; `HOURLY_ALL` for the HOUR dimension; unset: Google's default (final data only). */
  dataState?: "final" | "all" | "HOURLY_ALL";
  /** byProperty (true totals: no page dimension allowed) or byPage; unset: Google's `auto`. */
  aggregationType?: "byProperty" | "byPage";
  dimensionFilterGroups?: { filters: { dimension: string; operator: "equals"; expression: string }[] }[];
};

/**
 * The request of one totals grain for a search type (Google's per-type rules: discover has no device
 * dimension; search appearance cannot be combined with another dimension). Property totals are asked
 * byProperty (Search Console's own totals, anonymized queries included), page totals byPage.
 */
export function totalsRequest(type: SearchType, grain: Grain): { dimensions: string[]; aggregationType?: "byProperty" | "byPage" } {
  const device = typeRules(type).device ? ["device"] : [];
  if (grain === "property") return { dimensions: ["date", "country", ...device], aggregationType: "byProperty" };
  if (grain === "page") return { dimensions: ["date", "page", "country", ...device], aggregationType: "byPage" };
  return { dimensions: ["searchAppearance"] };
}

type ApiRow = { keys?: string[]; clicks?: number; impressions?: number; ctr?: number; position?: number };

/** A searchAnalytics.query answer: rows, and with dataState `all` the metadata on incomplete data. */
type ApiAnswer = { rows?: ApiRow[]; metadata?: { firstIncompleteDate?: string; first_incomplete_date?: string } } | null;

/** A Search Console (or token) request that did not succeed but may later: the task is retried. */
export class GscError extends Error {
  override name = "GscError";
}

/** A refusal that retrying cannot fix: 401/403 or another 4xx. */
export class GscPermanentError extends PermanentError {
  override name = "GscPermanentError";
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** Google's error text from a JSON error body (`{"error": {"status", "message"}}`), else the raw start. */
function googleMessage(text: string): string {
  try {
    const e = (JSON.parse(text) as { error?: { status?: string; message?: string } | string }).error;
    if (typeof e === "string") return e;
    if (e) return [e.status, e.message].filter(Boolean).join(": ");
  } catch {
    // Not JSON.
  }
  return text.slice(0, 300) || "(empty body)";
}

/** Reasons (and the domain) Google gives a quota refusal in `error.errors[]`: a 403 with one is quota, not permission. */
const QUOTA_REASONS = new Set(["usageLimits", "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"]);

/** True when an error body says quota (errors[].reason/domain, or status RESOURCE_EXHAUSTED), not a refused permission. */
export function isQuotaRefusal(text: string): boolean {
  try {
    const e = (JSON.parse(text) as { error?: { status?: string; errors?: { reason?: string; domain?: string }[] } }).error;
    if (!e || typeof e !== "object") return false;
    if (e.status === "RESOURCE_EXHAUSTED") return true;
    return (e.errors ?? []).some((x) => QUOTA_REASONS.has(x.reason ?? "") || QUOTA_REASONS.has(x.domain ?? ""));
  } catch {
    return false;
  }
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  if (/^\d+(\.\d+)?$/.test(header.trim())) return Math.round(Number(header) * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The metrics label of an answer's status. */
function gscResult(status: number, quota = false) {
  if (status < 300) return "ok";
  if (status === 429 || quota) return "rate_limited";
  if (status === 401 || status === 403) return "auth_error";
  return status >= 500 ? "server_error" : "client_error";
}

/** One Search Console API call: where, what, and the quota it counts against. */
export type GscCall = {
  method: "GET" | "POST";
  url: string;
  body?: unknown;
  /** The property (siteUrl) the call is about. */
  site: string;
  quota: QuotaRequest["kind"];
  /** What the call is, for messages ("query", "sitemaps list", "URL inspection"). */
  label: string;
};

/**
 * Sends Search Console calls with the client's policy: quota before each attempt, a fresh token once on
 * 401, retries with backoff on network errors, 5xx, 429 and quota 403s (Retry-After honoured), a
 * permanent error for other 4xx. Resolves with the parsed JSON answer.
 */
export function gscSender(opts: Omit<GscClientOptions, "rowLimit">) {
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 300_000;
  const backoff = (attempt: number) => opts.retryBaseMs * 2 ** attempt * (0.5 + Math.random());

  return async function send(call: GscCall, signal: AbortSignal): Promise<unknown> {
    const { site: siteUrl, label } = call;
    const quotaReq: QuotaRequest = { site: siteUrl, kind: call.quota };
    const { auth, limiter } = opts.route ? await opts.route(siteUrl) : opts;
    let refreshed = false;
    let last = "";
    for (let attempt = 0; ; attempt++) {
      await limiter.acquire(signal, quotaReq);
      const token = await auth.token(signal);
      let res: Response;
      try {
        res = await fetch(call.url, {
          method: call.method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(call.body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: call.body === undefined ? undefined : JSON.stringify(call.body),
          signal: AbortSignal.any([signal, AbortSignal.timeout(opts.timeoutMs)]),
        });
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        gscRequests.inc({ result: "network_error" });
        last = `request failed: ${(err as Error).message}`;
        if (attempt >= opts.maxRetries) throw new GscError(`Search Console ${last} (after ${attempt + 1} attempts)`);
        await sleep(backoff(attempt), signal);
        continue;
      }
      const text = await res.text();
      // A 403 whose reason is usageLimits/rateLimitExceeded/quotaExceeded is quota: backed off and retried like a 429.
      const quota = res.status === 403 && isQuotaRefusal(text);
      gscRequests.inc({ result: gscResult(res.status, quota) });
      if (res.ok) {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          // A proxy's or load balancer's page instead of the API's answer: retried like a 5xx.
          last = `${res.status} with a body that is not JSON: ${text.slice(0, 100)}`;
          if (attempt >= opts.maxRetries)
            throw new GscError(`Search Console answered ${siteUrl}'s ${label} with ${last} (after ${attempt + 1} attempts)`);
          await sleep(backoff(attempt), signal);
          continue;
        }
      }
      const why = `${res.status} ${googleMessage(text)}`;
      if (res.status === 401 && !refreshed && auth.invalidate()) {
        // An expired service-account token: get a new one once, then believe the server.
        refreshed = true;
        attempt--;
        continue;
      }
      if (res.status === 401 || (res.status === 403 && !quota)) {
        throw new GscPermanentError(
          `Search Console refused access to ${siteUrl} (${why}); check that the credentials are valid and have access to this property`,
          res.status,
        );
      }
      const retryable = res.status === 429 || quota || res.status >= 500;
      if (!retryable) throw new GscPermanentError(`Search Console rejected the ${label} for ${siteUrl} (${why})`, res.status);
      // Every process backs off this property's (or the project's) window, not just this one.
      if (res.status === 429 || quota) await limiter.refused?.(quotaReq);
      last = why;
      if (attempt >= opts.maxRetries) {
        const what = quota ? "kept refusing for quota" : "kept failing";
        throw new GscError(`Search Console ${what} for ${siteUrl} (${why}, after ${attempt + 1} attempts)`);
      }
      // Google sends Retry-After with 429 and sometimes with 503 (unavailable).
      const asked = res.status === 429 || quota || res.status === 503 ? retryAfterMs(res.headers.get("retry-after")) : null;
      const wait = asked === null ? backoff(attempt) : Math.min(asked, maxRetryAfterMs);
      log("warn", "search console request retried", { site: siteUrl, status: res.status, wait_ms: Math.round(wait), attempt: attempt + 1 });
      await sleep(wait, signal);
    }
  };
}

/** The Search Console search-analytics client: quota, retries, auth errors, paging. */
export function createGscClient(opts: GscClientOptions) {
  const send = gscSender(opts);

  /** One searchAnalytics.query call (one page), retried as needed: its answer (rows, metadata). */
  async function answer(siteUrl: string, body: SearchAnalyticsQuery, signal: AbortSignal): Promise<NonNullable<ApiAnswer>> {
    const url = `${opts.baseUrl.replace(/\/+$/, "")}/webmasters/v3/sites/${encodeURIComponent(siteUrl)}/searchAnalytics/query`;
    return ((await send({ method: "POST", url, body, site: siteUrl, quota: "search", label: "query" }, signal)) as ApiAnswer) ?? {};
  }

  /** One searchAnalytics.query call (one page), retried as needed. */
  async function query(siteUrl: string, body: SearchAnalyticsQuery, signal: AbortSignal): Promise<ApiRow[]> {
    return (await answer(siteUrl, body, signal)).rows ?? [];
  }

  /**
   * Every row of one query, page by page (`startRow`), until a short page. Google's
   * `metadata.firstIncompleteDate` (dataState `all`), if any page carries it, is put in `meta`.
   */
  async function* paged(
    siteUrl: string,
    body: Omit<SearchAnalyticsQuery, "rowLimit" | "startRow">,
    signal: AbortSignal,
    meta: { firstIncompleteDate?: string } = {},
  ): AsyncGenerator<ApiRow[]> {
    for (let startRow = 0; ; startRow += opts.rowLimit) {
      const a = await answer(siteUrl, { ...body, rowLimit: opts.rowLimit, startRow }, signal);
      // The REST field is camelCase; the reference also names it first_incomplete_date: either is read.
      const incomplete = a.metadata?.firstIncompleteDate ?? a.metadata?.first_incomplete_date;
      if (incomplete && (!meta.firstIncompleteDate || incomplete < meta.firstIncompleteDate)) meta.firstIncompleteDate = incomplete;
      const rows = a.rows ?? [];
      if (rows.length > 0) yield rows;
      if (rows.length < opts.rowLimit) return;
    }
  }

  /** dataState of a day's requests: `all` when asked fresh, else Google's default (final data only). */
  const stateOf = (o?: FetchOptions) => (o?.fresh ? { dataState: "all" as const } : {});

  /** Every row of one day and search type (dimensions page, query, device). */
  async function* pages(
    siteUrl: string,
    day: string,
    type: SearchType,
    signal: AbortSignal,
    o?: FetchOptions,
  ): AsyncGenerator<SourceRow[]> {
    const body = { startDate: day, endDate: day, dimensions: ["page", "query", "device"], type, ...stateOf(o) };
    for await (const rows of paged(siteUrl, body, signal)) yield rows.map(toSourceRow);
  }

  /** Every hourly row of one day (dimensions HOUR, query, page, device; dataState HOURLY_ALL; web). */
  async function* hourlyPages(siteUrl: string, day: string, signal: AbortSignal): AsyncGenerator<HourlySourceRow[]> {
    const body = {
      startDate: day,
      endDate: day,
      dimensions: ["HOUR", "query", "page", "device"],
      type: "web" as const,
      dataState: "HOURLY_ALL" as const,
    };
    for await (const rows of paged(siteUrl, body, signal)) yield rows.map(toHourlyRow);
  }

  /**
   * Every row of one totals grain (property, page, search appearance) of a day and search type; asked
   * fresh (dataState `all`), with Google's firstIncompleteDate when the day is still being collected.
   */
  async function totals(
    siteUrl: string,
    day: string,
    type: SearchType,
    grain: Grain,
    signal: AbortSignal,
    o?: FetchOptions,
  ): Promise<TotalsRows> {
    const req = totalsRequest(type, grain);
    const out: TotalsRows = [];
    const meta: { firstIncompleteDate?: string } = {};
    for await (const rows of paged(siteUrl, { startDate: day, endDate: day, type, ...req, ...stateOf(o) }, signal, meta)) {
      for (const r of rows) out.push(toTotalsRow(req.dimensions, r));
    }
    if (meta.firstIncompleteDate) out.firstIncompleteDate = meta.firstIncompleteDate;
    return out;
  }

  return { query, pages, hourlyPages, totals };
}

/** An answer row of a totals request, its keys read by the request's dimensions. */
function toTotalsRow(dimensions: string[], r: ApiRow): TotalsRow {
  const key = (d: string) => {
    const i = dimensions.indexOf(d);
    return i < 0 ? "" : (r.keys?.[i] ?? "");
  };
  return {
    page: key("page"),
    country: key("country").toLowerCase(),
    device: key("device"),
    appearance: key("searchAppearance"),
    clicks: r.clicks ?? 0,
    impressions: r.impressions ?? 0,
    position: r.position ?? 0,
  };
}

function toSourceRow(r: ApiRow): SourceRow {
  const [page = "", query = "", device = ""] = r.keys ?? [];
  return {
    page,
    query,
    device,
    clicks: r.clicks ?? 0,
    impressions: r.impressions ?? 0,
    ctr: r.ctr ?? 0,
    position: r.position ?? 0,
  };
}

function toHourlyRow(r: ApiRow): HourlySourceRow {
  const [hour_timestamp = "", query = "", page = "", device = ""] = r.keys ?? [];
  return {
    hour_timestamp,
    query,
    page,
    device,
    clicks: r.clicks ?? 0,
    impressions: r.impressions ?? 0,
    ctr: r.ctr ?? 0,
    position: r.position ?? 0,
  };
}

/** The Search Console client as a sync source. */
export function gscSource(opts: GscClientOptions): SearchAnalyticsSource {
  const client = createGscClient(opts);
  return { name: "gsc", pages: client.pages, hourlyPages: client.hourlyPages, totals: client.totals };
}
