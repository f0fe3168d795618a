import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import pg from "pg";
import { createApp } from "../src/app.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { registerProcess } from "../src/db/process-registry.ts";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { freePort } from "../src/free-port.ts";
import { tempDb, tempDir, testEngine } from "./helpers/db.ts";
import { newPgDatabase } from "./helpers/engine.ts";
import { holdLock } from "./helpers/lock.ts";
import { tcpProxy } from "./helpers/tcp-proxy.ts";
import { storeOldRows } from "./helpers/rows.ts";
import { waitFor } from "./helpers/wait.ts";

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(30_000);

// /health and /api/v1/diagnostics/* in-process over a temp database of the engine under test, with
// real other processes (some registered under another host name, as another machine's would be).

const root = join(import.meta.dir, "..");
const sqlite = testEngine === "sqlite";
let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;

async function get(path: string, a = app) {
  const res = await a.request(path);
  const text = await res.text();
  expect(text).not.toMatch(/stack|SQLITE|database is locked/);
  return { status: res.status, json: JSON.parse(text) };
}

/** Another process that opens the database through the project's layer (as configured) and registers itself. */
async function registeredChild(databaseUrl: string, host?: string) {
  const code = `
    import { loadConfig } from ${JSON.stringify(join(root, "src/config.ts"))};
    import { closeAllConnections, openDbFromConfig } from ${JSON.stringify(join(root, "src/db/index.ts"))};
    import { registerProcess } from ${JSON.stringify(join(root, "src/db/process-registry.ts"))};
    const db = openDbFromConfig(loadConfig([]), "sync");
    await registerProcess(db);
    console.log("ready");
    for await (const line of console) break;
    await closeAllConnections();
  `;
  const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" };
  if (host) env.SITESYNC_HOST_NAME = host;
  else delete env.SITESYNC_HOST_NAME;
  const proc = Bun.spawn([process.execPath, "-e", code], { env, stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child exited early (${await proc.exited})`);
    out += new TextDecoder().decode(value);
  }
  return proc;
}

async function registryRows(db: Db) {
  const { dbConnections: c } = db.t;
  return db.q.select({ host: c.host, pid: c.pid }).from(c).orderBy(c.host, c.pid);
}

beforeAll(async () => {
  t = tempDb();
  await registerProcess(t.db);
  app = createApp(t.db);
});
afterAll(() => t.cleanup());

/** /health of a worker that cannot use the database. */
const unusable = (reason: string | RegExp) => ({
  status: "unhealthy",
  process_id: process.pid,
  database_connected: false,
  connection_info: null,
  reasons: [typeof reason === "string" ? reason : expect.stringMatching(reason)],
});

describe("GET /health", () => {
  test("healthy, with this process and every other live process of every host, each with its host", async () => {
    const here = await registeredChild(t.databaseUrl);
    const there = await registeredChild(t.databaseUrl, "other-host.example");
    try {
      const r = await get("/health");
      expect(r.status).toBe(200);
      const self = {
        host: hostname(),
        pid: process.pid,
        role: "test",
        started_at: t.db.startedAt,
        last_seen_at: expect.any(String),
        busy_retries: expect.any(Number),
      };
      const child = (pid: number, host: string) => ({
        host,
        pid,
        role: "sync",
        started_at: expect.stringMatching(/Z$/),
        last_seen_at: expect.any(String),
        busy_retries: 0,
      });
      const processes = [self, child(here.pid, hostname()), child(there.pid, "other-host.example")].sort((a, b) =>
        a.host === b.host ? a.pid - b.pid : a.host < b.host ? -1 : 1,
      );
      expect(r.json).toEqual({
        status: "healthy",
        process_id: process.pid,
        database_connected: true,
        connection_info: {
          current_pid: process.pid,
          current_host: hostname(),
          connection_pids: processes.map((p) => p.pid),
          total_connections: 3,
          hosts: [...new Set(processes.map((p) => p.host))],
          processes,
        },
        reasons: [],
      });

      const c = await get("/api/v1/diagnostics/connections");
      expect(c.status).toBe(200);
      expect(c.json).toEqual(r.json.connection_info);
    } finally {
      // A clean exit unregisters (the next tests count the rows).
      for (const p of [here, there]) {
        p.stdin.write("bye\n");
        await p.stdin.flush();
      }
      await Promise.all([here.exited, there.exited]);
    }
  });

  test("a process killed without unregistering drops out: SQLite at once (its pid is gone), PostgreSQL once its heartbeat is 10 s old", async () => {
    const child = await registeredChild(t.databaseUrl);
    expect((await get("/health")).json.connection_info.connection_pids).toContain(child.pid);
    child.kill("SIGKILL");
    await child.exited;
    const started = performance.now();
    // On PostgreSQL a pid says nothing about another machine's process: only the heartbeat's age counts.
    while ((await get("/health")).json.connection_info.connection_pids.includes(child.pid)) {
      expect(sqlite).toBe(false);
      // A hang guard: dropped ~8-10 s after the kill (heartbeat every 2 s, live for 10 s); generous under load.
      expect(performance.now() - started).toBeLessThan(40_000);
      await Bun.sleep(250);
    }
    if (!sqlite) expect(performance.now() - started).toBeGreaterThan(5_000);
    const after = await get("/health");
    expect(after.json.connection_info.connection_pids).toEqual([process.pid]);
    expect(after.json.connection_info.total_connections).toBe(1);
    await t.db.drain(); // the prune is a queued write
    expect(await registryRows(t.db)).toEqual([{ host: hostname(), pid: process.pid }]);
  });

  test("a row not refreshed for a long time is not listed, even if its pid is alive (pids repeat), and is pruned", async () => {
    // The parent of this test process is alive but never registered: as after a container restart.
    const longAgo = new Date(Date.now() - 3_600_000).toISOString();
    const { dbConnections } = t.db.t;
    await t.db.tx((tx) =>
      tx.insert(dbConnections).values([
        { host: t.db.host, pid: process.ppid, role: "http", started_at: longAgo, last_seen_at: longAgo, busy_retries: 0 },
        { host: "gone-host.example", pid: process.pid, role: "http", started_at: longAgo, last_seen_at: longAgo, busy_retries: 0 },
      ]),
    );
    const r = await get("/health");
    expect(r.json.connection_info.processes.map((p: { host: string; pid: number }) => [p.host, p.pid])).toEqual([
      [hostname(), process.pid],
    ]);
    await t.db.drain(); // the prune is a queued write
    expect(await registryRows(t.db)).toEqual([{ host: hostname(), pid: process.pid }]);
  });

  test("REGISTRY_HEARTBEAT_MS sets how old a heartbeat may be: 5 heartbeats on PostgreSQL, 15 for another host's row on SQLite", async () => {
    // Another host's row (no pid check): 3 s old on PostgreSQL (live for 10 s at the default 2 s), 10 s on SQLite (30 s).
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    const { dbConnections } = t.db.t;
    await t.db.tx((tx) =>
      tx.insert(dbConnections).values({
        host: "slow-host.example",
        pid: 4242,
        role: "http",
        started_at: ago(60_000),
        last_seen_at: ago(sqlite ? 10_000 : 3000),
        busy_retries: 0,
      }),
    );
    const hosts = async () => (await get("/health")).json.connection_info.processes.map((p: { host: string }) => p.host) as string[];
    expect(await hosts()).toContain("slow-host.example");
    // At 500 ms the same row is past 2.5 s (PostgreSQL) or 7.5 s (SQLite): gone, and pruned.
    t.db.heartbeatMs = 500;
    try {
      // PostgreSQL judges nobody before this process has seen the server up for 5 heartbeats.
      await waitFor(() => Date.now() - t.db.availability.upSince >= 2500, { timeout: 10_000, what: "2.5 s of the server up" });
      expect(await hosts()).not.toContain("slow-host.example");
      await t.db.drain(); // the prune is a queued write
      expect(await registryRows(t.db)).toEqual([{ host: hostname(), pid: process.pid }]);
    } finally {
      t.db.heartbeatMs = 2000;
    }
  });

  test("a process that closes cleanly unregisters", async () => {
    const child = await registeredChild(t.databaseUrl, "leaving-host.example");
    try {
      expect((await get("/health")).json.connection_info.hosts).toContain("leaving-host.example");
      child.stdin.write("bye\n");
      await child.stdin.flush();
      expect(await child.exited).toBe(0);
      expect(await registryRows(t.db)).toEqual([{ host: hostname(), pid: process.pid }]);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await child.exited;
    }
  });

  test.skipIf(!sqlite)("503 unhealthy when the database cannot be reached (SQLite: a closed handle)", async () => {
    const h = t.open();
    const broken = createApp(h);
    h.close();
    const r = await get("/health", broken);
    expect(r.status).toBe(503);
    expect(r.json).toEqual(unusable("the database file cannot be read, or holds no schema"));
  });
});

describe.skipIf(sqlite)("PostgreSQL server reachability", () => {
  test("503 unhealthy, with the reason, when nothing listens at the server's address", async () => {
    const db = openPgDb({ url: `postgres://postgres@127.0.0.1:${freePort()}/nowhere`, role: "test", retryForMs: 200 });
    try {
      const r = await get("/health", createApp(db));
      expect(r.status).toBe(503);
      expect(r.json).toEqual(unusable(/^the PostgreSQL server cannot be reached: .*ECONNREFUSED/));
    } finally {
      db.close();
    }
  });

  test("503 unhealthy on a database that holds no schema", async () => {
    const bare = newPgDatabase({ migrated: false });
    const db = openPgDb({ url: bare.url, role: "test" });
    try {
      const r = await get("/health", createApp(db));
      expect(r.status).toBe(503);
      expect(r.json).toEqual(unusable("the PostgreSQL database holds no schema (run bun run migrate)"));
    } finally {
      db.close();
      await Bun.sleep(50);
      bare.drop();
    }
  });

  test("the server goes away under a running app: 503 unhealthy, writes 503; back: degraded for the failed writes, then reads and writes work", async () => {
    const proxy = await tcpProxy(new URL(t.databaseUrl));
    const url = new URL(t.databaseUrl);
    url.host = `127.0.0.1:${proxy.port}`;
    const db = openPgDb({ url: url.toString(), role: "test", retryForMs: 300 });
    const a = createApp(db);
    try {
      expect((await get("/health", a)).json).toMatchObject({ status: "healthy", database_connected: true });
      proxy.stop();
      const down = await get("/health", a);
      expect(down.status).toBe(503);
      expect(down.json).toEqual(unusable(/^the PostgreSQL server cannot be reached: /));
      const write = await a.request("/api/v1/sites", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ domain: "sc-domain:away.example", name: "Away" }),
      });
      expect(write.status).toBe(503);
      expect(await write.text()).not.toMatch(/stack|ECONNREFUSED/);
      await proxy.start();
      // A background probe sent just before the return may still answer "down": the next one says up.
      let back = await get("/health", a);
      await waitFor(async () => (back = await get("/health", a)).status === 200, { timeout: 10_000, every: 50, what: "/health up again" });
      expect(back.status).toBe(200);
      expect(back.json.status).toBe("degraded");
      expect(back.json.reasons).toEqual([
        expect.stringMatching(/^writes are failing: the server could not be reached or dropped the connection: /),
      ]);
      const created = await a.request("/api/v1/sites", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ domain: "sc-domain:back.example", name: "Back" }),
      });
      expect(created.status).toBe(201);
    } finally {
      db.close();
      proxy.stop();
    }
  });
});

