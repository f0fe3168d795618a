import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

// PostgreSQL test databases made ahead of use and dropped behind it (scripts/test.ts): creating one from the run's
// template took 1.4-1.9 s and dropping it 0.5-0.6 s at load, each through a psql process, synchronously, inside the
// test. The runner keeps a few of each kind (migrated: copies of TEST_PG_TEMPLATE; empty) ready in the background and
// announces each as a file in TEST_PG_POOL/ready-<kind>/; a test process claims one by renaming its file into
// taken/<TEST_DB_TAG>/ (atomic: two claimers never get the same one) and releases it by renaming it into drop/, where
// the runner drops it, in the background. What a file leaves taken when it ends (killed, or no cleanup) is dropped
// then too, and so is every database named with its TEST_DB_TAG (made by psql when the pool was empty, or by
// test/helpers/postgres.ts).

export type PoolKind = "migrated" | "empty";

const poolDir = process.env.TEST_PG_POOL || null;
/** The tag of this test process's unit: databases named `sitesync_t_<tag>_...` are dropped by the runner when it ends. */
export const dbTag = process.env.TEST_DB_TAG || null;

/** A ready database of `kind` taken from the runner's pool (its name), or null when there is no pool or none is ready. */
export function claimPgDatabase(kind: PoolKind): string | null {
  if (!poolDir || !dbTag) return null;
  const ready = join(poolDir, `ready-${kind}`);
  let names: string[];
  try {
    names = readdirSync(ready);
  } catch {
    return null;
  }
  for (const name of names) {
    try {
      renameSync(join(ready, name), join(poolDir, "taken", dbTag, name));
      return name;
    } catch {
      // Another process took it first.
    }
  }
  return null;
}

/** Hands database `name` to the runner to drop in the background; false when there is no pool (drop it yourself). */
export function releasePgDatabase(name: string): boolean {
  if (!poolDir || !dbTag) return false;
  try {
    renameSync(join(poolDir, "taken", dbTag, name), join(poolDir, "drop", name));
  } catch {
    writeFileSync(join(poolDir, "drop", name), "");
  }
  return true;
}

/** How many databases of each kind the runner keeps ready (startServer() takes migrated ones too: test/helpers/server.ts). */
const targets: Record<PoolKind, number> = { migrated: 6, empty: 2 };

/**
 * The runner's side: keeps databases ready in `dir` (copies of `template`, and empty ones) over connections of its
 * own to `adminUrl`, drops the released ones; unitEnv/unitEnded per test process; stop() drops what is left.
 */
