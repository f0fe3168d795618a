import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acquireLock, databaseLockPath, portLockPath } from "../src/db/instance-lock.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { freePort, request, type RunningServer, serviceFile, startServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

// The supervisor as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceMain = await serviceFile("main.ts");

// One instance per port and per database file: real supervisors started against each other. On
// PostgreSQL several instances (machines) serve one database by design: only the port is locked.

setDefaultTimeout(60_000);
const root = join(import.meta.dir, "..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// One HTTP worker: the locks are the supervisor's; a second worker would only cost its start-up.
async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<RunningServer> {
  const s = await startServer({ workers: 1, ...opts });
  cleanups.push(s.cleanup);
  return s;
}

/** Runs a supervisor that is expected to refuse to start; returns its exit code and output. */
async function refusedStart(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, serviceMain, "--workers", "1", "--sync-workers", "0", "--host", "127.0.0.1", ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const killer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(killer);
  return { code, stdout, stderr };
}

/** One line, starting with "fatal:", and no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp) {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^fatal: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

/** A lock file's contents, or null while it is missing or half written. */
function lockOf(path: string) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

/** A pid that is certainly not running any more. */
async function deadPid(): Promise<number> {
  const p = Bun.spawn([process.execPath, "-e", "0"]);
  await p.exited;
  return p.pid;
}

describe("one instance per port", () => {
  test("a second supervisor on the same port (another database) refuses with one line; the first keeps serving alone", async () => {
    const a = await server();
    const created = await request(a.url, "POST", "/api/v1/sites", { domain: "sc-domain:first.example", name: "First" });
    expect(created.status).toBe(201);
    const other = tempDir();
    cleanups.push(other.cleanup);
    const b = await refusedStart(["--port", String(a.port)], { DATABASE_URL: join(other.dir, "other.db") });
    expect(b.code).toBe(1);
    expectOneLine(
      b.stderr,
      new RegExp(
        `port ${a.port} on 127.0.0.1 is already served by sitesync pid ${a.proc.pid} \\(port ${a.port}, database ${a.dbPath}; lock file [^)]+\\)$`,
      ),
    );
    expect(b.stdout).not.toContain("listening");
    // Every request still reaches the one database: never 200 and 404 alternately.
    for (let i = 0; i < 20; i++) {
      expect((await request(a.url, "GET", `/api/v1/sites/${created.body.id}`)).status).toBe(200);
    }
    expect(existsSync(join(other.dir, "other.db"))).toBe(false);
  });

  // Engine-neutral (an SQLite file on both engines, refused before it is opened): run once, with SQLite.
  test.skipIf(testEngine === "pg")("a port held by another program (no SO_REUSEPORT) is refused before any worker starts", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    cleanups.push(() => holder.stop(true));
    const r = await refusedStart(["--port", String(holder.port)], { DATABASE_URL: join(tmp.dir, "app.db") });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, new RegExp(`port ${holder.port} on 127.0.0.1 already has a listener`));
    // Refused before migrating: no lock left behind either.
    expect(existsSync(databaseLockPath(join(tmp.dir, "app.db")))).toBe(false);
    expect(existsSync(portLockPath("127.0.0.1", holder.port))).toBe(false);
  });

  // Engine-neutral, as above: run once, with SQLite.
  test.skipIf(testEngine === "pg")(
    "a listener that shares the port (SO_REUSEPORT, e.g. an older sitesync without locks) is refused too",
    async () => {
      const port = freePort();
      const code = `Bun.serve({ hostname: "127.0.0.1", port: ${port}, reusePort: true, fetch: () => new Response("other") }); console.log("up");`;
      const other = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "inherit" });
      cleanups.push(async () => {
        other.kill("SIGKILL");
        await other.exited;
      });
      const reader = other.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("up");
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      const r = await refusedStart(["--port", String(port)], { DATABASE_URL: join(tmp.dir, "app.db") });
      expect(r.code).toBe(1);
      expectOneLine(r.stderr, new RegExp(`port ${port} on 127.0.0.1 already has a listener`));
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("other");
    },
  );

  test("a deleted lock file is put back by its owner within its next check", async () => {
    const a = await server();
    const locks = [portLockPath("127.0.0.1", a.port), ...(testEngine === "sqlite" ? [databaseLockPath(a.dbPath)] : [])];
    for (const lock of locks) {
      await Bun.file(lock).delete();
      // Back within the owner's next check (a bound for a loaded machine, not a speed check).
      await waitFor(() => lockOf(lock), { timeout: 10_000, what: `${lock} put back` });
      expect(lockOf(lock).pid).toBe(a.proc.pid);
    }
  });
});

