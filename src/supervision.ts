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
