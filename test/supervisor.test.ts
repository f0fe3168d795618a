import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { tempDir } from "./helpers/db.ts";
import { freePort, request } from "./helpers/server.ts";

setDefaultTimeout(60_000);
const root = join(import.meta.dir, "..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function supervisor(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, join(root, "src/main.ts"), ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  return proc;
}

describe("supervisor", () => {
  test("--database-url reaches the workers: they serve the file the supervisor migrated", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const db = join(tmp.dir, "flag.db");
    const port = freePort();
    const proc = supervisor(["--database-url", db, "--port", String(port), "--host", "127.0.0.1", "--workers", "2", "--sync-workers", "0"], {
      DATABASE_URL: "",
    });
    const base = `http://127.0.0.1:${port}`;
    let created;
    for (let i = 0; i < 200; i++) {
      created = await request(base, "POST", "/api/v1/sites", { domain: "sc-domain:flag.example", name: "Flag" }).catch(() => null);
      if (created) break;
      await Bun.sleep(50);
    }
    expect(created?.status).toBe(201);
    const { Database } = await import("bun:sqlite");
    const file = new Database(db, { readonly: true });
    expect(file.query("select count(*) as n from sites").get()).toEqual({ n: 1 });
    file.close();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });

  test("HTTP workers that can never listen make the supervisor give up with exit 1 after backing off", async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    // A listener without SO_REUSEPORT holds the port, so every worker fails at start.
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    cleanups.push(() => holder.stop(true));
    const t0 = performance.now();
    const proc = supervisor(["--workers", "1", "--sync-workers", "0", "--host", "127.0.0.1", "--port", String(holder.port)], {
      DATABASE_URL: join(tmp.dir, "app.db"),
    });
    const stderr = new Response(proc.stderr).text();
    expect(await proc.exited).toBe(1);
    const elapsed = performance.now() - t0;
    const log = await stderr;
    expect(log).toContain("giving up");
    // Backoff 100+200+400+800+1600 ms between the six attempts: not a tight loop.
    expect(elapsed).toBeGreaterThan(3000);
    expect(log).not.toContain("    at ");
  });
});
