import { registerSecret } from "../../redact.ts";
import { createSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { PermanentError } from "../errors.ts";
import { GscError } from "./client.ts";

export const SEARCH_CONSOLE_SCOPE = "https://www.googleapis.com/auth/webmasters.readonly";
export const DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token";

/** Gives the bearer token for Search Console requests. */
export type TokenProvider = {
  token(signal?: AbortSignal): Promise<string>;
  /** Forgets a cached token the server refused; false when a new one cannot be had (a fixed token). */
  invalidate(): boolean;
};

/** A fixed OAuth access token (GSC_ACCESS_TOKEN). */
export function staticToken(token: string): TokenProvider {
  registerSecret(token);
  return { token: async () => token, invalidate: () => false };
}

const KeyFileSchema = z.object({
  type: z.literal("service_account"),
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  private_key_id: z.string().optional(),
  project_id: z.string().optional(),
  token_uri: z.url().optional(),
});
export type ServiceAccountKey = z.infer<typeof KeyFileSchema>;

/**
 * Reads a JSON file and checks it against `schema`; a missing or bad file fails with a message saying
 * why, naming the file as `what.the` (cannot read it) or `what.a` (it is not one). The message may end up
 * in a task's `error`, which any API client can read: it never carries the file's path or a byte of its
 * contents (a JSON parser's message quotes them).
 */
export function readJsonFile<T>(path: string, schema: z.ZodType<T>, what: { the: string; a: string }): T {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new PermanentError(`cannot read ${what.the} (${(err as NodeJS.ErrnoException).code ?? "read error"})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new PermanentError(`${what.the} is not JSON: expected ${what.a}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join(".") || "file").join(", ");
    throw new PermanentError(`${what.the} is not ${what.a} (check: ${fields})`);
  }
  return parsed.data;
}

/** Reads and checks a Google service-account key file; a bad one fails with a message saying why. */
export function readServiceAccountKey(path: string): ServiceAccountKey {
  return readJsonFile(path, KeyFileSchema, {
    the: "the service-account key file (GSC_SERVICE_ACCOUNT_FILE)",
    a: "a Google service-account key file",
  });
}

const b64url = (s: string | Buffer) => Buffer.from(s).toString("base64url");

/** A signed RS256 JWT asking `tokenUrl` for an access token with the Search Console scope. */
export function signAssertion(key: ServiceAccountKey, tokenUrl: string, nowSec = Math.floor(Date.now() / 1000)): string {
  const header = { alg: "RS256", typ: "JWT", ...(key.private_key_id ? { kid: key.private_key_id } : {}) };
  const claims = { iss: key.client_email, scope: SEARCH_CONSOLE_SCOPE, aud: tokenUrl, iat: nowSec, exp: nowSec + 3600 };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let signature: Buffer;
  try {
    signature = createSign("RSA-SHA256").update(input).sign(key.private_key);
  } catch (err) {
    throw new PermanentError(`the service-account private key cannot sign: ${(err as Error).message}`);
  }
  return `${input}.${b64url(signature)}`;
}

const TokenResponse = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().positive().default(3600) });

/**
 * Access tokens from a service-account key file (JWT bearer grant), cached until a minute before they
 * expire. The token URL is the file's `token_uri` unless `tokenUrl` overrides it.
 */
export function serviceAccountToken(opts: { keyFile: string; tokenUrl?: string; timeoutMs?: number }): TokenProvider {
  let cached: { token: string; expiresAt: number } | null = null;
  let inFlight: Promise<string> | null = null;

  async function exchange(signal?: AbortSignal): Promise<string> {
    const key = readServiceAccountKey(opts.keyFile);
    const url = opts.tokenUrl ?? key.token_uri ?? DEFAULT_TOKEN_URL;
    const body = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: signAssertion(key, url),
    });
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new GscError(`token exchange at ${url} failed: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let why = text.slice(0, 300);
      try {
        const j = JSON.parse(text) as { error?: string; error_description?: string };
        why = [j.error, j.error_description].filter(Boolean).join(": ") || why;
      } catch {
        // Not JSON: keep the raw text.
      }
      const msg = `token exchange for ${key.client_email} at ${url} refused (${res.status}): ${why}`;
      // 5xx and 429 (rate limited) may pass, so the task is retried; another 4xx means the key or its grant is wrong.
      throw res.status >= 500 || res.status === 429 ? new GscError(msg) : new PermanentError(msg);
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new GscError(`token exchange at ${url} answered ${res.status} with a body that is not JSON: ${text.slice(0, 100)}`);
    }
    const parsed = TokenResponse.safeParse(answer);
    if (!parsed.success) throw new GscError(`token exchange at ${url} answered without an access_token`);
    registerSecret(parsed.data.access_token);
    cached = { token: parsed.data.access_token, expiresAt: Date.now() + (parsed.data.expires_in - 60) * 1000 };
    return cached.token;
  }

  return {
    async token(signal) {
      if (cached && Date.now() < cached.expiresAt) return cached.token;
      // Concurrent callers share one exchange.
      inFlight ??= exchange(signal).finally(() => (inFlight = null));
      return inFlight;
    },
    invalidate() {
      cached = null;
      return true;
    },
  };
}
