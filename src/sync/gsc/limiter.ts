import { sleep } from "./sleep.ts";

export type RateLimiter = {
  /** Resolves when one more request may be sent; rejects if the signal aborts first. */
  acquire(signal?: AbortSignal): Promise<void>;
};

/**
 * At most `limit` requests in any sliding window of `windowMs` (Search Console's quota is counted per
 * minute). Callers are served in order. Per process: sourceFromConfig gives each sync worker its share
 * of the service's quota (workerQuota).
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
