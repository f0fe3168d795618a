import { registerSecret } from "../../redact.ts";
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { PermanentError } from "../errors.ts";
import { DEFAULT_TOKEN_URL, readJsonFile, type TokenProvider } from "./auth.ts";
import { GscError } from "./client.ts";

// Signing in with a Google account: the OAuth client from Google Cloud (client_secret.json) and the
// stored grant (the standard authorized-user JSON, as gcloud and google-auth-library write it).
// google-auth-library does the OAuth requests; this module keeps the files and maps its errors.

/** Scopes asked at sign-in: read Search Console, and the account's e-mail to say who is signed in. */
export const SIGN_IN_SCOPES = ["https://www.googleapis.com/auth/webmasters.readonly", "openid", "email"];

const ClientFields = z.object({
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  auth_uri: z.url().optional(),
  token_uri: z.url().optional(),
});

/** Google Cloud's OAuth client download: `{"installed": {...}}` (desktop app) or `{"web": {...}}`. */
const ClientSecretSchema = z.union([z.object({ installed: ClientFields }), z.object({ web: ClientFields })]);
export type OAuthClientInfo = z.infer<typeof ClientFields>;

/**
 * The authorized-user JSON: `type` is `authorized_user` (gcloud, google-auth-library) or absent (the
 * original tool's credentials.json from google-auth-oauthlib, which also has token, expiry, scopes...).
 */
const AuthorizedUserSchema = z
  .object({
    type: z.literal("authorized_user").optional(),
    client_id: z.string().min(1),
    client_secret: z.string().min(1),
    refresh_token: z.string().min(1),
    token_uri: z.url().optional(),
    account: z.string().optional(),
  })
  .loose();
export type AuthorizedUser = z.infer<typeof AuthorizedUserSchema>;

/** The OAuth client of a client_secret.json downloaded from Google Cloud. */
export function readClientSecret(path: string): OAuthClientInfo {
  const file = readJsonFile(path, ClientSecretSchema, {
    the: "the OAuth client file",
    a: "an OAuth client file from Google Cloud (client_secret.json)",
  });
  return "installed" in file ? file.installed : file.web;
}

/** The stored sign-in (authorized-user JSON). */
export function readAuthorizedUser(path: string): AuthorizedUser {
  return readJsonFile(path, AuthorizedUserSchema, { the: "the credentials file", a: "a Google authorized-user credentials file" });
}

/**
 * Writes the sign-in as authorized-user JSON readable only by its owner (0600; its folder is created
 * 0700). Atomic: written to a temporary file in the same folder, flushed, then renamed over the old
 * one, so a sync process reading it at that moment sees the old file or the new one, never half of one.
 */
