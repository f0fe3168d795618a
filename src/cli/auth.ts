import { randomUUID } from "node:crypto";
import { rmSync, statSync } from "node:fs";
import type { CodeChallengeMethod } from "google-auth-library";
import type { CliConfig } from "../config.ts";
import { fetchProperties } from "../google/accounts.ts";
import type { Property } from "../google/queries.ts";
import { DEFAULT_TOKEN_URL, readServiceAccountKey, serviceAccountToken, type TokenProvider } from "../sync/gsc/auth.ts";
import {
  authorizedUserToken,
  emailOf,
  listStoredSignIns,
  oauthClient,
  oauthError,
  projectOfClient,
  readClientSecret,
  SIGN_IN_SCOPES,
  signInFileFor,
  type StoredSignIn,
  writeAuthorizedUser,
} from "../sync/gsc/user-auth.ts";
import { type Api, ServiceDown, ServiceError } from "./api.ts";
import { CliError, type Out } from "./output.ts";

export type LoginOptions = {
  clientSecretFile: string;
  /** GSC_CREDENTIALS_FILE: where the first account goes; the others go beside it (signInFileFor). */
  credentialsFile: string;
  /** Store exactly in credentialsFile, replacing what is there (--credentials). */
  exactFile?: boolean;
  authUrl: string;
  tokenUrl?: string;
  /** Loopback port to listen on (0: any free one). A fixed one can be forwarded over SSH. */
  port: number;
  /** Try to open the consent page in a browser on this machine. */
  browser: boolean;
  timeoutMs: number;
};

type Callback = { code: string; state: string | null };

/** The code and state of a redirect URL (or of a bare code), or the error Google sent instead. */
export function parseRedirect(input: string): Callback {
  const text = input.trim();
  if (!/^https?:\/\//.test(text)) {
    if (/^[\w./~-]{10,}$/.test(text)) return { code: text, state: null };
    throw new CliError("that is not the URL the browser was redirected to (it starts with http://127.0.0.1:…/?code=…)");
  }
  const q = new URL(text).searchParams;
  const error = q.get("error");
  if (error)
    throw new CliError(`Google did not grant access: ${error}${q.get("error_description") ? ` (${q.get("error_description")})` : ""}`);
  const code = q.get("code");
  if (!code) throw new CliError("the URL has no code parameter: paste the whole address the browser was redirected to");
  return { code, state: q.get("state") };
}

/** Opens a URL in this machine's browser, if it has one; says nothing when it cannot. */
function openBrowser(url: string): void {
  const cmd = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  try {
    Bun.spawn([cmd, url], { stdout: "ignore", stderr: "ignore", stdin: "ignore" }).unref();
  } catch {
    // No browser here (a server): the printed URL and the paste prompt remain.
  }
}

/** The first line typed on stdin that parses as a redirect (a wrong one is reported and another awaited). */
async function pastedRedirect(out: Out, signal: AbortSignal): Promise<Callback> {
  for await (const line of console) {
    if (signal.aborted) break;
    if (!line.trim()) continue;
    try {
      return parseRedirect(line);
    } catch (err) {
      out.err(`${(err as Error).message}; try again:`);
    }
  }
  // stdin closed (not a terminal): only the loopback redirect can answer.
  return new Promise<never>(() => {});
}

/**
 * `auth login`: the OAuth installed-app flow with PKCE and a loopback redirect. Prints the consent URL
 * (and opens it when a browser is at hand); the browser's redirect to http://127.0.0.1:<port>/ brings the
 * code back, or the user pastes the redirected URL (a server without a browser). The code is exchanged
 * for a refresh token, stored as authorized-user JSON (0600): a new account is added beside the others
 * (signInFileFor), the same account signing in again renews its file. Returns the signed-in account.
 */
