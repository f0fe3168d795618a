import { join } from "node:path";

// A separate process that holds a lock on a SQLite file (or the sites table of a PostgreSQL database), to
// test how the project's layer waits for it.

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

// PostgreSQL: SHARE mode on sites lets reads through and makes every insert, update and delete of a
// site wait, as SQLite's write lock makes every write wait.
const pgHolderCode = `
const pg = require("pg");
const [url, ms] = [process.env.HOLD_PATH, Number(process.env.HOLD_MS)];
const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query("begin");
await client.query("lock table sites in share mode");
console.log("held");
if (ms > 0) {
  await Bun.sleep(ms);
} else {
  for await (const line of console) break;
}
await client.query("commit");
await client.end();
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
 * it lets go even while the test process is blocked). Resolves once the lock is held. A postgres://
 * URL instead: a lock that makes writes of sites wait (mode "write" only).
 */
export async function holdLock(path: string, opts: { mode: "write" | "read"; ms?: number }): Promise<LockHolder> {
  const pg = /^postgres(ql)?:\/\//.test(path);
  if (pg && opts.mode !== "write") throw new Error("holdLock: on PostgreSQL only a write lock (of sites) is held");
  const proc = Bun.spawn([process.execPath, "-e", pg ? pgHolderCode : holderCode], {
    cwd: join(import.meta.dir, "../.."),
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