export function startPgPool(opts: { adminUrl: string; template: string; dir: string; templateMade?: Promise<unknown> }) {
  const { adminUrl, template, dir } = opts;
  for (const d of ["ready-migrated", "ready-empty", "taken", "drop", "dropping"]) mkdirSync(join(dir, d), { recursive: true });
  const prefix = `sitesync_t_p${process.pid}_`;
  const emptyPrefix = `sitesync_test_p${process.pid}_`;
  let seq = 0;
  let stopping = false;
  let finishing = false;
  let madeByTests = 0;
  let made = 0;
  const clients: pg.Client[] = [];
  const connect = async () => {
    const c = new pg.Client({ connectionString: adminUrl, application_name: "sitesync-test-pool" });
    await c.connect();
    clients.push(c);
    return c;
  };
  const count = (kind: PoolKind) => readdirSync(join(dir, `ready-${kind}`)).length;
  const errors: string[] = [];
  /** One creator per kind: tops its kind up to the target, then looks again every 50 ms. */
  const creator = async (kind: PoolKind) => {
    if (kind === "migrated") await opts.templateMade;
    const c = await connect();
    while (!stopping) {
      if (count(kind) >= targets[kind]) {
        await Bun.sleep(50);
        continue;
      }
      // Empty ones are named as test/helpers/postgres.ts names its own (messages naming them are asserted).
      const name = `${kind === "migrated" ? prefix : emptyPrefix}${++seq}`;
      try {
        // file_copy: the template's files copied as they are, where the default (wal_log) writes each block to the WAL
        // too: 0.08 s of the server's CPU a copy against 0.13 (12 alternated pairs, load ~18).
        await c.query(`create database "${name}" ${kind === "migrated" ? `template "${template}" ` : ""}strategy file_copy`);
        writeFileSync(join(dir, `ready-${kind}`, name), "");
        made++;
      } catch (e) {
        // Another session on the template (a test's psql fallback copies it too): try again shortly.
        errors.push(String(e));
        await Bun.sleep(200);
      }
    }
  };
  /** Drops the released databases, one at a time (a few of these at the end, each taking its own), then looks again every 100 ms. */
  const dropper = async () => {
    const c = await connect();
    for (;;) {
      const names = readdirSync(join(dir, "drop"));
      for (const name of names) {
        try {
          renameSync(join(dir, "drop", name), join(dir, "dropping", name));
        } catch {
          continue; // another dropper took it
        }
        if (name.startsWith(`sitesync_t_r${process.pid}u`) || name.startsWith(`sitesync_test_r${process.pid}u`)) madeByTests++;
        await c.query(`drop database if exists "${name}" with (force)`).catch((e) => errors.push(String(e)));
        rmSync(join(dir, "dropping", name), { force: true });
      }
      if (names.length === 0) {
        if (finishing) return;
        await Bun.sleep(100);
      }
    }
  };
  const failed = (e: unknown) => void errors.push(`the pool's connection: ${e}`);
  // Databases of runs and test processes of this machine that are gone (SIGKILLed: nothing of theirs dropped them).
  const reap = async () => {
    sweeper ??= connect();
    const all = await (await sweeper).query<{ datname: string }>("select datname from pg_database where starts_with(datname, 'sitesync_')");
    for (const { datname } of all.rows) {
      const pid = ownerPid(datname);
      if (pid !== null && pid !== process.pid && !alive(pid)) writeFileSync(join(dir, "drop", datname), "");
    }
  };
  // Two creators of migrated copies (startServer() takes them too), one of empty databases.
  const loops = [
    creator("migrated").catch(failed),
    creator("migrated").catch(failed),
    creator("empty").catch(failed),
    dropper().catch(failed),
  ];
  let sweeper: Promise<pg.Client> | null = null;
  const sweeps: Promise<void>[] = [reap().catch(failed)];
  return {
    /** The tag of the runner's n-th test process (its databases' names carry it). */
    tagOf: (n: number) => `r${process.pid}u${n}`,
    /** The environment of one test process (unit `tag`): where to claim from. */
    unitEnv(tag: string): Record<string, string> {
      mkdirSync(join(dir, "taken", tag), { recursive: true });
      return { TEST_PG_POOL: dir, TEST_DB_TAG: tag };
    },
    /** Unit `tag` ended: what it left taken, and every database named with its tag, are dropped (in the background). */
    unitEnded(tag: string): void {
      const taken = join(dir, "taken", tag);
      for (const name of readdirSync(taken)) renameSync(join(taken, name), join(dir, "drop", name));
      rmSync(taken, { recursive: true, force: true });
      const sweep = async () => {
        sweeper ??= connect();
        const left = await (await sweeper).query<{ datname: string }>(
          "select datname from pg_database where starts_with(datname, $1) or starts_with(datname, $2)",
          [`sitesync_t_${tag}_`, `sitesync_test_${tag}_`],
        );
        for (const r of left.rows) writeFileSync(join(dir, "drop", r.datname), "");
      };
      sweeps.push(sweep().catch(failed));
    },
    /** Stops making databases and drops every one it made or was handed; what it did, and the errors seen meanwhile. */
    async stop(): Promise<{ taken: number; madeByTests: number; errors: string[] }> {
      stopping = true;
      await Promise.all([...loops.slice(0, 3), ...sweeps]);
      const taken = made - count("migrated") - count("empty");
      for (const kind of ["migrated", "empty"] as const)
        for (const name of readdirSync(join(dir, `ready-${kind}`))) renameSync(join(dir, `ready-${kind}`, name), join(dir, "drop", name));
      finishing = true;
      // What is left to drop, over four connections (dropping one took 0.4-1.5 s at load).
      await Promise.all([loops[3], ...[1, 2, 3].map(() => dropper().catch(failed))]);
      // Whatever is left of this run (a create whose file was never written, a dropper that failed, a test process's).
      try {
        const c = clients[0] ?? (await connect());
        const left = await c.query<{ datname: string }>(
          "select datname from pg_database where starts_with(datname, $1) or starts_with(datname, $2) or starts_with(datname, $3) or starts_with(datname, $4)",
          [prefix, emptyPrefix, `sitesync_t_r${process.pid}u`, `sitesync_test_r${process.pid}u`],
        );
        await Promise.all(left.rows.map((r) => c.query(`drop database if exists "${r.datname}" with (force)`).catch(failed)));
      } catch (e) {
        failed(e);
      }
      await Promise.all(clients.map((cl) => cl.end().catch(() => {})));
      return { taken, madeByTests, errors };
    },
  };
}

/**
 * The process whose end leaves database `name` garbage: the runner of a pool's, tagged or seeded one
 * (test/helpers/seeded-pg.ts), the test process of an untagged one, the creator of a per-process template; null for
 * names not made by the tests.
 */
export function ownerPid(name: string): number | null {
  const m =
    /^sitesync_tmpl_(?:run_)?(\d+)$/.exec(name) ??
    /^sitesync_(?:t|test)_[pr](\d+)(?:_\d+$|_seed_|u\d+_)/.exec(name) ??
    /^sitesync_(?:t|test)_(\d+)_\d+_[0-9a-z]+$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Is process `pid` running on this machine (another user's counts as running)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