export async function login(o: LoginOptions, out: Out): Promise<{ account: string | null; credentials_file: string }> {
  const info = readClientSecretOrFail(o.clientSecretFile);
  const tokenUrl = o.tokenUrl ?? info.token_uri ?? DEFAULT_TOKEN_URL;
  const state = randomUUID();
  let answer!: (c: Callback) => void;
  let fail!: (e: Error) => void;
  const fromBrowser = new Promise<Callback>((resolve, reject) => {
    answer = resolve;
    fail = reject;
  });
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: o.port,
      fetch(req) {
        const url = new URL(req.url);
        if (!url.searchParams.has("code") && !url.searchParams.has("error")) return new Response("Not found", { status: 404 });
        try {
          answer(parseRedirect(url.toString()));
          return page("Signed in to sitesync. You can close this tab and go back to the terminal.");
        } catch (err) {
          fail(err as Error);
          return page(`Sign-in failed: ${(err as Error).message}`, 400);
        }
      },
    });
  } catch (err) {
    throw new CliError(`cannot listen on 127.0.0.1:${o.port} for Google's redirect: ${(err as Error).message} (choose another --port)`);
  }
  const redirectUri = `http://127.0.0.1:${server.port}/`;
  const client = oauthClient(info, { tokenUrl, authUrl: o.authUrl }, redirectUri);
  const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
  const url = client.generateAuthUrl({
    access_type: "offline",
    // Always show consent, so Google always returns a refresh token (it only does on consent).
    prompt: "consent",
    scope: SIGN_IN_SCOPES,
    state,
    code_challenge: codeChallenge,
    // The enum's value as a literal: importing google-auth-library for it costs every process ~0.15 s of CPU.
    code_challenge_method: "S256" as CodeChallengeMethod,
  });

  out.err(`Open this URL in a browser and allow sitesync to read Search Console:\n\n  ${url}\n`);
  out.err(`Waiting for Google's redirect to ${redirectUri} ...`);
  out.err("No browser on this machine? Open the URL anywhere, then paste here the address the browser was sent to");
  out.err(
    `(the page will not load: copy it from the address bar), or forward the port: ssh -L ${server.port}:127.0.0.1:${server.port} <this server>`,
  );
  if (o.browser) openBrowser(url);

  const stop = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CliError(`no answer from the browser within ${Math.round(o.timeoutMs / 1000)} s`)), o.timeoutMs);
    });
    const got = await Promise.race([fromBrowser, pastedRedirect(out, stop.signal), timeout]);
    if (got.state !== null && got.state !== state)
      throw new CliError("the redirect's state does not match this sign-in (an old or foreign URL): run auth login again");
    let tokens;
    try {
      tokens = (await client.getToken({ code: got.code, codeVerifier, redirect_uri: redirectUri })).tokens;
    } catch (err) {
      const e = oauthError(err);
      throw new CliError(
        `Google refused the sign-in code (${[e.code, e.description].filter(Boolean).join(": ") || (err as Error).message})`,
      );
    }
    if (!tokens.refresh_token) {
      throw new CliError(
        "Google sent no refresh token: remove sitesync's access at https://myaccount.google.com/permissions and sign in again",
      );
    }
    const account = emailOf(tokens.id_token) ?? null;
    const file = o.exactFile ? o.credentialsFile : signInFileFor(o.credentialsFile, account);
    writeAuthorizedUser(file, {
      client_id: info.client_id,
      client_secret: info.client_secret,
      refresh_token: tokens.refresh_token,
      token_uri: tokenUrl,
      ...(account ? { account } : {}),
    });
    return { account, credentials_file: file };
  } finally {
    clearTimeout(timer);
    stop.abort();
    // Not forced: the browser still gets its "signed in" (or "failed") page; a lingering connection gets 2 s.
    await Promise.race([server.stop(), Bun.sleep(2000)]);
  }
}

function page(text: string, status = 200) {
  return new Response(
    `<!doctype html><meta charset="utf-8"><title>sitesync</title><p>${text.replace(/[<&]/g, (c) => (c === "<" ? "&lt;" : "&amp;"))}</p>`,
    {
      status,
      // The only request this server answers: let the browser go, so stop() need not wait for it.
      headers: { "content-type": "text/html; charset=utf-8", connection: "close" },
    },
  );
}

