import pg from "pg";
import { seedAnalyticsPg } from "../../bench/seed-analytics-pg.ts";
import type { SeedResult } from "../../bench/seed-analytics.ts";
import { newPgDatabase, newPgDatabaseName, pgDatabase } from "./engine.ts";

// seedAnalyticsPg's rows for several test files of one run (analytics.stream, bounds.load and bounds use 120,000 rows over
// 30 days: 3-4 s of the test process's CPU and as much of the server's each, 15-20 s of wall at load): the first file
// to ask seeds a database of the run once, under an advisory lock, and every file gets a copy of it. The runner drops
// it with the run's other databases (its name starts with the run's prefix, test/helpers/pg-pool.ts).

/**
 * A fresh PostgreSQL database holding `seedAnalyticsPg(url, opts)`'s rows, and the seed's result; drop() it like
 * newPgDatabase()'s. Outside the runner (no run template) it is seeded here.
 */
export async function seededPgDatabase(opts: { rows: number; days: number }) {
  const run = /^sitesync_tmpl_run_(\d+)$/.exec(process.env.TEST_PG_TEMPLATE ?? "");
  if (!run) {
    const pgdb = newPgDatabase();
    return { pgdb, seed: await seedAnalyticsPg(pgdb.url, opts) };
  }
  const template = `sitesync_t_p${run[1]}_seed_${opts.rows}_${opts.days}`;
  const admin = new pg.Client({ connectionString: process.env.TEST_POSTGRES_URL, application_name: "sitesync-test-seed" });
  await admin.connect();
  try {
    // The files wanting the same seed wait on a lock named by it while the first seeds it.
    await admin.query("select pg_advisory_lock(hashtext($1))", [template]);
    // The seed's result is the database's comment, written last: a database without one was not seeded to the end.
    const known = await admin.query<{ c: string | null }>(
      "select shobj_description(oid, 'pg_database') as c from pg_database where datname = $1",
      [template],
    );
    let seed: SeedResult;
    if (known.rows[0]?.c) seed = JSON.parse(known.rows[0].c);
    else {
      await admin.query(`drop database if exists "${template}" with (force)`);
      await admin.query(`create database "${template}" template "${process.env.TEST_PG_TEMPLATE}" strategy file_copy`);
      seed = await seedAnalyticsPg(urlOf(template), opts);
      await admin.query(`comment on database "${template}" is ${admin.escapeLiteral(JSON.stringify(seed))}`);
    }
    await admin.query("select pg_advisory_unlock(hashtext($1))", [template]);
    const name = newPgDatabaseName();
    await admin.query(`create database "${name}" template "${template}" strategy file_copy`);
    return { pgdb: pgDatabase(name), seed };
  } finally {
    await admin.end();
  }
}

function urlOf(name: string): string {
  const u = new URL(process.env.TEST_POSTGRES_URL!);
  u.pathname = `/${name}`;
  return u.toString();
}
