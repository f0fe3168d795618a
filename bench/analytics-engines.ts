import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { backendCpu, backendDelta, treeCpuSeconds } from "./cpu.ts";
import { answer, bytesPerRow, closeMcpClients, pct, type Scenario, scenarios, seedOrReuse, send } from "./analytics.ts";
import { startService, type RunningServer } from "./processes.ts";

// `bun bench/analytics-engines.ts`: bench:analytics's requests on SQLite and PostgreSQL side by side, in one
// run: both services up at once on the same seeded data (a kept SQLite file and a kept PostgreSQL database,
// seeded on the first run), and each scenario's requests alternated between the two (SQLite, PostgreSQL,
// SQLite, ...), so the machine's load falls on both alike. The figure to read is the ratio PostgreSQL /
// SQLite per scenario (issue 18: "PostgreSQL within 2x of SQLite on each, or the reason shown"). Beside the
// times, the CPU per request: the service's process tree (SQLite's query threads and processes included) and,
// for PostgreSQL, its database's backends (/proc of the pids pg_stat_activity lists; the server is on this machine).
//
//   bun bench/analytics-engines.ts --db file.db --database postgres://… --seed-json pg.seed.json
//                                  [--rows 1000000] [--days 100] [--data anchors] [--requests 5]
//                                  [--slow-requests 3] [--workers 2] [--warmups 2] [--only name,name] [--out file.json]
//                                  [--pg-root /path/to/another/checkout] [--base-database postgres://…]
//
// --pg-root: a third service, another checkout's (e.g. main's) on the same PostgreSQL database, its requests
// alternated with the two others': PostgreSQL before and after a change in one run, each against the same SQLite.
// --base-database: the third service on another database holding the same rows (e.g. the copy in a cluster with
// other server settings), this checkout's unless --pg-root: two servers' settings compared in one run.

const flagsSchema = z.object({
  db: z.string().min(1),
  database: z.string().regex(/^postgres(ql)?:\/\//),
  "seed-json": z.string().min(1),
  rows: z.coerce.number().int().min(100).max(50_000_000).default(1_000_000),
  days: z.coerce.number().int().min(30).max(480).default(100),
  data: z.enum(["demo", "anchors"]).default("anchors"),
  requests: z.coerce.number().int().min(1).max(10_000).default(5),
  "slow-requests": z.coerce.number().int().min(1).max(1000).default(3),
  workers: z.coerce.number().int().min(1).max(64).default(2),
  warmups: z.coerce.number().int().min(0).max(1000).default(2),
  only: z.string().optional(),
  "pg-root": z.string().min(1).optional(),
  "base-database": z
    .string()
    .regex(/^postgres(ql)?:\/\//)
    .optional(),
  out: z
    .string()
    .min(1)
    .default(join(import.meta.dir, "results/analytics-engines.json")),
});

function readFlags() {
  const raw = parseArgs({
    options: Object.fromEntries(Object.keys(flagsSchema.shape).map((k) => [k, { type: "string" as const }])),
    strict: true,
  }).values;
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`--${String(i.path[0])}: ${i.message}`);
    process.exit(1);
  }
  return parsed.data;
}

type Side = {
  name: "sqlite" | "pg" | "pg-base";
  url: string;
  pid: number;
  scenario: Scenario;
  times: number[];
  errors: number;
  /** CPU seconds summed over the timed requests: the service's tree, the database's backends (PostgreSQL). */
  cpu: { service: number; backends: number };
  /** The CPU seconds of each backend of the side's database (PostgreSQL). */
  backends?: () => Promise<Map<number, number>>;
};

/** One request of `side`, timed, with its CPU; a non-200 answer counts as an error. */
async function timed(side: Side): Promise<void> {
  const backends = side.backends;
  const b0 = backends ? await backends() : null;
  const c0 = treeCpuSeconds(side.pid) ?? 0;
  const t = performance.now();
  const status = await send(side.url, side.scenario.req);
  side.times.push(performance.now() - t);
  side.cpu.service += (treeCpuSeconds(side.pid) ?? 0) - c0;
  if (b0 && backends) side.cpu.backends += backendDelta(b0, await backends());
  if (status !== 200) side.errors++;
}

const summary = (s: Side) => {
  const v = [...s.times].sort((a, b) => a - b);
  const n = v.length;
  return {
    p50Ms: pct(v, 50),
    p99Ms: pct(v, 99),
    n,
    errors: s.errors,
    serviceCpuMs: (s.cpu.service * 1000) / n,
    backendCpuMs: (s.cpu.backends * 1000) / n,
  };
};

