import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type pg from "pg";
import { pgAllMany, pgBoundedRead, withLiterals } from "../src/db/pg/named.ts";
import { budgetOf, withBudget } from "../src/db/budget.ts";
import { apiErrorOf } from "../src/errors.ts";
import { tempDb, testEngine } from "./helpers/db.ts";

// PostgreSQL's bounded read (src/db/pg/named.ts) sends its settings, cursor and first FETCH in one round trip,
// with the values written as quoted literals (withLiterals): every answer must equal the same statement's with
// bound parameters, for every kind of value, in every context the server infers a type from, over one FETCH
// and over several; values that cannot be written safely are bound as before.

describe.skipIf(testEngine !== "pg")("PostgreSQL bounded read: values as literals", () => {
  let t: ReturnType<typeof tempDb>;
  beforeAll(() => {
    t = tempDb();
  });
  afterAll(() => t.cleanup());

  const strings = ["", "plain", "it's", "back\\slash", "both \\' and '", "%_ like", "naïve 理髮店 🙂", "$1 $2", "-- not a comment", "/* x"];
  const statements: [string, unknown[]][] = [
    ...strings.map((s): [string, unknown[]] => ["select $1 as v, length($1) as n, $1 like '%e%' as e", [s]]),
    ["select $1::int + 1 as a, $2::float8 * 2 as b, $3::bigint as c, $4::boolean as d", [41, 1.25, 9007199254740991, true]],
    ["select $1 + 1 as a, $2 = 'x' as b, coalesce($3, 'none') as c", [-7, "x", null]],
    ["select x from generate_series(1, 10) x where x > $1 order by x limit $2", [3, 4]],
    ["select value::int as v from jsonb_array_elements_text($1::jsonb) order by 1", [JSON.stringify([3, 1, 2])]],
    ["select $1::jsonb ->> 'k' as k", [{ k: "it's" }]],
    ["select $1 = any(array['a', 'b']) as a, $2 as b", [false, "b"]],
  ];

  test("each statement answers as with bound parameters", async () => {
    for (const [text, values] of statements) {
      expect(withLiterals(text, values)).not.toBeNull();
      const bound = (await t.db.pg!.pool.query(text, values)).rows;
      expect({ text, values, rows: (await pgBoundedRead(t.db, { text, values })).rows }).toEqual({ text, values, rows: bound });
    }
  });

  test("an answer over several FETCHes, and values bound when they cannot be written (line breaks, a comment's end, dates)", async () => {
    const many = "select x, $1 as s from generate_series(1, $2::int) x order by x";
    const r = await pgBoundedRead<{ x: number; s: string }>(t.db, { text: many, values: ["a'b", 2500] });
    expect(r.rows.length).toBe(2500);
    expect(r.rows[2499]).toEqual({ x: 2500, s: "a'b" });
    for (const v of ["two\nlines", "cr\r", "ends */ here", new Date(0)]) {
      const text = "select $1::text as v";
      expect(withLiterals(text, [v])).toBeNull();
      expect((await pgBoundedRead(t.db, { text, values: [v] })).rows).toEqual((await t.db.pg!.pool.query(text, [v])).rows);
    }
    // Array rows (Drizzle's rowMode) come from the first FETCH too.
    const arr = await pgBoundedRead<unknown[]>(t.db, { text: "select $1::int as a, $2 as b", values: [1, "x"], rowMode: "array" });
    expect(arr.rows).toEqual([[1, "x"]]);
  });

  test("a small read (one round trip, no cursor) answers the same; its errors roll back; its caps hold", async () => {
    for (const [text, values] of statements)
      expect((await pgBoundedRead(t.db, { text, values, small: true })).rows).toEqual((await t.db.pg!.pool.query(text, values)).rows);
    const bad = await pgBoundedRead(t.db, { text: "select 1 / $1::int as x", values: [0], small: true }).catch((e) => e);
    expect(String(bad)).toContain("division by zero");
    // Every connection of the pool is usable afterwards (none left in an aborted transaction).
    const after = await Promise.all(
      Array.from({ length: 8 }, () => pgBoundedRead(t.db, { text: "select $1::int as x", values: [7], small: true })),
    );
    for (const r of after) expect(r.rows).toEqual([{ x: 7 }]);
    const capped = await withBudget(budgetOf({ timeoutMs: 30_000, maxRows: 10, maxBytes: 1_000_000 }), () =>
      pgBoundedRead(t.db, { text: "select x from generate_series(1, $1::int) x", values: [11], small: true }),
    ).catch((e) => e);
    expect(apiErrorOf(capped)?.code).toBe("result_too_large");
  });

  test("withLiterals writes each parameter once per use, $10 apart from $1", () => {
    const values = Array.from({ length: 10 }, (_, i) => i + 1);
    expect(withLiterals("select $1, $10, $1", values)).toBe("select '1', '10', '1'");
    expect(withLiterals("select $2", [1])).toBeNull();
    expect(withLiterals("select 1", [])).toBe("select 1");
  });
});

describe.skipIf(testEngine !== "pg")("PostgreSQL: several small reads as one named statement (pgAllMany)", () => {
  let t: ReturnType<typeof tempDb>;
  beforeAll(() => {
    t = tempDb();
  });
  afterAll(() => t.cleanup());

  test("one query on its connection, a named statement kept for the same texts, each read's rows in order with its own parameters", async () => {
    const sent: { name?: string; text: string }[] = [];
    const wrapped = new WeakSet<pg.PoolClient>();
    t.db.pg!.pool.on("acquire", (c: pg.PoolClient) => {
      if (wrapped.has(c)) return;
      wrapped.add(c);
      const query = c.query.bind(c) as (...a: unknown[]) => unknown;
      (c as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
        sent.push(typeof a[0] === "string" ? { text: a[0] } : (a[0] as { name?: string; text: string }));
        return query(...a);
      };
    });
    const list = [
      { text: "select x, $n::int * 10 as n from generate_series(1, $n::int) x order by x desc", params: { n: 3 } },
      { text: "select $n::text as n, count(*)::int as c from generate_series(1, 2)", params: { n: "it's $1" } },
      { text: "select x from generate_series(1, 0) x", params: {} },
    ];
    const want = [
      [
        { x: 3, n: 30 },
        { x: 2, n: 30 },
        { x: 1, n: 30 },
      ],
      [{ n: "it's $1", c: 2 }],
      [],
    ];
    expect(await pgAllMany(t.db, list)).toEqual(want);
    expect(await pgAllMany(t.db, list)).toEqual(want);
    expect(sent.length).toBe(2);
    expect(sent[0]!.name).toMatch(/^sitesync_read_/);
    expect(sent[1]!.name).toBe(sent[0]!.name);
  });
});