test.skipIf(!sqlite)(
  "503 unhealthy, no stack, when the file under an open handle is overwritten with bytes that are not a database (SQLite: the file)",
  async () => {
    const d = tempDir();
    const path = join(d.dir, "app.db");
    migrate(path);
    const db = openDb({ path, role: "test" });
    try {
      const app = createApp(db);
      expect((await get("/health", app)).status).toBe(200);
      writeFileSync(path, Buffer.from("this is not an SQLite database. ".repeat(2048)));
      // A request served later (a new event-loop turn: the reader's shared snapshot of this turn has ended).
      await new Promise((r) => setImmediate(r));
      const r = await get("/health", app);
      expect(r.status).toBe(503);
      expect(r.json).toEqual(unusable("the database file cannot be read, or holds no schema"));
      // The other endpoints answer 503 unavailable too: a broken file is not the client's mistake, nor a bug.
      const sites = await get("/api/v1/sites", app);
      expect(sites.status).toBe(503);
      expect(sites.json.error.code).toBe("unavailable");
      expect(JSON.stringify(sites.json)).not.toMatch(/SQLITE|stack| {4}at /);
    } finally {
      db.close();
      d.cleanup();
    }
  },
);

test.skipIf(!sqlite)("503 unhealthy on a file that holds no database schema (SQLite: the file)", async () => {
  const d = tempDir();
  writeFileSync(join(d.dir, "empty.db"), "");
  const empty = openDb({ path: join(d.dir, "empty.db"), role: "test" });
  try {
    const r = await get("/health", createApp(empty));
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ status: "unhealthy", database_connected: false });
  } finally {
    empty.close();
    d.cleanup();
  }
});

