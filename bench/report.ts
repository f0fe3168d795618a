import type { Engine } from "../src/db/engine.ts";
import type { LoadResult } from "./load.ts";
import type { Scenario, Side, Target } from "./scenarios.ts";

// Turns measurements into ratios, target verdicts and the terminal table.

export type SideResult = LoadResult & {
  /**
   * CPU time of the side's whole process tree per request served, in microseconds (Linux only); on
   * PostgreSQL plus the database server's processes when the bench started the server (dbCpuUsPerReq).
   */
  cpuUsPerReq: number | null;
  /** PostgreSQL only: the part of cpuUsPerReq spent by the database server's processes (null: not measured). */
  dbCpuUsPerReq?: number | null;
  /**
   * CPU time of the load generator (this bench process: autocannon, whose HTTP parser is JavaScript) per
   * request, in microseconds: it runs on the same cores as the side, so what it spends on a side's answers
   * (more headers, larger bodies) is CPU that side does not get.
   */
  loadCpuUsPerReq: number | null;
  /** Measurements combined into this one (--rounds). */
  rounds: number;
  /** Each measured window's figures, in run order. */
  windows?: { rps: number; p99Ms: number; cpuUsPerReq: number | null }[];
};

export type TargetCheck = {
  /** e.g. "rps ratio", "p99 vs create (service)", "5xx + socket + lock errors". */
  what: string;
  target: string;
  actual: number | null;
  met: boolean | null;
};

/** One side's figures on PostgreSQL divided by the same side's on SQLite, measured in the same run. */
export type EngineRatios = { rps: number; p99: number; cpu: number | null };

