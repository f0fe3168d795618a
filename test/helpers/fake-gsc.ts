import { generateKeyPairSync, verify } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fakeResources } from "./fake-gsc-resources.ts";
import { exitWithParent } from "./sync.ts";

// A fake Google Search Console (searchAnalytics.query) and OAuth token endpoint on loopback, so sync
// tests run the real client over real HTTP. Rows are deterministic per (site, day, search type).

export type FakeRow = { keys: [string, string, string]; clicks: number; impressions: number; ctr: number; position: number };

export type LoggedRequest = {
  at: number;
  site: string;
  startDate: string;
  endDate: string;
  type: string;
  startRow: number;
  rowLimit: number;
  dimensions: string[];
  dataState?: string;
  aggregationType?: string;
  /** The request's dimension filters, flattened. */
  filters: { dimension: string; operator: string; expression: string }[];
  status: number;
  /** The bearer token the request carried, and the account the fake issued it to (null: a fixed test token). */
  token: string;
  account: string | null;
};

/** True for a request of the query detail (the only grain with the `query` dimension, besides hourly rows). */
export const isDetailRequest = (r: LoggedRequest) => r.dimensions.includes("query") && !r.dimensions.includes("HOUR");

/** A canned answer for the next matching request (tests inject 429s, 5xx, 401/403 this way). */
export type Injected = {
  status: number;
  headers?: Record<string, string>;
  /** Sent as JSON; `raw` is sent as is instead (e.g. an HTML error page). */
  body?: unknown;
  raw?: string;
  match?: (r: LoggedRequest) => boolean;
  times?: number;
};

/** The canned answer of an injected entry. */
function injectedResponse(x: Injected): Response {
  if (x.raw !== undefined) return new Response(x.raw, { status: x.status, headers: { "content-type": "text/html", ...x.headers } });
  return Response.json(x.body ?? { error: { code: x.status, message: `injected ${x.status}`, status: "INJECTED" } }, {
    status: x.status,
    headers: x.headers,
  });
}

/**
 * A quota refusal as Google sends it (the global error format: 403 with `error.errors[].domain`
 * `usageLimits` and a reason such as `rateLimitExceeded` or `quotaExceeded`); inject it with `fake.inject`.
 */
export function quotaRefusal(
  reason: "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded" | "dailyLimitExceeded",
  times = 1,
): Injected {
  const message = reason === "quotaExceeded" ? "Quota exceeded for quota metric 'Queries'." : "Rate Limit Exceeded";
  return {
    status: 403,
    times,
    body: { error: { code: 403, message, errors: [{ domain: "usageLimits", reason, message }], status: "PERMISSION_DENIED" } },
  };
}

export type FakeGscOptions = {
  /** Rows per (site, day, search type); default 100 for web, 10 for the other types. */
  rows?: (site: string, day: string, type: string) => number;
  /**
   * Rows of anonymized queries per (site, day, search type) (default: a tenth of `rows`, rounded up):
   * counted in every answer without the `query` dimension, left out of those with it (and of query filters).
   */
  anonymizedRows?: (site: string, day: string, type: string) => number;
  /** Rows Search Console exposes per answer of one day and type at most (default 50,000, as Google). */
  dailyRowCap?: number;
  /** A hand-written property for (site, day, type) instead of the generated one (undefined: generated). */
  universe?: (site: string, day: string, type: string) => UniverseRow[] | undefined;
  /**
   * The first day Search Console is still collecting (fresh data; null/unset: every day complete). As
   * Google documents: an answer with the default dataState (`final`) has no rows for that day or later;
   * with dataState `all` it has their provisional numbers (here: the final ones × 0.8, rounded down) and,
   * when grouped by `date`, `metadata.firstIncompleteDate`. Move it on (setFirstIncompleteDate) and the
   * days before it answer their final numbers.
   */
  firstIncompleteDate?: string | null;
  /** Hourly rows per (site, day) (dimension HOUR); default 48 (two per hour). */
  hourlyRows?: (site: string, day: string) => number;
  /**
   * Serialise each answer page once and send the same bytes for every day asked with the same request
   * (benchmarks: the fake's own CPU then stops competing with the service's). Valid because the generated
   * rows are the same every day (fakeRows does not depend on the date); only used without `universe` and for
   * days without rows added by `revise`. An answer with the `date` dimension (the property and page totals) is
   * the bytes of the first day asked with its date replaced (not for fresh data: its metadata names a date).
   */
  reuseBodies?: boolean;
  /**
   * Keep the answers computed (per request shape) across reset(), unless rows added by `revise` went into them:
   * valid when `rows` and `anonymizedRows` always give the same counts (a 60,000-row day costs ~0.2 s to compute).
   */
  keepAnswers?: boolean;
  /** Delay before every search-analytics answer. */
  delayMs?: number;
  /** Bearer tokens accepted besides those the token endpoint issued. */
  tokens?: string[];
  /** expires_in of the access tokens the token endpoint issues (seconds). */
  tokenExpiresIn?: number;
  /**
   * Answer 403 when the account behind a token does not see the property (as Google does); off by
   * default, where any accepted token reads any property.
   */
  checkAccess?: boolean;
};