function readClientSecretOrFail(path: string) {
  try {
    return readClientSecret(path);
  } catch (err) {
    throw new CliError(
      `${(err as Error).message}\nCreate an OAuth client of type "Desktop app" in Google Cloud (APIs & Services > Credentials), download its JSON and give it with --client-secret or GSC_CLIENT_SECRET_FILE.`,
    );
  }
}

/** One account as `auth status` shows it. */
export type AccountStatus = {
  account: string | null;
  kind: "user" | "service";
  credentials_file: string;
  file_mode: string | null;
  /** The Google Cloud project whose quota its requests count against. */
  project: string | null;
  properties: { site_url: string; permission_level: string; registered_site_id: number | null }[];
  /** Sites the running service binds to this account (null: the service did not answer). */
  bound_sites: { id: number; domain: string; chosen: string }[] | null;
  error: string | null;
};

export type AuthStatus = {
  signed_in: boolean;
  /** The first sign-in's account, file, mode and properties (as before several accounts). */
  account: string | null;
  credentials_file: string;
  file_mode: string | null;
  properties: AccountStatus["properties"];
  /** Every account on this machine: the sign-ins, then the service account. */
  accounts: AccountStatus[];
  /** Active registered sites no account here can read (only when the service answered). */
  unreadable_sites: { id: number; domain: string }[] | null;
};

const modeOf = (file: string) => {
  try {
    return (statSync(file).mode & 0o777).toString(8).padStart(4, "0");
  } catch {
    return null;
  }
};

/**
 * `auth status`: every Google account on this machine (each sign-in, the service account) and which
 * Search Console properties each can read (sites.list with a freshly refreshed token), beside the
 * service's registered sites and bindings when the service is running. Nothing signed in, or an
 * account whose sign-in no longer works, is a CliError saying what to do (after the list is printed).
 */
export async function status(cfg: CliConfig, api: Api | null): Promise<AuthStatus> {
  const file = cfg.GSC_CREDENTIALS_FILE;
  const stored = listStoredSignIns(file);
  if (stored.length === 0 && !cfg.GSC_SERVICE_ACCOUNT_FILE)
    throw new CliError(`Not signed in to Google (no ${file}). Sign in with: bun run cli auth login`);
  let registered: { id: number; domain: string }[] | null = null;
  let service: { email: string; sites: { id: number; domain: string; chosen: string }[] }[] | null = null;
  if (api) {
    try {
      registered = await api.all<{ id: number; domain: string }>("/api/v1/sites?limit=500&active_only=true");
      service = await api.post("/api/v1/google/accounts/refresh");
    } catch {
      // The service is not running (or refuses us): the properties alone still answer the question.
    }
  }
  const entries: {
    account: string | null;
    kind: "user" | "service";
    file: string;
    project: string | null;
    auth: () => TokenProvider | null;
    error: string | null;
  }[] = [
    ...stored.map((s) => ({
      account: s.account,
      kind: "user" as const,
      file: s.file,
      project: s.creds ? projectOfClient(s.creds.client_id) : null,
      auth: () => (s.creds ? authorizedUserToken({ file: s.file, tokenUrl: cfg.GSC_TOKEN_URL }) : null),
      error: s.error ? `${s.error}. Sign in again with: bun run cli auth login` : null,
    })),
  ];
  if (cfg.GSC_SERVICE_ACCOUNT_FILE) {
    const keyFile = cfg.GSC_SERVICE_ACCOUNT_FILE;
    let email: string | null = null;
    let project: string | null = null;
    let error: string | null = null;
    try {
      const key = readServiceAccountKey(keyFile);
      email = key.client_email;
      project = key.project_id ?? null;
    } catch (err) {
      error = (err as Error).message;
    }
    entries.push({
      account: email,
      kind: "service",
      file: keyFile,
      project,
      auth: () => serviceAccountToken({ keyFile, tokenUrl: cfg.GSC_TOKEN_URL, timeoutMs: cfg.GSC_TIMEOUT_MS }),
      error,
    });
  }
  const accounts: AccountStatus[] = [];
  for (const e of entries) {
    let properties: Property[] = [];
    let error = e.error;
    const auth = error ? null : e.auth();
    if (auth) {
      try {
        properties = await fetchProperties(cfg.GSC_API_BASE_URL, auth, cfg.GSC_TIMEOUT_MS);
      } catch (err) {
        error = (err as Error).message;
      }
    }
    const bound = service?.find((a) => e.account !== null && a.email.toLowerCase() === e.account.toLowerCase());
    accounts.push({
      account: e.account,
      kind: e.kind,
      credentials_file: e.file,
      file_mode: modeOf(e.file),
      project: e.project,
      properties: properties.map((p) => ({ ...p, registered_site_id: registered?.find((r) => r.domain === p.site_url)?.id ?? null })),
      bound_sites: service ? (bound?.sites ?? []) : null,
      error,
    });
  }
  const readable = new Set(accounts.flatMap((a) => a.properties.map((p) => p.site_url)));
  const first = accounts.find((a) => a.credentials_file === file) ?? accounts[0]!;
  return {
    signed_in: accounts.some((a) => a.error === null),
    account: first.account,
    credentials_file: first.credentials_file,
    file_mode: first.file_mode,
    properties: first.properties,
    accounts,
    unreadable_sites: registered ? registered.filter((s) => !readable.has(s.domain)).map((s) => ({ id: s.id, domain: s.domain })) : null,
  };
}

