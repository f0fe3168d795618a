import type { Subprocess } from "bun";
import { join } from "node:path";
import { ensureStartBundle } from "../../src/bundle/build.ts";
import { bundledFile } from "../../src/bundle/entry.ts";

// Runs the CLI (src/cli/main.ts, from the start bundle: rebuilt when a source changed) as a real process, as a person
// or a script would.

const root = join(import.meta.dir, "../..");
const main = bundledFile(await ensureStartBundle(), "cli/main.ts");

export type CliResult = { code: number; stdout: string; stderr: string };

/** The CLI's environment: this process's, without settings that would point it elsewhere, plus `env`. */
function cliEnv(env: Record<string, string>) {
  const { SITESYNC_URL: _u, SITESYNC_API_KEY: _k, GSC_CREDENTIALS_FILE: _c, ...rest } = process.env;
  return { ...rest, NO_COLOR: "1", ...env };
}

/** Runs the CLI to its end (killed after `timeoutMs`); `stdin` is written then closed. */
export async function cli(
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const proc = Bun.spawn([process.execPath, main, ...args], {
    cwd: root,
    env: cliEnv(opts.env ?? {}),
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  // A hang guard only, under the runner's 60 s per-test timeout: a follow on PostgreSQL at load 21 needed more than 30 s.
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 55_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export type InteractiveCli = {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  /** Resolves with everything printed on stderr so far once it matches `re`. */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Types a line. */
  type(line: string): Promise<void>;
  /** Waits for the end; SIGKILL after `timeoutMs`. */
  done(timeoutMs?: number): Promise<CliResult>;
};

/** Starts the CLI with a stdin to type into, reading its output as it comes. */
export function spawnCli(args: string[], opts: { env?: Record<string, string> } = {}): InteractiveCli {
  const proc = Bun.spawn([process.execPath, main, ...args], {
    cwd: root,
    env: cliEnv(opts.env ?? {}),
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  let stderr = "";
  const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of s) add(dec.decode(chunk));
  };
  const pumped = Promise.all([pump(proc.stdout, (t) => (stdout += t)), pump(proc.stderr, (t) => (stderr += t))]);
  return {
    proc,
    async waitForStderr(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(stderr);
        if (m) return m;
        if (proc.exitCode !== null || Date.now() > deadline)
          throw new Error(`no ${re} in the CLI's stderr (exit ${proc.exitCode}):\n${stderr}`);
        await Bun.sleep(20);
      }
    },
    async type(line) {
      proc.stdin.write(`${line}\n`);
      await proc.stdin.flush();
    },
    async done(timeoutMs = 55_000) {
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await proc.exited;
      await pumped;
      clearTimeout(timer);
      return { code, stdout, stderr };
    },
  };
}