export function writeAuthorizedUser(path: string, creds: AuthorizedUser): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ type: "authorized_user", ...creds }, null, 2)}\n`);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  // openSync's mode is filtered by the umask and ignored for an existing file: set it for certain.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** An OAuth client (google-auth-library) for this client id, against the given endpoints. */
export function oauthClient(
  info: Pick<OAuthClientInfo, "client_id" | "client_secret">,
  endpoints: { tokenUrl: string; authUrl?: string },
  redirectUri?: string,
) {
  // Loaded on first use: google-auth-library (gaxios, gcp-metadata, its loggers) costs ~0.15 s of CPU
  // to import, paid by every HTTP worker, sync worker and CLI run that imports this module otherwise.
  const { OAuth2Client } = require("google-auth-library") as typeof import("google-auth-library");
  return new OAuth2Client({
    clientId: info.client_id,
    clientSecret: info.client_secret,
    redirectUri,
    endpoints: { oauth2TokenUrl: endpoints.tokenUrl, ...(endpoints.authUrl ? { oauth2AuthBaseUrl: endpoints.authUrl } : {}) },
    // Refresh a minute before expiry, not at the last moment (a long Search Console page may take a while).
    eagerRefreshThresholdMillis: 60_000,
  });
}

/** The OAuth error code and text of a failed token request (google-auth-library's GaxiosError), if any. */
export function oauthError(err: unknown): { status?: number; code?: string; description?: string } {
  const e = err as { status?: number; response?: { status?: number; data?: { error?: unknown; error_description?: unknown } } };
  const data = e?.response?.data;
  return {
    status: e?.response?.status ?? e?.status,
    code: typeof data?.error === "string" ? data.error : undefined,
    description: typeof data?.error_description === "string" ? data.error_description : undefined,
  };
}

/** The message telling a user their stored sign-in no longer works. */
export function signInAgainMessage(file: string, why: string): string {
  return `Google refused the stored sign-in in ${file} (${why}): it was revoked or has expired. Sign in again with: bun run cli auth login`;
}

/** Rejects with the signal's reason when it aborts first. */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Access tokens refreshed from the stored sign-in (GSC_CREDENTIALS_FILE), through google-auth-library,
 * cached in this process until a minute before they expire. Each sync process refreshes on its own
 * (Google issues many access tokens per refresh token) and only reads the file: a new `auth login` is
 * picked up at the next token, without a restart. A refused grant (invalid_grant: revoked, expired,
 * password changed) fails the task at once, saying to sign in again; 5xx and network errors are retried.
 */
export function authorizedUserToken(opts: { file: string; tokenUrl?: string }): TokenProvider {
  let loaded: { stamp: string; provider: TokenProvider } | null = null;

  function current() {
    let stamp: string;
    try {
      const st = statSync(opts.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      throw new PermanentError(`not signed in to Google: ${opts.file} does not exist. Sign in with: bun run cli auth login`);
    }
    if (loaded?.stamp !== stamp) {
      const creds = readAuthorizedUser(opts.file);
      const provider = credentialsToken(creds, {
        tokenUrl: opts.tokenUrl,
        where: opts.file,
        // Google does not rotate refresh tokens, but a token endpoint that does must not lose the grant.
        onRotated: (refresh_token) => writeAuthorizedUser(opts.file, { ...creds, refresh_token }),
      });
      loaded = { stamp, provider };
    }
    return loaded.provider;
  }

  return {
    token: async (signal) => current().token(signal),
    invalidate: () => loaded?.provider.invalidate() ?? true,
  };
}

/**
 * Access tokens refreshed from one sign-in's credentials (a file's, or one stored in the database),
 * cached until a minute before they expire; `where` names the sign-in in error messages. Errors as
 * authorizedUserToken; `onRotated` gets a new refresh token if the token endpoint sends one.
 */
export function credentialsToken(
  creds: AuthorizedUser,
  opts: { tokenUrl?: string; where: string; onRotated?: (refreshToken: string) => void },
): TokenProvider {
  registerSecret(creds.refresh_token);
  registerSecret(creds.client_secret);
  const client = oauthClient(creds, { tokenUrl: opts.tokenUrl ?? creds.token_uri ?? DEFAULT_TOKEN_URL });
  client.setCredentials({ refresh_token: creds.refresh_token });
  client.on("tokens", (t) => {
    if (t.refresh_token && t.refresh_token !== creds.refresh_token) opts.onRotated?.(t.refresh_token);
  });
  return {
    async token(signal) {
      try {
        const { token } = await abortable(client.getAccessToken(), signal);
        if (!token) throw new GscError("the token endpoint answered without an access token");
        registerSecret(token);
        return token;
      } catch (err) {
        if (signal?.aborted || err instanceof GscError) throw err;
        const { status, code, description } = oauthError(err);
        const why = [code, description].filter(Boolean).join(": ") || (err as Error).message;
        if (code === "invalid_grant") throw new PermanentError(signInAgainMessage(opts.where, why));
        // invalid_client, unauthorized_client...: the OAuth client itself is wrong; retrying cannot help.
        if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
          throw new PermanentError(`Google refused to refresh the sign-in in ${opts.where} (${status} ${why})`);
        }
        throw new GscError(`refreshing the Google sign-in failed: ${why}`);
      }
    },
    invalidate() {
      // Search Console said 401: drop the cached access token so the next call refreshes.
      client.setCredentials({ refresh_token: creds.refresh_token });
      return true;
    },
  };
}

/** An authorized-user JSON (a stored sign-in) checked: its credentials, or a thrown error saying what is wrong. */
export function parseAuthorizedUser(json: string): AuthorizedUser {
  return AuthorizedUserSchema.parse(JSON.parse(json));
}

/** The folder of the sign-ins added after the first: `google-accounts/` beside GSC_CREDENTIALS_FILE. */
export function accountsDirOf(credentialsFile: string): string {
  return join(dirname(credentialsFile), "google-accounts");
}

/** The file of one added account's sign-in: `<accounts dir>/<e-mail>.json` (other characters as `_`). */
export function accountFileOf(credentialsFile: string, email: string): string {
  return join(accountsDirOf(credentialsFile), `${email.toLowerCase().replace(/[^a-z0-9@._+-]/g, "_")}.json`);
}

/** One stored sign-in on this machine: its file and the account it names (null: signed in before e-mail was asked). */
export type StoredSignIn = { file: string; account: string | null; creds: AuthorizedUser | null; error: string | null };

/**
 * Every sign-in stored on this machine: GSC_CREDENTIALS_FILE (the first account, as before several
 * accounts existed) and each file of the accounts folder. A file that cannot be read is listed with why.
 */
export function listStoredSignIns(credentialsFile: string): StoredSignIn[] {
  const files: string[] = [];
  if (existsSync(credentialsFile)) files.push(credentialsFile);
  const dir = accountsDirOf(credentialsFile);
  try {
    for (const f of readdirSync(dir).sort()) if (f.endsWith(".json")) files.push(join(dir, f));
  } catch {
    // No accounts folder: only the first sign-in (if any).
  }
  return files.map((file) => {
    try {
      const creds = readAuthorizedUser(file);
      return { file, account: creds.account ?? null, creds, error: null };
    } catch (err) {
      return { file, account: null, creds: null, error: (err as Error).message };
    }
  });
}

/**
 * Where a new sign-in of `email` is stored so that it adds an account: GSC_CREDENTIALS_FILE when no
 * sign-in is there yet or it is the same account's (signing in again renews it), else the account's
 * own file in the accounts folder.
 */
export function signInFileFor(credentialsFile: string, email: string | null): string {
  if (!existsSync(credentialsFile) || email === null) return credentialsFile;
  let first: string | null = null;
  try {
    first = readAuthorizedUser(credentialsFile).account ?? null;
  } catch {
    // An unreadable first file: replaced by this sign-in.
    return credentialsFile;
  }
  return first !== null && first.toLowerCase() === email.toLowerCase() ? credentialsFile : accountFileOf(credentialsFile, email);
}

/** The Google Cloud project an OAuth client belongs to: the project number its client id starts with, else the id. */
export function projectOfClient(clientId: string): string {
  const m = /^(\d+)-/.exec(clientId);
  return m ? m[1]! : clientId;
}

/** The e-mail in an ID token's payload (it came straight from the token endpoint over TLS: not re-verified). */
export function emailOf(idToken: string | null | undefined): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(idToken!.split(".")[1]!, "base64url").toString("utf8")) as { email?: unknown };
    return typeof payload.email === "string" ? payload.email : undefined;
  } catch {
    return undefined;
  }
}
