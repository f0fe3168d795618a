// copyIn (src/db/pg/copy-in.ts), db:copy's way of writing into PostgreSQL: values COPY's text format must escape
// (tab, newline, carriage return, backslash, a literal "\N"), nulls, bytes, JSON, booleans, big integers, non-ASCII
// text, read back as they went in; a row the table refuses fails the whole batch with the server's error.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import { copyIn } from "../src/db/pg/copy-in.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("copyIn (real PostgreSQL)", () => {
  let client: pg.Client;
  // Before usePostgres' own hook, which drops the database.
  afterAll(async () => {
    await client?.end();
  });
  const server = usePostgres();

  beforeAll(async () => {
    client = new pg.Client({ connectionString: await server.newDatabase() });
    await client.connect();
    await client.query(`create table t (id integer primary key, s text, b bytea, j jsonb, f boolean, n bigint, d double precision)`);
  });

  test("awkward values round-trip; the row count is returned", async () => {
    const rows: unknown[][] = [
      [
        1,
        "tab\there, new\nline, cr\rend, back\\slash, \\N, done",
        new Uint8Array([0, 1, 92, 255]),
        '{"a":"x\\ty","b":[1,2]}',
        true,
        9_007_199_254_740_991,
        0.1,
      ],
      [2, null, null, null, false, -1, -2.5e-300],
      [3, "\\N", new Uint8Array([]), '"é ✓ 漢字"', null, 0, null],
      [4, "", Buffer.from("bytes"), "null", true, null, 1e300],
    ];
    expect(await copyIn(client, "t", ["id", "s", "b", "j", "f", "n", "d"], rows)).toBe(4);
    const back = await client.query({ text: "select id, s, b, j::text as j, f, n::text as n, d from t order by id", rowMode: "array" });
    expect(back.rows).toEqual([
      [1, rows[0]![1], Buffer.from([0, 1, 92, 255]), '{"a": "x\\ty", "b": [1, 2]}', true, "9007199254740991", 0.1],
      [2, null, null, null, false, "-1", -2.5e-300],
      [3, "\\N", Buffer.from([]), '"é ✓ 漢字"', null, "0", null],
      [4, "", Buffer.from("bytes"), "null", true, null, 1e300],
    ]);
  });

  test("a refused row fails the batch with the server's error and copies none of it; the connection goes on", async () => {
    const before = Number((await client.query("select count(*) as n from t")).rows[0].n);
    const err = await copyIn(
      client,
      "t",
      ["id", "s"],
      [
        [10, "new"],
        [1, "duplicate key"],
      ],
    ).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("duplicate key");
    expect(Number((await client.query("select count(*) as n from t")).rows[0].n)).toBe(before);
    expect(await copyIn(client, "t", ["id", "s"], [[11, "after"]])).toBe(1);
  });
});
