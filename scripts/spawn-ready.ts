import type { Subprocess } from "bun";

export type ReadyProcess = {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the process (and its children) printed so far, stdout and stderr. */
  output: () => string;
  /** Sends `signal` (SIGTERM), SIGKILL after 20 s; resolves with the exit code once it is gone. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
};

/**
 * Spawns a command and resolves once its output contains `ready`; throws (after killing it) when it
 * exits first or does not get ready within `timeoutMs`. Used by the test helpers and the bench.
 */
export async function spawnUntilReady(
  cmd: string[],
  opts: { cwd: string; env: Record<string, string | undefined>; ready: string; timeoutMs: number; name: string },
): Promise<ReadyProcess> {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    const code = await proc.exited;
    clearTimeout(timer);
    return code;
  };
  const deadline = Date.now() + opts.timeoutMs;
  while (!out.includes(opts.ready)) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${opts.name} exited early (${proc.exitCode ?? proc.signalCode}):\n${out}`);
    }
    if (Date.now() > deadline) {
      await stop("SIGKILL");
      throw new Error(`${opts.name} did not start within ${opts.timeoutMs} ms:\n${out}`);
    }
    await Bun.sleep(20);
  }
  return { proc, output: () => out, stop };
}
