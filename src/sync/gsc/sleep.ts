import { setTimeout as wait } from "node:timers/promises";

/** Waits `ms`; rejects with the signal's reason (not an AbortError) as soon as it is aborted. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await wait(ms, undefined, { signal });
  } catch (err) {
    throw signal?.aborted ? signal.reason : err;
  }
}