/** A user's sign-in as the fake's consent page grants it. */
export type FakeAccount = { email: string; properties: { siteUrl: string; permissionLevel: string }[] };

/** The rows the fake has for one site, day and search type. */
export function fakeRows(site: string, day: string, type: string, count: number): FakeRow[] {
  const devices = ["DESKTOP", "MOBILE", "TABLET"];
  return Array.from({ length: count }, (_, i) => {
    const impressions = 10 + ((i * 7919 + day.length * 31) % 990);
    const clicks = (i * 104729) % (impressions + 1);
    return {
      keys: [`https://${site.replace(/^sc-domain:/, "")}/p/${i % 97}`, `fake query ${type} ${i}`, devices[i % 3]!],
      clicks,
      impressions,
      ctr: clicks / impressions,
      position: 1 + (i % 50) + 0.5,
    };
  });
}

export type FakeHourlyRow = { keys: [string, string, string, string]; clicks: number; impressions: number; ctr: number; position: number };

/** One row of the fake's property: every dimension (query '' and `anonymized` for a query Google does not name). */
export type UniverseRow = {
  page: string;
  query: string;
  country: string;
  device: string;
  appearance: string;
  anonymized: boolean;
  clicks: number;
  impressions: number;
  position: number;
};

const fakeCountries = ["usa", "gbr", "deu"];

/**
 * Everything the fake has for one site, day and search type: the named rows (fakeRows, each in one
 * country, some with a search appearance) and `anonymized` rows of queries Google does not name, plus
 * `extra` (rows a test added, e.g. a correction Google made later).
 */
export function fakeUniverse(site: string, day: string, type: string, count: number, anonymized: number, extra: UniverseRow[] = []) {
  const named: UniverseRow[] = fakeRows(site, day, type, count).map((r, i) => ({
    page: r.keys[0],
    query: r.keys[1],
    country: fakeCountries[i % 3]!,
    device: r.keys[2],
    appearance: i % 5 === 0 ? "VIDEO" : i % 7 === 0 ? "REVIEW_SNIPPET" : "",
    anonymized: false,
    clicks: r.clicks,
    impressions: r.impressions,
    position: r.position,
  }));
  const devices = ["DESKTOP", "MOBILE", "TABLET"];
  const anon: UniverseRow[] = Array.from({ length: anonymized }, (_, i) => ({
    page: `https://${site.replace(/^sc-domain:/, "")}/p/${(i * 5) % 97}`,
    query: "",
    country: fakeCountries[(i + 1) % 3]!,
    device: devices[(i + 2) % 3]!,
    appearance: "",
    anonymized: true,
    clicks: i % 4,
    impressions: 3 + ((i * 13) % 40),
    position: 8.5 + (i % 10),
  }));
  return [...named, ...anon, ...extra];
}

const knownDimensions = new Set(["date", "query", "page", "country", "device", "searchAppearance"]);

/**
 * Google's per-type and per-request rules (Search Console API reference; Search Central blog on Discover
 * and Google News, 2021): the refusal's message, or null when the request is allowed.
 */
