import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// The HTTP workers' requests in flight, shared with the sync workers through one small memory-mapped file (created by
// the supervisor, its path handed to its children as SITESYNC_REQUEST_SIGNAL): each HTTP worker writes its own count
// into the int32 of its slot (SITESYNC_SLOT; one writer per slot, no atomics needed) as requests start and end, and a
// sync worker reads every slot between short pieces of its work: while any request is in flight (and a moment after the
// last), it sleeps instead of holding a core, so the request (and its client on the same host) finds one free. A
// backfill runs at full speed while nobody asks anything (the issue 18 item 3: the API's p99 within 1.5x of idle).

/** Slots in the file (HTTP workers; WORKERS is at most this). */
export const SIGNAL_SLOTS = 256;

const PREFIX = "sitesync-requests-";

/**
 * Creates the shared file (zeros) for the supervisor of pid `id`; returns its path, or null where it cannot be made.
 * Files of supervisors no longer running (killed before they could remove theirs) are removed first.
 */
export function createRequestSignal(id: string): { path: string; remove: () => void } | null {
  const dir = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  const path = join(dir, `${PREFIX}${id}`);
  try {
    for (const name of readdirSync(dir)) {
      const pid = Number(name.slice(PREFIX.length));
      if (name.startsWith(PREFIX) && Number.isInteger(pid) && pid > 0 && !alive(pid)) rmSync(join(dir, name), { force: true });
    }
  } catch {
    // Another's file, or the directory unreadable: left alone.
  }
  try {
    writeFileSync(path, new Uint8Array(SIGNAL_SLOTS * 4), { mode: 0o600 });
  } catch {
    return null;
  }
  // Unlinked only: a mapping outlives its file's name (truncating it under a mapping would crash the process).
  return { path, remove: () => rmSync(path, { force: true }) };
}

/** Whether a process of this pid exists (signal 0: EPERM means it does, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The shared file's slots as int32s, or null when it cannot be mapped (then nobody signals or waits). */
function mapSlots(path: string): Int32Array | null {
  try {
    const bytes = Bun.mmap(path, { shared: true });
    return bytes.byteLength >= SIGNAL_SLOTS * 4 ? new Int32Array(bytes.buffer, bytes.byteOffset, SIGNAL_SLOTS) : null;
  } catch {
    return null;
  }
}

/** An HTTP worker's side: wraps a fetch handler so that its slot holds the number of its requests in flight. */
export function countRequests<A extends unknown[]>(
  path: string,
  slot: number,
  fetch: (req: Request, ...rest: A) => Response | Promise<Response>,
): (req: Request, ...rest: A) => Response | Promise<Response> {
  const slots = mapSlots(path);
  if (!slots || slot < 0 || slot >= SIGNAL_SLOTS) return fetch;
  let n = 0;
  // A restarted worker takes over its slot: whatever its predecessor left in flight is gone.
  slots[slot] = 0;
  const leave = () => {
    slots[slot] = --n;
  };
  return (req, ...rest) => {
    slots[slot] = ++n;
    let res: Response | Promise<Response>;
    try {
      res = fetch(req, ...rest);
    } catch (err) {
      leave();
      throw err;
    }
    if (res instanceof Promise) return res.finally(leave);
    leave();
    return res;
  };
}

/** How long the sync worker keeps pausing after it last saw a request in flight: the answer reaches its client. */
const GRACE_MS = 0.5;
/** One sleep of a pause (Atomics.wait on a word nobody changes: a timed sleep finer than Bun.sleepSync's whole ms). */
const STEP_MS = 0.1;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** The longest pause at one point; after one, the next pause comes after at least WORK_MS of work. */
const MAX_PAUSE_MS = 10;
const WORK_MS = 2;

/** The sync worker's side (see giveWay); null: no signal (not supervised, or the file could not be mapped). */
let watched: Int32Array | null = null;
let seenAt = -Infinity;
let workFrom = 0;
/** Pauses taken and their total (ms), this process's (read by the metrics: src/metrics/registry.ts). */
export const giveWayStats = { pauses: 0, ms: 0 };

/** Starts watching the HTTP workers' slots of the file at `path` (the sync worker, at its start). */
export function watchRequests(path: string): boolean {
  watched = mapSlots(path);
  return watched !== null;
}

/** Whether any HTTP worker has a request in flight. */
function inFlight(slots: Int32Array): boolean {
  for (let i = 0; i < slots.length; i++) if (slots[i]! > 0) return true;
  return false;
}

/**
 * Called by the sync worker between short pieces of work (a statement of rows, a page of rows): while an HTTP
 * request is in flight, and GRACE_MS after the last one seen, sleeps in steps of STEP_MS, at most MAX_PAUSE_MS at
 * once and then not again before WORK_MS of work (a stream of requests or a slot left counting by a crashed worker
 * slows a backfill, never stops it). Costs a read of the slots otherwise.
 */
export function giveWay(): void {
  const slots = watched;
  if (!slots) return;
  let now = performance.now();
  if (inFlight(slots)) seenAt = now;
  else if (now - seenAt > GRACE_MS) return;
  if (now < workFrom) return;
  const start = now;
  do {
    Atomics.wait(sleeper, 0, 0, STEP_MS);
    now = performance.now();
    if (inFlight(slots)) seenAt = now;
  } while (now - seenAt <= GRACE_MS && now - start < MAX_PAUSE_MS);
  if (now - start >= MAX_PAUSE_MS) workFrom = now + WORK_MS;
  giveWayStats.pauses++;
  giveWayStats.ms += now - start;
}
