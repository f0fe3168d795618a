import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { findPgBin } from "../scripts/pg-cluster.ts";
import { tempDir } from "./helpers/db.ts";
import { postgresSkipReason } from "./helpers/postgres.ts";
import type { ScenarioResult, SideResult } from "../bench/report.ts";

// `bun run bench` end to end, briefly: it starts both sides, drives the load and reports the table
// and the JSON. It never checks a timing: only that every figure is there and the counts add up.

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(90_000);

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-bench-test-");
afterAll(() => dir.cleanup());

async function bench(args: string[]) {
  const proc = Bun.spawn([process.execPath, "run", "bench", ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, out: stdout + stderr };
}

describe("bun run bench", () => {
  test("a short run reports every scenario for the service and the baseline, in the table and the JSON", async () => {
    const out = join(dir.dir, "result.json");
    const { code, stdout, out: all } = await bench([
      ...["--duration", "1", "--warmup", "0", "--workers", "2", "--connections", "8", "--seed", "40"],
      ...["--scenarios", "get_one,create,sync_start", "--out", out],
    ]);
    expect(code, all).toBe(0);

    // The table: a header, a service and a baseline row per scenario that ran, ratios and targets.
    expect(stdout).toMatch(/scenario\s+side\s+req\/s\s+p50 ms\s+p99 ms\s+max ms\s+2xx\s+409\s+4xx\s+5xx\s+sock err\s+cpu µs\/req/);
    for (const name of ["get_one", "create"]) {
      expect(stdout).toMatch(new RegExp(`^${name}\\s+service\\s+[\\d,]+\\s+[\\d.]+\\s+[\\d.]+`, "m"));
    }
    expect(stdout.match(/^\s+baseline\s+[\d,]+\s+[\d.]+/gm)?.length).toBeGreaterThanOrEqual(2);
    expect(stdout).toMatch(/^\s+ratio\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x/m);
    expect(stdout).toMatch(/target rps ratio >= 2\.00x: [\d.]+x (met|NOT MET)/);
    expect(stdout).toMatch(/target p99 ratio <= 0\.15x: [\d.]+x (met|NOT MET)/);
    expect(stdout).toMatch(/targets: \d+ met, \d+ not met, \d+ n\/a/);

    // The JSON: machine, options, and per scenario both sides with the same fields as the table.
    const report = JSON.parse(readFileSync(out, "utf8"));
    expect(report.machine).toMatchObject({ cores: expect.any(Number), memoryGiB: expect.any(Number), bun: Bun.version });
    expect(report.options).toMatchObject({ workers: 2, connections: 8, durationSec: 1, seed: 40 });
    const scenarios = report.scenarios as ScenarioResult[];
    expect(scenarios.map((s) => s.name)).toEqual(["get_one", "create", "sync_start"]);
    // The sync API exists: no scenario may be skipped (a failing probe must fail the test, not hide the checks).
    expect(scenarios.filter((s) => s.skipped).map((s) => `${s.name}: ${s.skipped}`)).toEqual([]);
    for (const s of scenarios) {
      for (const side of [s.service!, s.baseline!]) {
        expect(side.requests).toBeGreaterThan(0);
        expect(side.rps).toBeGreaterThan(0);
        expect(side.p50Ms).toBeGreaterThan(0);
        expect(side.p99Ms).toBeGreaterThanOrEqual(side.p50Ms);
        expect(side.maxMs).toBeGreaterThanOrEqual(side.p99Ms);
        // Every response is counted once, by status.
        const byStatus = Object.values(side.statuses).reduce((a, b) => a + b, 0);
        expect(byStatus).toBe(side.requests);
        expect(side.ok2xx + side.conflict409 + side.other4xx + side.server5xx).toBe(side.requests);
        expect(side.socketErrors).toBe(0);
        expect(side.lockErrors).toBe(0);
      }
      expect(s.ratios!.rps).toBeCloseTo(s.service!.rps / s.baseline!.rps, 6);
      expect(s.targets.some((t) => t.what.includes("errors"))).toBe(true);
    }
    const [getOne, create] = scenarios;
    // Reads of seeded sites all succeed; every create is new, so none conflicts.
    expect(getOne!.service!.ok2xx).toBe(getOne!.service!.requests);
    expect(getOne!.baseline!.ok2xx).toBe(getOne!.baseline!.requests);
    expect(create!.service!.statuses["201"]).toBe(create!.service!.requests);
    expect(create!.baseline!.statuses["201"]).toBe(create!.baseline!.requests);
    expect(create!.targets.map((t) => t.what)).toEqual(["rps ratio", "p99 ratio", "service 5xx + socket + lock errors"]);
    const sync = scenarios[2]!;
    // 202 (started) and 409 (already pending) are both success for a trigger.
    for (const side of [sync.service!, sync.baseline!]) {
      expect((side.statuses["202"] ?? 0) + (side.statuses["409"] ?? 0)).toBe(side.requests);
    }

    // Its temporary databases are gone.
    const tmp = /databases in (\S+) \(removed at exit\)/.exec(stdout)?.[1];
    expect(tmp).toBeDefined();
    expect(existsSync(tmp!)).toBe(false);
  });

  test("an unknown scenario or a bad flag exits 1 with the reason, before starting anything", async () => {
    const { code, out } = await bench(["--scenarios", "get_one,nope", "--connections", "0", "--database", "sqlite,mysql"]);
    expect(code).toBe(1);
    expect(out).toMatch(/--scenarios: /);
    expect(out).toMatch(/--connections: /);
    expect(out).toMatch(/--database: 'mysql' is not sqlite, postgres or a postgres:\/\/ URL/);
    expect(out).not.toContain("databases in");
  });
});

/** Names of the databases a bench run makes on a PostgreSQL server. */
async function benchDatabases(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ datname: string }>("select datname from pg_database where datname like 'sitesync_bench_%'")).rows.map((r) => r.datname);
  } finally {
    await c.end();
  }
}

