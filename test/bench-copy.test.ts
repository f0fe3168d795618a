import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { postgresSkipReason } from "./helpers/postgres.ts";

// `bun run bench:copy` end to end on a small database: both copies run through the real CLI, verify their
// counts, and the table says so.

describe.skipIf(postgresSkipReason !== null)("bench:copy (real PostgreSQL)", () => {
  test("copies 3,000 synced rows both ways and prints the table", async () => {
    const args = ["--rows", "3000", "--days", "5"];
    if (process.env.TEST_POSTGRES_URL) args.push("--pg", process.env.TEST_POSTGRES_URL);
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../bench/db-copy.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(out).toMatch(/^seeded 30\d\d query detail rows over 5 days/m);
    expect(out).toMatch(/^gsc_query_detail +source (30\d\d) +target \1 +ok$/m);
    for (const direction of ["SQLite -> PostgreSQL", "PostgreSQL -> SQLite"]) {
      expect(out).toMatch(new RegExp(`^\\| ${direction} \\| [\\d,]+ \\| [\\d.]+ s \\| [\\d,]+ \\| [\\d.]+ s \\| yes \\|$`, "m"));
    }
  }, 120_000);
});
