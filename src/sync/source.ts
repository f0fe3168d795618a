import { existsSync } from "node:fs";
import type { Config } from "../config.ts";
import type { Db } from "../db/index.ts";
import type { GscRow, HourlyRow } from "../db/model.ts";
import { createGoogleAccounts } from "../google/accounts.ts";
import { listStoredSignInAccounts } from "../google/queries.ts";
import { demoSource } from "./demo.ts";
import { serviceAccountToken, staticToken, type TokenProvider } from "./gsc/auth.ts";
import { authorizedUserToken, listStoredSignIns } from "./gsc/user-auth.ts";
import { gscSource, type GscClientOptions } from "./gsc/client.ts";
import { createRateLimiter, type RateLimiter } from "./gsc/limiter.ts";
import { createDbQuota, type QuotaLimits } from "./gsc/quota.ts";
import { createGscResources, demoResources, type ResourceSource } from "./gsc/resources.ts";

export type { SearchType } from "./search-types.ts";
import type { SearchType } from "./search-types.ts";

/** A grain fetched without the query dimension: property totals, page totals, or search-appearance totals. */
export type Grain = "property" | "page" | "appearance";

/** One row of a totals grain as a source returns it (keys absent from the grain are ''). */
export type TotalsRow = {
  page: string;
  country: string;
  device: string;
  appearance: string;
  clicks: number;
  impressions: number;
  position: number;
};

/**
 * The rows of one totals grain, with Search Console's `metadata.firstIncompleteDate` when the request
 * asked for fresh data (dataState `all`, grouped by date) and the day is still being collected: that day
 * and later ones may still change (provisional). Absent: the day is complete, or the source cannot tell.
 */
export type TotalsRows = TotalsRow[] & { firstIncompleteDate?: string };

/** How a day is asked: `fresh` sends dataState `all` (recent days: Google's still-changing data included). */
export type FetchOptions = { fresh?: boolean };

/** One search-analytics row as a source returns it (dimensions page, query, device). */
export type SourceRow = Pick<GscRow, "page" | "query" | "device" | "clicks" | "impressions" | "ctr" | "position">;

/** One hourly row (dimensions HOUR, query, page, device; dataState HOURLY_ALL). */
export type HourlySourceRow = Pick<
  HourlyRow,
  "hour_timestamp" | "query" | "page" | "device" | "clicks" | "impressions" | "ctr" | "position"
>;

/** Where syncs get their rows: Search Console, or the demo generator. */
export type SearchAnalyticsSource = {
  name: "gsc" | "demo";
  /** Pages of rows for one property (the site's domain), day and search type, until exhausted. */
  pages(siteUrl: string, day: string, type: SearchType, signal: AbortSignal, opts?: FetchOptions): AsyncIterable<SourceRow[]>;
  /** Pages of one day's hourly rows (web search) for one property, until exhausted. */
  hourlyPages(siteUrl: string, day: string, signal: AbortSignal): AsyncIterable<HourlySourceRow[]>;
  /** Every row of one totals grain (property, page or search appearance) of a day and search type. */
  totals(siteUrl: string, day: string, type: SearchType, grain: Grain, signal: AbortSignal, opts?: FetchOptions): Promise<TotalsRows>;
  /** Sitemaps and URL inspection (sitemaps_sync, url_inspection tasks); absent: this source has none. */
  resources?: ResourceSource;
};

/** Search Console's limits from the configuration (the quota every process and host shares through the database). */
export function quotaLimits(c: Config): QuotaLimits {
  return {
    sitePerMinute: c.GSC_QUOTA_SITE_PER_MINUTE,
    projectPerMinute: c.GSC_QUOTA_PER_MINUTE,
    projectPerDay: c.GSC_QUOTA_PER_DAY,
    inspectPerMinute: c.GSC_INSPECT_PER_MINUTE,
    inspectPerDay: c.GSC_INSPECT_PER_DAY,
    otherPerMinute: c.GSC_OTHER_PER_MINUTE,
  };
}

/** The Search Console credentials the configuration names: an access token, a service account, else the stored sign-in. */
export function tokenProviderFromConfig(c: Config): TokenProvider {
  return c.GSC_ACCESS_TOKEN
    ? staticToken(c.GSC_ACCESS_TOKEN)
    : c.GSC_SERVICE_ACCOUNT_FILE
      ? serviceAccountToken({ keyFile: c.GSC_SERVICE_ACCOUNT_FILE, tokenUrl: c.GSC_TOKEN_URL, timeoutMs: c.GSC_TIMEOUT_MS })
      : authorizedUserToken({ file: c.GSC_CREDENTIALS_FILE, tokenUrl: c.GSC_TOKEN_URL });
}

