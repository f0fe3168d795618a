import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { like, sql } from "drizzle-orm";
import { join } from "node:path";
import { freePort } from "../src/free-port.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { withDb } from "./helpers/observe.ts";
import { holdLock } from "./helpers/lock.ts";
import { childPids, running } from "./helpers/procs.ts";
import { request, type RunningServer, serviceFile, startServer } from "./helpers/server.ts";

// The supervisor as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceMain = await serviceFile("main.ts");

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(60_000);

// The real service (`bun src/main.ts`: supervisor + HTTP workers) on a temp database, hit over HTTP.

const root = join(import.meta.dir, "..");

async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** True for what fetch throws when the connection fails or drops; not for assertion failures. */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    err instanceof TypeError &&
    typeof code === "string" &&
    ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ConnectionClosed", "ConnectionRefused"].includes(code)
  );
}

/** "answered" or "refused": whether anything still accepts connections on the server's port. */
async function tryConnect(base: string): Promise<"answered" | "refused"> {
  try {
    await fetch(`${base}/health`, { keepalive: false });
    return "answered";
  } catch (err) {
    if (!isConnectionError(err)) throw err;
    return "refused";
  }
}

/** A fresh TCP connection per request, so SO_REUSEPORT spreads requests over the workers. */
async function post(base: string, body: unknown) {
  const res = await fetch(`${base}/api/v1/sites`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    keepalive: false,
  });
  const text = await res.text();
  expect(text).not.toMatch(/database is locked|SQLITE|stack/);
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function health(base: string) {
  const res = await fetch(`${base}/health`, { keepalive: false });
  return (await res.json()) as {
    status: string;
    process_id: number;
    connection_info: { current_pid: number; connection_pids: number[]; total_connections: number };
  };
}

/** The stored domains LIKE the pattern, read with a handle of its own (as another process would). */
function countSites(dbPath: string, domainLike: string): Promise<string[]> {
  return withDb(dbPath, async (db) => {
    const { sites } = db.t;
    return (await db.q.select({ domain: sites.domain }).from(sites).where(like(sites.domain, domainLike))).map((r) => r.domain);
  });
}