export function refusalOf(type: string, dimensions: string[], aggregationType: string | undefined, filters: { dimension: string }[]) {
  const all = [...dimensions, ...filters.map((f) => f.dimension)];
  const unknown = all.find((d) => !knownDimensions.has(d));
  if (unknown) return `Invalid dimension: ${unknown}`;
  if ((type === "discover" || type === "googleNews") && all.includes("query"))
    return `The query dimension is not supported for search type ${type}.`;
  if (type === "discover" && all.includes("device")) return "The device dimension is not supported for search type discover.";
  if (dimensions.includes("searchAppearance") && dimensions.length > 1)
    return "searchAppearance cannot be grouped together with other dimensions.";
  if (aggregationType === "byProperty" && all.includes("page"))
    return "Aggregation by property is not supported when grouping or filtering by page.";
  if (aggregationType !== undefined && !["auto", "byProperty", "byPage", "byNewsShowcasePanel"].includes(aggregationType))
    return `Invalid aggregationType: ${aggregationType}`;
  return null;
}

/**
 * The fake's answer to a (non-hourly) search-analytics request: the universe filtered, summed by the
 * requested dimensions (anonymized queries left out when the query is a dimension or filter; rows
 * without an appearance left out of appearance answers), position impression-weighted, sorted by
 * clicks, cut at `cap` rows. Discover answers no position.
 */
export function fakeAnswer(
  universe: UniverseRow[],
  day: string,
  type: string,
  dimensions: string[],
  filters: { dimension: string; expression: string }[],
  cap: number,
) {
  const byQuery = dimensions.includes("query") || filters.some((f) => f.dimension === "query");
  const byAppearance = dimensions.includes("searchAppearance") || filters.some((f) => f.dimension === "searchAppearance");
  const value = (r: UniverseRow, d: string) =>
    d === "date"
      ? day
      : d === "searchAppearance"
        ? r.appearance
        : d === "country"
          ? r.country.toUpperCase()
          : String(r[d as keyof UniverseRow]);
  const groups = new Map<string, { keys: string[]; clicks: number; impressions: number; sp: number }>();
  for (const r of universe) {
    if (byQuery && r.anonymized) continue;
    if (byAppearance && !r.appearance) continue;
    // Filters compare as Google does for `equals` (country codes case-insensitively).
    if (!filters.every((f) => value(r, f.dimension).toLowerCase() === f.expression.toLowerCase())) continue;
    const keys = dimensions.map((d) => value(r, d));
    const k = keys.join("\u0000");
    const g = groups.get(k) ?? { keys, clicks: 0, impressions: 0, sp: 0 };
    g.clicks += r.clicks;
    g.impressions += r.impressions;
    g.sp += r.position * r.impressions;
    groups.set(k, g);
  }
  return [...groups.values()]
    .sort((a, b) => b.clicks - a.clicks)
    .slice(0, cap)
    .map((g) => ({
      keys: g.keys,
      clicks: g.clicks,
      impressions: g.impressions,
      ctr: g.impressions > 0 ? g.clicks / g.impressions : 0,
      ...(type === "discover" ? {} : { position: g.impressions > 0 ? g.sp / g.impressions : 0 }),
    }));
}

/** A day's provisional numbers while Google still collects it: clicks and impressions × 0.8 (rounded down; rows left with none dropped). */
export function provisionalUniverse(universe: UniverseRow[]): UniverseRow[] {
  return universe
    .map((r) => ({ ...r, clicks: Math.floor(r.clicks * 0.8), impressions: Math.floor(r.impressions * 0.8) }))
    .filter((r) => r.impressions > 0);
}

/** The hourly rows the fake has for one site and day: keys HOUR (Pacific, -08:00), query, page, device. */
export function fakeHourlyRows(site: string, day: string, count: number): FakeHourlyRow[] {
  const devices = ["DESKTOP", "MOBILE", "TABLET"];
  return Array.from({ length: count }, (_, i) => {
    const hour = String(i % 24).padStart(2, "0");
    const impressions = 5 + ((i * 31 + day.length) % 200);
    const clicks = (i * 17) % (impressions + 1);
    return {
      keys: [
        `${day}T${hour}:00:00-08:00`,
        `fake hourly query ${Math.floor(i / 24)}`,
        `https://${site.replace(/^sc-domain:/, "")}/h/${i % 7}`,
        devices[i % 3]!,
      ],
      clicks,
      impressions,
      ctr: clicks / impressions,
      position: 1 + (i % 30) + 0.25,
    };
  });
}

