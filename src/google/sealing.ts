import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

// Sign-ins stored in the database (google_sign_ins): sealed with AES-256-GCM when GSC_SIGN_IN_KEY is set
// (32 bytes, base64), so a copy of the database alone does not hand out Google refresh tokens; stored as
// plain JSON without a key. Each value says which it is, so setting a key later still reads old rows
// (they are sealed again at the next write).

const SEALED = "aes256gcm:v1:";
const PLAIN = "plain:";

/** The key of GSC_SIGN_IN_KEY (base64 of 32 bytes), or null when unset. */
export function signInKey(base64: string | undefined): Buffer | null {
  if (!base64) return null;
  const key = Buffer.from(base64, "base64");
  if (key.length !== 32) throw new Error("GSC_SIGN_IN_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)");
  return key;
}

/** `text` as stored: sealed (AES-256-GCM, random 12-byte IV, 16-byte tag) with a key, plain without. */
export function seal(text: string, key: Buffer | null): string {
  if (!key) return `${PLAIN}${text}`;
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
  return `${SEALED}${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`;
}

/** True when a stored value is sealed (needs the key). */
export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED);
}

/** The text of a stored value; throws saying why when it is sealed and the key is missing or another one. */
export function unseal(stored: string, key: Buffer | null): string {
  if (stored.startsWith(PLAIN)) return stored.slice(PLAIN.length);
  if (!stored.startsWith(SEALED)) throw new Error("a stored sign-in in an unknown format");
  if (!key) throw new Error("the stored sign-in is encrypted and GSC_SIGN_IN_KEY is not set on this host");
  const raw = Buffer.from(stored.slice(SEALED.length), "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
  } catch {
    throw new Error("the stored sign-in cannot be decrypted: GSC_SIGN_IN_KEY on this host is not the key it was stored with");
  }
}
