import type { Subprocess } from "bun";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { ensureStartBundle } from "../../src/bundle/build.ts";
import { bundledFile } from "../../src/bundle/entry.ts";
import { portLockPath } from "../../src/db/instance-lock.ts";
import { freePort } from "../../src/free-port.ts";
import { spawnUntilReady, type ReadyProcess } from "../../scripts/spawn-ready.ts";
import { migratedSqliteFile, tempDir } from "./db.ts";
import { newPgDatabase, testEngine } from "./engine.ts";

export { freePort };

const root = join(import.meta.dir, "../..");
// The service as `bun run start` runs it: from the start bundle, rebuilt when a source changed (src/bundle/build.ts).
let bundle: Promise<string> | undefined;

/** The file a process of startServer()'s service runs for the start file `source` (relative to src/, e.g. "server.ts"). */
export async function serviceFile(source: string): Promise<string> {
  return bundledFile(await (bundle ??= ensureStartBundle()), source);
}

export type RunningServer = {
  url: string;
  port: number;
  /** The SQLite file, or (TEST_ENGINE=pg) the PostgreSQL URL: what DATABASE_URL was. */
  dbPath: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the supervisor and its workers printed so far. */
  output: () => string;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  /** Stops (if running) and deletes the temp database. */
  cleanup: () => Promise<void>;
};

/**
 * Starts the real service (`bun run start`: src/main.ts from the start bundle) on a free port and a temp database, and waits until
 * every HTTP worker is listening.
 */
export async function startServer(
  opts: {
    workers?: number;
    syncWorkers?: number;
    env?: Record<string, string>;
    /** DATABASE_URL: an SQLite path or a PostgreSQL URL (default: a fresh database of the engine under test). */
    dbPath?: string;
    timeoutMs?: number;
    /** A fixed port instead of a free one. */
    port?: number;
    /** More command-line arguments for the supervisor. */
    args?: string[];
  } = {},
): Promise<RunningServer> {
  const tmp = opts.dbPath ? null : tempDir();
  // A fresh database of the engine under test, already migrated (a copy of the migrated template: the supervisor
  // finds nothing to apply, 0.17 s less of the PostgreSQL server's CPU a start, ~50 ms of SQLite migrating); on
  // PostgreSQL dropped by cleanup() like the temp file.
  const pgdb = !opts.dbPath && testEngine === "pg" ? newPgDatabase() : null;
  const dbPath = opts.dbPath ?? pgdb?.url ?? join(tmp!.dir, "app.db");
  if (tmp && !pgdb) migratedSqliteFile(dbPath);
  const port = opts.port ?? freePort();
  let started: ReadyProcess;
  try {
    started = await spawnUntilReady(
      [
        process.execPath,
        await serviceFile("main.ts"),
        "--workers",
        String(opts.workers ?? 2),
        "--sync-workers",
        String(opts.syncWorkers ?? 0),
        ...(opts.args ?? []),
      ],
      {
        cwd: root,
        // Sync workers at the runner's priority (SYNC_NICE=0; production's 10 is lifecycle's subject): niced, they got
        // the CPU last beside the other lanes' files, and a test waits on their progress (a test may set it again).
        env: {
          ...process.env,
          DATABASE_URL: dbPath,
          PORT: String(port),
          HOST: "127.0.0.1",
          LOG_LEVEL: "warn",
          SYNC_NICE: "0",
          ...opts.env,
        },
        ready: "sitesync listening",
        // A bound for a loaded machine (servers took ~16 s to start at load 30), never a speed assertion.
        timeoutMs: opts.timeoutMs ?? 60_000,
        name: "server",
      },
    );
  } catch (err) {
    tmp?.cleanup();
    pgdb?.drop();
    throw err;
  }
  const { proc, output, stop } = started;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dbPath,
    proc,
    output,
    stop,
    async cleanup() {
      await stop();
      // A supervisor killed with SIGKILL (some tests do) leaves its port lock in the temp folder.
      const lock = portLockPath("127.0.0.1", port);
      if (
        (
          await Bun.file(lock)
            .json()
            .catch(() => null)
        )?.pid === proc.pid
      )
        rmSync(lock, { force: true });
      tmp?.cleanup();
      pgdb?.drop();
    },
  };
}

/** Sends a JSON request and returns status, headers and parsed body. */
export async function request(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, body: json as any };
}