describe.skipIf(!sqlite)("GET /api/v1/diagnostics/check-locks (SQLite: pragmas, WAL and the one write lock)", () => {
  test("settings, WAL size and a free write lock", async () => {
    await t.db.tx((tx) => tx.insert(t.db.t.sites).values({ domain: "sc-domain:diag.example", name: "Diag" }));
    const r = await get("/api/v1/diagnostics/check-locks");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      engine: "sqlite",
      // The original's keys, types and constant values (reference §1.14)...
      database_state: "accessible",
      pragma_settings: {
        journal_mode: "wal",
        busy_timeout_ms: 30000,
        synchronous: 1,
        cache_size: -64000,
        databases: [{ seq: 0, name: "main", file: t.path }],
        synchronous_name: "NORMAL",
      },
      recommendations: {
        journal_mode: "Should be 'WAL' for better concurrency",
        busy_timeout: "Should be at least 5000ms",
        synchronous: "Should be 'NORMAL' for performance",
      },
      // ...and ours.
      lock_state: "free",
      wal_size_bytes: expect.any(Number),
      write_lock_free: true,
      write_lock_probe_age_ms: expect.any(Number),
      busy_retries: expect.any(Number),
      process_busy_retries: t.db.stats.busyRetries,
      write_commits: t.db.stats.commits,
      writes: t.db.stats.writes,
      storage: {
        file_identity: expect.stringMatching(/^\d+:\d+$/),
        file_problem: null,
        // No supervisor in this test: nobody reported the instance's checkpoints.
        checkpoint_failures: null,
        checkpoint_error: null,
        write_storage_errors: 0,
        last_write_storage_error: null,
        process_storage_errors: 0,
        writes_refused_file_changed: 0,
        max_write_lock_hold_ms: expect.any(Number),
        reported_at: null,
      },
      warnings: [],
    });
    expect(r.json.wal_size_bytes).toBeGreaterThan(0);
  });

  test("the lock probe takes the write lock at most once a second per process, however often it is asked", async () => {
    await Bun.sleep(1100);
    const first = await get("/api/v1/diagnostics/check-locks");
    expect(first.json).toMatchObject({ write_lock_free: true, write_lock_probe_age_ms: 0 });
    // The lock taken at once, in this process (another connection: SQLite locks are per connection); a holder
    // process took more than the probe's second to start on a loaded machine, and nothing was left to check.
    const holder = new Database(t.path);
    holder.run("BEGIN IMMEDIATE");
    let cached = 0;
    try {
      // Within the second the first answer comes back (with its age): a new probe would find the lock taken.
      for (let i = 0; i < 20; i++) {
        const r = await get("/api/v1/diagnostics/check-locks");
        if (r.json.write_lock_probe_age_ms >= 900) break;
        expect(r.json.write_lock_free).toBe(true);
        cached++;
      }
    } finally {
      holder.run("ROLLBACK");
      holder.close();
    }
    expect(cached).toBeGreaterThan(0);
  });

  test("write_lock_free is false while another process holds BEGIN IMMEDIATE; retries are reported", async () => {
    const holder = await holdLock(t.path, { mode: "write" });
    try {
      // The previous probe's answer is reused for a second.
      await Bun.sleep(1100);
      const r = await get("/api/v1/diagnostics/check-locks");
      expect(r.json.write_lock_free).toBe(false);
      expect(r.json).toMatchObject({ database_state: "accessible", lock_state: "write_locked" });
      expect(r.json.warnings.join(" ")).toMatch(/write transaction is open/);
      // A write meanwhile waits and counts retries, which the report shows.
      const pending = t.db.tx((tx) => tx.insert(t.db.t.sites).values({ domain: "sc-domain:held.example", name: "Held" }));
      // The write retries while the lock is held: wait until the report counts a retry (not a fixed time).
      const during = await waitFor(
        async () => {
          const r = await get("/api/v1/diagnostics/check-locks");
          return r.json.process_busy_retries > 0 ? r : null;
        },
        { timeout: 20_000, what: "a busy retry counted" },
      );
      expect(during.json.process_busy_retries).toBeGreaterThan(0);
      expect(during.json.busy_retries).toBeGreaterThanOrEqual(during.json.process_busy_retries);
      await holder.release();
      await pending;
    } finally {
      await holder.release();
    }
    await Bun.sleep(1100);
    const r = await get("/api/v1/diagnostics/check-locks");
    expect(r.json.write_lock_free).toBe(true);
  });

  test("/health is degraded (200, with the reason) when the WAL is past twice the threshold", async () => {
    await t.db.tx((tx) => tx.insert(t.db.t.sites).values({ domain: "sc-domain:walbound.example", name: "W" }));
    const r = await get("/health", createApp(t.db, { walWarnBytes: 1 }));
    expect(r.status).toBe(200);
    expect(r.json.status).toBe("degraded");
    expect(r.json.reasons).toEqual([expect.stringMatching(/^the WAL is \d+ bytes, over its bound of 2$/)]);
    expect((await get("/health")).json).toMatchObject({ status: "healthy", reasons: [] });
  });

  test("recommends a look when the WAL is past the threshold", async () => {
    const small = createApp(t.db, { walWarnBytes: 1 });
    const r = await get("/api/v1/diagnostics/check-locks", small);
    expect(r.json.warnings.join(" ")).toMatch(/WAL is past the checkpoint threshold/);
  });
});