describe("four HTTP workers on one file", () => {
  let s: RunningServer;
  beforeAll(async () => {
    // Heartbeats every 1 s (default 2): on PostgreSQL a SIGKILLed worker drops out of /health after 5 s instead of 10.
    s = await startServer({ workers: 4, env: { REGISTRY_HEARTBEAT_MS: "1000" } });
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  test("400 concurrent creates: all 201, every row there exactly once", async () => {
    const N = 400;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => post(s.url, { domain: `sc-domain:p${i}.parallel.example`, name: `Parallel ${i}` })),
    );
    expect(results.filter((r) => r.status !== 201).map((r) => r.status)).toEqual([]);
    const ids = results.map((r) => r.json.id as number);
    expect(new Set(ids).size).toBe(N);
    const stored = await countSites(s.dbPath, "%.parallel.example");
    expect(stored.length).toBe(N);
    expect(new Set(stored)).toEqual(new Set(results.map((r) => r.json.domain)));
  });

  test("one domain from 20 clients at once: exactly one 201 and nineteen 409", async () => {
    for (const round of [1, 2, 3]) {
      const domain = `sc-domain:race${round}.example`;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => post(s.url, { domain, name: `Client ${i}` })));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([201, ...Array(19).fill(409)]);
      for (const r of results.filter((r) => r.status === 409)) {
        expect(r.json).toEqual({
          error: { code: "conflict", message: expect.stringContaining(domain), details: { domain } },
          detail: r.json.error.message,
        });
      }
      expect(await countSites(s.dbPath, domain)).toEqual([domain]);
    }
  });

  test("/health is answered by several workers, and each lists every live process holding a connection", async () => {
    const workers = childPids(s.proc.pid);
    expect(workers.length).toBe(4);
    const all = [s.proc.pid, ...workers].sort((a, b) => a - b);
    const answered = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const h = await health(s.url);
      expect(h.status).toBe("healthy");
      expect(workers).toContain(h.process_id);
      expect(h.connection_info.current_pid).toBe(h.process_id);
      expect(h.connection_info.connection_pids).toEqual(all);
      expect(h.connection_info.total_connections).toBe(5);
      answered.add(h.process_id);
    }
    expect(answered.size).toBeGreaterThanOrEqual(2);

    const c = await request(s.url, "GET", "/api/v1/diagnostics/connections");
    const roles = Object.fromEntries(c.body.processes.map((p: { pid: number; role: string }) => [p.pid, p.role]));
    expect(roles).toEqual(Object.fromEntries([[s.proc.pid, "primary"], ...workers.map((w) => [w, "http"])]));
  });

  test("errors over real HTTP: 413 for a body over 1 MiB, 404 unknown route, 400 malformed JSON", async () => {
    const big = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:big.example", name: "x".repeat(1_100_000) });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("payload_too_large");
    expect((await request(s.url, "GET", "/nope")).status).toBe(404);
    const bad = await request(s.url, "POST", "/api/v1/sites", "{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_json");
  });

  test("a SIGKILLed worker is restarted and no acknowledged write is lost", async () => {
    const before = childPids(s.proc.pid);
    expect(before.length).toBe(4);
    const victim = before[0]!;

    const acked = new Set<string>();
    const unknown = new Set<string>(); // connection died: the write may or may not have committed
    const statuses: number[] = [];
    let stop = false;
    // Anything but a dropped connection (e.g. a leaked lock message in a body) stops every client and fails the test.
    let failure: unknown = null;
    const hammer = async (client: number) => {
      for (let i = 0; !stop; i++) {
        const domain = `sc-domain:c${client}-${i}.kill.example`;
        try {
          const r = await post(s.url, { domain, name: "Kill test" });
          statuses.push(r.status);
          if (r.status === 201) acked.add(domain);
        } catch (err) {
          if (!isConnectionError(err)) {
            failure ??= err;
            stop = true;
            return;
          }
          unknown.add(domain);
        }
      }
    };
    const ackedAtLeast = (n: number) => () => {
      if (failure) throw failure;
      return acked.size >= n;
    };
    const clients = Array.from({ length: 12 }, (_, c) => hammer(c));
    try {
      await waitFor("some writes", ackedAtLeast(50));
      process.kill(victim, "SIGKILL");
      await waitFor("writes after the kill", ackedAtLeast(acked.size + 200));
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    if (failure) throw failure;

    // Every answer was a 201 (a client sees a dropped connection, never a 5xx).
    expect(statuses.filter((st) => st !== 201)).toEqual([]);

    // The supervisor replaced the worker; the dead pid dropped out of the registry.
    const after = await waitFor("a replacement worker", () => {
      const now = childPids(s.proc.pid);
      return now.length === 4 && !now.includes(victim) ? now : null;
    });
    const replacement = after.filter((p) => !before.includes(p));
    expect(replacement.length).toBe(1);
    // SQLite drops a dead pid at once (pid check on this host); PostgreSQL, where a pid means nothing
    // across hosts, after its heartbeat is 5 heartbeats old (5 s here).
    const h = await waitFor(
      "the registry to show the replacement (PostgreSQL: and to forget the victim)",
      async () => {
        const r = await health(s.url);
        const pids = r.connection_info.connection_pids;
        return pids.includes(replacement[0]!) && (testEngine === "sqlite" || !pids.includes(victim)) ? r : null;
      },
      30_000,
    );
    expect(h.connection_info.connection_pids).not.toContain(victim);
    expect(h.connection_info.connection_pids).toEqual([s.proc.pid, ...after].sort((a, b) => a - b));

    // Every acknowledged write is in the file; anything else there was a request whose answer was lost.
    const stored = new Set(await countSites(s.dbPath, "%.kill.example"));
    const missing = [...acked].filter((d) => !stored.has(d));
    expect(missing).toEqual([]);
    const extra = [...stored].filter((d) => !acked.has(d));
    expect(extra.every((d) => unknown.has(d))).toBe(true);
    expect(stored.size).toBe(acked.size + extra.length);
  });
});