/**
 * `auth logout [account]`: forgets one account's sign-in on this machine (the grant itself stays until
 * revoked at Google) and, when the service runs, removes the account there (its sites are unbound or
 * bound to another account that sees them). Without an account: the only one; several need a name (or `all`).
 */
export async function logout(
  cfg: CliConfig,
  api: Api | null,
  which: string | undefined,
): Promise<{
  removed: { account: string | null; credentials_file: string }[];
  service: RemovedInService[] | null;
  message: string | null;
}> {
  const stored = listStoredSignIns(cfg.GSC_CREDENTIALS_FILE);
  if (stored.length === 0) return { removed: [], service: null, message: "Not signed in." };
  let chosen: StoredSignIn[];
  if (which === undefined || which === "all") {
    if (which === undefined && stored.length > 1) {
      throw new CliError(
        `Several Google accounts are signed in (${stored.map((s) => s.account ?? s.file).join(", ")}): name the one to remove, or all`,
        2,
      );
    }
    chosen = stored;
  } else {
    chosen = stored.filter((s) => s.account?.toLowerCase() === which.toLowerCase() || s.file === which);
    if (chosen.length === 0)
      throw new CliError(`no sign-in of ${which} on this machine (signed in: ${stored.map((s) => s.account ?? s.file).join(", ")})`, 2);
  }
  let service: RemovedInService[] | null = null;
  let warning: string | null = null;
  if (api) {
    try {
      const listed = await api.get<{ id: number; email: string }[]>("/api/v1/google/accounts");
      service = [];
      for (const s of chosen) {
        const row = listed.find((a) => s.account !== null && a.email.toLowerCase() === s.account.toLowerCase());
        if (row)
          service.push(await api.send("DELETE", `/api/v1/google/accounts/${row.id}`).then((r) => r.json() as Promise<RemovedInService>));
      }
    } catch (err) {
      if (err instanceof ServiceError) {
        warning = `the service did not remove the account (${err.message}); its sites stay bound to it until it is removed there (DELETE /api/v1/google/accounts/{id})`;
      } else if (!(err instanceof ServiceDown)) throw err;
      service = null;
    }
  }
  for (const s of chosen) rmSync(s.file, { force: true });
  return { removed: chosen.map((s) => ({ account: s.account, credentials_file: s.file })), service, message: warning };
}

export type RemovedInService = {
  removed: { id: number; email: string };
  unbound_sites: { id: number; domain: string; note: string | null }[];
  rebound_sites: { id: number; domain: string; account_id: number }[];
};
