import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCheckpointer, walSize } from "../src/db/sqlite/checkpoint.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { defaultPragmas } from "../src/db/sqlite/open.ts";
import { tempDir } from "./helpers/db.ts";

// The WAL stays bounded under a mixed load with readers always active in several processes, because
// one process runs the checkpointer (and writers leave it gaps once the WAL is past twice its
// truncate size); without it the same load grows the WAL past the bound.

// bunfig.toml's [test] timeout is not read by Bun 1.4.5: set the per-test default here.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, "..");
const dir = tempDir("sitesync-checkpoint-");
afterAll(() => dir.cleanup());

const MiB = 1024 * 1024;
const TRUNCATE_BYTES = 1 * MiB;
const BOUND = 16 * MiB;
const WRITERS = 2;
const READERS = 3;
// About 100 MiB of WAL frames in all (6 x the bound): far past it if nobody checkpoints (the control run
// stops once it is past the bound). 1,600 commits (a third less CPU) were tried: two CI runs on a quiet
// machine then saw 15.7 and 20.5 MiB with the checkpointer (bound 16), against 7.9 MiB at 2,400 before.
const COMMITS_PER_WRITER = 2400;

// One load process. Writers commit batches of synced rows through db.write (several clients, so
// group commit applies) and note the WAL size after each commit; readers keep a read transaction
// open almost all the time, as a reporting query would.
const childCode = `
import { openDb } from ${JSON.stringify(join(root, "src/db/index.ts"))};
import { walSize } from ${JSON.stringify(join(root, "src/db/sqlite/checkpoint.ts"))};
import { gscPages, sites } from ${JSON.stringify(join(root, "src/db/sqlite/schema.ts"))};
const [role, path, commits, walYieldBytes] = process.argv.slice(2);
const db = openDb({ path, role: "test", pragmas: { walAutocheckpoint: 0 }, walYieldBytes: Number(walYieldBytes) });
let maxWal = 0;
if (role === "writer") {
  const siteId = await db.write((tx) =>
    tx.insert(sites).values({ domain: "sc-domain:w" + process.pid + ".example", name: "w" }).returning({ id: sites.id }).get().id);
  let n = 0;
  const client = async () => {
    while (n < Number(commits)) {
      const k = n++;
      // 20 rows in one statement (the same pages written as 20 statements, a third less of the writers' CPU).
      // A random text first: each row lands on its own page of the (site_id, page) index, as the old detail
      // table's rows did in its indexes (WAL frames are whole pages).
      // gsc_pages: a plain dictionary with one unique (site_id, page) index (gsc_queries also feeds the query-search index).
      const rows = Array.from({ length: 20 }, (_, i) => ({
        site_id: siteId, page: Math.random().toString(36).repeat(3) + " query " + k + " " + i + " " + Math.random().toString(36).repeat(3),
      }));
      await db.write((tx) => tx.insert(gscPages).values(rows).run());
      maxWal = Math.max(maxWal, walSize(path));
    }
  };
  await Promise.all([client(), client(), client(), client()]);
} else {
  const begin = db.raw.reader.prepare("BEGIN");
  const commit = db.raw.reader.prepare("COMMIT");
  // One index lookup takes the snapshot; the sleep holds it. A count(*) here scanned the whole table every
  // time: ~10 s of CPU per reader a run, on the cores the checkpointer needs (the WAL's peaks come from it
  // getting no core in time).
  const q = db.raw.reader.prepare("select max(id) as m from gsc_pages");
  for (;;) {
    begin.run();
    q.get();
    Bun.sleepSync(5 + Math.random() * 25);
    commit.run();
    await new Promise((r) => setImmediate(r));
    if (await Bun.file(path + ".stop").exists()) break;
  }
}
db.close();
console.log(JSON.stringify({ maxWal }));
`;
const childPath = join(dir.dir, "load-child.ts");
writeFileSync(childPath, childCode);

/**
 * Runs the load on a fresh file; returns the largest WAL size anyone saw. With `stopAbove`, the
 * writers are killed once the WAL passes that size (the control run needs to go no further).
 */