describe("shutdown", () => {
  test("SIGTERM with requests in flight: they complete, the supervisor exits 0, no child is left", async () => {
    const s = await startServer({ workers: 2 });
    try {
      const workers = childPids(s.proc.pid);
      expect(workers.length).toBe(2);
      // Hold the write lock from outside so the creates are still waiting when SIGTERM arrives.
      const holder = await holdLock(s.dbPath, { mode: "write" });
      let inFlight: Promise<{ status: number; json: any }>[] = [];
      try {
        inFlight = Array.from({ length: 10 }, (_, i) => post(s.url, { domain: `sc-domain:t${i}.term.example`, name: "Term" }));
        await Bun.sleep(300);
        s.proc.kill("SIGTERM");
        await Bun.sleep(300);
        expect(s.proc.exitCode).toBeNull(); // still draining
      } finally {
        await holder.release();
      }
      const results = await Promise.all(inFlight);
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
      expect(await s.stop()).toBe(0);
      for (const w of workers) expect(running(w)).toBe(false);
      expect((await countSites(s.dbPath, "%.term.example")).length).toBe(10);
    } finally {
      await s.cleanup();
    }
  });

  test("SIGTERM with a request that outlasts SHUTDOWN_TIMEOUT_MS: the drain is cut off in time, exit 0, the port refuses", async () => {
    const shutdownMs = 1500;
    // The write would wait a minute for the lock: only the drain bound can end it.
    const s = await startServer({ workers: 1, env: { SHUTDOWN_TIMEOUT_MS: String(shutdownMs), WRITE_LOCK_TIMEOUT_MS: "60000" } });
    const holder = await holdLock(s.dbPath, { mode: "write" });
    try {
      const workers = childPids(s.proc.pid);
      expect(workers.length).toBe(1);
      const domain = "sc-domain:stuck.term.example";
      const stuck = post(s.url, { domain, name: "Stuck" }).then(
        (r) => ({ answered: r.status }),
        (err: unknown) => {
          if (!isConnectionError(err)) throw err;
          return { dropped: true };
        },
      );
      await Bun.sleep(500); // the request has reached the worker and waits for the lock
      const t0 = performance.now();
      s.proc.kill("SIGTERM");
      await Bun.sleep(500);
      expect(s.proc.exitCode).toBeNull(); // still draining
      // The worker stopped listening at once: a new connection is refused while the old one drains.
      expect(await tryConnect(s.url)).toBe("refused");

      // Worst case: the supervisor's one budget (SHUTDOWN_TIMEOUT_MS + 2 s grace) covers the worker's
      // drain and its own queued writes (its heartbeat is stuck behind the same lock); then its registry
      // row delete may wait up to 2 s.
      const bound = shutdownMs + 4000;
      const code = await Promise.race([s.proc.exited, Bun.sleep(bound + 25_000).then(() => "still running")]);
      const elapsed = performance.now() - t0;
      console.log(`SIGTERM with a stuck request: exit ${code} after ${Math.round(elapsed)} ms (drain bound ${shutdownMs} ms)`);
      expect(code).toBe(0);
      expect(elapsed).toBeGreaterThanOrEqual(shutdownMs - 100);
      // Far below the minute the write would wait for the lock: only the drain bound can have ended it
      // (slack for a slow, shared CI machine; the run's own time is the printed figure).
      expect(elapsed).toBeLessThan(bound + 20_000);
      expect(running(workers[0]!)).toBe(false);
      // The client got no answer (the connection was closed), and the write was never acknowledged.
      expect(await stuck).toEqual({ dropped: true });
      // PostgreSQL: the worker's statement runs on the server until the server notices its client went away
      // (client_connection_check_interval); only then may the lock free (else it would commit, unanswered).
      if (testEngine === "pg") {
        await waitFor("the cut-off worker's statement to be cancelled on the server", () =>
          withDb(s.dbPath, async (db) => {
            const r = await db.q.execute(
              sql`select count(*)::int as n from pg_stat_activity where application_name = ${`sitesync-${workers[0]}`}`,
            );
            return (r.rows[0] as { n: number }).n === 0 || null;
          }),
        );
      }
      await holder.release();
      expect(await countSites(s.dbPath, domain)).toEqual([]);
      expect(await tryConnect(s.url)).toBe("refused");
    } finally {
      await holder.release();
      await s.cleanup();
    }
  });

  test("workers exit on their own when the supervisor is SIGKILLed", async () => {
    const s = await startServer({ workers: 2 });
    const workers = childPids(s.proc.pid);
    try {
      expect(workers.length).toBe(2);
      s.proc.kill("SIGKILL");
      await s.proc.exited;
      await waitFor("orphaned workers to exit", () => workers.every((w) => !running(w)), 10_000);
    } finally {
      for (const w of workers) if (running(w)) process.kill(w, "SIGKILL");
      await s.cleanup();
    }
  });
});

