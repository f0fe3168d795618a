import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// `bun run test --plan` (scripts/test.ts) replays the runner's lane rules on scripts/test-times.json without
// running anything: the figure docs/testing.md's floor table comes from. Two heavy files never overlap.

const root = join(import.meta.dir, "..");
const times: Record<string, number> = JSON.parse(readFileSync(join(root, "scripts/test-times.json"), "utf8"));

test("--plan: one lane is the sum; two lanes keep the heavy files apart and put the light ones beside them; nothing runs", () => {
  // Its own TMPDIR, to see that no run folder is made there.
  const tmp = mkdtempSync(join(tmpdir(), "sitesync-plan-"));
  const files = ["edges.test.ts", "multiprocess.test.ts", "sites.api.test.ts"];
  const r = Bun.spawnSync([process.execPath, "scripts/test.ts", "--plan", "--engine", "sqlite", ...files.map((f) => `test/${f}`)], {
    cwd: root,
    env: { ...process.env, TMPDIR: tmp },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(r.exitCode).toBe(0);
  const out = r.stdout.toString();
  const t = (f: string) => times[`sqlite ${f}`] ?? 5;
  const planned = (n: number) => Number(new RegExp(`^TEST_JOBS=${n}: (\\d+) s$`, "m").exec(out)?.[1]);
  expect(planned(1)).toBe(Math.round(t("edges.test.ts") + t("multiprocess.test.ts") + t("sites.api.test.ts")));
  // edges and multiprocess are both heavy: one after the other, sites.api beside them.
  expect(planned(2)).toBe(Math.round(t("edges.test.ts") + t("multiprocess.test.ts")));
  expect(readdirSync(tmp)).toEqual([]);
  rmSync(tmp, { recursive: true });
});

test("--plan: with TEST_JOBS > 1 the waiting files run in a lane of their own, beside the heavy files one after another", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sitesync-plan-"));
  // Two heavy files and two waiting ones (scripts/test.ts `heavy`, `waiting`), on PostgreSQL.
  const files = ["edges.test.ts", "multiprocess.test.ts", "supervisor.test.ts", "idempotency.api.test.ts"];
  const plan = (waitLane: boolean) => {
    const r = Bun.spawnSync([process.execPath, "scripts/test.ts", "--plan", "--engine", "pg", ...files.map((f) => `test/${f}`)], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp, TEST_WAIT_LANE: waitLane ? "1" : "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.exitCode).toBe(0);
    return Number(/^TEST_JOBS=2: (\d+) s$/m.exec(r.stdout.toString())?.[1]);
  };
  const t = (f: string) => times[`pg ${f}`] ?? 5;
  const [e, m, s, i] = files.map(t) as [number, number, number, number];
  // At the start the waiting lane takes one waiting file, the two lanes one heavy file and the other waiting one;
  // the second heavy file starts when the first ends.
  expect(plan(true)).toBe(Math.round(Math.max(e + m, s, i)));
  // Without the lane the waiting files hold the second lane: never sooner (later with CI3's times: 63 against 56 s).
  expect(plan(false)).toBeGreaterThanOrEqual(plan(true));
  expect(readdirSync(tmp)).toEqual([]);
  rmSync(tmp, { recursive: true });
});

test("--plan: two heavy files of heavyPairs may run at once; a heavy file not listed there never beside another", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sitesync-plan-"));
  // db-faults and ui.browser are in `heavyPairs`, edges is heavy only (scripts/test.ts), all on SQLite.
  const files = ["db-faults.test.ts", "ui.browser.test.ts", "edges.test.ts"];
  const r = Bun.spawnSync([process.execPath, "scripts/test.ts", "--plan", "--engine", "sqlite", ...files.map((f) => `test/${f}`)], {
    cwd: root,
    env: { ...process.env, TMPDIR: tmp, TEST_WAIT_LANE: "0" },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(r.exitCode).toBe(0);
  const planned = (n: number) => Number(new RegExp(`^TEST_JOBS=${n}: (\\d+) s$`, "m").exec(r.stdout.toString())?.[1]);
  const [d, u, e] = files.map((f) => times[`sqlite ${f}`] ?? 5) as [number, number, number];
  // With three lanes the pair starts at once; edges waits for both (it pairs with neither).
  expect(planned(3)).toBe(Math.round(Math.max(d, u) + e));
  expect(readdirSync(tmp)).toEqual([]);
  rmSync(tmp, { recursive: true });
});
