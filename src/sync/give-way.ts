import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { log } from "../log.ts";
import { allowedCpus, keepThreadsTo } from "./cpus.ts";

// The HTTP workers' requests in flight, shared with the sync workers through one small memory-mapped file (created by
// the supervisor, its path handed to its children as SITESYNC_REQUEST_SIGNAL): each HTTP worker writes its own count
// into the int32 of its slot (SITESYNC_SLOT; one writer per slot, no atomics needed) as requests start and end, and a
// sync worker reads every slot between short pieces of its work: while any request is in flight (and a moment after the
// last), it sleeps instead of holding a core, so the request (and its client on the same host) finds one free. A
// backfill runs at full speed while nobody asks anything (the issue 18 item 3: the API's p99 within 1.5x of idle).
// A request that may write (any method but GET, HEAD, OPTIONS) counts WRITE_UNIT in its slot instead of 1: while one is
// in flight, a sync worker holding the write lock does not pause (the write waits for that lock: a pause would only
// make it wait longer).
// The other way round, the HTTP workers keep off the CPUs a working sync worker keeps to (SYNC_CPUS; see BUSY_AT).

/** Slots in the file (HTTP workers; WORKERS is at most this). */
export const SIGNAL_SLOTS = 256;
// After the slots: when a sync worker last worked (BUSY_AT: Date.now()'s low 31 bits, 0 never; each sync worker writes
// it between pieces of a task's work), and the CPUs the sync workers keep to (SYNC_CPUS; a bit per CPU below 256 in
// CPU_WORDS int32s, set by each at its start). An HTTP worker keeps off those CPUs while the stamp is younger than
// BUSY_MS (docs/benchmarks/ingest-export.md: a GET served on the sync's core waits behind it), and comes back to all of
// its CPUs at its first request after.
const BUSY_AT = SIGNAL_SLOTS;
const CPUS_AT = SIGNAL_SLOTS + 1;
const CPU_WORDS = 8;
const FILE_WORDS = CPUS_AT + CPU_WORDS;
/** How long after a sync worker's last stamp it counts as working (a day's switch writes none for up to seconds). */
export const BUSY_MS = 2000;
const STAMP_BITS = 0x7fffffff;
const stampNow = () => Date.now() & STAMP_BITS || 1;

const PREFIX = "sitesync-requests-";
/** What a request that may write adds to its slot (a read adds 1): a slot at or above it has a write in flight. */
export const WRITE_UNIT = 1 << 16;
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

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
    writeFileSync(path, new Uint8Array(FILE_WORDS * 4), { mode: 0o600 });
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

/** The shared file as int32s (the slots, then the sync workers' words), or null when it cannot be mapped (then nobody signals or waits). */
function mapWords(path: string): Int32Array | null {
  try {
    const bytes = Bun.mmap(path, { shared: true });
    return bytes.byteLength >= FILE_WORDS * 4 ? new Int32Array(bytes.buffer, bytes.byteOffset, FILE_WORDS) : null;
  } catch {
    return null;
  }
}

/** The CPUs the sync workers keep to, from the file's words. */
function syncCpusOf(words: Int32Array): Set<number> {
  const cpus = new Set<number>();
  for (let w = 0; w < CPU_WORDS; w++) for (let b = 0; b < 32; b++) if ((words[CPUS_AT + w]! >>> b) & 1) cpus.add(w * 32 + b);
  return cpus;
}

/**
 * An HTTP worker's side: a function to call at each request that keeps this process's threads off the sync workers'
 * CPUs while one works (its stamp younger than BUSY_MS) and back on all of its own CPUs after; an affinity call only
 * when that changes. Nothing where no sync worker keeps to CPUs, or where it would leave no CPU.
 */
function keepingOffSyncCpus(words: Int32Array): () => void {
  let off = false;
  let own: number[] | null = null;
  let broken = false;
  return () => {
    const stamp = words[BUSY_AT]!;
    const busy = stamp !== 0 && ((stampNow() - stamp) & STAMP_BITS) < BUSY_MS;
    if (busy === off || broken) return;
    off = busy;
    // This process's own CPUs, read before it first keeps off any.
    own ??= allowedCpus();
    const sync = syncCpusOf(words);
    const cpus = busy ? own.filter((c) => !sync.has(c)) : own;
    if (sync.size === 0 || cpus.length === 0) return;
    const refused = keepThreadsTo(cpus);
    if (refused === null) return;
    broken = true;
    log("warn", "the HTTP worker could not keep off the sync workers' CPUs", { cpus, error: refused });
  };
}

