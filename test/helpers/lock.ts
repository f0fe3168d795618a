// A separate process that holds a lock on a SQLite file, to test how the project's layer waits for it.

const holderCode = `
const { Database } = require("bun:sqlite");
const [path, mode, ms] = [process.env.HOLD_PATH, process.env.HOLD_MODE, Number(process.env.HOLD_MS)];
const db = new Database(path);
db.run("PRAGMA busy_timeout = 10000");
db.run(mode === "write" ? "BEGIN IMMEDIATE" : "BEGIN");
// A read transaction (WAL snapshot, or SHARED lock in rollback mode) starts with its first read.
db.query("select count(*) from sqlite_master").get();
console.log("held");
if (ms > 0) {
  Bun.sleepSync(ms);
} else {
  for await (const line of console) break;
}
db.run("COMMIT");
db.close();
console.log("released");
`;

export type LockHolder = {
  pid: number;
  /** Ends the transaction (no-op when it releases on its own timer); resolves when the process exited. */
  release(): Promise<void>;
  /** Resolves when the holder let go and exited. */
  exited: Promise<number>;
};

/**
 * Starts a process that opens `path` with plain bun:sqlite and holds a write lock (BEGIN IMMEDIATE)
 * or a read transaction until release() or, with `ms`, for that long (blocking its own thread, so
 * it lets go even while the test process is blocked). Resolves once the lock is held.
 */
export async function holdLock(path: string, opts: { mode: "write" | "read"; ms?: number }): Promise<LockHolder> {
  const proc = Bun.spawn([process.execPath, "-e", holderCode], {
    env: { ...process.env, HOLD_PATH: path, HOLD_MODE: opts.mode, HOLD_MS: String(opts.ms ?? 0) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let out = "";
  const dec = new TextDecoder();
  while (!out.includes("held")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`lock holder exited before taking the lock (code ${await proc.exited})`);
    out += dec.decode(value);
  }
  reader.releaseLock();
  void proc.stdout.pipeTo(new WritableStream());
  return {
    pid: proc.pid,
    exited: proc.exited,
    async release() {
      if (proc.exitCode === null) {
        try {
          proc.stdin.write("release\n");
          await proc.stdin.flush();
        } catch {
          // Already gone.
        }
      }
      await proc.exited;
    },
  };
}
