import { expect, test } from "bun:test";
import { join } from "node:path";

// `bun run bench:search` end to end on a small site: it runs, compares the index with the scan (it
// stops with an error when their totals differ) and prints both tables.

test("bench:search runs on 3,000 rows and prints the ingest and search tables", async () => {
  const proc = Bun.spawn(
    [process.execPath, join(import.meta.dir, "../bench/query-search.ts"), "--rows", "3000", "--vocabulary", "2000", "--iterations", "3"],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  expect(out).toMatch(/ingest without the index: .* rows per cpu-second/);
  expect(out).toMatch(/ingest with the index: .* \+-?\d+% cpu/);
  for (const term of ["running shoes", "zzz no match", "ab", "s"]) expect(out).toContain(JSON.stringify(term));
  // "zzz no match" matches nothing on both sides; "running shoes" matches some queries.
  expect(out).toMatch(/"zzz no match"\s+\|\s+0 \|/);
  expect(out).toMatch(/"running shoes"\s+\|\s+[1-9]\d* \|/);
}, 60_000);
