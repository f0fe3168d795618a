import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { tempDir, testEngine } from "./helpers/db.ts";
import { newPgDatabase } from "./helpers/engine.ts";

// `bun run stress` end to end, on the engine under test (SQLite: a temporary file or a path;
// PostgreSQL: --database postgres://…): a short clean run passes, and a run whose rows disappear fails.

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(90_000);

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-stress-test-");
const pgDatabases: (() => void)[] = [];
afterAll(() => {
  dir.cleanup();
  for (const drop of pgDatabases) drop();
});

/** A fresh PostgreSQL database (not migrated: the stress run migrates it), dropped after the tests. */
function pgDatabase(): string {
  const d = newPgDatabase({ migrated: false });
  pgDatabases.push(d.drop);
  return d.url;
}

function stress(args: string[]) {
  const proc = Bun.spawn([process.execPath, "run", "stress", ...args], {
    cwd: root,
    // A DATABASE_URL in the environment must not matter: stress uses its own file.
    env: { ...process.env, DATABASE_URL: join(dir.dir, "must-not-be-touched.db"), LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const done = Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]).then(
    ([code, stdout, stderr]) => ({ code, stdout, out: stdout + stderr }),
  );
  return { proc, done };
}

const summaryNumber = (out: string, label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1]);

describe("bun run stress", () => {
  test("4 processes for 3 s: every committed write is there, no lock error reaches a caller", async () => {
    const pgUrl = testEngine === "pg" ? pgDatabase() : null;
    const { code, out, stdout } = await stress(["--processes", "4", "--seconds", "3", ...(pgUrl ? ["--database", pgUrl] : [])]).done;
    expect(out).toContain("stress: 4 processes");
    expect(out).toMatch(/\[\s+1 s\] [\d,]+ ops\/s/); // progress lines
    expect(summaryNumber(out, "lost writes")).toBe(0);
    expect(summaryNumber(out, "lock errors")).toBe(0);
    expect(summaryNumber(out, "failed ops")).toBe(0);
    const verified = /verified\s+sites (\d+)\/(\d+), sync_tasks (\d+)\/(\d+), task updates (\d+)\/(\d+)/.exec(out);
    expect(verified).not.toBeNull();
    const [, sf, sr, tf, tr, uf, ur] = verified!.map(Number);
    expect([sf, tf, uf]).toEqual([sr, tr, ur]);
    expect(Math.min(sr!, tr!, ur!)).toBeGreaterThan(0);
    expect(out).toMatch(/write latency\s+p50 [\d.]+ ms, p99 [\d.]+ ms/);
    expect(out).toMatch(/busy retries\s+\d+/);
    if (pgUrl) expect(out).toMatch(/server\s+PostgreSQL \d+\.\d+.*, database [\d.]+ MiB, peak \d+ connections, peak \d+ locks waiting/);
    else expect(out).toMatch(/max WAL\s+[\d.]+ MiB/);
    expect(stdout.trim().split("\n").at(-1)).toBe("PASS");
    expect(code).toBe(0);
    expect(existsSync(join(dir.dir, "must-not-be-touched.db"))).toBe(false);
    if (pgUrl) return;
    // The temporary database is gone, and DATABASE_URL was left alone.
    const tmpPath = /database (\S+) \(temporary\)/.exec(out)?.[1];
    expect(tmpPath).toBeDefined();
    expect(existsSync(tmpPath!)).toBe(false);
    expect(existsSync(join(dir.dir, "must-not-be-touched.db"))).toBe(false);
  });

  test("rows deleted behind its back are reported as lost and the run fails", async () => {
    const path = testEngine === "pg" ? pgDatabase() : join(dir.dir, "sabotaged.db");
    // One process: the parent's check is the subject here (4 processes' concurrency is the test above's), and each
    // process writes flat out for the whole 3 s (~a core's worth of CPU).
    const run = stress(["--processes", "1", "--seconds", "3", "--database", path]);
    // Wait for committed sites, then remove some from another connection, as a bug would.
    const sabotage = "delete from sites where id in (select id from sites order by id limit 5)";
    let deleted = 0;
    const deadline = Date.now() + 20_000;
    while (deleted < 5 && Date.now() < deadline) {
      await Bun.sleep(200);
      if (testEngine === "pg") {
        const conn = new pg.Client({ connectionString: path });
        try {
          await conn.connect();
          // Five at once, or none yet (a partial delete would be counted again by the next try).
          if (Number((await conn.query("select count(*) n from sites")).rows[0].n) >= 5)
            deleted = (await conn.query(sabotage)).rowCount ?? 0;
        } catch {
          // Not migrated yet.
        } finally {
          await conn.end().catch(() => {});
        }
        continue;
      }
      if (!existsSync(path)) continue;
      const conn = new Database(path);
      try {
        conn.run("PRAGMA busy_timeout = 5000");
        deleted = conn.run(sabotage).changes;
      } catch {
        // Not migrated yet.
      } finally {
        conn.close();
      }
    }
    expect(deleted).toBe(5);
    const { code, out } = await run.done;
    expect(code).toBe(1);
    expect(out).toContain("FAIL");
    expect(summaryNumber(out, "lost writes")).toBeGreaterThanOrEqual(5);
    // A database given with --database is kept.
    if (testEngine === "sqlite") expect(existsSync(path)).toBe(true);
  });

  test("bad flags exit 1 with a field error", async () => {
    const { code, out } = await stress(["--processes", "abc", "--read-ratio", "2"]).done;
    expect(code).toBe(1);
    expect(out).toMatch(/STRESS_PROCESSES: /);
    expect(out).toMatch(/STRESS_READ_RATIO: /);
  });
});
