import { lt, sql } from "drizzle-orm";
import type { RateLimit } from "../auth/middleware.ts";
import { first, type Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";

// A rate limit shared by every worker process (and, on PostgreSQL, every machine): fixed one-minute
// windows counted in the database. A worker does not write per request: it reserves a few requests of a
// bucket's window at a time (one atomic upsert, so reservations never overlap) and serves them from
// memory. The sum of all reservations never exceeds the limit, so N workers admit at most the limit, not
// N x the limit. The price: requests reserved by one worker and not used there are lost for the window
// (at most chunk - 1 per other worker; chunk is limit / 50).

const WINDOW_MS = 60_000;

type BucketState = { window: number; tokens: number; exhausted: boolean; reserving: Promise<boolean> | null };

/**
 * Reserves up to `chunk` requests of a bucket's window; returns how many were granted (0: none left).
 * One statement, atomic on both engines (SQLite: under the write lock; PostgreSQL: the upsert locks the
 * row, so concurrent reservations from any process or machine queue behind each other): the counter
 * moves from `used` to `used + chunk` only while `used` is under the limit, and this reservation owns
 * the slice [used, used + chunk) of it, cut at the limit.
 */
async function reserve(db: Db, bucket: string, window: number, chunk: number, limit: number): Promise<number> {
  const { rateLimitWindows: w } = db.t;
  const row = await db.tx(
    async (tx) =>
      first(
        await tx
          .insert(w)
          .values({ bucket, window_start: window, used: chunk })
          .onConflictDoUpdate({
            target: [w.bucket, w.window_start],
            set: { used: sql`${w.used} + ${chunk}` },
            setWhere: sql`${w.used} < ${limit}`,
          })
          .returning({ used: w.used }),
      ),
    "rate limit reservation",
  );
  // No row: the window was used up already (the update's condition failed).
  if (!row) return 0;
  return Math.max(0, Math.min(chunk, limit - (row.used - chunk)));
}

/**
 * A rate limit of `perKey` requests per minute for each API key and `perIp` for each client address
 * calling without a valid key (0: no limit); over it, 429 `rate_limited` with Retry-After.
 */
export function createRateLimiter(db: Db, opts: { perKey: number; perIp: number }): RateLimit {
  const buckets = new Map<string, BucketState>();
  let cleanedWindow = 0;

  function retryAfter(window: number) {
    return Math.max(1, Math.ceil((window + WINDOW_MS - Date.now()) / 1000));
  }

  return async ({ kind, id }) => {
    const limit = kind === "key" ? opts.perKey : opts.perIp;
    if (limit === 0) return;
    const name = `${kind}:${id}`;
    const window = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS;
    let st = buckets.get(name);
    if (!st || st.window !== window) {
      st = { window, tokens: 0, exhausted: false, reserving: null };
      buckets.set(name, st);
      if (window !== cleanedWindow) {
        // Once a window per process: forget what earlier windows counted.
        cleanedWindow = window;
        for (const [k, v] of buckets) if (v.window !== window) buckets.delete(k);
        const { rateLimitWindows } = db.t;
        db.tx(async (tx) => {
          await tx.delete(rateLimitWindows).where(lt(rateLimitWindows.window_start, window));
        }, "rate limit cleanup").catch(() => {});
      }
    }
    while (st.tokens === 0) {
      if (st.exhausted) {
        const wait = retryAfter(window);
        throw new ApiError(
          "rate_limited",
          `rate limit of ${limit} requests per minute reached; retry in ${wait} s`,
          { limit, retry_after_s: wait },
          {
            "Retry-After": String(wait),
          },
        );
      }
      // One reservation at a time per bucket: concurrent requests wait for it instead of each writing.
      const state = st;
      state.reserving ??= reserve(db, name, window, Math.max(1, Math.floor(limit / 50)), limit)
        .then((grant) => {
          if (grant === 0) state.exhausted = true;
          state.tokens += grant;
          return true;
        })
        .catch((err) => {
          // The limiter must not take the API down with it: a failed reservation admits the request.
          log("warn", "rate limit reservation failed; request admitted", { error: String(err) });
          return false;
        })
        .finally(() => (state.reserving = null));
      if (!(await state.reserving)) return;
    }
    st.tokens--;
  };
}
