import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { Client } from "pg";
import type { Db } from "../src/db/index.ts";
import { containsPattern, likeAsciiSql, likeInsensitive } from "../src/db/sql.ts";
import { psql, pgDatabase, newPgDatabaseName } from "./helpers/engine.ts";
import { testEngine } from "./helpers/db.ts";

// The case rule of the case-insensitive LIKE helpers (insights' brand terms and url filters, the page filter of the
// analytics reads): SQLite's LIKE folds ASCII letters only, so PostgreSQL must answer the same in any locale. The test
// cluster is initialised without a locale (ILIKE folds ASCII only there anyway), so this runs in a database whose
// LC_CTYPE is C.UTF-8, where a plain ILIKE also folds É / é, Σ / σ and the Kelvin sign.

const texts = ["Éclair", "éclair", "ECLAIR", "eclair", "ΣΟΦΙΑ", "σοφια", "\u212Aelvin", "kelvin", "50%_off", "50%xoff", "Straße"];
const terms = ["éclair", "ÉCLAIR", "eclair", "σοφια", "kelvin", "KELVIN", "50%_", "STRASSE", "straße"];

/** Which of `texts` SQLite's LIKE (ASCII folding, `\` escape) matches for each term's contains-pattern. */
function sqliteMatches(): Record<string, string[]> {
  const db = new Database(":memory:");
  try {
    return Object.fromEntries(
      terms.map((t) => [
        t,
        texts.filter(
          (v) => db.query<{ m: number }, [string, string]>("select ?1 like ?2 escape '\\' as m").get(v, containsPattern(t))!.m === 1,
        ),
      ]),
    );
  } finally {
    db.close();
  }
}

describe.skipIf(testEngine !== "pg")("case-insensitive LIKE on PostgreSQL in a UTF-8 locale", () => {
  let client: Client;
  let drop: () => void;
  beforeAll(async () => {
    const name = newPgDatabaseName();
    psql(`create database "${name}" template template0 encoding 'UTF8' lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8'`);
    const d = pgDatabase(name);
    drop = d.drop;
    client = new Client({ connectionString: d.url });
    await client.connect();
    await client.query("create table t (v text)");
    for (const v of texts) await client.query("insert into t values ($1)", [v]);
  });
  afterAll(async () => {
    await client?.end();
    drop?.();
  });

  test("a plain ILIKE folds more than ASCII in this database (what the helpers must not do)", async () => {
    const { rows } = await client.query<{ m: boolean }>("select 'Éclair' ilike 'éclair' as m");
    expect(rows[0]!.m).toBe(true);
  });

  test("likeAsciiSql matches what SQLite's LIKE matches, term by term", async () => {
    const expected = sqliteMatches();
    for (const term of terms) {
      const { rows } = await client.query<{ v: string }>(`select v from t where ${likeAsciiSql("pg", "v", "$1")} order by v`, [
        containsPattern(term),
      ]);
      expect({ term, matches: rows.map((r) => r.v).sort() }).toEqual({ term, matches: [...expected[term]!].sort() });
    }
    // The rule itself: non-ASCII letters do not fold (É, the Kelvin sign), ASCII ones do.
    expect(expected).toMatchObject({ éclair: ["éclair"], kelvin: ["kelvin"], KELVIN: ["kelvin"] });
  });

  test("likeInsensitive (Drizzle) matches what SQLite's LIKE matches, term by term", async () => {
    const expected = sqliteMatches();
    const dialect = new PgDialect();
    for (const term of terms) {
      const q = dialect.sqlToQuery(
        sql`select v from t where ${likeInsensitive({ engine: "pg" } as Db, sql.raw("v"), containsPattern(term))}`,
      );
      const { rows } = await client.query<{ v: string }>(q.sql, q.params as unknown[]);
      expect({ term, matches: rows.map((r) => r.v).sort() }).toEqual({ term, matches: [...expected[term]!].sort() });
    }
  });
});
