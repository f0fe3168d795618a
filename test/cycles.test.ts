import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { findCycles, valueImports } from "../scripts/cycles.ts";

const src = join(import.meta.dir, "../src");

describe("import circles (scripts/cycles.ts)", () => {
  test("value imports count, type-only imports do not", () => {
    const f = join(src, "a/x.ts");
    const text = [
      'import { a } from "./a.ts";',
      'import type { B } from "./b.ts";',
      'import { type C, type D } from "./c.ts";',
      'import { type E, e } from "./e.ts";',
      'import def from "../d.ts";',
      'export { f } from "./f.ts";',
    ].join("\n");
    expect(valueImports(f, text).map((p) => p.slice(src.length + 1))).toEqual(["a/a.ts", "a/e.ts", "d.ts", "a/f.ts"]);
  });

  test("a circle is found and named", () => {
    const g = new Map([
      [join(src, "a.ts"), [join(src, "b.ts")]],
      [join(src, "b.ts"), [join(src, "c.ts")]],
      [join(src, "c.ts"), [join(src, "a.ts")]],
      [join(src, "d.ts"), [join(src, "a.ts")]],
    ]);
    expect(findCycles(g)).toEqual([["a.ts", "b.ts", "c.ts"]]);
    g.set(join(src, "c.ts"), []);
    expect(findCycles(g)).toEqual([]);
  });

  test("src/ has none", () => {
    const r = Bun.spawnSync([process.execPath, join(import.meta.dir, "../scripts/cycles.ts")], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });
});