/**
 * An HTTP worker's side: wraps a fetch handler so that its slot holds its requests in flight (reads 1 each, requests
 * that may write WRITE_UNIT each).
 */
export function countRequests<A extends unknown[]>(
  path: string,
  slot: number,
  fetch: (req: Request, ...rest: A) => Response | Promise<Response>,
): (req: Request, ...rest: A) => Response | Promise<Response> {
  const slots = mapWords(path);
  if (!slots || slot < 0 || slot >= SIGNAL_SLOTS) return fetch;
  const keepOff = keepingOffSyncCpus(slots);
  let n = 0;
  // A restarted worker takes over its slot: whatever its predecessor left in flight is gone.
  slots[slot] = 0;
  return (req, ...rest) => {
    keepOff();
    const unit = READS.has(req.method) ? 1 : WRITE_UNIT;
    const leave = () => {
      n -= unit;
      slots[slot] = n;
    };
    n += unit;
    slots[slot] = n;
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

/**
 * Starts watching the HTTP workers' slots of the file at `path` (the sync worker, at its start); `cpus`: the CPUs this
 * sync worker keeps to (SYNC_CPUS), which the HTTP workers keep off while it works.
 */
export function watchRequests(path: string, cpus: number[] | null = null): boolean {
  watched = mapWords(path);
  if (watched && cpus) for (const c of cpus) if (c < CPU_WORDS * 32) Atomics.or(watched, CPUS_AT + (c >> 5), 1 << (c & 31));
  return watched !== null;
}

/** What the HTTP workers have in flight: NONE, READS only, or a WRITE (at least one request that may write). */
const NONE = 0;
const READS_ONLY = 1;
const WRITE = 2;
function inFlight(words: Int32Array): number {
  let seen = NONE;
  for (let i = 0; i < SIGNAL_SLOTS; i++) {
    const n = words[i]!;
    if (n >= WRITE_UNIT) return WRITE;
    if (n > 0) seen = READS_ONLY;
  }
  return seen;
}

/** How many writes of this process hold the write lock now (SQLite; on PostgreSQL, a transaction's row locks). */
let holding = 0;
/** When (performance.now()) a giveWay last saw a request that may write in flight. */
let writeSeenAt = -Infinity;

/** When this sync worker last saw an HTTP request that may write in flight (performance.now(); -Infinity: never). */
export function lastWriteSeenAt(): number {
  return writeSeenAt;
}

/**
 * Runs `fn` (a write's callback, inside its transaction) as holding the write lock: a giveWay meanwhile does not pause
 * while an HTTP request that may write is in flight, since that request waits for this lock (a pause only lengthened
 * the wait: creates' p99 during a backfill was seconds, docs/benchmarks/ingest-export.md).
 */
export async function holdingLock<T>(fn: () => T | Promise<T>): Promise<T> {
  holding++;
  try {
    return await fn();
  } finally {
    holding--;
  }
}

/**
 * Called by the sync worker between short pieces of work (a statement of rows, a page of rows): while an HTTP
 * request is in flight, and GRACE_MS after the last one seen, sleeps in steps of STEP_MS, at most MAX_PAUSE_MS at
 * once and then not again before WORK_MS of work (a stream of requests or a slot left counting by a crashed worker
 * slows a backfill, never stops it); inside holdingLock, not while a request that may write is in flight. Costs a
 * read of the slots otherwise, and a stamp: this worker is working.
 */
export function giveWay(): void {
  const slots = watched;
  if (!slots) return;
  // Working: the HTTP workers keep off this worker's CPUs.
  slots[BUSY_AT] = stampNow();
  let now = performance.now();
  let seen = inFlight(slots);
  if (seen === WRITE) writeSeenAt = now;
  // Holding the lock a write in flight waits for: go on to the COMMIT.
  if (seen === WRITE && holding > 0) return;
  if (seen !== NONE) seenAt = now;
  else if (now - seenAt > GRACE_MS) return;
  if (now < workFrom) return;
  const start = now;
  do {
    Atomics.wait(sleeper, 0, 0, STEP_MS);
    now = performance.now();
    seen = inFlight(slots);
    if (seen === WRITE) writeSeenAt = now;
    if (seen === WRITE && holding > 0) break;
    if (seen !== NONE) seenAt = now;
  } while (now - seenAt <= GRACE_MS && now - start < MAX_PAUSE_MS);
  if (now - start >= MAX_PAUSE_MS) workFrom = now + WORK_MS;
  giveWayStats.pauses++;
  giveWayStats.ms += now - start;
}
