import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdirSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers/db.ts";
import { smallTmpfs } from "./helpers/fs-faults.ts";
import { freePort, request, type RunningServer, serviceFile, startServer } from "./helpers/server.ts";

// The supervisor as `bun run start` runs it: from the start bundle (test/helpers/server.ts serviceFile).
const serviceMain = await serviceFile("main.ts");

// Storage trouble surfaced, with real files that fail: an immutable database file (checkpoints
// fail, writes go on into the WAL) and a full disk (a small tmpfs: writes fail). Where the machine
// does not allow it (no root, no chattr, no mount) the test is skipped with the reason printed.

setDefaultTimeout(90_000);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Why `chattr +i` cannot be used here (null: it can). */
function immutableUnsupported(): string | null {
  const d = tempDir();
  try {
    const f = join(d.dir, "probe");
    Bun.write(f, "x");
    const r = Bun.spawnSync(["chattr", "+i", f], { stderr: "pipe" });
    if (!r.success) return `chattr +i failed: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`;
    Bun.spawnSync(["chattr", "-i", f]);
    return null;
  } catch (err) {
    return `chattr unavailable: ${(err as Error).message}`;
  } finally {
    d.cleanup();
  }
}

/** Fills the file system of `dir` with one file until it is full; returns its path. */
function fill(dir: string): string {
  const path = join(dir, "filler");
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
  // The last partial pages too.
  try {
    for (;;) writeSync(fd, Buffer.alloc(512, 1));
  } catch {
    // Full.
  }
  closeSync(fd);
  return path;
}

const lines = (s: RunningServer, msg: string) =>
  s
    .output()
    .split("\n")
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, any>);

async function waitForHealth(s: RunningServer, status: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    last = await request(s.url, "GET", "/health");
    if (last.body?.status === status) return last;
    await Bun.sleep(100);
  }
  throw new Error(`/health never said ${status}; last: ${JSON.stringify(last?.body)}`);
}

const chattrWhy = immutableUnsupported();
if (chattrWhy) console.log(`storage.test: immutable-file test skipped: ${chattrWhy}`);

describe("checkpoints that keep failing", () => {
  test.skipIf(chattrWhy !== null)(
    "an immutable database file: writes go on (WAL), checkpoint failures are counted, logged once, named by check-locks; /health degraded until it is fixed",
    async () => {
      const s = await startServer({ workers: 2, env: { CHECKPOINT_INTERVAL_MS: "100", WATCHDOG_TIMEOUT_MS: "1000" } });
      cleanups.push(s.cleanup);
      const undo = () => void Bun.spawnSync(["chattr", "-i", s.dbPath]);
      cleanups.push(undo);
      for (let i = 0; i < 20; i++)
        expect((await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:pre${i}.example`, name: "P" })).status).toBe(201);
      expect(Bun.spawnSync(["chattr", "+i", s.dbPath]).success).toBe(true);
      // Writes only append to the WAL: they keep working.
      for (let i = 0; i < 100; i++) {
        const r = await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:during${i}.example`, name: "D" });
        expect(r.status).toBe(201);
      }
      const degraded = await waitForHealth(s, "degraded");
      expect(degraded.status).toBe(200);
      expect(degraded.body.reasons.join(" ")).toMatch(/checkpoints are failing: disk I\/O error \(\d+ failures since start\)/);

      // The last error is cleared by a round that worked, and a round with nothing to write back works even now
      // (likely why CI saw failures counted and the error null once, under load): wait until a failing round names it.
      let cl = await request(s.url, "GET", "/api/v1/diagnostics/check-locks");
      for (let tries = 0; cl.body.storage.checkpoint_error === null && tries < 100; tries++) {
        await Bun.sleep(100);
        cl = await request(s.url, "GET", "/api/v1/diagnostics/check-locks");
      }
      expect(cl.body.storage.checkpoint_failures).toBeGreaterThan(0);
      expect(cl.body.storage.checkpoint_error.message).toBe("disk I/O error");
      const advice = cl.body.warnings.join(" ");
      expect(advice).toMatch(/checkpoints are failing \(disk I\/O error\)/);
      expect(advice).not.toMatch(/long-running reader/);
      // Many failures, one log line (the repeats are counted and printed once the minute is over).
      const logged = lines(s, "checkpoint failed");
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ level: "error", code: "SQLITE_IOERR_WRITE" });

      undo();
      const healthy = await waitForHealth(s, "healthy");
      expect(healthy.body.reasons).toEqual([]);
      const sites = await request(s.url, "GET", "/api/v1/sites?limit=500");
      expect(sites.body).toHaveLength(120);
    },
  );
});