describe.skipIf(postgresSkipReason !== null)("bun run bench --database sqlite,postgres", () => {
  // The bench's own throw-away cluster where Debian's binaries are (as `--database postgres` runs), else the
  // server of TEST_POSTGRES_URL (a fresh database is made on it, and dropped).
  const givenUrl = findPgBin() ? null : process.env.TEST_POSTGRES_URL!;

  test("a short run measures both engines, each against its own textbook baseline, and the engines side by side", async () => {
    const before = givenUrl ? await benchDatabases(givenUrl) : [];
    const out = join(dir.dir, "both.json");
    const { code, stdout, out: all } = await bench([
      ...["--duration", "1", "--warmup", "0", "--workers", "2", "--connections", "8", "--seed", "40"],
      ...["--scenarios", "get_one,create,sync_start", "--database", `sqlite,${givenUrl ?? "postgres"}`, "--out", out],
    ]);
    expect(code, all).toBe(0);

    // Two tables (the PostgreSQL one with the server's share of the CPU), then the engines side by side.
    expect(stdout).toMatch(/^PostgreSQL: service and textbook baseline on the same PostgreSQL server$/m);
    expect(stdout).toMatch(/scenario\s+side\s+req\/s\s+p50 ms\s+p99 ms\s+max ms\s+2xx\s+409\s+4xx\s+5xx\s+sock err\s+cpu µs\/req\s+of which pg/);
    expect(stdout).toMatch(/^SQLite targets: \d+ met/m);
    expect(stdout).toMatch(/^PostgreSQL targets: \d+ met/m);
    expect(stdout).toMatch(/^PostgreSQL \/ SQLite, same run/m);
    expect(stdout).toMatch(/^get_one\s+service\s+[\d.]+x\s+[\d.]+x\s+([\d.]+x|n\/a)$/m);
    // The server's settings are printed; the bench's own cluster is crash-safe (fsync on), unlike the test clusters.
    expect(stdout).toMatch(givenUrl ? /^postgresql: .*its CPU is not measured/m : /^postgresql: .*fsync=on, synchronous_commit=off/m);

    const report = JSON.parse(readFileSync(out, "utf8"));
    expect(report.options.databases).toEqual(["sqlite", "pg"]);
    expect(report.options.postgresql.serverCpuMeasured).toBe(givenUrl === null);
    const scenarios = report.scenarios as ScenarioResult[];
    expect(scenarios.map((s) => `${s.engine} ${s.name}`)).toEqual([
      ...["sqlite get_one", "sqlite create", "sqlite sync_start"],
      ...["pg get_one", "pg create", "pg sync_start"],
    ]);
    for (const s of scenarios) {
      expect(s.skipped).toBeUndefined();
      expect(s.failed).toBeUndefined();
      for (const side of [s.service!, s.baseline!]) {
        expect(side.requests).toBeGreaterThan(0);
        expect(side.socketErrors).toBe(0);
        // Reads of seeded sites all succeed; every create is new; a trigger starts a sync or finds one pending.
        const ok = { get_one: ["200"], create: ["201"], sync_start: ["202", "409"] }[s.name]!;
        expect(ok.reduce((n, status) => n + (side.statuses[status] ?? 0), 0)).toBe(side.requests);
        expect(side.cpuUsPerReq).toBeGreaterThan(0);
      }
    }
    const pgRuns = scenarios.filter((s) => s.engine === "pg");
    for (const s of pgRuns) {
      for (const side of [s.service!, s.baseline!] as SideResult[]) {
        if (givenUrl) expect(side.dbCpuUsPerReq).toBeNull();
        else {
          // The server's own processes did part of the work, and it is counted in the total.
          expect(side.dbCpuUsPerReq).toBeGreaterThan(0);
          expect(side.cpuUsPerReq!).toBeGreaterThan(side.dbCpuUsPerReq!);
        }
      }
      const sqlite = scenarios.find((x) => x.engine === "sqlite" && x.name === s.name)!;
      expect(s.vsSqlite!.service!.rps).toBeCloseTo(s.service!.rps / sqlite.service!.rps, 6);
      expect(s.vsSqlite!.baseline!.rps).toBeCloseTo(s.baseline!.rps / sqlite.baseline!.rps, 6);
    }
    // On PostgreSQL create has the reads' target (the SQLite 2x / 0.15x ones are about SQLite's lock).
    expect(pgRuns[1]!.targets.map((t) => `${t.what} ${t.target}`)).toEqual(["rps ratio >= 0.85x", "service 5xx + socket + lock errors = 0"]);

    // Nothing is left behind: the cluster's directory, or the databases made on the given server.
    const tmp = /databases in (\S+) \(removed at exit\)/.exec(stdout)?.[1];
    expect(existsSync(tmp!)).toBe(false);
    if (givenUrl) expect((await benchDatabases(givenUrl)).filter((d) => !before.includes(d))).toEqual([]);
    else {
      const clusterDir = /started by the bench in (\S+) /.exec(stdout)?.[1];
      expect(clusterDir).toBeDefined();
      expect(existsSync(clusterDir!)).toBe(false);
    }
  });
});