/** A throwaway service-account key pair: the key file for the client, the public key for the fake. */
export function makeServiceAccount(dir: string, opts: { tokenUri?: string; email?: string } = {}) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const email = opts.email ?? "sync-test@example-project.iam.gserviceaccount.com";
  const keyFile = join(dir, "service-account.json");
  writeFileSync(
    keyFile,
    JSON.stringify({
      type: "service_account",
      project_id: "example-project",
      private_key_id: "test-key-1",
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      client_email: email,
      token_uri: opts.tokenUri ?? "https://oauth2.googleapis.com/token",
    }),
  );
  return { keyFile, email, publicKey };
}

export type FakeGsc = ReturnType<typeof startFakeGsc>;

/** Starts the fake on a free loopback port. */
export function startFakeGsc(opts: FakeGscOptions = {}) {
  const rowsFor = opts.rows ?? ((_s, _d, type) => (type === "web" ? 100 : 10));
  const anonymizedFor = opts.anonymizedRows ?? ((s: string, d: string, type: string) => Math.ceil(rowsFor(s, d, type) / 10));
  const cap = opts.dailyRowCap ?? 50_000;
  // Rows a test added per `site|day|type` (revise), and answers computed once per request shape.
  const extra = new Map<string, UniverseRow[]>();
  const answers = new Map<string, ReturnType<typeof fakeAnswer>>();
  const bodies = new Map<string, { day: string; text: string }>();
  const universeOf = (site: string, day: string, type: string) => {
    const added = extra.get(`${site}|${day}|${type}`) ?? [];
    const own = opts.universe?.(site, day, type);
    if (own) return [...own, ...added];
    return fakeUniverse(site, day, type, rowsFor(site, day, type), anonymizedFor(site, day, type), added);
  };
  const hourlyFor = opts.hourlyRows ?? (() => 48);
  const accepted = new Set(opts.tokens ?? ["test-token"]);
  const requests: LoggedRequest[] = [];
  const tokenRequests: { at: number; ok: boolean; grant?: string; claims?: Record<string, unknown>; error?: string }[] = [];
  // OAuth installed-app flow: registered clients, codes the consent page issued, refresh tokens granted.
  const clients = new Map<string, string>();
  const codes = new Map<string, { clientId: string; redirectUri: string; challenge: string; account: FakeAccount }>();
  const refreshTokens = new Map<string, { clientId: string; account: FakeAccount; revoked: boolean }>();
  const accessTokens = new Map<string, FakeAccount>();
  let account: FakeAccount = { email: "owner@example.com", properties: [] };
  let injected: Injected[] = [];
  let tokenInjected: Omit<Injected, "match">[] = [];
  let serviceAccount: { email: string; publicKey: import("node:crypto").KeyObject; properties: FakeAccount["properties"] } | null = null;
  let checkAccess = opts.checkAccess ?? false;
  let delayMs = opts.delayMs ?? 0;
  let firstIncompleteDate = opts.firstIncompleteDate ?? null;
  let issued = 0;
  const forbidden = new Set<string>();

  const googleError = (status: number, statusText: string, message: string, headers: Record<string, string> = {}) =>
    Response.json({ error: { code: status, message, status: statusText } }, { status, headers });

  async function token(req: Request, url: string) {
    const form = new URLSearchParams(await req.text());
    const x = tokenInjected[0];
    if (x) {
      if (x.times === undefined || --x.times <= 0) tokenInjected.shift();
      tokenRequests.push({ at: Date.now(), ok: false, error: `injected ${x.status}` });
      return injectedResponse(x);
    }
    const fail = (error: string, description: string) => {
      tokenRequests.push({ at: Date.now(), ok: false, error });
      return Response.json({ error, error_description: description }, { status: 400 });
    };
    const grant = form.get("grant_type");
    if (grant === "authorization_code" || grant === "refresh_token") return userGrant(form, grant, fail);
    if (grant !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return fail("unsupported_grant_type", "bad grant_type");
    const parts = (form.get("assertion") ?? "").split(".");
    if (parts.length !== 3 || !serviceAccount) return fail("invalid_grant", "malformed assertion");
    const [h, c, s] = parts as [string, string, string];
    const header = JSON.parse(Buffer.from(h, "base64url").toString());
    const claims = JSON.parse(Buffer.from(c, "base64url").toString());
    if (header.alg !== "RS256") return fail("invalid_grant", "alg must be RS256");
    const ok = verify("RSA-SHA256", Buffer.from(`${h}.${c}`), serviceAccount.publicKey, Buffer.from(s, "base64url"));
    if (!ok) return fail("invalid_grant", "Invalid JWT Signature.");
    const now = Date.now() / 1000;
    if (claims.iss !== serviceAccount.email) return fail("invalid_grant", "unknown iss");
    if (claims.aud !== url) return fail("invalid_grant", `aud must be ${url}`);
    if (claims.scope !== "https://www.googleapis.com/auth/webmasters.readonly") return fail("invalid_scope", "bad scope");
    if (!(claims.iat <= now + 5 && claims.exp > now && claims.exp - claims.iat <= 3600)) return fail("invalid_grant", "bad iat/exp");
    const t = `sa-token-${++issued}`;
    accepted.add(t);
    accessTokens.set(t, serviceAccount);
    tokenRequests.push({ at: Date.now(), ok: true, claims });
    return Response.json({ access_token: t, expires_in: 3599, token_type: "Bearer" });
  }

  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

  /** The authorization-code grant (with PKCE) and the refresh-token grant, checked as Google does. */
  function userGrant(form: URLSearchParams, grant: string, fail: (e: string, d: string) => Response) {
    const clientId = form.get("client_id") ?? "";
    if (!clients.has(clientId) || clients.get(clientId) !== form.get("client_secret"))
      return fail("invalid_client", "The OAuth client was not found.");
    let who: FakeAccount;
    let refresh: string | undefined;
    if (grant === "authorization_code") {
      const c = codes.get(form.get("code") ?? "");
      if (!c || c.clientId !== clientId) return fail("invalid_grant", "Malformed auth code.");
      codes.delete(form.get("code")!);
      if (form.get("redirect_uri") !== c.redirectUri) return fail("redirect_uri_mismatch", "Bad Request");
      const verifier = form.get("code_verifier") ?? "";
      if (new Bun.CryptoHasher("sha256").update(verifier).digest("base64url") !== c.challenge)
        return fail("invalid_grant", "Invalid code verifier.");
      who = c.account;
      refresh = `rt-${crypto.randomUUID()}`;
      refreshTokens.set(refresh, { clientId, account: who, revoked: false });
    } else {
      const r = refreshTokens.get(form.get("refresh_token") ?? "");
      if (!r || r.revoked || r.clientId !== clientId) return fail("invalid_grant", "Token has been expired or revoked.");
      who = r.account;
    }
    const t = `user-token-${++issued}`;
    accepted.add(t);
    accessTokens.set(t, who);
    tokenRequests.push({ at: Date.now(), ok: true, grant });
    const idToken = `${b64({ alg: "RS256", typ: "JWT" })}.${b64({ iss: "https://accounts.google.com", aud: clientId, email: who.email, email_verified: true, sub: who.email })}.c2ln`;
    return Response.json({
      access_token: t,
      expires_in: opts.tokenExpiresIn ?? 3599,
      token_type: "Bearer",
      scope: "https://www.googleapis.com/auth/webmasters.readonly openid https://www.googleapis.com/auth/userinfo.email",
      id_token: idToken,
      ...(refresh ? { refresh_token: refresh } : {}),
    });
  }

  /** The consent page, as if the user had agreed at once: redirects to redirect_uri with a code. */
  function consent(url: URL) {
    const q = url.searchParams;
    const redirectUri = q.get("redirect_uri") ?? "";
    if (!clients.has(q.get("client_id") ?? "")) return new Response("Error 401: invalid_client", { status: 401 });
    if (!/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\//.test(redirectUri))
      return new Response("Error 400: redirect_uri_mismatch", { status: 400 });
    if (q.get("response_type") !== "code" || q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
      return new Response("Error 400: invalid_request (PKCE S256 required by this fake)", { status: 400 });
    }
    const code = `code-${crypto.randomUUID()}`;
    codes.set(code, { clientId: q.get("client_id")!, redirectUri, challenge: q.get("code_challenge")!, account });
    const to = new URL(redirectUri);
    to.searchParams.set("code", code);
    if (q.get("state") !== null) to.searchParams.set("state", q.get("state")!);
    to.searchParams.set("scope", q.get("scope") ?? "");
    return new Response(null, { status: 302, headers: { location: to.toString() } });
  }

  /** sites.list: the properties of the signed-in account. */
  function listSites(req: Request) {
    const auth = req.headers.get("authorization") ?? "";
    const who = accessTokens.get(auth.slice(7));
    if (!auth.startsWith("Bearer ") || !accepted.has(auth.slice(7)))
      return googleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    return Response.json(who && who.properties.length > 0 ? { siteEntry: who.properties } : {});
  }

  async function query(req: Request, site: string) {
    const body = (await req.json()) as Record<string, any>;
    const bearer = (req.headers.get("authorization") ?? "").replace(/^Bearer /, "");
    const entry: LoggedRequest = {
      token: bearer,
      account: accessTokens.get(bearer)?.email ?? null,
      at: Date.now(),
      site,
      startDate: body.startDate,
      endDate: body.endDate,
      type: body.type ?? "web",
      startRow: body.startRow ?? 0,
      rowLimit: body.rowLimit ?? 1000,
      dimensions: body.dimensions ?? [],
      dataState: body.dataState,
      aggregationType: body.aggregationType,
      filters: ((body.dimensionFilterGroups ?? []) as { filters?: LoggedRequest["filters"] }[]).flatMap((g) => g.filters ?? []),
      status: 200,
    };
    requests.push(entry);
    if (delayMs > 0) await Bun.sleep(delayMs);
    const i = injected.findIndex((x) => !x.match || x.match(entry));
    if (i >= 0) {
      const x = injected[i]!;
      if (x.times === undefined || --x.times <= 0) injected.splice(i, 1);
      entry.status = x.status;
      return injectedResponse(x);
    }
    const auth = req.headers.get("authorization") ?? "";
    if (!auth.startsWith("Bearer ") || !accepted.has(auth.slice(7))) {
      entry.status = 401;
      return googleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    }
    const who = accessTokens.get(auth.slice(7));
    const sees = who?.properties.some((p) => p.siteUrl === site && p.permissionLevel !== "siteUnverifiedUser");
    if (forbidden.has(site) || (checkAccess && who && !sees)) {
      entry.status = 403;
      return googleError(403, "PERMISSION_DENIED", `User does not have sufficient permission for site '${site}'.`);
    }
    if (body.startDate !== body.endDate) return googleError(400, "INVALID_ARGUMENT", "fake serves one day per request");
    const hourly = entry.dimensions.includes("HOUR");
    if (hourly && body.dataState !== "HOURLY_ALL") {
      entry.status = 400;
      return googleError(400, "INVALID_ARGUMENT", "The HOUR dimension requires dataState HOURLY_ALL.");
    }
    if (hourly) {
      const all = fakeHourlyRows(site, body.startDate, hourlyFor(site, body.startDate));
      const rows = all.slice(entry.startRow, entry.startRow + entry.rowLimit);
      return Response.json(rows.length > 0 ? { rows, responseAggregationType: "byPage" } : { responseAggregationType: "byPage" });
    }
    const refused = refusalOf(entry.type, entry.dimensions, entry.aggregationType, entry.filters);
    if (refused) {
      entry.status = 400;
      return googleError(400, "INVALID_ARGUMENT", refused);
    }
    // Fresh data: a day Google still collects has no final rows, only provisional ones under dataState `all`.
    const incomplete = firstIncompleteDate !== null && (body.startDate as string) >= firstIncompleteDate;
    if (entry.dataState !== undefined && !["final", "all"].includes(entry.dataState)) {
      entry.status = 400;
      return googleError(400, "INVALID_ARGUMENT", `Invalid dataState: ${entry.dataState}`);
    }
    const fresh = incomplete && entry.dataState === "all";
    const metadata = fresh && entry.dimensions.includes("date") ? { metadata: { firstIncompleteDate } } : {};
    // reuseBodies: the same request of another day gets the bytes already sent (the rows are the same every day).
    const dated = entry.dimensions.includes("date");
    const reusable = opts.reuseBodies && !opts.universe && !(dated && fresh) && !extra.has(`${site}|${body.startDate}|${entry.type}`);
    const bodyKey = reusable
      ? JSON.stringify([
          site,
          entry.type,
          entry.dimensions,
          entry.filters,
          entry.aggregationType,
          incomplete,
          fresh,
          entry.startRow,
          entry.rowLimit,
        ])
      : null;
    const sent = bodyKey ? bodies.get(bodyKey) : undefined;
    if (sent) {
      // The date as a key value (a quoted JSON string): no other text of an answer looks like one.
      const text = dated && sent.day !== body.startDate ? sent.text.replaceAll(`"${sent.day}"`, `"${body.startDate}"`) : sent.text;
      return new Response(text, { headers: { "content-type": "application/json" } });
    }
    const shape = JSON.stringify([site, body.startDate, entry.type, entry.dimensions, entry.filters, incomplete, fresh]);
    let all = answers.get(shape);
    if (!all) {
      const universe = universeOf(site, body.startDate as string, entry.type);
      all =
        incomplete && !fresh
          ? []
          : fakeAnswer(
              fresh ? provisionalUniverse(universe) : universe,
              body.startDate as string,
              entry.type,
              entry.dimensions,
              entry.filters,
              cap,
            );
      answers.set(shape, all);
    }
    const byPage =
      entry.aggregationType === "byPage" || ((entry.aggregationType ?? "auto") === "auto" && entry.dimensions.includes("page"));
    const responseAggregationType = byPage ? "byPage" : "byProperty";
    const rows = all.slice(entry.startRow, entry.startRow + entry.rowLimit);
    const answer = rows.length > 0 ? { rows, responseAggregationType, ...metadata } : { responseAggregationType, ...metadata };
    if (!bodyKey) return Response.json(answer);
    const text = JSON.stringify(answer);
    bodies.set(bodyKey, { day: body.startDate, text });
    return new Response(text, { headers: { "content-type": "application/json" } });
  }

  // Sitemaps and URL inspection (fake-gsc-resources.ts): the same tokens, injected answers and forbidden sites.
  const resources = fakeResources({
    authorize(req, site) {
      const i = injected.findIndex((x) => !x.match);
      if (i >= 0) {
        const x = injected[i]!;
        if (x.times === undefined || --x.times <= 0) injected.splice(i, 1);
        return injectedResponse(x);
      }
      const auth = req.headers.get("authorization") ?? "";
      if (!auth.startsWith("Bearer ") || !accepted.has(auth.slice(7)))
        return googleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
      if (forbidden.has(site)) return googleError(403, "PERMISSION_DENIED", `User does not have sufficient permission for site '${site}'.`);
      return null;
    },
  });

  let origin = "";
  const server: Bun.Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req): Promise<Response> {
      const url = new URL(req.url);
      if (req.method === "POST" && url.pathname === "/token") return token(req, `${origin}/token`);
      if (req.method === "GET" && url.pathname === "/auth") return consent(url);
      if (req.method === "GET" && url.pathname === "/webmasters/v3/sites") return listSites(req);
      const m = /^\/webmasters\/v3\/sites\/([^/]+)\/searchAnalytics\/query$/.exec(url.pathname);
      if (req.method === "POST" && m) return query(req, decodeURIComponent(m[1]!));
      const r = await resources.handle(req, url);
      if (r) return r;
      return googleError(404, "NOT_FOUND", `no route ${req.method} ${url.pathname}`);
    },
  });

  origin = server.url.origin;
  return {
    url: origin,
    tokenUrl: `${origin}/token`,
    authUrl: `${origin}/auth`,
    requests,
    tokenRequests,
    /** Sitemaps and URL inspection: their request log, setSitemaps, setInspection. */
    resources,
    /** Answers the next matching request(s) with this instead. */
    inject(x: Injected) {
      injected.push(x);
    },
    /** Answers the next token request(s) with this instead. */
    injectToken(x: Omit<Injected, "match">) {
      tokenInjected.push(x);
    },
    /** Forgets injected answers, forbidden sites, the delay, the first incomplete day and the request logs. */
    reset() {
      injected = [];
      tokenInjected = [];
      forbidden.clear();
      delayMs = opts.delayMs ?? 0;
      firstIncompleteDate = opts.firstIncompleteDate ?? null;
      requests.length = 0;
      if (!opts.keepAnswers || extra.size > 0) answers.clear();
      extra.clear();
      tokenRequests.length = 0;
      resources.reset();
    },
    setDelay(ms: number) {
      delayMs = ms;
    },
    /** The first day Google still collects (null: every day complete); see FakeGscOptions.firstIncompleteDate. */
    setFirstIncompleteDate(day: string | null) {
      firstIncompleteDate = day;
      answers.clear();
    },
    /**
     * Google revised a day: adds a row of anonymized traffic to (site, day, type), so its property and
     * page totals change while its query detail does not.
     */
    revise(site: string, day: string, type: string, clicks: number, impressions: number, position = 5) {
      const key = `${site}|${day}|${type}`;
      const row: UniverseRow = {
        page: `https://${site.replace(/^sc-domain:/, "")}/p/0`,
        query: "",
        country: "usa",
        device: "MOBILE",
        appearance: "",
        anonymized: true,
        clicks,
        impressions,
        position,
      };
      extra.set(key, [...(extra.get(key) ?? []), row]);
      answers.clear();
    },
    /** The fake's whole property for one site, day and type (to compute expected totals in tests). */
    universe: (site: string, day: string, type: string) => universeOf(site, day, type),
    /** Answers 403 for this property. */
    forbid(site: string) {
      forbidden.add(site);
    },
    /** Accepts JWT assertions signed by this key for this account (which sees `properties` in sites.list). */
    trustServiceAccount(sa: { email: string; publicKey: import("node:crypto").KeyObject; properties?: FakeAccount["properties"] }) {
      serviceAccount = { ...sa, properties: sa.properties ?? [] };
    },
    /** Whether a token's account must see a property to read it (403 otherwise, as Google answers). */
    setCheckAccess(on: boolean) {
      checkAccess = on;
    },
    /** Registers an OAuth client (as created in Google Cloud); returns its client_secret.json content. */
    registerOAuthClient(clientId = "test-client.apps.googleusercontent.com", secret = "test-secret") {
      clients.set(clientId, secret);
      return {
        installed: {
          client_id: clientId,
          client_secret: secret,
          project_id: "example",
          auth_uri: `${origin}/auth`,
          token_uri: `${origin}/token`,
          redirect_uris: ["http://localhost"],
        },
      };
    },
    /** The account the consent page signs in from now on. */
    signInAs(a: FakeAccount) {
      account = a;
    },
    /** A refresh token for this client and the current account, as a past sign-in would have left (the client must be registered). */
    grantRefreshToken(clientId = "test-client.apps.googleusercontent.com") {
      const t = `rt-${crypto.randomUUID()}`;
      refreshTokens.set(t, { clientId, account, revoked: false });
      return t;
    },
    /** Revokes a refresh token (the user removed the app's access): its refresh grant gets invalid_grant. */
    revokeRefreshToken(token: string) {
      const r = refreshTokens.get(token);
      if (r) r.revoked = true;
    },
    /** Stops accepting the access tokens issued so far (they expired). */
    expireAccessTokens() {
      for (const t of accessTokens.keys()) accepted.delete(t);
    },
    /** How many rows the fake holds for one site, day and search type. */
    rowCount: (site: string, day: string, type: string) => rowsFor(site, day, type),
    stop: () => server.stop(true),
  };
}

