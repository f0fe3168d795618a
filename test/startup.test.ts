import { describe, expect, test } from "bun:test";
import { join } from "node:path";

// Every HTTP worker imports the app before it serves anything, and the suite starts hundreds of them
// (docs/testing.md): packages only a rare request needs are loaded on first use, not at start-up.
// Engine-neutral (no database): run once, on SQLite (scripts/test.ts `engineNeutral`).

/** The node_modules packages loaded by importing `module` in a fresh Bun process. */
function packagesLoadedBy(module: string): string[] {
  const script = `await import(${JSON.stringify(module)});
const names = new Set();
for (const k of Object.keys(require.cache)) {
  const m = k.match(/node_modules\\/((@[^/]+\\/)?[^/]+)/);
  if (m) names.add(m[1]);
}
console.log(JSON.stringify([...names]));`;
  const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`import of ${module} failed: ${p.stderr.toString()}`);
  return JSON.parse(p.stdout.toString().trim().split("\n").at(-1)!);
}

describe("start-up imports", () => {
  test("the app loads neither the MCP SDK nor the Google and e-mail clients until a request needs them", () => {
    const loaded = packagesLoadedBy("./src/app.ts");
    // The check itself works: what every request needs is there.
    expect(loaded).toContain("hono");
    expect(loaded).toContain("zod");
    for (const lazy of ["@modelcontextprotocol/sdk", "@hono/mcp", "ajv", "google-auth-library", "nodemailer"])
      expect(loaded).not.toContain(lazy);
  });
});
