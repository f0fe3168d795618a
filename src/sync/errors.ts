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

/** True for an error that fails only one day of a task (Search Console still failing after its retries). */
export function isDayFailure(err: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return false;
  return !(err instanceof PermanentError || err instanceof TaskCancelled || err instanceof LeaseLost || err instanceof WorkerStopping);
}
