import { readFileSync } from "node:fs";
import type { Db } from "./db/index.ts";

// The supervisor's IPC conversation with its workers. Every few seconds it pings each worker; the
// answer proves the worker's event loop still runs (the watchdog kills one that stays silent) and
// carries its storage failures; the ping carries back what the supervisor knows of the whole
// instance (its checkpointer, every worker's storage failures), so whichever worker answers
// /health or check-locks can tell.

/** Storage trouble of the whole instance, as the supervisor last saw it. */
export type InstanceStorage = {
  /** Checkpoints that failed for a reason other than a busy lock, since the start. */
  checkpoint_failures: number;
  /** The last such failure, or null when the last checkpoint worked. */
  checkpoint_error: { message: string; at: string } | null;
  wal_bytes: number;
  /** Writes that failed for storage reasons, summed over the workers. */
  write_storage_errors: number;
  last_write_storage_error: { code: string; message: string; at: string } | null;
  /** When the supervisor put this together. */
  at: string;
};

export type Ping = { type: "ping"; seq: number; storage: InstanceStorage };
export type Pong = {
  type: "pong";
  seq: number;
  storage_errors: number;
  last_storage_error: { code: string; message: string; at: number } | null;
};

/** The last instance-wide storage report this worker got from its supervisor (null: none, or unsupervised). */
let lastReport: InstanceStorage | null = null;

/** What the supervisor last reported about the instance's storage. */
export function instanceStorage(): InstanceStorage | null {
  return lastReport;
}

/** Answers the supervisor's pings with this process's storage failures (a worker calls it once). */
export function answerPings(db: Db) {
  process.on("message", (m: unknown) => {
    const ping = m as Partial<Ping> | null;
    if (ping?.type !== "ping") return;
    if (ping.storage) lastReport = ping.storage;
    const pong: Pong = {
      type: "pong",
      seq: ping.seq ?? 0,
      storage_errors: db.stats.storageErrors,
      last_storage_error: db.stats.lastStorageError,
    };
    process.send?.(pong);
  });
}

/**
 * CPU time (clock ticks, user + system, all threads) a process has used so far, from Linux /proc; null when
 * unknown (gone, or no /proc). The watchdog tells a busy worker (ticks advance) from a stopped or hung one.
 */
export function cpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields are counted after its closing ')'.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/**
 * What the watchdog does with a worker that has not answered a ping for `silentMs`: nothing while under
 * `timeoutMs`; past it, `kill` when it used no CPU since the last check (stopped, hung in a system call, a
 * debugger) or when it stayed silent past `busyTimeoutMs` anyway; `busy` (keep it, log once) while its CPU
 * time still advances: a long piece of synchronous work, whose requests would all be lost with it.
 */
export function watchdogVerdict(o: { silentMs: number; timeoutMs: number; busyTimeoutMs: number; cpuAdvanced: boolean | null }) {
  if (o.silentMs <= o.timeoutMs) return "ok" as const;
  if (o.cpuAdvanced === true && o.silentMs <= Math.max(o.timeoutMs, o.busyTimeoutMs)) return "busy" as const;
  return "kill" as const;
}
