import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./helpers/db.ts";
import { cpuVsParts, roundsNote, type ScenarioResult } from "../bench/report.ts";

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
    const {
      code,
      stdout,
      out: all,
    } = await bench([
      ...["--duration", "1", "--warmup", "0", "--workers", "2", "--connections", "8", "--seed", "40"],
      ...["--scenarios", "get_one,create,sync_start", "--out", out, "--prewarm", "0.6"],
    ]);
    expect(code, all).toBe(0);
    // Steady state: every side served the plain scenarios first (its creates never collide with the measured ones: all 201 below).
    expect(stdout).toContain("steady state: every side prewarmed 0.6 s first");
    expect(stdout).toMatch(/prewarmed every side: 0\.6 s of the selected scenarios each/);

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
    expect(report.options).toMatchObject({ workers: 2, connections: 8, durationSec: 1, seed: 40, prewarmSec: 0.6 });
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
    // Creates are also measured on the bare group-commit peer: every create answered 201 after its commit.
    const gc = create!.groupcommit!;
    expect(gc.requests).toBeGreaterThan(0);
    expect(gc.statuses["201"]).toBe(gc.requests);
    expect(gc.socketErrors + gc.server5xx + gc.lockErrors).toBe(0);
    expect(create!.ratiosGroupCommit!.rps).toBeCloseTo(create!.service!.rps / gc.rps, 6);
    expect(getOne!.groupcommit).toBeUndefined();
    expect(stdout).toMatch(/^\s+groupcommit\s+[\d,]+\s+[\d.]+/m);
    expect(stdout).toMatch(/^\s+ratio gc\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x/m);
    expect(create!.targets.map((t) => t.what)).toEqual([
      "rps ratio",
      "p99 ratio",
      "rps vs create (groupcommit)",
      "p99 vs create (groupcommit)",
      "service 5xx + socket + lock errors",
    ]);
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

  test("rounds alternate the sides A B B A after one warm-up each; --self measures the service against itself", async () => {
    const out = join(dir.dir, "self.json");
    const {
      code,
      stdout,
      out: all,
    } = await bench([
      ...["--duration", "1", "--warmup", "1", "--rounds", "2", "--workers", "1", "--connections", "4", "--seed", "20"],
      ...["--scenarios", "get_one", "--self", "--out", out],
    ]);
    expect(code, all).toBe(0);
    expect(stdout).toContain("A/A: the baseline side is a second copy of the service");
    // Round 0 service then baseline, round 1 the other way round.
    expect([...stdout.matchAll(/^\s+get_one (service|baseline)\s/gm)].map((m) => m[1])).toEqual([
      "service",
      "baseline",
      "baseline",
      "service",
    ]);
    const report = JSON.parse(readFileSync(out, "utf8"));
    expect(report.options).toMatchObject({ rounds: 2, self: true });
    const [getOne] = report.scenarios as ScenarioResult[];
    for (const side of [getOne!.service!, getOne!.baseline!]) {
      expect(side.rounds).toBe(2);
      expect(side.windows!.length).toBe(2);
      expect(side.windows!.every((w) => w.rps > 0)).toBe(true);
      // Only the measured windows count: one warm-up per side would have added a third second.
      expect(side.durationSec).toBeLessThan(2.5);
    }
    // Both sides are the service: the baseline's answers carry its security headers too (their CPU per request alike).
    expect(getOne!.baseline!.ok2xx).toBe(getOne!.baseline!.requests);
    // Each round's ratio is printed beside the median's.
    expect(getOne!.notes.some((n) => /^rps ratio vs baseline by round: [\d.]+x [\d.]+x \(min [\d.]+x, max [\d.]+x\)$/.test(n))).toBe(true);
    expect(stdout).toMatch(/note: rps ratio vs baseline by round: /);
  });

  test("the ratio by round pairs each round's windows; one round has none", () => {
    const side = (...rps: number[]) =>
      ({ windows: rps.map((r) => ({ rps: r, p99Ms: 1, cpuUsPerReq: null })) }) as ScenarioResult["service"] & {};
    expect(roundsNote("vs baseline", side(900, 1200, 800), side(1000, 1000, 1000))).toBe(
      "rps ratio vs baseline by round: 0.90x 1.20x 0.80x (min 0.80x, max 1.20x)",
    );
    expect(roundsNote("vs baseline", side(900), side(1000))).toBeNull();
  });

  test("an unknown scenario or a bad flag exits 1 with the reason, before starting anything", async () => {
    const { code, out } = await bench(["--scenarios", "get_one,nope", "--connections", "0", "--database", "sqlite,mysql"]);
    expect(code).toBe(1);
    expect(out).toMatch(/--scenarios: /);
    expect(out).toMatch(/--connections: /);
    expect(out).toMatch(/--database: 'mysql' is not sqlite, postgres or a postgres:\/\/ URL/);
    expect(out).not.toContain("databases in");
  });

  test("the mix's CPU per request is checked against the weighted sum of its parts' (same run)", () => {
    const side = (cpuUsPerReq: number | null) => ({ cpuUsPerReq }) as ScenarioResult["service"];
    const result = (name: string, service: number | null, baseline: number): ScenarioResult => ({
      name,
      engine: "sqlite",
      description: "",
      service: side(service),
      baseline: side(baseline),
      targets: [],
      notes: [],
    });
    const parts = [
      { scenario: "get_one", weight: 0.9 },
      { scenario: "create", weight: 0.1 },
    ];
    const all = new Map([
      ["get_one", result("get_one", 50, 20)],
      ["create", result("create", 150, 40)],
    ]);
    // Weighted parts: 0.9 * 50 + 0.1 * 150 = 60 µs; the mix's 66 is 1.10x (met), 72 is 1.20x (not met).
    const met = result("mixed", 66, 22);
    const check = cpuVsParts(parts, 1.1, met, all);
    expect(check.actual).toBeCloseTo(1.1, 9);
    expect(check.met).toBe(true);
    expect(check.target).toBe("<= 1.10x");
    expect(check.what).toBe("cpu vs weighted parts (0.9 get_one + 0.1 create)");
    expect(met.notes).toEqual(["baseline cpu vs its weighted parts: 1.00x"]);
    expect(cpuVsParts(parts, 1.1, result("mixed", 72, 22), all).met).toBe(false);
    // A part not measured: no verdict.
    all.set("create", result("create", null, 40));
    expect(cpuVsParts(parts, 1.1, result("mixed", 66, 22), all)).toMatchObject({ actual: null, met: null });
  });
});
