import type { LoadRequest } from "./load.ts";

// The benchmark's scenarios: what each sends, and the targets its service/baseline ratios must meet.

/** baseline: the textbook server; groupcommit: the same bare server with group commit (SQLite writes' reference). */
export type Side = "service" | "baseline" | "groupcommit";

/** What a scenario's request generator knows about the side it drives. */
export type ScenarioContext = {
  side: Side;
  /** Ids of the sites seeded on that side. */
  siteIds: number[];
  /** Unique per bench run, so domains created by different runs never collide. */
  runTag: string;
};

/** A target on a ratio: `service metric / reference metric` compared with `value`. */
export type Target = {
  metric: "rps" | "p99";
  op: ">=" | "<=";
  value: number;
  /** What the service figure is divided by (default: the baseline's figure in the same scenario). */
  against?: { scenario: string; side: Side };
};

export type Scenario = {
  name: string;
  description: string;
  /** Needs the sync API (POST /api/v1/sync/trigger/{site_id}). */
  needsSync?: boolean;
  /** SQLite: also measured on the bare group-commit peer (bench/baseline/server.ts --group-commit). */
  groupCommitPeer?: boolean;
  /** Runs against a service started with a sync worker ingesting a large day. */
  duringIngest?: boolean;
  /** Targets on SQLite (against the textbook bun:sqlite baseline). */
  targets: Target[];
  /** Targets on PostgreSQL (against the textbook node-postgres baseline) where they differ; default `targets`. */
  pgTargets?: Target[];
  /** Builds the request generator for one side; called once per side, so counters carry on. */
  generator: (ctx: ScenarioContext) => () => LoadRequest;
  /**
   * A mix of other scenarios: its service CPU per request is checked against the weighted sum of theirs
   * (same run) to show what the mix itself adds (e.g. reads costing more beside writes).
   */
  cpuParts?: { scenario: string; weight: number }[];
  /** Largest mix CPU / weighted parts CPU that meets the target. */
  cpuPartsMax?: number;
};

const pick = (ids: number[]) => ids[Math.floor(Math.random() * ids.length)]!;

const getOne = (ctx: ScenarioContext) => (): LoadRequest => ({ method: "GET", path: `/api/v1/sites/${pick(ctx.siteIds)}` });

const list = (): LoadRequest => ({ method: "GET", path: "/api/v1/sites?limit=50" });

function creates(ctx: ScenarioContext, scenario: string) {
  let n = 0;
  return (): LoadRequest => {
    const i = ++n;
    return {
      method: "POST",
      path: "/api/v1/sites",
      body: JSON.stringify({ domain: `sc-domain:${scenario}-${ctx.runTag}-${i}.bench.example`, name: `Bench ${scenario} ${i}` }),
    };
  };
}

export const scenarios: Scenario[] = [
  {
    name: "get_one",
    description: "GET /api/v1/sites/{id} of a random seeded site",
    targets: [{ metric: "rps", op: ">=", value: 0.85 }],
    generator: getOne,
  },
  {
    name: "list",
    description: "GET /api/v1/sites?limit=50: the first page of active sites by name",
    targets: [{ metric: "rps", op: ">=", value: 0.85 }],
    generator: () => list,
  },
  {
    name: "mixed",
    description: "90% get_one, 5% list, 5% create",
    targets: [{ metric: "rps", op: ">=", value: 0.85 }],
    cpuParts: [
      { scenario: "get_one", weight: 0.9 },
      { scenario: "list", weight: 0.05 },
      { scenario: "create", weight: 0.05 },
    ],
    cpuPartsMax: 1.1,
    generator: (ctx) => {
      const one = getOne(ctx);
      const create = creates(ctx, "mixed");
      return () => {
        const r = Math.random();
        return r < 0.9 ? one() : r < 0.95 ? list() : create();
      };
    },
  },
  {
    name: "create",
    description: "POST /api/v1/sites with a unique domain each time",
    groupCommitPeer: true,
    targets: [
      { metric: "rps", op: ">=", value: 2.0 },
      { metric: "p99", op: "<=", value: 0.15 },
      // Against the bare server with the same write path (group commit, async lock retry): the service's own cost.
      { metric: "rps", op: ">=", value: 0.85, against: { scenario: "create", side: "groupcommit" } },
      { metric: "p99", op: "<=", value: 1.5, against: { scenario: "create", side: "groupcommit" } },
    ],
    // The 2x / 0.15x targets are about the SQLite baseline's writers queueing on the file's one lock (busy
    // sleeps); PostgreSQL's textbook writers do not queue like that: there the target is the reads' one.
    pgTargets: [{ metric: "rps", op: ">=", value: 0.85 }],
    generator: (ctx) => creates(ctx, "create"),
  },
  {
    name: "sync_start",
    description: "POST /api/v1/sync/trigger/{random site}?days=1 (202 and 409 both count as success)",
    needsSync: true,
    targets: [],
    generator: (ctx) => () => ({ method: "POST", path: `/api/v1/sync/trigger/${pick(ctx.siteIds)}?days=1` }),
  },
  {
    name: "create_during_ingest",
    description: "creates while a sync worker ingests a large search-analytics day (baseline: plain creates)",
    needsSync: true,
    duringIngest: true,
    targets: [{ metric: "p99", op: "<=", value: 3.0, against: { scenario: "create", side: "service" } }],
    generator: (ctx) => creates(ctx, "ingest"),
  },
];

/** Scenario names in run order. */
export const scenarioNames = scenarios.map((s) => s.name);
