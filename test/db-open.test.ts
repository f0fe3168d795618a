import { Database } from "bun:sqlite";
import { afterAll, afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";
import { closeAllConnections, openDb, openDbFromConfig } from "../src/db/index.ts";
import { DatabaseMissingError, defaultPragmas, openConnection, WalUnavailableError } from "../src/db/sqlite/open.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { sites, syncTasks } from "../src/db/sqlite/schema.ts";
import { asSqlite, tempDir, tempSqliteDb } from "./helpers/db.ts";
import { holdLock } from "./helpers/lock.ts";
import { serviceFile } from "./helpers/server.ts";

// The supervisor as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceMain = await serviceFile("main.ts");

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(30_000);

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function pragmasOf(conn: Database) {
  const one = (name: string) => Object.values(conn.query(`PRAGMA ${name}`).get() as object)[0];
  return {
    journal_mode: one("journal_mode"),
    busy_timeout: one("busy_timeout"),
    synchronous: one("synchronous"),
    cache_size: one("cache_size"),
    foreign_keys: one("foreign_keys"),
    temp_store: one("temp_store"),
    mmap_size: one("mmap_size"),
    journal_size_limit: one("journal_size_limit"),
    wal_autocheckpoint: one("wal_autocheckpoint"),
  };
}

describe("openDb", () => {
  test("both connections get the default pragmas; the writer waits in the write queue, not in SQLite", () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const expected = {
      journal_mode: "wal",
      synchronous: 1, // NORMAL
      cache_size: -64000,
      foreign_keys: 1,
      temp_store: 2, // MEMORY
      mmap_size: 0,
      journal_size_limit: 67108864,
      wal_autocheckpoint: 1000,
    };
    expect(pragmasOf(t.db.raw.reader)).toEqual({ ...expected, busy_timeout: 30000 });
    expect(pragmasOf(t.db.raw.writer)).toEqual({ ...expected, busy_timeout: 0 });
  });

  test("every pragma can be overridden", () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const db = t.open({
      pragmas: {
        busyTimeoutMs: 1234,
        synchronous: "FULL",
        cacheSize: -2000,
        mmapSize: 4194304,
        journalSizeLimit: 1048576,
        tempStore: "FILE",
        walAutocheckpoint: 0,
      },
    });
    expect(pragmasOf(db.raw.reader)).toEqual({
      journal_mode: "wal",
      busy_timeout: 1234,
      synchronous: 2,
      cache_size: -2000,
      foreign_keys: 1,
      temp_store: 1,
      mmap_size: 4194304,
      journal_size_limit: 1048576,
      wal_autocheckpoint: 0,
    });
  });

  test("pragmas come from the environment through the config", () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const config = loadConfig([], {
      DATABASE_URL: `file:${t.path}`,
      SQLITE_BUSY_TIMEOUT_MS: "4321",
      SQLITE_SYNCHRONOUS: "EXTRA",
      SQLITE_CACHE_SIZE: "-8000",
      SQLITE_MMAP_SIZE: "1048576",
      SQLITE_JOURNAL_SIZE_LIMIT: "-1",
      SQLITE_TEMP_STORE: "DEFAULT",
      SQLITE_WAL_AUTOCHECKPOINT: "500",
      WRITE_LOCK_TIMEOUT_MS: "777",
    });
    const db = asSqlite(openDbFromConfig(config, "test"));
    cleanups.push(() => db.close());
    expect(db.path).toBe(t.path);
    expect(pragmasOf(db.raw.reader)).toMatchObject({
      busy_timeout: 4321,
      synchronous: 3,
      cache_size: -8000,
      mmap_size: 1048576,
      journal_size_limit: -1,
      temp_store: 0,
      wal_autocheckpoint: 500,
    });
  });

  test("the sync worker's connection has its own cache size (SYNC_SQLITE_CACHE_SIZE); the other roles SQLITE_CACHE_SIZE", () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const config = loadConfig([], { DATABASE_URL: `file:${t.path}`, SQLITE_CACHE_SIZE: "-8000", SYNC_SQLITE_CACHE_SIZE: "-300000" });
    const cacheOf = (role: "sync" | "http") => {
      const db = asSqlite(openDbFromConfig(config, role));
      cleanups.push(() => db.close());
      return pragmasOf(db.raw.reader).cache_size;
    };
    expect(cacheOf("sync")).toBe(-300000);
    expect(cacheOf("http")).toBe(-8000);
    expect(loadConfig([], { DATABASE_URL: `file:${t.path}` }).SYNC_SQLITE_CACHE_SIZE).toBe(-262_144);
  });

  test("every role, supervised or not, keeps SQLite's auto-checkpoint at 1000 pages; SQLITE_WAL_AUTOCHECKPOINT wins", () => {
    // wal_autocheckpoint 0 in the supervisor's workers (every checkpoint left to its checkpointer) let the WAL grow to
    // the TRUNCATE threshold under a steady write load, and on a small disk take every byte freed after a disk-full
    // (db-faults.test; docs/benchmarks/history.md): tried twice, undone twice.
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const autocheckpoint = (env: Record<string, string>, role: "primary" | "http" | "sync" | "standalone") => {
      const db = asSqlite(openDbFromConfig(loadConfig([], { DATABASE_URL: `file:${t.path}`, ...env }), role));
      cleanups.push(() => db.close());
      return [pragmasOf(db.raw.reader).wal_autocheckpoint, pragmasOf(db.raw.writer).wal_autocheckpoint];
    };
    const supervised = { SITESYNC_SUPERVISED: "1" };
    for (const role of ["primary", "http", "sync", "standalone"] as const) {
      expect(autocheckpoint(supervised, role)).toEqual([1000, 1000]);
      expect(autocheckpoint({}, role)).toEqual([1000, 1000]);
    }
    expect(autocheckpoint({ ...supervised, SQLITE_WAL_AUTOCHECKPOINT: "500" }, "http")).toEqual([500, 500]);
  });

  test("foreign keys are enforced and cascade", async () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    await expect(t.db.write((tx) => tx.insert(syncTasks).values({ site_id: 424242, task_type: "daily" }).run())).rejects.toMatchObject({
      code: "SQLITE_CONSTRAINT_FOREIGNKEY",
    });
  });

  test("opens existing files only: a missing file is an error and is not created; the migrator creates file and folder", () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const path = join(d.dir, "nested", "deeper", "app.db");
    expect(() => openDb({ path, role: "test" })).toThrow(DatabaseMissingError);
    expect(() => openConnection(path, defaultPragmas)).toThrow(/does not exist/);
    expect(existsSync(join(d.dir, "nested"))).toBe(false);
    migrate(path);
    const db = openDb({ path, role: "test" });
    db.close();
    expect(existsSync(path)).toBe(true);
  });

  test("close is idempotent, runs onClose hooks once, and closeAllConnections closes every handle", async () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    const a = t.open();
    const b = t.open();
    let hooks = 0;
    a.onClose.push(() => hooks++);
    a.close();
    a.close();
    expect(hooks).toBe(1);
    expect(a.closed).toBe(true);
    expect(() => a.raw.reader.query("select 1").get()).toThrow();

    const pending = b.write((tx) => tx.insert(sites).values({ domain: "sc-domain:late.example", name: "Late" }).run());
    const closed = await closeAllConnections();
    expect(closed).toBeGreaterThanOrEqual(2); // t.db and b (and any other handle this file still has open)
    await pending; // drained before the close
    expect(b.closed).toBe(true);
    expect(t.db.closed).toBe(true);
    const check = new Database(t.path, { readonly: true });
    expect(check.query("select count(*) as n from sites").get()).toEqual({ n: 1 });
    check.close();
  });
});