describe.skipIf(testEngine === "pg")(
  "one instance per database file (SQLite: the file's lock; PostgreSQL shares a database by design)",
  () => {
    test("a second supervisor on the same database (another port) refuses, naming the first; the lock goes with the first", async () => {
      const a = await server();
      const lockPath = databaseLockPath(a.dbPath);
      const lock = JSON.parse(readFileSync(lockPath, "utf8"));
      expect(lock).toMatchObject({ pid: a.proc.pid, port: a.port, database: a.dbPath, shared: false });
      const b = await refusedStart(["--port", String(freePort())], { DATABASE_URL: a.dbPath });
      expect(b.code).toBe(1);
      expectOneLine(
        b.stderr,
        new RegExp(`the database ${a.dbPath} is already served by sitesync pid ${a.proc.pid}.*--allow-shared-database`),
      );
      expect(await a.stop()).toBe(0);
      expect(existsSync(lockPath)).toBe(false);
      expect(existsSync(portLockPath("127.0.0.1", a.port))).toBe(false);
    });

    test("--allow-shared-database on both: two instances on two ports serve one file; a start without the flag is still refused", async () => {
      const a = await server({ args: ["--allow-shared-database"] });
      const b = await server({ dbPath: a.dbPath, args: ["--allow-shared-database"] });
      const created = await request(a.url, "POST", "/api/v1/sites", { domain: "sc-domain:shared.example", name: "Shared" });
      expect(created.status).toBe(201);
      expect((await request(b.url, "GET", `/api/v1/sites/${created.body.id}`)).status).toBe(200);
      const c = await refusedStart(["--port", String(freePort())], { DATABASE_URL: a.dbPath });
      expect(c.code).toBe(1);
      expectOneLine(c.stderr, new RegExp(`is already served by sitesync pid ${a.proc.pid}`));
      // The first one goes: the second takes the lock over (within its next check), and still guards the file.
      expect(await a.stop()).toBe(0);
      const lock = databaseLockPath(a.dbPath);
      await waitFor(() => lockOf(lock)?.pid === b.proc.pid, { timeout: 10_000, what: "the second instance to take the lock over" });
      expect(lockOf(lock)).toMatchObject({ pid: b.proc.pid, shared: true });
      const d = await refusedStart(["--port", String(freePort())], { DATABASE_URL: a.dbPath });
      expectOneLine(d.stderr, new RegExp(`is already served by sitesync pid ${b.proc.pid}`));
    });

    test("--allow-shared-database does not join an instance that was started without it", async () => {
      const a = await server();
      const b = await refusedStart(["--port", String(freePort()), "--allow-shared-database"], { DATABASE_URL: a.dbPath });
      expect(b.code).toBe(1);
      expectOneLine(b.stderr, /started without --allow-shared-database/);
    });

    test("a stale lock of a dead pid is taken over; an unreadable one too", async () => {
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      const dbPath = join(tmp.dir, "app.db");
      const pid = await deadPid();
      writeFileSync(
        databaseLockPath(dbPath),
        JSON.stringify({ pid, started: null, port: 1, host: "127.0.0.1", database: dbPath, shared: false, at: "x" }),
      );
      const a = await server({ dbPath });
      expect(JSON.parse(readFileSync(databaseLockPath(dbPath), "utf8")).pid).toBe(a.proc.pid);
      expect(await a.stop()).toBe(0);

      writeFileSync(databaseLockPath(dbPath), "garbage, not JSON");
      const b = await server({ dbPath });
      expect(JSON.parse(readFileSync(databaseLockPath(dbPath), "utf8")).pid).toBe(b.proc.pid);
    });

    test("a lock whose pid is alive but belongs to a process started later (pid reused) is stale", async () => {
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      const dbPath = join(tmp.dir, "app.db");
      // This test process is alive, but the recorded start time is not its own.
      writeFileSync(
        databaseLockPath(dbPath),
        JSON.stringify({ pid: process.pid, started: "1", port: 1, host: "127.0.0.1", database: dbPath, shared: false, at: "x" }),
      );
      const a = await server({ dbPath });
      expect(JSON.parse(readFileSync(databaseLockPath(dbPath), "utf8")).pid).toBe(a.proc.pid);
    });

    test("a supervisor killed with SIGKILL leaves its lock, and the next start takes it over", async () => {
      const a = await server();
      a.proc.kill("SIGKILL");
      await a.proc.exited;
      // Its workers notice the supervisor is gone and exit (they would otherwise keep the port).
      const deadline = Date.now() + 15_000;
      while (
        Date.now() < deadline &&
        (await fetch(`${a.url}/health`).then(
          () => true,
          () => false,
        ))
      )
        await Bun.sleep(100);
      const b = await server({ dbPath: a.dbPath, port: a.port });
      expect((await request(b.url, "GET", "/health")).status).toBe(200);
      expect(JSON.parse(readFileSync(databaseLockPath(a.dbPath), "utf8")).pid).toBe(b.proc.pid);
    });
  },
);