/**
 * Whether syncs use Search Console right now (else the demo source), as sourceFromConfig decides: with
 * `auto` and no token or service account, once a sign-in is stored (looked up at each call).
 */
export function usesSearchConsole(c: Config): boolean {
  if (c.SYNC_SOURCE === "demo") return false;
  return c.SYNC_SOURCE === "gsc" || !!c.GSC_ACCESS_TOKEN || !!c.GSC_SERVICE_ACCOUNT_FILE || hasSignIn(c.GSC_CREDENTIALS_FILE);
}

/** Whether a Google sign-in is stored on this machine (the first one, or an added account's). */
function hasSignIn(credentialsFile: string): boolean {
  return existsSync(credentialsFile) || listStoredSignIns(credentialsFile).length > 0;
}

/**
 * Builds the source the configuration selects. Given the database, each property is read with its
 * site's Google account (src/google/accounts.ts), and each Google project's requests share one limiter.
 */
export function sourceFromConfig(c: Config, db?: Db): SearchAnalyticsSource {
  const demo: SearchAnalyticsSource = { ...demoSource(c.DEMO_ROWS_PER_DAY, c.GSC_ROW_LIMIT), resources: demoResources() };
  if (c.SYNC_SOURCE === "demo") return demo;
  const limiters = new Map<string, RateLimiter>();
  const limiterOf = (project: string) => {
    let l = limiters.get(project);
    // Each Google project's quota, counted in the database for every process and host (without a database: this process's).
    l ??= db
      ? createDbQuota(db, { limits: quotaLimits(c), maxWaitMs: c.GSC_QUOTA_MAX_WAIT_MS, project })
      : createRateLimiter({ limit: c.GSC_QUOTA_PER_MINUTE });
    limiters.set(project, l);
    return l;
  };
  const accounts = db ? createGoogleAccounts(db, c) : null;
  const opts: GscClientOptions = {
    baseUrl: c.GSC_API_BASE_URL,
    auth: tokenProviderFromConfig(c),
    limiter: limiterOf("default"),
    route: accounts
      ? async (siteUrl: string) => {
          const cr = await accounts.credentialsFor(siteUrl);
          return { auth: cr.auth, limiter: limiterOf(cr.project) };
        }
      : undefined,
    rowLimit: c.GSC_ROW_LIMIT,
    maxRetries: c.GSC_MAX_RETRIES,
    retryBaseMs: c.GSC_RETRY_BASE_MS,
    timeoutMs: c.GSC_TIMEOUT_MS,
  };
  const gsc: SearchAnalyticsSource = { ...gscSource(opts), resources: createGscResources(opts) };
  if (c.SYNC_SOURCE === "gsc" || c.GSC_ACCESS_TOKEN || c.GSC_SERVICE_ACCOUNT_FILE) return gsc;
  return signInOrDemo(c.GSC_CREDENTIALS_FILE, gsc, demo, db);
}

/** How long `auto` trusts its last look for sign-ins stored in the database. */
const DB_SIGN_IN_CHECK_MS = 10_000;

/**
 * `auto` without a token or service account: Search Console as soon as a sign-in is stored on this
 * machine or (given the database) in the database by another host (looked up at every request, the
 * database at most every DB_SIGN_IN_CHECK_MS, so the first `auth login` takes effect without restarting
 * the service), demo until then.
 */
function signInOrDemo(file: string, gsc: SearchAnalyticsSource, demo: SearchAnalyticsSource, db?: Db): SearchAnalyticsSource {
  let inDb = false;
  let checkedAt = 0;
  const pick = () => (hasSignIn(file) || inDb ? gsc : demo);
  const pickNow = async () => {
    if (db && !hasSignIn(file) && Date.now() - checkedAt > DB_SIGN_IN_CHECK_MS) {
      inDb = (await listStoredSignInAccounts(db)).size > 0;
      checkedAt = Date.now();
    }
    return pick();
  };
  return {
    get name() {
      return pick().name;
    },
    async *pages(...args) {
      yield* (await pickNow()).pages(...args);
    },
    async *hourlyPages(...args) {
      yield* (await pickNow()).hourlyPages(...args);
    },
    totals: async (...args) => (await pickNow()).totals(...args),
    // Both sources have resources (sourceFromConfig): chosen per call like the data.
    resources: {
      listSitemaps: async (...args) => (await pickNow()).resources!.listSitemaps(...args),
      inspectUrl: async (...args) => (await pickNow()).resources!.inspectUrl(...args),
    },
  };
}