export type ScenarioResult = {
  name: string;
  /** The engine both sides ran on. */
  engine: Engine;
  description: string;
  skipped?: string;
  /** Why the scenario could not be measured (an error on the way: e.g. a 500 where a sync should start). */
  failed?: string;
  service?: SideResult;
  baseline?: SideResult;
  /** SQLite, scenarios with groupCommitPeer: the bare group-commit server. */
  groupcommit?: SideResult;
  /** service / baseline. */
  ratios?: { rps: number; p50: number; p99: number };
  /** service / groupcommit. */
  ratiosGroupCommit?: { rps: number; p50: number; p99: number };
  targets: TargetCheck[];
  notes: string[];
  /** Extra facts of the scenario (e.g. rows ingested meanwhile). */
  extra?: Record<string, unknown>;
  /** PostgreSQL results of a run that measured SQLite too: each side here / the same side there. */
  vsSqlite?: { service?: EngineRatios; baseline?: EngineRatios };
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Combines the rounds of one side: medians of rates and percentiles, sums of counts, the worst max. */
export function combineRounds(
  rounds: { load: LoadResult; cpuUsPerReq: number | null; dbCpuUsPerReq?: number | null; loadCpuUsPerReq: number | null }[],
): SideResult {
  const loads = rounds.map((r) => r.load);
  const sum = (f: (r: LoadResult) => number) => loads.reduce((n, r) => n + f(r), 0);
  const statuses: Record<string, number> = {};
  for (const r of loads) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const cpus = rounds.map((r) => r.cpuUsPerReq).filter((c): c is number => c !== null);
  return {
    requests: sum((r) => r.requests),
    durationSec: sum((r) => r.durationSec),
    rps: median(loads.map((r) => r.rps)),
    p50Ms: median(loads.map((r) => r.p50Ms)),
    p99Ms: median(loads.map((r) => r.p99Ms)),
    maxMs: Math.max(...loads.map((r) => r.maxMs)),
    statuses,
    ok2xx: sum((r) => r.ok2xx),
    conflict409: sum((r) => r.conflict409),
    other4xx: sum((r) => r.other4xx),
    server5xx: sum((r) => r.server5xx),
    socketErrors: sum((r) => r.socketErrors),
    timeouts: sum((r) => r.timeouts),
    lockErrors: sum((r) => r.lockErrors),
    cpuUsPerReq: cpus.length === rounds.length ? median(cpus) : null,
    ...(rounds.some((r) => r.dbCpuUsPerReq !== undefined)
      ? { dbCpuUsPerReq: medianOrNull(rounds.map((r) => r.dbCpuUsPerReq ?? null)) }
      : {}),
    loadCpuUsPerReq: medianOrNull(rounds.map((r) => r.loadCpuUsPerReq)),
    rounds: rounds.length,
    // Each window's own figures, in run order: how much a side moved between its windows (the method's noise).
    windows: rounds.map((r) => ({ rps: r.load.rps, p99Ms: r.load.p99Ms, cpuUsPerReq: r.cpuUsPerReq })),
  };
}

/**
 * With two rounds or more: the service's rate over the reference's round by round (each pair of windows measured next
 * to each other), so a reader sees how far one draw strays; null with one round.
 */
export function roundsNote(against: string, service: SideResult, other: SideResult): string | null {
  const a = service.windows ?? [];
  const b = other.windows ?? [];
  if (a.length < 2 || a.length !== b.length) return null;
  const ratios = a.map((w, i) => w.rps / b[i]!.rps);
  const fmt = (x: number) => `${x.toFixed(2)}x`;
  return `rps ratio ${against} by round: ${ratios.map(fmt).join(" ")} (min ${fmt(Math.min(...ratios))}, max ${fmt(Math.max(...ratios))})`;
}

const medianOrNull = (xs: (number | null)[]) => (xs.every((x): x is number => x !== null) ? median(xs) : null);

/** service / baseline for throughput and latency. */
export function ratiosOf(service: SideResult, baseline: SideResult) {
  const div = (a: number, b: number) => (b === 0 ? Number.NaN : a / b);
  return { rps: div(service.rps, baseline.rps), p50: div(service.p50Ms, baseline.p50Ms), p99: div(service.p99Ms, baseline.p99Ms) };
}

function reference(t: Target, r: ScenarioResult, all: Map<string, ScenarioResult>): SideResult | undefined {
  return t.against ? all.get(t.against.scenario)?.[t.against.side] : r.baseline;
}

const describeRef = (t: Target, scenario: string) =>
  t.against && (t.against.scenario !== scenario || t.against.side !== "baseline")
    ? `${t.metric} vs ${t.against.scenario} (${t.against.side})`
    : `${t.metric} ratio`;

/**
 * Checks a scenario's ratio targets (`targets`: the engine's, default the scenario's SQLite ones), plus the
 * rule for every scenario: no 5xx, socket or lock errors.
 */
export function checkTargets(sc: Scenario, r: ScenarioResult, all: Map<string, ScenarioResult>, targets = sc.targets): TargetCheck[] {
  if (!r.service) return [];
  const service = r.service;
  const checks: TargetCheck[] = targets.map((t) => {
    const ref = reference(t, r, all);
    const mine = t.metric === "rps" ? service.rps : service.p99Ms;
    const theirs = ref ? (t.metric === "rps" ? ref.rps : ref.p99Ms) : undefined;
    const actual = theirs ? mine / theirs : null;
    const met = actual === null ? null : t.op === ">=" ? actual >= t.value : actual <= t.value;
    return { what: describeRef(t, sc.name), target: `${t.op} ${t.value.toFixed(2)}x`, actual, met };
  });
  if (sc.cpuParts) checks.push(cpuVsParts(sc.cpuParts, sc.cpuPartsMax ?? 1.1, r, all));
  const errors = service.server5xx + service.socketErrors + service.lockErrors;
  checks.push({ what: "service 5xx + socket + lock errors", target: "= 0", actual: errors, met: errors === 0 });
  return checks;
}

/**
 * A mix's service CPU per request against the weighted sum of its parts' (the same run); n/a when a
 * part was not measured. The baseline's own figure is added as a note, for the interaction it has too.
 */
export function cpuVsParts(
  parts: { scenario: string; weight: number }[],
  max: number,
  r: ScenarioResult,
  all: Map<string, ScenarioResult>,
): TargetCheck {
  const of = (side: "service" | "baseline", res: ScenarioResult | undefined) => res?.[side]?.cpuUsPerReq ?? null;
  const weighted = (side: "service" | "baseline") => {
    let sum = 0;
    for (const p of parts) {
      const cpu = of(side, all.get(p.scenario));
      if (cpu === null) return null;
      sum += p.weight * cpu;
    }
    return sum;
  };
  const what = `cpu vs weighted parts (${parts.map((p) => `${p.weight} ${p.scenario}`).join(" + ")})`;
  const mine = of("service", r);
  const sum = weighted("service");
  const actual = mine === null || sum === null || sum === 0 ? null : mine / sum;
  const base = of("baseline", r);
  const baseSum = weighted("baseline");
  if (base !== null && baseSum) r.notes.push(`baseline cpu vs its weighted parts: ${(base / baseSum).toFixed(2)}x`);
  return { what, target: `<= ${max.toFixed(2)}x`, actual, met: actual === null ? null : actual <= max };
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : "n/a");

const baseColumns = [
  "scenario",
  "side",
  "req/s",
  "p50 ms",
  "p99 ms",
  "max ms",
  "2xx",
  "409",
  "4xx",
  "5xx",
  "sock err",
  "cpu µs/req",
  "gen µs/req",
];
const dbColumn = "of which pg";
const us = (n: number | null | undefined) => (n === null || n === undefined ? "n/a" : n.toFixed(1));

function row(name: string, side: Side, s: SideResult, dbCpu: boolean): string[] {
  const cells = [
    name,
    side,
    int(s.rps),
    ms(s.p50Ms),
    ms(s.p99Ms),
    ms(s.maxMs),
    int(s.ok2xx),
    int(s.conflict409),
    int(s.other4xx),
    int(s.server5xx),
    int(s.socketErrors),
    us(s.cpuUsPerReq),
    us(s.loadCpuUsPerReq),
  ];
  return dbCpu ? [...cells, us(s.dbCpuUsPerReq)] : cells;
}

/**
 * The results as an aligned text table, with ratio lines and target verdicts under each scenario.
 * `dbCpu`: a last column with the PostgreSQL server's part of the CPU per request.
 */
export function formatTable(results: ScenarioResult[], opts: { dbCpu?: boolean } = {}): string {
  const dbCpu = opts.dbCpu ?? false;
  const columns = dbCpu ? [...baseColumns, dbColumn] : baseColumns;
  const rows: (string[] | string)[] = [columns];
  for (const r of results) {
    if (r.skipped) {
      rows.push(`${r.name}: skipped: ${r.skipped}`);
      continue;
    }
    if (r.failed) {
      rows.push(`${r.name}: FAILED: ${r.failed}`);
      continue;
    }
    if (r.service) rows.push(row(r.name, "service", r.service, dbCpu));
    if (r.baseline) rows.push(row(r.service ? "" : r.name, "baseline", r.baseline, dbCpu));
    if (r.ratios) {
      const cells = ["", "ratio", ratio(r.ratios.rps), ratio(r.ratios.p50), ratio(r.ratios.p99)];
      rows.push([...cells, ...Array<string>(columns.length - cells.length).fill("")]);
    }
    if (r.groupcommit) rows.push(row("", "groupcommit", r.groupcommit, dbCpu));
    if (r.ratiosGroupCommit) {
      const g = r.ratiosGroupCommit;
      const cells = ["", "ratio gc", ratio(g.rps), ratio(g.p50), ratio(g.p99)];
      rows.push([...cells, ...Array<string>(columns.length - cells.length).fill("")]);
    }
    for (const t of r.targets) {
      const verdict = t.met === null ? "n/a" : t.met ? "met" : "NOT MET";
      const actual = t.actual === null ? "n/a" : t.what.includes("errors") ? String(t.actual) : ratio(t.actual);
      rows.push(`    target ${t.what} ${t.target}: ${actual} ${verdict}`);
    }
    for (const n of r.notes) rows.push(`    note: ${n}`);
  }
  return align(rows, columns.length);
}

function align(rows: (string[] | string)[], n: number): string {
  const cells = rows.filter((r): r is string[] => Array.isArray(r));
  const widths = Array.from({ length: n }, (_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return rows
    .map((r) =>
      typeof r === "string"
        ? r
        : r
            .map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
            .join("  ")
            .trimEnd(),
    )
    .join("\n");
}

/** Each side's PostgreSQL figures over its SQLite figures of the same scenario, same run. */
export function vsOtherEngine(pg: ScenarioResult, sqlite: ScenarioResult): ScenarioResult["vsSqlite"] {
  const div = (a: number, b: number) => (b === 0 ? Number.NaN : a / b);
  const one = (a?: SideResult, b?: SideResult): EngineRatios | undefined =>
    a && b
      ? {
          rps: div(a.rps, b.rps),
          p99: div(a.p99Ms, b.p99Ms),
          cpu: a.cpuUsPerReq === null || b.cpuUsPerReq === null ? null : div(a.cpuUsPerReq, b.cpuUsPerReq),
        }
      : undefined;
  return { service: one(pg.service, sqlite.service), baseline: one(pg.baseline, sqlite.baseline) };
}

/** The engines side by side: per scenario and side, PostgreSQL / SQLite of req/s, p99 and CPU per request. */
export function crossEngineTable(pgResults: ScenarioResult[]): string {
  const columns = ["scenario", "side", "req/s", "p99", "cpu/req"];
  const rows: string[][] = [columns];
  for (const r of pgResults) {
    if (!r.vsSqlite) continue;
    for (const side of ["service", "baseline"] as const) {
      const v = r.vsSqlite[side];
      if (v) rows.push([side === "service" ? r.name : "", side, ratio(v.rps), ratio(v.p99), v.cpu === null ? "n/a" : ratio(v.cpu)]);
    }
  }
  return align(rows, columns.length);
}
