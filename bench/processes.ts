import { join } from "node:path";
import { freePort } from "../src/free-port.ts";
import { spawnUntilReady } from "../scripts/spawn-ready.ts";

// Starts the two servers the benchmark compares, each on its own file and free port, and stops them.

const root = join(import.meta.dir, "..");

export type RunningServer = {
  name: string;
  url: string;
  pid: number;
  /** Everything the process tree printed so far. */
  output: () => string;
  /** SIGTERM, then SIGKILL after 20 s; resolves when the process is gone. */
  stop: () => Promise<void>;
};

async function start(name: string, cmd: string[], env: Record<string, string>, ready: string, url: string, cwd = root) {
  const p = await spawnUntilReady(cmd, { cwd, env: { ...process.env, ...env }, ready, timeoutMs: 60_000, name });
  return { name, url, pid: p.proc.pid, output: p.output, stop: async () => void (await p.stop()) } satisfies RunningServer;
}

/**
 * Starts the service (`bun src/main.ts`) on a fresh database file; resolves once every HTTP worker listens.
 * `root`: another checkout to run (bench/attribute.ts compares trees), default this one; `script`: the supervisor's file
 * (default src/main.ts; bench/startup.ts: the start bundle's).
 */
export function startService(opts: {
  dbPath: string;
  workers: number;
  syncWorkers: number;
  env?: Record<string, string>;
  root?: string;
  script?: string;
}) {
  const port = freePort();
  return start(
    "service",
    [process.execPath, opts.script ?? "src/main.ts", "--workers", String(opts.workers), "--sync-workers", String(opts.syncWorkers)],
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
    opts.root,
  );
}

/** Starts the textbook baseline (bench/baseline/main.ts) on a fresh database file; `groupCommit`: the bare group-commit peer. */
export function startBaseline(opts: { dbPath: string; workers: number; groupCommit?: boolean }) {
  const port = freePort();
  return start(
    opts.groupCommit ? "groupcommit" : "baseline",
    [
      process.execPath,
      "bench/baseline/main.ts",
      "--db",
      opts.dbPath,
      "--port",
      String(port),
      "--workers",
      String(opts.workers),
      ...(opts.groupCommit ? ["--group-commit"] : []),
    ],
    {},
    "baseline listening",
    `http://127.0.0.1:${port}`,
  );
}
