import type { Subprocess } from "bun";
import { join } from "node:path";
import { freePort } from "../src/net.ts";

// Starts the two servers the benchmark compares, each on its own file and free port, and stops them.

const root = join(import.meta.dir, "..");

export type RunningServer = {
  name: string;
  url: string;
  pid: number;
  /** Everything the process tree printed so far. */
  output: () => string;
  /** SIGTERM, then SIGKILL after 15 s; resolves when the process is gone. */
  stop: () => Promise<void>;
};

async function spawnUntilReady(name: string, cmd: string[], env: Record<string, string>, ready: string, url: string) {
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(cmd, {
    cwd: root,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await proc.exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 60_000;
  while (!out.includes(ready)) {
    if (proc.exitCode !== null) throw new Error(`${name} exited early (${proc.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not start within 60 s:\n${out}`);
    }
    await Bun.sleep(20);
  }
  return { name, url, pid: proc.pid, output: () => out, stop } satisfies RunningServer;
}

/** Starts the service (`bun src/main.ts`) on a fresh database file; resolves once every HTTP worker listens. */
export function startService(opts: { dbPath: string; workers: number; syncWorkers: number; env?: Record<string, string> }) {
  const port = freePort();
  return spawnUntilReady(
    "service",
    [process.execPath, "src/main.ts", "--workers", String(opts.workers), "--sync-workers", String(opts.syncWorkers)],
    {
      DATABASE_URL: opts.dbPath,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      REQUEST_LOG: "0",
      // The daily scheduler would queue a catch-up sync for every seeded site: syncs run only when the bench asks.
      SYNC_SCHEDULER: "0",
      ...opts.env,
    },
    "sitesync listening",
    `http://127.0.0.1:${port}`,
  );
}

/** Starts the textbook baseline (bench/baseline/main.ts) on a fresh database file. */
export function startBaseline(opts: { dbPath: string; workers: number }) {
  const port = freePort();
  return spawnUntilReady(
    "baseline",
    [process.execPath, "bench/baseline/main.ts", "--db", opts.dbPath, "--port", String(port), "--workers", String(opts.workers)],
    {},
    "baseline listening",
    `http://127.0.0.1:${port}`,
  );
}
