import { createHash, randomBytes } from "node:crypto";
import { and, eq, gt, isNull, or } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import type { KeyPrincipal } from "./queries.ts";

// Dashboard sessions (issue 21): the cookie holds a random 256-bit token, never the API key; the database
// keeps only the token's SHA-256 with the key it was opened with. A session is valid while it is neither
// expired nor revoked (sign-out) and its key is neither revoked nor expired: revoking a key ends its sessions.

/** The dashboard's session cookie (HttpOnly, SameSite=Strict, Path=/ui; Secure over TLS). */
export const UI_SESSION_COOKIE = "sitesync_session";

const hashOf = (token: string) => createHash("sha256").update(token).digest("hex");

/** Opens a session for a key that was just checked; returns the token for the cookie. */
export async function createSession(db: Db, keyId: number, ttlMs: number): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  const { uiSessions } = db.t;
  await db.tx(async (tx) => {
    await tx
      .insert(uiSessions)
      .values({ token_hash: hashOf(token), key_id: keyId, expires_at: new Date(Date.now() + ttlMs).toISOString() });
  }, "session");
  return token;
}

/** The key a session token stands for, or null when the session or its key is no longer valid. */
export async function findSessionKey(db: Db, token: string, now = new Date()): Promise<KeyPrincipal | null> {
  if (!/^[\w-]{20,100}$/.test(token)) return null;
  const at = now.toISOString();
  const { uiSessions, apiKeys } = db.t;
  const row = first(
    await db.q
      .select({ id: apiKeys.id, name: apiKeys.name, scope: apiKeys.scope })
      .from(uiSessions)
      .innerJoin(apiKeys, eq(apiKeys.id, uiSessions.key_id))
      .where(
        and(
          eq(uiSessions.token_hash, hashOf(token)),
          isNull(uiSessions.revoked_at),
          gt(uiSessions.expires_at, at),
          isNull(apiKeys.revoked_at),
          or(isNull(apiKeys.expires_at), gt(apiKeys.expires_at, at)),
        ),
      ),
  );
  return row ?? null;
}

/** Ends a session (sign-out); a token that matches none changes nothing. */
export async function revokeSession(db: Db, token: string): Promise<void> {
  const { uiSessions } = db.t;
  await db.tx(async (tx) => {
    await tx
      .update(uiSessions)
      .set({ revoked_at: new Date().toISOString() })
      .where(and(eq(uiSessions.token_hash, hashOf(token)), isNull(uiSessions.revoked_at)));
  }, "session");
}
