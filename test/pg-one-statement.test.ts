import { afterEach, describe, expect, test } from "bun:test";
import type pg from "pg";
import { withRideThrough } from "../src/db/availability.ts";
import type { PgDb } from "../src/db/index.ts";
import { createSite } from "../src/sites/queries.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { proxiedPgDb } from "./helpers/tcp-proxy.ts";

// Writes of one statement on PostgreSQL (db.pg.oneStatement, src/db/pg/engine.ts): a site create is one
// round trip, autocommitted, with its commit token in the same statement, and a connection lost while it
// runs is settled like a lost COMMIT. PostgreSQL run only.

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function setup() {
  const t = tempDb();
  cleanups.push(() => t.cleanup());
  return t;
}

/** A pool on the test's database through a TCP proxy (to cut the connection of a chosen message). */
const proxiedDb = () => proxiedPgDb(cleanups, { poolSize: 2 });

/** The site's domains in the database, by id. */
async function domains(db: PgDb): Promise<string[]> {
  return (await db.pg.pool.query("select domain from sites order by id")).rows.map((r: { domain: string }) => r.domain);
}

describe.skipIf(testEngine !== "pg")("PostgreSQL writes of one statement", () => {
  test("a site create is one query on its connection (no BEGIN, no COMMIT), with its commit token", async () => {
    const { db } = setup() as unknown as { db: PgDb };
    let queries = 0;
    const counted = new WeakSet<pg.PoolClient>();
    db.pg.pool.on("acquire", (client) => {
      if (counted.has(client)) return;
      counted.add(client);
      const query = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: unknown }).query = (...a: unknown[]) => {
        queries++;
        return query(...a);
      };
    });
    const site = await createSite(db, { domain: "sc-domain:one.example", name: "One" });
    expect(queries).toBe(1);
    expect(site).toMatchObject({ domain: "sc-domain:one.example", name: "One", is_active: true, category: null });
    expect((await db.pg.pool.query("select count(*)::int as n from commit_tokens")).rows[0].n).toBe(1);
    // A duplicate domain fails as before (409 at the API), leaving neither a row nor a token.
    const err = await createSite(db, { domain: "sc-domain:one.example", name: "Again" }).catch((e: unknown) => e);
    expect((err as { status?: number }).status).toBe(409);
    expect(await domains(db)).toEqual(["sc-domain:one.example"]);
    expect((await db.pg.pool.query("select count(*)::int as n from commit_tokens")).rows[0].n).toBe(1);
  });

  test("its answer lost after the server got it: read back as committed (its token), not run again", async () => {
    const { t, proxy, db } = await proxiedDb();
    await db.pg.pool.query("select 1"); // a connection in the pool
    proxy.cutNext((text) => text.includes("sites_insert"), "answer");
    const site = await createSite(db, { domain: "sc-domain:lost-answer.example", name: "L" });
    expect(db.stats.ambiguousCommits).toEqual({ committed: 1, aborted: 0, unknown: 0 });
    expect(site.domain).toBe("sc-domain:lost-answer.example");
    const rows = (await t.db.pg!.pool.query("select id, domain from sites")).rows;
    expect(rows).toEqual([{ id: site.id, domain: "sc-domain:lost-answer.example" }]);
  });

  test("its answer lost, the server marked down when the check finds it committed: read back all the same, past the ride-through", async () => {
    const { t, proxy, db } = await proxiedDb();
    await db.pg.pool.query("select 1");
    // The statement commits and its answer is lost; the first outcome check loses its connection too, and the
    // state's probe (`select 1`) keeps failing: the state says down while the second check finds the write
    // committed. Its answer must be read back then, in a request whose ride-through is long spent (a crash:
    // db-faults once found keys held for their whole lease after a "committed but not read back" 503).
    proxy.refuse((text) => text.includes("select 1"));
    cleanups.push(() => proxy.refuse(null));
    // Then (one fault at a time) the first outcome check's connection is dropped.
    proxy.cutNext((text) => {
      const hit = text.includes("sites_insert");
      if (hit) setTimeout(() => proxy.cutNext((next) => next.includes("burned"), "drop"), 0);
      return hit;
    }, "answer");
    const site = await withRideThrough(300, () => createSite(db, { domain: "sc-domain:read-back.example", name: "R" }));
    expect(db.availability.downSince).not.toBeNull();
    expect(db.stats.ambiguousCommits).toEqual({ committed: 1, aborted: 0, unknown: 0 });
    expect(site).toMatchObject({ domain: "sc-domain:read-back.example", name: "R" });
    proxy.refuse(null);
    expect(await domains(t.db as PgDb)).toEqual([site.domain]);
  });

  test("a statement that never reached the server: found aborted, run once more, one row", async () => {
    const { t, proxy, db } = await proxiedDb();
    await db.pg.pool.query("select 1");
    proxy.cutNext((text) => text.includes("sites_insert"), "drop");
    const site = await createSite(db, { domain: "sc-domain:dropped-one.example", name: "D" });
    expect(db.stats.ambiguousCommits).toEqual({ committed: 0, aborted: 1, unknown: 0 });
    expect(await domains(t.db as PgDb)).toEqual([site.domain]);
  });
});
