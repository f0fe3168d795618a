import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { migrate } from "../src/db/migrate.ts";
import { registerProcess } from "../src/db/registry.ts";
import { dbConnections, sites } from "../src/db/schema.ts";
import { openDb } from "../src/db/index.ts";
import { upsertRows } from "../src/sync/data.ts";
import { tempDb, tempDir } from "./helpers/db.ts";
import { holdLock } from "./helpers/lock.ts";

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(30_000);

// /health and /api/v1/diagnostics/* in-process over a temp database, with real other processes.

const root = join(import.meta.dir, "..");
let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;

async function get(path: string, a = app) {
  const res = await a.request(path);
  const text = await res.text();
  expect(text).not.toMatch(/stack|SQLITE|database is locked/);
  return { status: res.status, json: JSON.parse(text) };
}

/** Another process that opens the database through the project's layer and registers itself. */
async function registeredChild(path: string) {
  const code = `
    import { openDb } from ${JSON.stringify(join(root, "src/db/index.ts"))};
    import { registerProcess } from ${JSON.stringify(join(root, "src/db/registry.ts"))};
    const db = openDb({ path: process.env.DB_PATH, role: "sync" });
    await registerProcess(db);
    console.log("ready");
    for await (const line of console) break;
    db.close();
  `;
  const proc = Bun.spawn([process.execPath, "-e", code], {
    env: { ...process.env, DB_PATH: path },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child exited early (${await proc.exited})`);
    out += new TextDecoder().decode(value);
  }
  return proc;
}

beforeAll(async () => {
  t = tempDb();
  await registerProcess(t.db);
  app = createApp(t.db);
});
afterAll(() => t.cleanup());

/** /health of a worker that cannot read the database. */
const unreadable = {
  status: "unhealthy",
  process_id: process.pid,
  database_connected: false,
  connection_info: null,
  reasons: ["the database file cannot be read, or holds no schema"],
};

describe("GET /health", () => {
  test("healthy, with this process and every other live process holding a connection", async () => {
    const child = await registeredChild(t.path);
    try {
      const r = await get("/health");
      expect(r.status).toBe(200);
      expect(r.json).toEqual({
        status: "healthy",
        process_id: process.pid,
        database_connected: true,
        connection_info: {
          current_pid: process.pid,
          connection_pids: [process.pid, child.pid].sort((a, b) => a - b),
          total_connections: 2,
        },
        reasons: [],
      });

      const c = await get("/api/v1/diagnostics/connections");
      expect(c.status).toBe(200);
      expect(c.json).toMatchObject({ current_pid: process.pid, total_connections: 2 });
      const byPid = Object.fromEntries(c.json.processes.map((p: { pid: number }) => [p.pid, p]));
      expect(byPid[process.pid]).toMatchObject({ role: "test", started_at: t.db.startedAt, busy_retries: expect.any(Number) });
      expect(byPid[child.pid]).toMatchObject({ role: "sync", started_at: expect.stringMatching(/Z$/), last_seen_at: expect.any(String) });
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    // A dead process drops out (its row is pruned), though it never got to unregister.
    const after = await get("/health");
    expect(after.json.connection_info.connection_pids).toEqual([process.pid]);
    expect(after.json.connection_info.total_connections).toBe(1);
  });

  test("a row not refreshed for a long time is not listed, even if its pid is alive (pids repeat)", async () => {
    // The parent of this test process is alive but never registered: as after a container restart.
    const pid = process.ppid;
    const longAgo = new Date(Date.now() - 3_600_000).toISOString();
    await t.db.write((tx) =>
      tx.insert(dbConnections).values({ pid, role: "http", started_at: longAgo, last_seen_at: longAgo, busy_retries: 0 }).run(),
    );
    const r = await get("/health");
    expect(r.json.connection_info.connection_pids).toEqual([process.pid]);
    await t.db.drain(); // the prune is a queued write
    expect(t.db.read.select({ pid: dbConnections.pid }).from(dbConnections).all().map((x) => x.pid)).toEqual([process.pid]);
  });

  test("a process that closes cleanly unregisters", async () => {
    const child = await registeredChild(t.path);
    try {
      expect((await get("/health")).json.connection_info.connection_pids).toContain(child.pid);
      child.stdin.write("bye\n");
      await child.stdin.flush();
      expect(await child.exited).toBe(0);
      const rows = t.db.read.select({ pid: dbConnections.pid }).from(dbConnections).all();
      expect(rows.map((r) => r.pid)).toEqual([process.pid]);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await child.exited;
    }
  });

  test("503 unhealthy when the database cannot be reached", async () => {
    const h = t.open();
    const broken = createApp(h);
    h.close();
    const r = await get("/health", broken);
    expect(r.status).toBe(503);
    expect(r.json).toEqual(unreadable);
  });
});

test("503 unhealthy, no stack, when the file under an open handle is overwritten with bytes that are not a database", async () => {
  const d = tempDir();
  const path = join(d.dir, "app.db");
  migrate(path);
  const db = openDb({ path, role: "test" });
  try {
    const app = createApp(db);
    expect((await get("/health", app)).status).toBe(200);
    writeFileSync(path, Buffer.from("this is not an SQLite database. ".repeat(2048)));
    const r = await get("/health", app);
    expect(r.status).toBe(503);
    expect(r.json).toEqual(unreadable);
    // The other endpoints answer 503 unavailable too: a broken file is not the client's mistake, nor a bug.
    const sites = await get("/api/v1/sites", app);
    expect(sites.status).toBe(503);
    expect(sites.json.error.code).toBe("unavailable");
    expect(JSON.stringify(sites.json)).not.toMatch(/SQLITE|stack|    at /);
  } finally {
    db.close();
    d.cleanup();
  }
});

test("503 unhealthy on a file that holds no database schema", async () => {
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

describe("GET /api/v1/diagnostics/check-locks", () => {
  test("settings, WAL size and a free write lock", async () => {
    await t.db.write((tx) => tx.insert(sites).values({ domain: "sc-domain:diag.example", name: "Diag" }).run());
    const r = await get("/api/v1/diagnostics/check-locks");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
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
    const holder = await holdLock(t.path, { mode: "write" });
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
      await holder.release();
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
      const pending = t.db.write((tx) => tx.insert(sites).values({ domain: "sc-domain:held.example", name: "Held" }).run());
      await Bun.sleep(100);
      const during = await get("/api/v1/diagnostics/check-locks");
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
    await t.db.write((tx) => tx.insert(sites).values({ domain: "sc-domain:walbound.example", name: "W" }).run());
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

describe("GET /api/v1/diagnostics/test-db-connection", () => {
  test("timings of a connect, a simple query and a coverage query, with the original's site_count and days_found", async () => {
    const r = await get("/api/v1/diagnostics/test-db-connection");
    expect(r.status).toBe(200);
    const timing = { success: true, time_ms: expect.any(Number) };
    const siteCount = t.db.read.select({ id: sites.id }).from(sites).all().length;
    expect(r.json).toEqual({
      connection_test: timing,
      simple_query: { ...timing, site_count: siteCount },
      coverage_query: { ...timing, days_found: 0, sites_with_data: 0 },
    });

    // days_found: distinct days with rows over all sites (the original counted its hard-coded site 4).
    const [a, b] = await t.db.write((tx) =>
      ["sc-domain:cov-a.example", "sc-domain:cov-b.example"].map((domain) => tx.insert(sites).values({ domain, name: domain }).returning({ id: sites.id }).get()!.id),
    );
    const row = { page: "https://cov.example/", query: "q", device: "MOBILE", clicks: 1, impressions: 1, ctr: 1, position: 1 };
    await t.db.write((tx) => {
      for (const day of ["2026-04-01", "2026-04-02", "2026-04-03"]) upsertRows(tx, a!, day, "web", [row]);
      for (const day of ["2026-04-03", "2026-04-04"]) upsertRows(tx, b!, day, "image", [row]);
    });
    const after = await get("/api/v1/diagnostics/test-db-connection");
    expect(after.json.simple_query.site_count).toBe(siteCount + 2);
    expect(after.json.coverage_query).toEqual({ ...timing, days_found: 4, sites_with_data: 2 });
  });
});
