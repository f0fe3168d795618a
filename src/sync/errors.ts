// Why a task stopped early. The worker maps each to the task's next status.

/** Retrying cannot help (bad credentials, no access to the property, bad request): fail the task now. */
export class PermanentError extends Error {
  override name = "PermanentError";
}

/** A client asked to cancel the task. */
export class TaskCancelled extends Error {
  override name = "TaskCancelled";
  constructor() {
    super("cancelled on request");
  }
}

/** This worker no longer owns the task (its lease expired and the task was re-queued or finished). */
export class LeaseLost extends Error {
  override name = "LeaseLost";
  constructor(id: number) {
    super(`lost the lease on task ${id}`);
  }
}

/** The worker is shutting down: the task goes back to the queue. */
export class WorkerStopping extends Error {
  override name = "WorkerStopping";
  constructor() {
    super("worker stopping");
  }
}

/** Waits `ms`; rejects with the signal's reason as soon as it is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
