// Drizzle selects compiled once to bare bun:sqlite statements (src/db/sqlite/prepared.ts): a constant LIMIT is written
// into the SQL (SQLite prepares a statement whose LIMIT is bound again at every run), a placeholder's gets a statement
// per page size, and either way the rows are the ones Drizzle's own query returns.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { asc, gt, sql } from "drizzle-orm";
import type { SqliteDb } from "../src/db/index.ts";
import { compileSelect, literalLimit } from "../src/db/sqlite/prepared.ts";
import { sites } from "../src/db/sqlite/schema.ts";
import { tempSqliteDb } from "./helpers/db.ts";

describe("compiled selects (SQLite)", () => {
  let t: ReturnType<typeof tempSqliteDb>;
  beforeAll(() => {
    t = tempSqliteDb();
    const ins = t.db.raw.writer.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
    for (let i = 1; i <= 5; i++) ins.run(`sc-domain:p${i}.example`, `Site ${6 - i}`);
  });
  afterAll(() => t.cleanup());

  test("a constant LIMIT becomes a literal and leaves the parameters; literalLimit leaves a placeholder's", () => {
    expect(literalLimit({ sql: "select id from t where a > ? limit ?", params: ["x", 2] })).toEqual({
      sql: "select id from t where a > ? limit 2",
      params: ["x"],
    });
    const page = { sql: "select id from t limit ?", params: [sql.placeholder("limit")] };
    expect(literalLimit(page)).toBe(page);
    const none = { sql: "select id from t where a = ?", params: [3] };
    expect(literalLimit(none)).toBe(none);
  });

  test("rows are Drizzle's own, with a constant LIMIT and with a placeholder's", () => {
    const orm = (t.db as SqliteDb).read;
    const query = () =>
      orm
        .select()
        .from(sites)
        .where(gt(sites.id, sql.placeholder("after")))
        .orderBy(asc(sites.name));
    const constant = compileSelect(orm, query().limit(2), { booleans: ["is_active"] });
    const bound = compileSelect(orm, query().limit(sql.placeholder("limit")), { booleans: ["is_active"] });
    const drizzle = query().limit(2).all({ after: 1 });
    expect(drizzle.map((s) => s.name)).toEqual(["Site 1", "Site 2"]);
    expect(constant.all({ after: 1 })).toEqual(drizzle);
    expect(constant.get({ after: 1 })).toEqual(drizzle[0]!);
    expect(bound.all({ after: 1, limit: 2 })).toEqual(drizzle);
    expect(bound.all({ after: 1, limit: 3 }).length).toBe(3);
    // A statement per page size for the first sizes seen, then the bound one: the same rows for every size.
    const every = query().all({ after: 0 });
    for (let size = -1; size <= 24; size++) {
      const want = size < 0 ? every : every.slice(0, size);
      expect([size, bound.all({ after: 0, limit: size })]).toEqual([size, want]);
      expect([size, bound.get({ after: 0, limit: size })]).toEqual([size, want[0]]);
    }
  });
});

test("no SQLite statement is a Drizzle select with a constant LIMIT prepared by Drizzle (its LIMIT bound: prepared again at every run)", () => {
  const src = join(import.meta.dir, "../src");
  const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts") && !f.startsWith("db/pg/"));
  // PostgreSQL's named statements are planned once whatever their LIMIT: only SQLite's files are read.
  const found = files.filter((f) => /\.limit\(\d+\)\s*\.prepare\(\)/.test(readFileSync(join(src, f), "utf8")));
  expect(found).toEqual([]);
});
