import { and, eq, isNull, lt } from "drizzle-orm";
import { changedRows, first, type Db } from "../db/index.ts";
import { isProcessGone } from "../db/process-registry.ts";

/** One stored key: its request's fingerprint, and the answer once there is one (status null: still running). */
export type IdempotencyRow = {
  fingerprint: string;
  status: number | null;
  headers: string | null;
  body: string | null;
  locked_until: number;
  expires_at: number;
  /** The process running the first request (null on keys claimed before this was recorded). */
  holder_host: string | null;
  holder_pid: number | null;
};

export type ClaimInput = { owner: string; key: string; fingerprint: string; method: string; path: string };

/** What a key holds when a request arrives with it. */
export type Claim =
  | { kind: "claimed" }
  | { kind: "mismatch" }
  | { kind: "answered"; row: IdempotencyRow }
  | { kind: "running"; row: IdempotencyRow };

/**
 * Takes `key` for this request unless it is taken: new (or expired) keys and keys whose first request
 * stopped running without an answer (past locked_until, or its process is gone: see isProcessGone) are
 * claimed until `lockedUntil` by this process; otherwise what the key holds. Every change is conditional
 * on what was read, so two processes never both claim a key.
 */
export async function claimIdempotencyKey(db: Db, input: ClaimInput, now: number, lockedUntil: number, expiresAt: number): Promise<Claim> {
  const k = db.t.idempotencyKeys;
  const where = and(eq(k.owner, input.owner), eq(k.key, input.key));
  const fresh = {
    fingerprint: input.fingerprint,
    method: input.method,
    path: input.path,
    status: null,
    headers: null,
    body: null,
    locked_until: lockedUntil,
    expires_at: expiresAt,
    holder_host: db.host,
    holder_pid: process.pid,
  };
  return db.tx(async (tx) => {
    for (;;) {
      const inserted = await tx
        .insert(k)
        .values({ owner: input.owner, key: input.key, ...fresh })
        .onConflictDoNothing();
      if (changedRows(inserted) === 1) return { kind: "claimed" } as const;
      const row = first(
        await tx
          .select({
            fingerprint: k.fingerprint,
            status: k.status,
            headers: k.headers,
            body: k.body,
            locked_until: k.locked_until,
            expires_at: k.expires_at,
            holder_host: k.holder_host,
            holder_pid: k.holder_pid,
          })
          .from(k)
          .where(where),
      );
      if (!row) continue; // deleted meanwhile: insert again
      if (row.expires_at <= now) {
        const taken = await tx
          .update(k)
          .set(fresh)
          .where(and(where, eq(k.expires_at, row.expires_at)));
        if (changedRows(taken) === 1) return { kind: "claimed" } as const;
        continue;
      }
      if (row.fingerprint !== input.fingerprint) return { kind: "mismatch" } as const;
      if (row.status !== null) return { kind: "answered", row } as const;
      // The first request stopped without an answer: its lease ran out, or its process died (between its
      // commit and storing the answer, or before committing: either way it will never answer).
      const holderGone =
        row.locked_until > now && row.holder_host !== null && row.holder_pid !== null
          ? await isProcessGone(db, tx, row.holder_host, row.holder_pid)
          : false;
      if (row.locked_until <= now || holderGone) {
        const taken = await tx
          .update(k)
          .set({ locked_until: lockedUntil, holder_host: db.host, holder_pid: process.pid })
          .where(and(where, isNull(k.status), eq(k.locked_until, row.locked_until)));
        if (changedRows(taken) === 1) return { kind: "claimed" } as const;
        continue;
      }
      return { kind: "running", row } as const;
    }
  }, "idempotency key claim");
}

/** What `key` holds now (a read: a duplicate waiting for the first request polls it). */
export async function findIdempotencyKey(db: Db, owner: string, key: string): Promise<IdempotencyRow | undefined> {
  const k = db.t.idempotencyKeys;
  return first(
    await db.q
      .select({
        fingerprint: k.fingerprint,
        status: k.status,
        headers: k.headers,
        body: k.body,
        locked_until: k.locked_until,
        expires_at: k.expires_at,
        holder_host: k.holder_host,
        holder_pid: k.holder_pid,
      })
      .from(k)
      .where(and(eq(k.owner, owner), eq(k.key, key))),
  );
}

/** Stores the first answer of the request that claimed `key` (`fingerprint`); false if it no longer holds it. */
export async function storeIdempotentAnswer(
  db: Db,
  owner: string,
  key: string,
  fingerprint: string,
  answer: { status: number; headers: string; body: string },
): Promise<boolean> {
  const k = db.t.idempotencyKeys;
  const r = await db.tx(
    (tx) =>
      tx
        .update(k)
        .set({ ...answer, locked_until: 0 })
        .where(and(eq(k.owner, owner), eq(k.key, key), eq(k.fingerprint, fingerprint), isNull(k.status))),
    "idempotent answer",
  );
  return changedRows(r) === 1;
}

/**
 * Gives `key` up without an answer (the request failed before changing anything): a retry runs anew. With
 * `lockedUntil`, only the claim that set it (not a later one of a retry).
 */
export async function releaseIdempotencyKey(db: Db, owner: string, key: string, fingerprint: string, lockedUntil?: number): Promise<void> {
  const k = db.t.idempotencyKeys;
  const mine = and(eq(k.owner, owner), eq(k.key, key), eq(k.fingerprint, fingerprint), isNull(k.status));
  await db.tx(
    (tx) => tx.delete(k).where(lockedUntil === undefined ? mine : and(mine, eq(k.locked_until, lockedUntil))),
    "idempotency key release",
  );
}

/** Stores the final answer of a write answered 202 pending without a key, under its token (see pendingWriteAnswer). */
export async function recordPendingAnswer(
  db: Db,
  a: { owner: string; key: string; method: string; path: string; status: number; headers: string; body: string | null; expiresAt: number },
): Promise<void> {
  const k = db.t.idempotencyKeys;
  await db.tx(
    (tx) =>
      tx
        .insert(k)
        .values({
          owner: a.owner,
          key: a.key,
          fingerprint: a.key,
          method: a.method,
          path: a.path,
          status: a.status,
          headers: a.headers,
          body: a.body ?? "",
          locked_until: 0,
          expires_at: a.expiresAt,
          holder_host: db.host,
          holder_pid: process.pid,
        })
        .onConflictDoNothing(),
    "pending write answer",
  );
}

/** Deletes the keys past their 24 h; how many. */
export async function purgeExpiredIdempotencyKeys(db: Db, now: number): Promise<number> {
  const k = db.t.idempotencyKeys;
  return changedRows(await db.tx((tx) => tx.delete(k).where(lt(k.expires_at, now)), "idempotency keys purge"));
}