// Run as a process (`bun test/helpers/fake-gsc.ts`) so that generating large pages does not stall the
// test process: FAKE_GSC_ROWS is a JSON object of rows per search type, e.g. {"web":100000}.
if (import.meta.main) {
  const perType = JSON.parse(process.env.FAKE_GSC_ROWS ?? "{}") as Record<string, number>;
  // FAKE_GSC_DAILY_ROW_CAP lifts Google's 50,000-row daily cap for load tests of bigger days.
  const cap = process.env.FAKE_GSC_DAILY_ROW_CAP ? Number(process.env.FAKE_GSC_DAILY_ROW_CAP) : undefined;
  // FAKE_GSC_REUSE_BODIES=1: each answer page serialised once for every day (the option reuseBodies).
  const f = startFakeGsc({
    rows: (_s, _d, type) => perType[type] ?? 0,
    dailyRowCap: cap,
    reuseBodies: process.env.FAKE_GSC_REUSE_BODIES === "1",
    // FAKE_GSC_DELAY_MS: each search-analytics answer that long after its request (Google's latency, for benches).
    delayMs: Number(process.env.FAKE_GSC_DELAY_MS ?? 0),
  });
  console.log(`fake gsc listening on ${f.url}`);
  const shutdown = () => {
    f.stop();
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  // Do not outlive a test runner that died without stopping us.
  exitWithParent(shutdown);
}
