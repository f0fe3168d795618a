import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { KeyScope } from "../db/model.ts";

// A key is `ssk_<id>_<secret>`: `ssk_<id>` (12 random hex digits) is its public prefix, stored in
// clear to find the row; the secret is 32 random bytes (256 bits, base64url). Only SHA-256 of the
// whole key is stored: the key is random, so a fast hash is enough, and a slow password hash would
// cost milliseconds on every request.
const KEY_RE = /^(ssk_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

/** Makes a new random key; returns it with the prefix and hash to store. */
export function generateKey(): { key: string; prefix: string; hash: string } {
  const prefix = `ssk_${randomBytes(6).toString("hex")}`;
  const key = `${prefix}_${randomBytes(32).toString("base64url")}`;
  return { key, prefix, hash: hashKey(key) };
}

/** SHA-256 of a key, hex. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** The public prefix of a well-formed key; null for anything else. */
export function keyPrefix(key: string): string | null {
  return KEY_RE.exec(key)?.[1] ?? null;
}

/** Compares a presented key with a stored hash in constant time. */
export function keyMatches(key: string, storedHash: string): boolean {
  const a = Buffer.from(hashKey(key), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

// `query` reads like `read`; what sets it apart (the MCP query tool) is checked by mayRunSql.
const rank: Record<KeyScope, number> = { read: 1, query: 1, write: 2, admin: 3 };

/** True when a key of scope `has` may do what needs scope `needs` (read < write < admin; query reads). */
export function scopeAllows(has: KeyScope, needs: KeyScope): boolean {
  if (needs === "query") return has === "query" || has === "admin";
  return rank[has] >= rank[needs];
}
