import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import type { CodeChallengeMethod } from "google-auth-library";
import type { Config } from "../config.ts";
import type { Db } from "../db/index.ts";
import type { GoogleAccount } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";
import { PermanentError } from "../sync/errors.ts";
import { DEFAULT_TOKEN_URL, readServiceAccountKey, serviceAccountToken, staticToken, type TokenProvider } from "../sync/gsc/auth.ts";
import { GscError } from "../sync/gsc/client.ts";
import {
  accountFileOf,
  type AuthorizedUser,
  authorizedUserToken,
  credentialsToken,
  emailOf,
  listStoredSignIns,
  oauthClient,
  oauthError,
  parseAuthorizedUser,
  projectOfClient,
  readClientSecret,
  SIGN_IN_SCOPES,
  signInFileFor,
  type StoredSignIn,
  writeAuthorizedUser,
} from "../sync/gsc/user-auth.ts";
import {
  autoBindSites,
  deleteGoogleAccount,
  findGoogleAccount,
  findSiteBindingByDomain,
  findStoredSignIn,
  listGoogleAccounts,
  listStoredSignInAccounts,
  recordAccountProperties,
  saveStoredSignIn,
  upsertGoogleAccount,
  type Property,
} from "./queries.ts";
import { isSealed, seal, signInKey, unseal } from "./sealing.ts";

// Several Google accounts (issue 20): every sign-in stored on this machine (GSC_CREDENTIALS_FILE and the
// google-accounts/ folder beside it) and the service account (GSC_SERVICE_ACCOUNT_FILE) are accounts,
// registered in the database by e-mail. The database keeps each account's property list (sites.list),
// which account each site's syncs use, and a copy of each user sign-in (google_sign_ins, sealed with
// GSC_SIGN_IN_KEY when set): a host without the sign-in's file syncs with that copy.

export type GoogleAccountsConfig = Pick<
  Config,
  | "GSC_ACCESS_TOKEN"
  | "GSC_SERVICE_ACCOUNT_FILE"
  | "GSC_CREDENTIALS_FILE"
  | "GSC_API_BASE_URL"
  | "GSC_TOKEN_URL"
  | "GSC_TIMEOUT_MS"
  | "GSC_CLIENT_SECRET_FILE"
  | "GSC_AUTH_URL"
  | "GSC_SIGN_IN_KEY"
>;

/** What a Search Console request for one property is sent with: a token, and the project whose quota it counts against. */
export type SiteCredentials = { auth: TokenProvider; project: string; account: string | null };

/** An account as the API shows it. */
export type AccountView = GoogleAccount & { on_this_machine: boolean; sites: { id: number; domain: string; chosen: string }[] };

/** How long a property list is trusted before an unbound site makes the accounts be asked again. */
const RELIST_AFTER_MS = 60_000;

