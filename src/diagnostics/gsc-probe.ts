import { redact } from "../redact.ts";
import type { Config } from "../config.ts";
import type { Db } from "../db/index.ts";
import { createGoogleAccounts } from "../google/accounts.ts";
import { listStoredSignInAccounts } from "../google/queries.ts";
import { PermanentError } from "../sync/errors.ts";
import { createGscClient, GscError, GscPermanentError } from "../sync/gsc/client.ts";
import { createRateLimiter } from "../sync/gsc/limiter.ts";
import { newestDataDay } from "../sync/dates.ts";
import { tokenProviderFromConfig, usesSearchConsole } from "../sync/source.ts";

/** What a check of the Search Console credentials against one property found. */
export type GscProbeResult = {
  status: "ok" | "error" | "demo";
  success: boolean;
  source: "gsc" | "demo";
  message: string;
  latency_ms: number;
  /** The day the one-row query asked for (none for the demo source). */
  checked_date: string | null;
  /** Rows Search Console returned (0 or 1): 0 only means no traffic that day. */
  rows: number | null;
  /** Search Console's HTTP status when it refused. */
  http_status: number | null;
};

/** Checks that the configured credentials can read one property (its `sites.domain`). */
export type GscProbe = (siteUrl: string) => Promise<GscProbeResult>;

/** Checks a process may send per minute: each is one Search Console request, counted in the quota. */
const PROBES_PER_MINUTE = 30;
/** Longest wait for the answer: this is an HTTP request someone is waiting on, not a sync. */
const PROBE_TIMEOUT_MS = 15_000;

const demoProbe: GscProbe = async () => ({
  status: "demo",
  success: true,
  source: "demo",
  message:
    "the demo source is configured (SYNC_SOURCE=demo, or no GSC_ACCESS_TOKEN, GSC_SERVICE_ACCOUNT_FILE or stored sign-in): there are no Search Console credentials to check, syncs store generated rows",
  latency_ms: 0,
  checked_date: null,
  rows: null,
  http_status: null,
});

/**
 * The probe the configuration selects: with Search Console credentials, one searchAnalytics.query of
 * one row for the newest day with data (no retries, bounded wait); for the demo source, says so. Given
 * the database, the property is asked with its site's Google account's token, as its syncs are.
 */
export function gscProbeFromConfig(c: Config, db?: Db): GscProbe {
  if (c.SYNC_SOURCE === "demo") return demoProbe;
  const limiter = createRateLimiter({ limit: PROBES_PER_MINUTE });
  const accounts = db ? createGoogleAccounts(db, c) : null;
  const client = createGscClient({
    baseUrl: c.GSC_API_BASE_URL,
    auth: tokenProviderFromConfig(c),
    limiter,
    route: accounts ? async (siteUrl) => ({ auth: (await accounts.credentialsFor(siteUrl)).auth, limiter }) : undefined,
    rowLimit: 1,
    maxRetries: 0,
    retryBaseMs: c.GSC_RETRY_BASE_MS,
    timeoutMs: Math.min(c.GSC_TIMEOUT_MS, PROBE_TIMEOUT_MS),
  });
  return async (siteUrl) => {
    // Asked at each check: with SYNC_SOURCE=auto the first `auth login` switches syncs to Search Console,
    // on this host or (a sign-in stored in the database) another one, as sourceFromConfig decides.
    const stored = async () => c.SYNC_SOURCE === "auto" && db !== undefined && (await listStoredSignInAccounts(db)).size > 0;
    if (!usesSearchConsole(c) && !(await stored())) return demoProbe(siteUrl);
    const day = newestDataDay();
    const t0 = performance.now();
    const result = (status: "ok" | "error", message: string, extra: { rows?: number; http_status?: number } = {}): GscProbeResult => ({
      status,
      success: status === "ok",
      source: "gsc",
      message: redact(message),
      latency_ms: Math.round((performance.now() - t0) * 10) / 10,
      checked_date: day,
      rows: extra.rows ?? null,
      http_status: extra.http_status ?? null,
    });
    const signal = AbortSignal.timeout(PROBE_TIMEOUT_MS);
    try {
      const rows = await client.query(
        siteUrl,
        { startDate: day, endDate: day, dimensions: ["date"], type: "web", rowLimit: 1, startRow: 0 },
        signal,
      );
      return result("ok", `the credentials can read ${siteUrl}`, { rows: rows.length });
    } catch (err) {
      if (signal.aborted)
        return result(
          "error",
          `Search Console did not answer within ${PROBE_TIMEOUT_MS} ms (or ${PROBES_PER_MINUTE} checks a minute were already sent)`,
        );
      if (err instanceof GscPermanentError) return result("error", err.message, { http_status: err.status });
      // GscError (5xx, 429, network, token endpoint) or PermanentError (key file, token refused).
      if (err instanceof PermanentError || err instanceof GscError) return result("error", err.message);
      throw err;
    }
  };
}

/** The probe for an app given no configuration: the demo source. */
export const defaultGscProbe: GscProbe = demoProbe;
