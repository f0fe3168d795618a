// Whether a pid is a live process on this machine: the instance locks' owners and the process registry's rows.
// A module of its own, so the locks (taken by short-lived processes in tests, and before anything else at a
// supervisor's start) do not load the registry's database code with it.

/** True when a process with this pid exists on this machine. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
