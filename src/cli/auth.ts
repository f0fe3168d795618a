import { randomUUID } from "node:crypto";
import { existsSync, rmSync, statSync } from "node:fs";
import { CodeChallengeMethod } from "google-auth-library";
import type { CliConfig } from "../config.ts";
import { DEFAULT_TOKEN_URL } from "../sync/gsc/auth.ts";
import {
  authorizedUserToken,
  oauthClient,
  oauthError,
  readAuthorizedUser,
  readClientSecret,
  SIGN_IN_SCOPES,
  writeAuthorizedUser,
} from "../sync/gsc/user-auth.ts";
import type { Api } from "./api.ts";
import { CliError, type Out } from "./output.ts";

export type LoginOptions = {
  clientSecretFile: string;
  credentialsFile: string;
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

/** The e-mail in an ID token's payload (it came straight from the token endpoint over TLS: not re-verified). */
function emailOf(idToken: string | null | undefined): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(idToken!.split(".")[1]!, "base64url").toString("utf8")) as { email?: unknown };
    return typeof payload.email === "string" ? payload.email : undefined;
  } catch {
    return undefined;
  }
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
 * for a refresh token, stored as authorized-user JSON (0600). Returns the signed-in account.
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
    code_challenge_method: CodeChallengeMethod.S256,
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
    writeAuthorizedUser(o.credentialsFile, {
      client_id: info.client_id,
      client_secret: info.client_secret,
      refresh_token: tokens.refresh_token,
      token_uri: tokenUrl,
      ...(account ? { account } : {}),
    });
    return { account, credentials_file: o.credentialsFile };
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

export type AuthStatus = {
  signed_in: boolean;
  account: string | null;
  credentials_file: string;
  file_mode: string | null;
  properties: { site_url: string; permission_level: string; registered_site_id: number | null }[];
  /** Active registered sites whose property the account cannot read (only when the service answered). */
  unreadable_sites: { id: number; domain: string }[] | null;
};

/**
 * `auth status`: who is signed in (the stored account) and which Search Console properties that
 * sign-in can read (sites.list with a freshly refreshed token), beside the service's registered sites
 * when the service is running. A missing, broken or revoked sign-in is a CliError saying what to do.
 */
export async function status(cfg: CliConfig, api: Api | null): Promise<AuthStatus> {
  const file = cfg.GSC_CREDENTIALS_FILE;
  if (!existsSync(file)) throw new CliError(`Not signed in to Google (no ${file}). Sign in with: bun run cli auth login`);
  let account: string | null;
  try {
    account = readAuthorizedUser(file).account ?? null;
  } catch (err) {
    throw new CliError(`${(err as Error).message}. Sign in again with: bun run cli auth login`);
  }
  let token: string;
  try {
    token = await authorizedUserToken({ file, tokenUrl: cfg.GSC_TOKEN_URL }).token(AbortSignal.timeout(cfg.GSC_TIMEOUT_MS));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const res = await fetch(`${cfg.GSC_API_BASE_URL.replace(/\/+$/, "")}/webmasters/v3/sites`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(cfg.GSC_TIMEOUT_MS),
  }).catch((err: Error) => {
    throw new CliError(`cannot reach Search Console: ${err.message}`);
  });
  if (!res.ok) throw new CliError(`Search Console refused to list the properties (${res.status}): ${(await res.text()).slice(0, 300)}`);
  const entries = ((await res.json()) as { siteEntry?: { siteUrl: string; permissionLevel: string }[] }).siteEntry ?? [];
  let registered: { id: number; domain: string }[] | null = null;
  if (api) {
    try {
      registered = await api.all<{ id: number; domain: string }>("/api/v1/sites?limit=500&active_only=true");
    } catch {
      // The service is not running (or refuses us): the properties alone still answer the question.
    }
  }
  const readable = new Set(entries.map((e) => e.siteUrl));
  return {
    signed_in: true,
    account,
    credentials_file: file,
    file_mode: (statSync(file).mode & 0o777).toString(8).padStart(4, "0"),
    properties: entries
      .map((e) => ({
        site_url: e.siteUrl,
        permission_level: e.permissionLevel,
        registered_site_id: registered?.find((s) => s.domain === e.siteUrl)?.id ?? null,
      }))
      .sort((a, b) => a.site_url.localeCompare(b.site_url)),
    unreadable_sites: registered ? registered.filter((s) => !readable.has(s.domain)).map((s) => ({ id: s.id, domain: s.domain })) : null,
  };
}

/** `auth logout`: forgets the stored sign-in (the grant itself stays until revoked at Google). Returns whether one was stored. */
export function logout(cfg: CliConfig): boolean {
  const had = existsSync(cfg.GSC_CREDENTIALS_FILE);
  rmSync(cfg.GSC_CREDENTIALS_FILE, { force: true });
  return had;
}
