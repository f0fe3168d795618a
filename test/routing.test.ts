import { expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { tempDb } from "./helpers/db.ts";

// Hono's SmartRouter picks the first router that accepts every route: RegExpRouter (one regular expression
// per method) unless some route has a shape it refuses, e.g. a static segment beside a parameter with deeper
// routes of the same method (`POST /sites/import` beside `POST /sites/:id/backfill`). Then the whole app falls
// back to TrieRouter, several times slower per match (BENCHMARKS.md, issue 19). This keeps the fast one.
test("every route fits Hono's RegExpRouter (the app does not fall back to a slower router)", async () => {
  const t = tempDb();
  try {
    const app = createApp(t.db);
    expect((await app.request("/health")).status).toBeLessThan(500);
    expect((app.router as { name: string }).name).toBe("SmartRouter + RegExpRouter");
  } finally {
    await t.cleanup();
  }
});