/**
 * Makes a database file read-only for this process: chmod for a normal user; as root (which ignores
 * permissions) the immutable attribute, where the file system supports it. Returns the undo, or null.
 */
function makeReadOnly(path: string): (() => void) | null {
  if (process.getuid?.() !== 0) {
    chmodSync(path, 0o444);
    return () => chmodSync(path, 0o644);
  }
  const set = Bun.spawnSync(["chattr", "+i", path], { stderr: "ignore" });
  return set.success ? () => void Bun.spawnSync(["chattr", "-i", path]) : null;
}

const readOnlyDir = tempDir();
const readOnlyPath = join(readOnlyDir.dir, "readonly.db");
new Database(readOnlyPath).run("create table t (x)");
const undoReadOnly = makeReadOnly(readOnlyPath);
afterAll(() => {
  undoReadOnly?.();
  readOnlyDir.cleanup();
});

describe("openConnection", () => {
  // No way to make a file read-only here (root on a file system without chattr): say so, don't fake it.
  test.skipIf(undoReadOnly === null)("a read-only database file fails with WalUnavailableError, not a raw SQLite error", () => {
    let err: unknown;
    try {
      openConnection(readOnlyPath, defaultPragmas);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WalUnavailableError);
    expect((err as Error).message).toContain(`could not switch ${readOnlyPath} to WAL mode (attempt to write a readonly database)`);
    expect((err as Error).message).toMatch(/writable file and directory/);
  });

  test.skipIf(undoReadOnly === null)("the service refuses to start on it: exit 1 with the reason, no stack trace", async () => {
    const proc = Bun.spawn([process.execPath, serviceMain, "--workers", "1"], {
      env: { ...process.env, DATABASE_URL: readOnlyPath, PORT: "0", HOST: "127.0.0.1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(1);
    expect(stderr).toContain("fatal: SQLite could not switch");
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test("refuses a database that cannot be in WAL mode with a clear error", () => {
    // An in-memory database reports journal_mode 'memory' whatever is asked: WAL cannot take effect.
    let err: unknown;
    try {
      openConnection(":memory:", defaultPragmas);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WalUnavailableError);
    expect((err as Error).message).toMatch(/refused WAL mode for :memory: \(journal_mode is 'memory'\)/);
    expect((err as Error).message).toMatch(/local file system/);
  });

  test("switching a cold file to WAL waits for another process's lock because busy_timeout comes first", async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const path = join(d.dir, "cold.db");
    const seed = new Database(path);
    seed.run("create table t (x)"); // rollback-journal mode, as any fresh file
    seed.close();

    // Control: without a busy timeout the switch fails while a reader holds its SHARED lock.
    const first = await holdLock(path, { mode: "read" });
    cleanups.push(() => first.release());
    expect(() => openConnection(path, { ...defaultPragmas, busyTimeoutMs: 0 })).toThrow(/database is locked/);
    await first.release();

    // The holder lets go by itself after 400 ms while openConnection blocks this thread.
    const second = await holdLock(path, { mode: "read", ms: 400 });
    cleanups.push(() => second.release());
    const t0 = performance.now();
    const conn = openConnection(path, defaultPragmas);
    const waited = performance.now() - t0;
    cleanups.push(() => conn.close());
    expect(conn.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(waited).toBeGreaterThan(100);
  });
});