/** Answers sites.list for one token: the properties it can see, sorted by URL. */
export async function fetchProperties(baseUrl: string, auth: TokenProvider, timeoutMs: number): Promise<Property[]> {
  for (let attempt = 0; ; attempt++) {
    const token = await auth.token(AbortSignal.timeout(timeoutMs));
    let res: Response;
    try {
      res = await fetch(`${baseUrl.replace(/\/+$/, "")}/webmasters/v3/sites`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new GscError(`cannot reach Search Console to list properties: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (res.status === 401 && attempt === 0 && auth.invalidate()) continue;
    if (!res.ok) {
      const msg = `Search Console refused to list the properties (${res.status}): ${text.slice(0, 300)}`;
      throw res.status >= 500 || res.status === 429 ? new GscError(msg) : new PermanentError(msg);
    }
    let entries: { siteUrl?: string; permissionLevel?: string }[] = [];
    try {
      entries = (JSON.parse(text) as { siteEntry?: typeof entries }).siteEntry ?? [];
    } catch {
      throw new GscError(`Search Console answered sites.list with a body that is not JSON: ${text.slice(0, 100)}`);
    }
    return entries
      .filter((e) => typeof e.siteUrl === "string")
      .map((e) => ({ site_url: e.siteUrl!, permission_level: e.permissionLevel ?? "siteUnverifiedUser" }))
      .sort((a, b) => a.site_url.localeCompare(b.site_url));
  }
}

/** The accounts of one process: registration from this machine's files, tokens per account, property lists, binding. */
export function createGoogleAccounts(db: Db, c: GoogleAccountsConfig) {
  const userTokens = new Map<string, TokenProvider>();
  const storedTokens = new Map<number, TokenProvider>();
  const key = signInKey(c.GSC_SIGN_IN_KEY);
  let serviceTokens: TokenProvider | null = null;
  let fixed: TokenProvider | null = null;
  let lastListed = 0;
  let listing: Promise<unknown> | null = null;

  /** This machine's sign-ins by e-mail (lower case). */
  function localSignIns(): Map<string, StoredSignIn> {
    const byEmail = new Map<string, StoredSignIn>();
    for (const s of listStoredSignIns(c.GSC_CREDENTIALS_FILE)) {
      if (s.account && !byEmail.has(s.account.toLowerCase())) byEmail.set(s.account.toLowerCase(), s);
    }
    return byEmail;
  }

  function serviceAccount(): { email: string; project: string } | null {
    if (!c.GSC_SERVICE_ACCOUNT_FILE) return null;
    const key = readServiceAccountKey(c.GSC_SERVICE_ACCOUNT_FILE);
    const project = key.project_id ?? /@([^.]+)\.iam\.gserviceaccount\.com$/.exec(key.client_email)?.[1] ?? key.client_email;
    return { email: key.client_email, project };
  }

  function userToken(file: string): TokenProvider {
    let p = userTokens.get(file);
    if (!p) userTokens.set(file, (p = authorizedUserToken({ file, tokenUrl: c.GSC_TOKEN_URL })));
    return p;
  }

  function serviceToken(): TokenProvider {
    serviceTokens ??= serviceAccountToken({ keyFile: c.GSC_SERVICE_ACCOUNT_FILE!, tokenUrl: c.GSC_TOKEN_URL, timeoutMs: c.GSC_TIMEOUT_MS });
    return serviceTokens;
  }

  /** How long a sign-in read from the database is used before it is read again (another host may have renewed it). */
  const STORED_SIGN_IN_TTL_MS = 60_000;

  /**
   * The token of a user account whose sign-in is not on this machine: from its copy in the database
   * (google_sign_ins), read again at most every STORED_SIGN_IN_TTL_MS. None stored, or one this host
   * cannot unseal (GSC_SIGN_IN_KEY missing or another), fails the task saying so.
   */
  function storedToken(account: GoogleAccount): TokenProvider {
    const cached = storedTokens.get(account.id);
    if (cached) return cached;
    let loaded: { sealed: string; provider: TokenProvider; at: number } | null = null;
    const where = `the database (the sign-in of ${account.email})`;
    const provider: TokenProvider = {
      async token(signal) {
        if (!loaded || Date.now() - loaded.at > STORED_SIGN_IN_TTL_MS) {
          const sealed = await findStoredSignIn(db, account.id);
          if (!sealed)
            throw new PermanentError(
              `the sign-in of ${account.email} is neither stored on this machine (expected ${accountFileOf(c.GSC_CREDENTIALS_FILE, account.email)}) nor in the database: sign in with bun run cli auth login on a host of this database, or remove the account`,
            );
          if (loaded?.sealed === sealed) loaded.at = Date.now();
          else {
            let creds: AuthorizedUser;
            try {
              creds = parseAuthorizedUser(unseal(sealed, key));
            } catch (err) {
              throw new PermanentError(`the sign-in of ${account.email} stored in the database cannot be used: ${(err as Error).message}`);
            }
            const rotated = (refresh_token: string) =>
              void saveStoredSignIn(db, account.id, seal(JSON.stringify({ ...creds, refresh_token }), key)).catch((err) =>
                log("warn", "rotated refresh token not stored", { account: account.email, error: String(err) }),
              );
            loaded = {
              sealed,
              provider: credentialsToken(creds, { tokenUrl: c.GSC_TOKEN_URL, where, onRotated: rotated }),
              at: Date.now(),
            };
          }
        }
        return loaded.provider.token(signal);
      },
      invalidate: () => loaded?.provider.invalidate() ?? true,
    };
    storedTokens.set(account.id, provider);
    return provider;
  }

  /**
   * Copies a sign-in of this machine into the database (sealed with GSC_SIGN_IN_KEY when set) unless the
   * same one is there already, sealed the same way: other hosts of the database then sync with it.
   */
  async function shareSignIn(accountId: number, creds: AuthorizedUser): Promise<void> {
    const { client_id, client_secret, refresh_token, token_uri, account } = creds;
    const json = JSON.stringify({
      client_id,
      client_secret,
      refresh_token,
      ...(token_uri ? { token_uri } : {}),
      ...(account ? { account } : {}),
    });
    const stored = await findStoredSignIn(db, accountId);
    if (stored && isSealed(stored) === (key !== null)) {
      try {
        if (unseal(stored, key) === json) return;
      } catch {
        // Sealed with another key: replaced by this host's.
      }
    }
    await saveStoredSignIn(db, accountId, seal(json, key));
  }

  const sharedAt = new Map<number, number>();

  /** shareSignIn of a user account's sign-in on this machine, at most once a minute (a new `auth login` reaches the other hosts). */
  async function shareIfDue(account: GoogleAccount): Promise<void> {
    if (account.kind !== "user" || Date.now() - (sharedAt.get(account.id) ?? 0) < STORED_SIGN_IN_TTL_MS) return;
    sharedAt.set(account.id, Date.now());
    const local = localSignIns().get(account.email.toLowerCase());
    if (local?.creds) await shareSignIn(account.id, local.creds);
  }

  /** The token of one registered account: its sign-in on this machine, else its copy in the database. */
  function tokenOf(account: GoogleAccount): TokenProvider {
    if (account.kind === "service") {
      if (serviceAccount()?.email !== account.email)
        throw new PermanentError(
          `the service account ${account.email} is not configured on this machine (GSC_SERVICE_ACCOUNT_FILE names ${c.GSC_SERVICE_ACCOUNT_FILE ? "another" : "none"})`,
        );
      return serviceToken();
    }
    const local = localSignIns().get(account.email.toLowerCase());
    return local ? userToken(local.file) : storedToken(account);
  }

  /** What a site no account is bound to is read with: the service account if configured, else the first sign-in (as before accounts). */
  function defaultCredentials(): SiteCredentials {
    const sa = c.GSC_SERVICE_ACCOUNT_FILE ? serviceAccount() : null;
    if (sa) return { auth: serviceToken(), project: sa.project, account: sa.email };
    const first = listStoredSignIns(c.GSC_CREDENTIALS_FILE).find((s) => s.file === c.GSC_CREDENTIALS_FILE);
    return {
      auth: userToken(c.GSC_CREDENTIALS_FILE),
      project: first?.creds ? projectOfClient(first.creds.client_id) : "default",
      account: first?.account ?? null,
    };
  }

  /**
   * Registers this machine's sign-ins (each copied into the database for the other hosts, shareSignIn)
   * and the configured service account; returns every registered account.
   */
  async function register(): Promise<GoogleAccount[]> {
    for (const s of localSignIns().values()) {
      const account = await upsertGoogleAccount(db, { email: s.account!, kind: "user", project: projectOfClient(s.creds!.client_id) });
      await shareSignIn(account.id, s.creds!);
    }
    try {
      const sa = serviceAccount();
      if (sa) await upsertGoogleAccount(db, { email: sa.email, kind: "service", project: sa.project });
    } catch (err) {
      log("warn", "service account not registered", { error: (err as Error).message });
    }
    return listGoogleAccounts(db);
  }

  /**
   * Registers the accounts, asks Search Console which properties each can see (sites.list; one account
   * with `accountId`), records the lists (or why they could not be had) and binds the sites without an
   * account to one that sees them. Accounts whose sign-in is on another machine keep their last list.
   */
  async function refresh(accountId?: number): Promise<{ accounts: GoogleAccount[]; bound: Awaited<ReturnType<typeof autoBindSites>> }> {
    const all = await register();
    const local = localSignIns();
    const stored = await listStoredSignInAccounts(db);
    for (const a of accountId === undefined ? all : all.filter((x) => x.id === accountId)) {
      if (a.kind === "user" && !local.has(a.email.toLowerCase()) && !stored.has(a.id)) continue;
      try {
        await recordAccountProperties(db, a.id, { properties: await fetchProperties(c.GSC_API_BASE_URL, tokenOf(a), c.GSC_TIMEOUT_MS) });
      } catch (err) {
        await recordAccountProperties(db, a.id, { error: (err as Error).message });
      }
    }
    lastListed = Date.now();
    const bound = await autoBindSites(db);
    return { accounts: await listGoogleAccounts(db), bound };
  }

  /** refresh(), at most once per RELIST_AFTER_MS in this process, concurrent callers sharing one. */
  async function refreshIfStale(): Promise<void> {
    if (Date.now() - lastListed < RELIST_AFTER_MS) return;
    listing ??= refresh().finally(() => (listing = null));
    await listing;
  }

  /**
   * The token and quota project for requests about one property (a site's domain): GSC_ACCESS_TOKEN when
   * set; else the site's account, binding it first when it has none (property lists asked again when
   * stale); a site unbound because its account was removed, that no other account sees, fails with the
   * reason; any other site the default credentials (service account, else the first sign-in).
   */
  async function credentialsFor(siteUrl: string): Promise<SiteCredentials> {
    if (c.GSC_ACCESS_TOKEN) {
      fixed ??= staticToken(c.GSC_ACCESS_TOKEN);
      return { auth: fixed, project: "access-token", account: null };
    }
    let b = await findSiteBindingByDomain(db, siteUrl);
    if (b && b.account_id === null) {
      await refreshIfStale();
      b = await findSiteBindingByDomain(db, siteUrl);
    }
    if (b?.account_id != null) {
      const account = await findGoogleAccount(db, b.account_id);
      await shareIfDue(account);
      return { auth: tokenOf(account), project: account.project ?? account.email, account: account.email };
    }
    if (b?.note) throw new PermanentError(`site ${b.domain} has no Google account: ${b.note}`);
    return defaultCredentials();
  }

  /** The e-mail of the service account configured here, or null (none, or its key file cannot be read). */
  function serviceAccountEmail(): string | null {
    try {
      return serviceAccount()?.email ?? null;
    } catch {
      return null;
    }
  }

  /**
   * Removes an account: its sign-in file on this machine first (were the row removed first, a sync
   * registering this machine's sign-ins could bring it back), then the row; its sites are unbound with
   * a note, then bound to another account that sees them when there is one. The configured service
   * account cannot be removed (409): GSC_SERVICE_ACCOUNT_FILE would register it again.
   */
  async function remove(id: number) {
    const account = await findGoogleAccount(db, id);
    if (account.kind === "service" && serviceAccountEmail() === account.email) {
      throw new ApiError(
        "conflict",
        `${account.email} is the service account GSC_SERVICE_ACCOUNT_FILE configures: unset that setting to remove it`,
      );
    }
    const local = localSignIns().get(account.email.toLowerCase());
    if (local) rmSync(local.file, { force: true });
    userTokens.delete(local?.file ?? "");
    storedTokens.delete(id);
    const { account: removed, unbound } = await deleteGoogleAccount(db, id);
    const rebound = await autoBindSites(db);
    return { removed, credentials_file_deleted: local !== undefined, unbound, rebound };
  }

  /**
   * The dashboard's Google sign-in, step 1: Google's consent URL for the OAuth client of
   * GSC_CLIENT_SECRET_FILE (authorization code with PKCE S256, offline access, consent shown so a refresh
   * token comes back) redirecting to `redirectUri`, with the state and verifier the callback must bring back.
   */
  async function beginSignIn(redirectUri: string): Promise<{ url: string; state: string; verifier: string }> {
    let info: ReturnType<typeof readClientSecret>;
    try {
      info = readClientSecret(c.GSC_CLIENT_SECRET_FILE);
    } catch (err) {
      throw new ApiError(
        "conflict",
        `${(err as Error).message}: put the OAuth client downloaded from Google Cloud at GSC_CLIENT_SECRET_FILE on the server to sign in from the dashboard`,
      );
    }
    const client = oauthClient(
      info,
      { tokenUrl: c.GSC_TOKEN_URL ?? info.token_uri ?? DEFAULT_TOKEN_URL, authUrl: c.GSC_AUTH_URL },
      redirectUri,
    );
    const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
    const state = randomUUID();
    const url = client.generateAuthUrl({
      access_type: "offline",
      prompt: "consent",
      scope: SIGN_IN_SCOPES,
      state,
      code_challenge: codeChallenge,
      // The enum's value as a literal: importing google-auth-library for it costs every process ~0.15 s of CPU.
      code_challenge_method: "S256" as CodeChallengeMethod,
    });
    return { url, state, verifier: codeVerifier! };
  }

  /**
   * Step 2: exchanges Google's code for tokens and stores the grant like `auth login` does (a new account
   * beside the others, the same account renewed), then registers it and lists its properties.
   */
  async function finishSignIn(code: string, verifier: string, redirectUri: string): Promise<{ account: string | null; file: string }> {
    const info = readClientSecret(c.GSC_CLIENT_SECRET_FILE);
    const tokenUrl = c.GSC_TOKEN_URL ?? info.token_uri ?? DEFAULT_TOKEN_URL;
    const client = oauthClient(info, { tokenUrl, authUrl: c.GSC_AUTH_URL }, redirectUri);
    let tokens: import("google-auth-library").Credentials;
    try {
      tokens = (await client.getToken({ code, codeVerifier: verifier, redirect_uri: redirectUri })).tokens;
    } catch (err) {
      const e = oauthError(err);
      throw new ApiError(
        "validation_failed",
        `Google refused the sign-in code (${[e.code, e.description].filter(Boolean).join(": ") || (err as Error).message})`,
      );
    }
    if (!tokens.refresh_token)
      throw new ApiError(
        "conflict",
        "Google sent no refresh token: remove sitesync's access at https://myaccount.google.com/permissions and sign in again",
      );
    const account = emailOf(tokens.id_token) ?? null;
    const file = signInFileFor(c.GSC_CREDENTIALS_FILE, account);
    writeAuthorizedUser(file, {
      client_id: info.client_id,
      client_secret: info.client_secret,
      refresh_token: tokens.refresh_token,
      token_uri: tokenUrl,
      ...(account ? { account } : {}),
    });
    userTokens.delete(file);
    await refresh();
    return { account, file };
  }

  return { register, refresh, credentialsFor, tokenOf, localSignIns, serviceAccountEmail, remove, beginSignIn, finishSignIn };
}

export type GoogleAccounts = ReturnType<typeof createGoogleAccounts>;
