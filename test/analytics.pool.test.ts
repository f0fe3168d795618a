import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { queryPool } from "../src/analytics/pool.ts";
import { closeAllConnections, whenClosed } from "../src/db/index.ts";
import { asSqlite, tempDb } from "./helpers/db.ts";
import { testEngine } from "./helpers/engine.ts";

// SQLite's query processes (src/analytics/pool.ts) are this process's children: closing their handle kills them
// and collects them before it resolves. One this process exited without collecting went to pid 1, which in a
// container may never reap it: it stayed <defunct> (and the test runner counted the file's leftovers).

/** A handle with its query processes started (a query run, a spare started beside it); their pids. */
async function handleWithProcesses() {
  const t = tempDb();
  const db = asSqlite(t.db);
  const pool = queryPool(db);
  expect(await pool.all<{ x: number }>("select 1 as x", {})).toEqual([{ x: 1 }]);
  const pids = pool.pids();
  expect(pids.length).toBeGreaterThan(0);
  for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(true);
  return { t, db, pids };
}

describe.skipIf(testEngine === "pg")("query processes", () => {
  test("close() kills a handle's query processes; whenClosed resolves once they are collected (not even <defunct>)", async () => {
    const { t, db, pids } = await handleWithProcesses();
    db.close();
    await whenClosed(db);
    expect(pids.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
    await t.cleanup();
  });

  test("closeAllConnections (a server's or worker's shutdown, then exit) returns after its query processes are collected", async () => {
    const { t, pids } = await handleWithProcesses();
    await closeAllConnections();
    expect(pids.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
    await t.cleanup();
  });
});