describe.skipIf(sqlite)("GET /api/v1/diagnostics/check-locks (PostgreSQL: the server's facts)", () => {
  test("a row-lock wait in another database of the server is not this database's (locks_waiting 0)", async () => {
    // A row lock's wait is on a transaction id (pg_locks.database null): it must be counted for its own database only.
    const other = newPgDatabase({ migrated: false });
    const holder = new pg.Client({ connectionString: other.url });
    const waiter = new pg.Client({ connectionString: other.url });
    await holder.connect();
    await waiter.connect();
    try {
      await holder.query("create table t (id int primary key, v int); insert into t values (1, 0)");
      await holder.query("begin; update t set v = 1 where id = 1");
      const waiting = waiter.query("update t set v = 2 where id = 1").catch(() => {});
      await waitFor(
        async () =>
          Number(
            (await holder.query("select count(*) n from pg_locks where not granted and pid = $1", [(waiter as any).processID])).rows[0].n,
          ) > 0,
        { timeout: 10_000, what: "the other database's update to wait for the row lock" },
      );
      const r = await get("/api/v1/diagnostics/check-locks");
      expect(r.json.server.locks_waiting).toBe(0);
      expect(r.json.lock_state).toBe("free");
      await holder.query("rollback");
      await waiting;
    } finally {
      await holder.end().catch(() => {});
      await waiter.end().catch(() => {});
      other.drop();
    }
  });

  test("server version, max_connections, database size, this process's pool and no lock waits", async () => {
    await t.db.tx((tx) => tx.insert(t.db.t.sites).values({ domain: "sc-domain:diag.example", name: "Diag" }));
    const admin = new pg.Client({ connectionString: t.databaseUrl });
    await admin.connect();
    const facts = (
      await admin.query(
        "select current_setting('server_version') v, current_setting('server_version_num')::int n, current_setting('max_connections')::int m, current_database() d, pg_database_size(current_database())::bigint s",
      )
    ).rows[0];
    await admin.end();
    const r = await get("/api/v1/diagnostics/check-locks");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      engine: "postgresql",
      database_state: "accessible",
      server: {
        version: facts.v,
        version_num: facts.n,
        max_connections: facts.m,
        statement_timeout: "30s",
        database: facts.d,
        database_size_bytes: expect.any(Number),
        connections: expect.any(Number),
        locks_waiting: 0,
        oldest_transaction_ms: expect.any(Number),
      },
      pool: { max: 4, total: expect.any(Number), idle: expect.any(Number), waiting: 0 },
      locks_waiting: 0,
      lock_state: "free",
      busy_retries: expect.any(Number),
      process_busy_retries: t.db.stats.busyRetries,
      write_commits: t.db.stats.commits,
      writes: t.db.stats.writes,
      storage: { write_storage_errors: 0, last_write_storage_error: null, process_storage_errors: 0, write_timeouts: 0 },
      warnings: [],
    });
    // The database's size as the server tells it (a few MB for the migrated schema), within what grew meanwhile.
    expect(r.json.server.database_size_bytes).toBeGreaterThanOrEqual(Number(facts.s) * 0.9);
    expect(r.json.server.database_size_bytes).toBeLessThan(Number(facts.s) * 1.5);
    expect(r.json.pool.total).toBeGreaterThanOrEqual(1);
    expect(r.json.server.connections).toBeGreaterThanOrEqual(r.json.pool.total - r.json.pool.idle);
  });

  test("a transaction waiting for another's row lock shows as locks_waiting, with a warning", async () => {
    const { sites } = t.db.t;
    const [site] = await t.db.tx((tx) =>
      tx.insert(sites).values({ domain: "sc-domain:rowlock.example", name: "R" }).returning({ id: sites.id }),
    );
    const holder = new pg.Client({ connectionString: t.databaseUrl });
    const waiter = new pg.Client({ connectionString: t.databaseUrl });
    await holder.connect();
    await waiter.connect();
    try {
      await holder.query("begin");
      await holder.query("update sites set name = 'held' where id = $1", [site!.id]);
      const waiting = waiter.query("update sites set name = 'waited' where id = $1", [site!.id]);
      let r = await get("/api/v1/diagnostics/check-locks");
      for (let i = 0; i < 40 && r.json.locks_waiting === 0; i++) {
        await Bun.sleep(50);
        r = await get("/api/v1/diagnostics/check-locks");
      }
      expect(r.json).toMatchObject({ lock_state: "locks_waiting", server: { locks_waiting: r.json.locks_waiting } });
      expect(r.json.locks_waiting).toBeGreaterThanOrEqual(1);
      expect(r.json.warnings.join(" ")).toMatch(/lock requests are waiting right now/);
      await holder.query("commit");
      await waiting;
      const after = await get("/api/v1/diagnostics/check-locks");
      expect(after.json).toMatchObject({ lock_state: "free", locks_waiting: 0 });
    } finally {
      await holder.end().catch(() => {});
      await waiter.end().catch(() => {});
    }
  });

  test("warns when every live process's pool together could exceed max_connections", async () => {
    const big = openPgDb({ url: t.databaseUrl, role: "test", poolSize: 1000 });
    try {
      await registerProcess(big);
      const r = await get("/api/v1/diagnostics/check-locks", createApp(big));
      expect(r.json.pool.max).toBe(1000);
      expect(r.json.warnings.join(" ")).toMatch(/possible connections, over the server's max_connections/);
    } finally {
      big.close();
    }
  });
});

