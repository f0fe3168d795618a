import { sleep } from "./sleep.ts";

/** What a Search Console request counts against: its property and its kind of quota. */
export type QuotaRequest = { site: string; kind: "search" | "inspect" | "other" };

export type RateLimiter = {
  /** Resolves when one more request of this kind may be sent; rejects if the signal aborts first. */
  acquire(signal?: AbortSignal, req?: QuotaRequest): Promise<void>;
  /** Google refused a request for quota: back off this request's limits (everywhere, for a shared quota). */
  refused?(req: QuotaRequest): Promise<void>;
};

/**
 * At most `limit` requests in any sliding window of `windowMs` (Search Console's quota is counted per
 * minute). Callers are served in order. Per process only (the diagnostics probe); sync workers share
 * Search Console's quota through the database (quota.ts).
 */
export function createRateLimiter(opts: { limit: number; windowMs?: number }): RateLimiter {
  const windowMs = opts.windowMs ?? 60_000;
  const sent: number[] = [];
  let tail: Promise<void> = Promise.resolve();

  async function take(signal?: AbortSignal) {
    for (;;) {
      signal?.throwIfAborted();
      const now = performance.now();
      while (sent.length > 0 && now - sent[0]! >= windowMs) sent.shift();
      if (sent.length < opts.limit) {
        sent.push(now);
        return;
      }
      await sleep(sent[0]! + windowMs - now, signal);
    }
  }

  return {
    acquire(signal) {
      const turn = tail.then(() => take(signal));
      // The next caller waits for this one's turn, not for its failure.
      tail = turn.catch(() => {});
      return turn;
    },
  };
}