describe.skipIf(testEngine === "sqlite")("several instances on one PostgreSQL database", () => {
  test("two supervisors on two ports serve one database without --allow-shared-database; each sees the other's writes", async () => {
    const a = await server();
    const b = await server({ dbPath: a.dbPath });
    const created = await request(a.url, "POST", "/api/v1/sites", { domain: "sc-domain:one-db.example", name: "One" });
    expect(created.status).toBe(201);
    expect((await request(b.url, "GET", `/api/v1/sites/${created.body.id}`)).body).toEqual(created.body);
    // No lock file beside a database that is no file.
    expect(existsSync(databaseLockPath(a.dbPath))).toBe(false);
    expect(await a.stop()).toBe(0);
    expect((await request(b.url, "GET", `/api/v1/sites/${created.body.id}`)).status).toBe(200);
  });
});

describe("starters at the same moment (processes)", () => {
  // Eight processes take one shared lock in the same millisecond, five times: one holds it, the others share it;
  // nobody reads the holder's file half-written and takes it over (three supervisors on one file once did).
  test("one holder, the rest share it, nobody loses it", async () => {
    const t = tempDir("lock-race-");
    cleanups.push(t.cleanup);
    const lockModule = join(root, "src/db/instance-lock.ts");
    for (let round = 0; round < 5; round++) {
      const path = join(t.dir, `r${round}.lock`);
      const go = join(t.dir, `r${round}.go`);
      const at = Date.now() + 300;
      // Each holds what it took until every one has taken its turn (the go file), then checks it: a holder that
      // exited early would leave a stale lock for a late starter, a second holder the test must not make.
      const script = `
        const { existsSync, writeFileSync } = await import("node:fs");
        const { acquireLock } = await import(${JSON.stringify(lockModule)});
        // Asleep until just before the shared moment, then a busy wait for the exact millisecond (a busy wait from the
        // start spent ~0.2 s of CPU in each of the 40 processes).
        await Bun.sleep(Math.max(0, ${at} - 5 - Date.now()));
        while (Date.now() < ${at}) {}
        const lock = acquireLock(${JSON.stringify(path)}, "the test file", { port: 1, host: "h", database: "x.db", shared: true });
        writeFileSync(${JSON.stringify(path)} + ".took-" + process.pid, "");
        while (!existsSync(${JSON.stringify(go)})) await Bun.sleep(10);
        console.log(JSON.stringify({ held: lock !== null, lost: lock?.verify() ?? null }));`;
      const procs = Array.from({ length: 8 }, () => Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" }));
      await waitFor(() => procs.every((p) => existsSync(`${path}.took-${p.pid}`) || p.exitCode !== null), {
        timeout: 60_000,
        what: "every starter took its turn",
      });
      writeFileSync(go, "");
      const outs = await Promise.all(
        procs.map(async (p) => ({
          out: await new Response(p.stdout).text(),
          err: await new Response(p.stderr).text(),
          code: await p.exited,
        })),
      );
      for (const o of outs) expect({ code: o.code, err: o.err }).toEqual({ code: 0, err: "" });
      const results = outs.map((o) => JSON.parse(o.out) as { held: boolean; lost: string | null });
      expect(results.filter((r) => r.held)).toEqual([{ held: true, lost: null }]);
    }
  });
});

describe("a held lock's check (in process)", () => {
  test("sees its file rewritten in place (same size too), replaced, deleted (put back) and restored", () => {
    const t = tempDir("lock-check-");
    cleanups.push(t.cleanup);
    const path = join(t.dir, "db.lock");
    const lock = acquireLock(path, "the test file", { port: 1, host: "127.0.0.1", database: "x.db", shared: false })!;
    expect(lock.verify()).toBeNull();
    expect(lock.verify()).toBeNull();
    const mine = readFileSync(path, "utf8");
    const pid = String(process.pid);
    // Another pid of the same length: the file's size does not change.
    const otherPid = pid.slice(0, -1) + String((Number(pid.at(-1)) + 1) % 10);
    const other = mine.replace(`"pid":${pid}`, `"pid":${otherPid}`);
    expect(other.length).toBe(mine.length);
    writeFileSync(path, other);
    expect(lock.verify()).toBe(`the lock file ${path} now belongs to pid ${otherPid}`);
    writeFileSync(path, mine);
    expect(lock.verify()).toBeNull();
    writeFileSync(`${path}.new`, other);
    renameSync(`${path}.new`, path);
    expect(lock.verify()).toBe(`the lock file ${path} now belongs to pid ${otherPid}`);
    unlinkSync(path);
    expect(lock.verify()).toBeNull();
    expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
    expect(lock.verify()).toBeNull();
    lock.release();
    expect(existsSync(path)).toBe(false);
  });
});

// Engine-neutral (each case names its DATABASE_URL, whatever the engine under test): run once, with SQLite.
describe.skipIf(testEngine === "pg")("a start that cannot succeed prints one line, never a stack", () => {
  const cases: { name: string; url: (dir: string) => string; pattern: RegExp; setup?: (dir: string) => void }[] = [
    {
      name: "DATABASE_URL is a directory",
      url: (d) => d,
      setup: (d) => mkdirSync(d, { recursive: true }),
      pattern: /cannot be opened|it is a directory|EISDIR/,
    },
    {
      name: "its folder is under a file",
      url: (d) => join(d, "afile", "app.db"),
      setup: (d) => writeFileSync(join(d, "afile"), "x"),
      pattern: /cannot mkdir .*afile for the database .*: a file is in the way of a folder \(EEXIST\)/,
    },
    {
      name: "its folder cannot be created (/proc)",
      url: () => "/proc/sitesync-test/app.db",
      pattern: /cannot mkdir|ENOENT|EACCES|EPERM|permission|not permitted/,
    },
    {
      name: "a PostgreSQL server that does not answer",
      url: () => `postgres://postgres@127.0.0.1:${deadPort}/nowhere`,
      pattern: /^fatal: the PostgreSQL server at postgres:\/\/postgres@127\.0\.0\.1:\d+\/nowhere does not answer .*ECONNREFUSED/,
    },
  ];
  const deadPort = freePort();
  for (const c of cases) {
    test(c.name, async () => {
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      c.setup?.(tmp.dir);
      const r = await refusedStart(["--port", String(freePort())], { DATABASE_URL: c.url(tmp.dir) });
      expect(r.code).toBe(1);
      expectOneLine(r.stderr, c.pattern);
    });
  }
});