describe("GET /api/v1/diagnostics/test-db-connection", () => {
  test("timings of a connect, a simple query and a coverage query, with the original's site_count and days_found", async () => {
    const { sites } = t.db.t;
    const r = await get("/api/v1/diagnostics/test-db-connection");
    expect(r.status).toBe(200);
    const timing = { success: true, time_ms: expect.any(Number) };
    const siteCount = (await t.db.q.select({ id: sites.id }).from(sites)).length;
    expect(r.json).toEqual({
      connection_test: timing,
      simple_query: { ...timing, site_count: siteCount },
      coverage_query: { ...timing, days_found: 0, sites_with_data: 0 },
    });

    // days_found: distinct days with rows over all sites (the original counted its hard-coded site 4).
    const ids = await t.db.tx((tx) =>
      tx
        .insert(sites)
        .values(["sc-domain:cov-a.example", "sc-domain:cov-b.example"].map((domain) => ({ domain, name: domain })))
        .returning({ id: sites.id }),
    );
    const [a, b] = ids.map((x) => x.id);
    const row = { page: "https://cov.example/", query: "q", device: "MOBILE", clicks: 1, impressions: 1, ctr: 1, position: 1 };
    await storeOldRows(t.db, [
      ...["2026-04-01", "2026-04-02", "2026-04-03"].map((date) => ({ ...row, site_id: a!, date, search_type: "web" })),
      ...["2026-04-03", "2026-04-04"].map((date) => ({ ...row, site_id: b!, date, search_type: "image" })),
    ]);
    const after = await get("/api/v1/diagnostics/test-db-connection");
    expect(after.json.simple_query.site_count).toBe(siteCount + 2);
    expect(after.json.coverage_query).toEqual({ ...timing, days_found: 4, sites_with_data: 2 });
  });

  test.skipIf(sqlite)("PostgreSQL: the connect test fails, with the reason, when the server cannot be reached", async () => {
    const db = openPgDb({ url: `postgres://postgres@127.0.0.1:${freePort()}/nowhere`, role: "test", retryForMs: 200 });
    try {
      // With keys possible (AUTH=auto) the request itself is refused 503 first: whether a key exists cannot be
      // known without the server (errors.api tests that). This is about the endpoint's own answer.
      const r = await get(
        "/api/v1/diagnostics/test-db-connection",
        createApp(db, { auth: { mode: "off", localAddresses: [], allowedHosts: [] } }),
      );
      expect(r.status).toBe(200);
      expect(r.json.connection_test).toEqual({ success: false, time_ms: expect.any(Number), error: expect.stringMatching(/ECONNREFUSED/) });
      expect(r.json.simple_query.success).toBe(false);
    } finally {
      db.close();
    }
  });
});