const tmpfsProbe = smallTmpfs(64);
const tmpfsWhy = typeof tmpfsProbe === "string" ? tmpfsProbe : null;
if (typeof tmpfsProbe !== "string") tmpfsProbe.unmount();
if (tmpfsWhy) console.log(`storage.test: disk-full tests skipped: ${tmpfsWhy}`);

describe("a full disk", () => {
  test.skipIf(tmpfsWhy !== null)(
    "writes answer 503 with Retry-After, logged once per interval with a count; /health degraded and check-locks name the error; writes work again once space is freed",
    async () => {
      const fs = smallTmpfs(4096) as { dir: string; unmount: () => void };
      cleanups.push(fs.unmount);
      const dbPath = join(fs.dir, "app.db");
      const s = await startServer({ workers: 2, dbPath, env: { WATCHDOG_TIMEOUT_MS: "1000" } });
      cleanups.push(() => s.stop());
      expect((await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:before.example", name: "B" })).status).toBe(201);
      const filler = fill(fs.dir);

      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 300; i++) {
        // Long names: each write needs new pages.
        const r = await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:full${i}.example`, name: "N".repeat(200) });
        statuses.push(r.status);
        if (r.status === 503) {
          retryAfter = r.headers.get("retry-after");
          expect(r.body.error.code).toBe("unavailable");
          expect(JSON.stringify(r.body)).not.toMatch(/SQLITE|stack/);
        }
      }
      const refused = statuses.filter((x) => x === 503).length;
      console.log(
        `disk full: ${refused} of ${statuses.length} writes answered 503, others ${[...new Set(statuses.filter((x) => x !== 503))].join(",") || "none"}`,
      );
      expect(refused).toBeGreaterThan(250);
      expect(statuses.every((x) => x === 503 || x === 201)).toBe(true);
      // A full disk can be freed any moment (and the refusal is cheap): 5 s, not the 30 s of a broken file.
      expect(retryAfter).toBe("5");
      // Hundreds of failures, at most one line per worker and error code within the 10 s interval.
      const logged = lines(s, "database storage error");
      expect(logged.length).toBeGreaterThan(0);
      expect(logged.length).toBeLessThanOrEqual(2 * 2);
      if (s.output().length > 20_000)
        console.log(
          s
            .output()
            .split("\n")
            .map((l) => l.slice(0, 200))
            .slice(0, 40)
            .join("\n"),
        );
      expect(s.output().length).toBeLessThan(20_000);

      const degraded = await waitForHealth(s, "degraded");
      expect(degraded.status).toBe(200);
      expect(degraded.body.reasons.join(" ")).toMatch(/writes are failing for storage reasons: SQLITE_(FULL|IOERR)/);
      const cl = await request(s.url, "GET", "/api/v1/diagnostics/check-locks");
      expect(cl.body.storage.last_write_storage_error.code).toMatch(/^SQLITE_(FULL|IOERR)/);
      expect(cl.body.storage.write_storage_errors).toBeGreaterThanOrEqual(refused);
      expect(cl.body.warnings.join(" ")).toMatch(/check free disk space/);

      unlinkSync(filler);
      expect((await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:after.example", name: "A" })).status).toBe(201);
      expect(await s.stop()).toBe(0);
    },
  );

  test.skipIf(tmpfsWhy !== null)("a start on a full disk prints one line and exits 1", async () => {
    const fs = smallTmpfs(1024) as { dir: string; unmount: () => void };
    cleanups.push(fs.unmount);
    mkdirSync(join(fs.dir, "data"));
    fill(fs.dir);
    const proc = Bun.spawn(
      [process.execPath, serviceMain, "--workers", "1", "--sync-workers", "0", "--host", "127.0.0.1", "--port", String(freePort())],
      {
        env: { ...process.env, DATABASE_URL: join(fs.dir, "data", "app.db"), LOG_LEVEL: "warn" },
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(1);
    const out = stderr.trim().split("\n");
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^fatal: .*disk is full/);
    rmSync(join(fs.dir, "filler"), { force: true });
  });
});
