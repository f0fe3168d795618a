// Kept apart from stream.ts so that the bounds middleware (loaded by every worker at start) can hand a download its
// place's release without loading the streaming code.

/** The direct downloads of streamSteps, each with the function that sets what to call once it is over. */
export const downloadEnds = new WeakMap<ReadableStream<Uint8Array>, (fn: () => void) => void>();

/**
 * Calls `fn` once when `body`, a direct download of streamSteps, ends, fails, is cut or is cancelled (at once if it
 * is over). False, nothing done, for any other stream: the caller wraps it instead (a direct download must reach
 * the HTTP response itself, not a JavaScript reader, to keep its backpressure and reuse its chunks).
 */
export function onDownloadEnd(body: ReadableStream<Uint8Array>, fn: () => void): boolean {
  const set = downloadEnds.get(body);
  if (!set) return false;
  downloadEnds.delete(body);
  set(fn);
  return true;
}