describe("--workers 1 and configuration errors", () => {
  test("--workers 1 serves the API and stops cleanly", async () => {
    const s = await startServer({ workers: 1 });
    try {
      expect(childPids(s.proc.pid).length).toBe(1);
      const created = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:solo.example", name: "Solo" });
      expect(created.status).toBe(201);
      const got = await request(s.url, "GET", created.headers.get("location")!);
      expect(got.body).toEqual(created.body);
      const h = await request(s.url, "GET", "/health");
      expect(h.body.connection_info.total_connections).toBe(2);
      expect(await s.stop()).toBe(0);
    } finally {
      await s.cleanup();
    }
  });

  const bad: { args: string[]; env?: Record<string, string>; message: RegExp }[] = [
    { args: ["--workers", "abc"], message: /WORKERS: .*number/ },
    { args: ["--workers", "0"], message: /WORKERS: / },
    { args: ["--port", "99999"], message: /PORT: / },
    { args: ["--frobnicate"], message: /argv: .*frobnicate/ },
    { args: [], env: { DATABASE_URL: "postgres://" }, message: /DATABASE_URL: expected postgres:/ },
  ];
  test("a PostgreSQL server that does not answer: exit 1 with one line naming it (no password shown)", async () => {
    const port = freePort();
    const proc = Bun.spawn([process.execPath, serviceMain, "--workers", "1"], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: `postgres://app:secret@127.0.0.1:${port}/app`, PORT: "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(1);
    expect(err.trim().split("\n")).toEqual([
      expect.stringMatching(
        new RegExp(`^fatal: the PostgreSQL server at postgres://app:\\*\\*\\*@127\\.0\\.0\\.1:${port}/app does not answer`),
      ),
    ]);
    expect(err).not.toContain("secret");
  });
  for (const c of bad) {
    test(`${[...c.args, ...Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`)].join(" ")} exits 1 with a field error`, async () => {
      const d = tempDir();
      try {
        const proc = Bun.spawn([process.execPath, serviceMain, ...c.args], {
          cwd: root,
          env: { ...process.env, DATABASE_URL: join(d.dir, "app.db"), PORT: "0", ...c.env },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
        expect(code).toBe(1);
        expect(err).toMatch(/^invalid configuration:/);
        expect(err).toMatch(c.message);
        expect(err).not.toMatch(/\n\s+at /); // no stack trace
      } finally {
        d.cleanup();
      }
    });
  }
});