async function runLoad(name: string, opts: { checkpointer: boolean; stopAbove?: number }) {
  const path = join(dir.dir, `${name}.db`);
  migrate(path);
  const checkpointer = opts.checkpointer
    ? startCheckpointer(path, defaultPragmas, { intervalMs: 50, truncateBytes: TRUNCATE_BYTES, optimizeIntervalMs: 3_600_000 })
    : null;
  let sampled = 0;
  let killed = false;
  const sampler = setInterval(() => {
    sampled = Math.max(sampled, walSize(path));
    if (opts.stopAbove !== undefined && sampled > opts.stopAbove && !killed) {
      killed = true;
      for (const w of writers) w.kill("SIGKILL");
    }
  }, 20);
  const spawn = (role: string) =>
    Bun.spawn([process.execPath, childPath, role, path, String(COMMITS_PER_WRITER), String(opts.checkpointer ? 2 * TRUNCATE_BYTES : 0)], {
      stdout: "pipe",
      stderr: "inherit",
    });
  const readers = Array.from({ length: READERS }, () => spawn("reader"));
  const writers = Array.from({ length: WRITERS }, () => spawn("writer"));
  try {
    const reports = await Promise.all(
      writers.map(async (w) => {
        const out = await new Response(w.stdout).text();
        const code = await w.exited;
        if (killed) return { maxWal: 0 };
        expect(code).toBe(0);
        return JSON.parse(out) as { maxWal: number };
      }),
    );
    writeFileSync(`${path}.stop`, "");
    for (const r of readers) expect(await r.exited).toBe(0);
    return {
      maxWal: Math.max(sampled, checkpointer?.stats.maxWalBytes ?? 0, ...reports.map((r) => r.maxWal)),
      truncates: checkpointer?.stats.truncates ?? 0,
    };
  } finally {
    clearInterval(sampler);
    for (const p of [...readers, ...writers]) if (p.exitCode === null) p.kill("SIGKILL");
    checkpointer?.stop();
  }
}

describe("WAL growth under a long mixed load with readers always active", () => {
  test("with the checkpointer the WAL stays under the bound; without it the same load passes it", async () => {
    const bounded = await runLoad("with-checkpointer", { checkpointer: true });
    // Stopped once past the bound, which is all the control has to show (it ran on to 1.5 x the bound: a third more
    // of its writes).
    const unbounded = await runLoad("without-checkpointer", { checkpointer: false, stopAbove: BOUND });
    console.log(
      `max WAL with checkpointer ${(bounded.maxWal / MiB).toFixed(1)} MiB (${bounded.truncates} truncates), ` +
        `without ${(unbounded.maxWal / MiB).toFixed(1)} MiB; bound ${BOUND / MiB} MiB`,
    );
    expect(bounded.truncates).toBeGreaterThan(0);
    expect(bounded.maxWal).toBeLessThan(BOUND);
    // The control: the load really is big enough to break the bound when nobody checkpoints.
    expect(unbounded.maxWal).toBeGreaterThan(BOUND);
    // ~18 s on a quiet 2-core machine, ~50 s when other suites share it: room for the slow case.
  }, 180_000);
});

describe("the WAL started over without shortening the file", () => {
  test("once the log holds half of truncateBytes a RESTART starts it over: the next commits write from the file's start, the file keeps its size", async () => {
    const path = join(dir.dir, "restart.db");
    migrate(path);
    const db = new Database(path, { strict: true });
    db.run("PRAGMA wal_autocheckpoint = 0");
    db.run("CREATE TABLE filler (id INTEGER PRIMARY KEY, b BLOB)");
    // ~700 KiB of log: past half of 1 MiB, under 1 MiB (no TRUNCATE).
    const add = db.prepare("INSERT INTO filler (b) VALUES (randomblob(3000))");
    for (let i = 0; i < 60; i++) add.run();
    const before = walSize(path);
    expect(before).toBeGreaterThan(TRUNCATE_BYTES / 2);
    expect(before).toBeLessThan(TRUNCATE_BYTES);
    const checkpointer = startCheckpointer(path, defaultPragmas, {
      intervalMs: 50,
      truncateBytes: TRUNCATE_BYTES,
      optimizeIntervalMs: 3_600_000,
    });
    try {
      for (let i = 0; i < 200 && checkpointer.stats.restarts === 0; i++) await Bun.sleep(20);
      expect(checkpointer.stats.restarts).toBeGreaterThan(0);
      expect(checkpointer.stats.truncates).toBe(0);
      // As many pages again: written over the old frames from the file's start, so the file does not grow.
      for (let i = 0; i < 60; i++) add.run();
      expect(walSize(path)).toBe(before);
    } finally {
      checkpointer.stop(false);
      db.close();
    }
  });
});
