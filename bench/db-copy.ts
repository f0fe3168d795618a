import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { findPgBin, startCluster, stopCluster, type Cluster } from "../scripts/pg-cluster.ts";
import { seedAnalytics } from "./seed-analytics.ts";

// `bun run bench:copy`: `bun run db:copy` both ways on a synced database of `--rows` rows (the demo source's
// rows, day markers and query-search index, as the analytics bench seeds them): SQLite -> PostgreSQL into a new
// database, then that database -> a new SQLite file. Each copy is the real CLI in its own process, timed from
// spawn to exit (migrations, every table, sequences, search index, count verification), with its CPU time.
//
//   bun run bench:copy [--rows 1000000] [--days 90] [--batch-size 5000] [--pg postgres://…]
//
// Without --pg a throw-away cluster of Debian's PostgreSQL is started (scripts/pg-cluster.ts: fsync off).

const flags = z
  .object({
    rows: z.coerce.number().int().min(1000).default(1_000_000),
    days: z.coerce.number().int().min(1).default(90),
    "batch-size": z.coerce.number().int().min(1).max(50_000).default(5000),
    pg: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL")
      .optional(),
  })
  .parse(
    parseArgs({
      options: Object.fromEntries(["rows", "days", "batch-size", "pg"].map((k) => [k, { type: "string" as const }])),
      strict: true,
    }).values,
  );

type Run = { direction: string; code: number; wallS: number; cpuS: number; copied: number; verified: boolean; summary: string };

/** Runs the db:copy CLI to the end; wall time from spawn to exit, CPU time of the process. */
async function copy(direction: string, from: string, to: string): Promise<Run> {
  const started = performance.now();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "../src/db/copy/cli.ts"),
      "--from",
      from,
      "--to",
      to,
      "--progress",
      "none",
      "--batch-size",
      String(flags["batch-size"]),
    ],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const wallS = (performance.now() - started) / 1000;
  const usage = proc.resourceUsage();
  const cpuS = usage ? Number(usage.cpuTime.total) / 1e6 : NaN;
  const m = /copied (\d+) rows in [\d.]+ s \(\d+ rows\/s\); every table's row count matches/.exec(out);
  if (code !== 0 || !m) throw new Error(`${direction}: db:copy exited ${code}\n${out}${err}`);
  return { direction, code, wallS, cpuS, copied: Number(m[1]), verified: true, summary: out.trim() };
}

async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(`create database "${name}"`);
  } finally {
    await c.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

const dir = mkdtempSync(join(tmpdir(), "sitesync-bench-copy-"));
let cluster: Cluster | null = null;
try {
  const source = join(dir, "synced.db");
  let t = performance.now();
  const seeded = await seedAnalytics(source, { rows: flags.rows, days: flags.days, domain: "sc-domain:bench-copy.example" });
  console.log(`seeded ${seeded.rows} query detail rows over ${seeded.days} days in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  if (!flags.pg) {
    if (!findPgBin()) throw new Error("no --pg URL and no PostgreSQL under /usr/lib/postgresql (apt-get install -y postgresql)");
    cluster = startCluster();
  }
  const adminUrl = flags.pg ?? cluster!.url;
  const url = await createDatabase(adminUrl, `sitesync_bench_copy_${process.pid}_${Date.now().toString(36)}`);
  const back = join(dir, "back.db");
  t = performance.now();
  const runs = [await copy("SQLite -> PostgreSQL", source, url), await copy("PostgreSQL -> SQLite", url, back)];

  console.log(`\n${runs[0]!.summary}\n`);
  console.log("| copy | rows copied (all tables) | wall time | rows/s | copier CPU | counts verified |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const r of runs) {
    console.log(
      `| ${r.direction} | ${r.copied.toLocaleString("en-US")} | ${r.wallS.toFixed(1)} s | ${Math.round(r.copied / r.wallS).toLocaleString("en-US")} | ${r.cpuS.toFixed(1)} s | ${r.verified ? "yes" : "NO"} |`,
    );
  }
  if (flags.pg) {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`drop database "${new URL(url).pathname.slice(1)}" with (force)`).finally(() => c.end());
  }
} finally {
  if (cluster) stopCluster(cluster.dir);
  rmSync(dir, { recursive: true, force: true });
}