async function main() {
  const flags = readFlags();
  const servers: RunningServer[] = [];
  try {
    const seeds = {
      sqlite: await seedOrReuse({ engine: "sqlite", dbPath: flags.db, seedFile: `${flags.db}.seed.json`, ...flags }),
      pg: await seedOrReuse({ engine: "pg", dbPath: flags.database, seedFile: flags["seed-json"], ...flags }),
    };
    const sizes = {
      sqlite: await bytesPerRow(flags.db, seeds.sqlite.seed.rows),
      pg: await bytesPerRow(flags.database, seeds.pg.seed.rows),
    };
    for (const [engine, size] of Object.entries(sizes))
      console.log(
        `bytes_per_row (${engine}) ${size.perRow.toFixed(1)}: ${Object.entries(size.tables)
          .filter(([, v]) => v / seeds.sqlite.seed.rows >= 0.1)
          .map(([k, v]) => `${k} ${(v / seeds.sqlite.seed.rows).toFixed(1)}`)
          .join(", ")}`,
      );
    const sqlite = await startService({ dbPath: flags.db, workers: flags.workers, syncWorkers: 0 });
    servers.push(sqlite);
    const pgServer = await startService({ dbPath: flags.database, workers: flags.workers, syncWorkers: 0 });
    servers.push(pgServer);
    const baseDatabase = flags["base-database"] ?? flags.database;
    const pgBase =
      flags["pg-root"] || flags["base-database"]
        ? await startService({ dbPath: baseDatabase, workers: flags.workers, syncWorkers: 0, root: flags["pg-root"] })
        : null;
    if (pgBase) servers.push(pgBase);
    const admins: pg.Client[] = [];
    const backendsOf = async (url: string) => {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      admins.push(admin);
      const dbName = new URL(url).pathname.slice(1);
      return () => backendCpu(admin, dbName);
    };
    const backends = await backendsOf(flags.database);
    const baseBackends = baseDatabase === flags.database ? backends : await backendsOf(baseDatabase);
    const only = flags.only ? new Set(flags.only.split(",")) : null;
    const pgList = new Map(scenarios(seeds.pg.seed).map((s) => [s.name, s]));
    const results = [];
    console.log(
      `${"scenario".padEnd(28)} ${"SQLite p50 / p99 ms".padStart(22)} ${"PostgreSQL p50 / p99 ms".padStart(24)}  PG/SQLite p50  ${"CPU ms/req: SQLite | PG svc + backends".padStart(38)}  load${pgBase ? `  | base: ${"p50 / p99 ms".padStart(16)}  PG/SQLite p50  CPU svc + backends` : ""}`,
    );
    for (const s of scenarios(seeds.sqlite.seed)) {
      if (only && !only.has(s.name)) continue;
      const sides: Side[] = [
        { name: "sqlite", url: sqlite.url, pid: sqlite.pid, scenario: s, times: [], errors: 0, cpu: { service: 0, backends: 0 } },
        {
          name: "pg",
          url: pgServer.url,
          pid: pgServer.pid,
          scenario: pgList.get(s.name)!,
          times: [],
          errors: 0,
          cpu: { service: 0, backends: 0 },
          backends,
        },
      ];
      if (pgBase)
        sides.push({
          ...sides[1]!,
          name: "pg-base",
          url: pgBase.url,
          pid: pgBase.pid,
          times: [],
          cpu: { service: 0, backends: 0 },
          backends: baseBackends,
        });
      // The same answer from both engines (the seed's rows copied or written alike): compared once per scenario.
      const answers = await Promise.all(sides.map((side) => answer(side.url, side.scenario.req)));
      const same = answers[0] !== null && answers[0] === answers[1];
      if (answers.length > 2 && answers[2] !== answers[0]) console.log(`  ${s.name}: the base's answer differs from SQLite's`);
      if (!same) {
        const [x, y] = answers.map((a) => a ?? "(error)");
        let at = 0;
        while (at < x!.length && x![at] === y![at]) at++;
        console.log(
          `  ${s.name}: answers differ at ${at}: SQLite …${x!.slice(Math.max(0, at - 60), at + 60)}… PostgreSQL …${y!.slice(Math.max(0, at - 60), at + 60)}…`,
        );
      }
      for (let i = 0; i < flags.warmups; i++) for (const side of sides) await send(side.url, side.scenario.req);
      for (const side of sides) side.times.length = 0;
      const n = s.slow ? flags["slow-requests"] : flags.requests;
      // Alternate which side goes first, so neither always follows the other's cache effects.
      for (let i = 0; i < n; i++) for (const side of i % 2 ? [...sides].reverse() : sides) await timed(side);
      const [a, b, base] = sides.map(summary) as [ReturnType<typeof summary>, ReturnType<typeof summary>, ReturnType<typeof summary>?];
      const load = loadavg()[0]!;
      results.push({
        name: s.name,
        what: s.what,
        sqlite: a,
        pg: b,
        ratioP50: b.p50Ms / a.p50Ms,
        sameAnswer: same,
        ...(base ? { pgBase: base, baseRatioP50: base.p50Ms / a.p50Ms } : {}),
        load,
      });
      const fmt = (x: typeof a) => `${x.p50Ms.toFixed(1)} / ${x.p99Ms.toFixed(1)}${x.errors ? ` (${x.errors} err)` : ""}`;
      const baseCols = base
        ? `  | ${fmt(base).padStart(27)}  ${(base.p50Ms / a.p50Ms).toFixed(2).padStart(8)}x  ${`${base.serviceCpuMs.toFixed(1)} + ${base.backendCpuMs.toFixed(1)}`.padStart(16)}`
        : "";
      console.log(
        `${s.name.padEnd(28)} ${fmt(a).padStart(22)} ${fmt(b).padStart(24)}  ${(b.p50Ms / a.p50Ms).toFixed(2).padStart(8)}x  ${`${a.serviceCpuMs.toFixed(1)} | ${b.serviceCpuMs.toFixed(1)} + ${b.backendCpuMs.toFixed(1)}`.padStart(38)}  ${load.toFixed(1)}${same ? "" : "  (answers differ)"}${baseCols}`,
      );
    }
    for (const admin of admins) await admin.end();
    mkdirSync(dirname(flags.out), { recursive: true });
    writeFileSync(
      flags.out,
      JSON.stringify(
        {
          at: new Date().toISOString(),
          options: { ...flags, database: "postgres://…", ...(flags["base-database"] ? { "base-database": "postgres://…" } : {}) },
          sizes,
          results,
        },
        null,
        2,
      ),
    );
    console.log(`wrote ${flags.out}`);
  } finally {
    await closeMcpClients();
    for (const s of servers) await s.stop();
  }
}

await main();
