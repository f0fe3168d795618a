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
