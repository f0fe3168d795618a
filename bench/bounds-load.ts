// The worst requests of one read key in parallel (issue 21's "done when"), against a running service,
// while another client's GETs are timed: thousands of partial-match terms, the largest allowed partial
// request, `max_results: null`, ten exports at once, and arbitrary SQL over MCP. Used by
// test/bounds.load.test.ts (which asserts only what cannot flake) and `bun bench/bounds-load.ts`.

import { join } from "node:path";

export type AttackOptions = {
  url: string;
  /** The attacker's key and the other client's key. */
  attackerKey: string;
  victimKey: string;
  siteId: number;
  start: string;
  end: string;
  /** How long the attack loop runs (ms). */
  durationMs: number;
  /** Partial-match terms of the largest allowed partial request (ANALYTICS_MAX_PARTIAL_TERMS). */
  maxPartialTerms?: number;
  /** Concurrent GET clients. */
  victims?: number;
  /** Only the GETs, no attack: the baseline of the same run. */
  idle?: boolean;
  /** Only these attack lanes (default: all; the dashboard's are uiSite, uiInsights, uiQueries). */
  lanes?: string[];
};

export type Outcome = { kind: string; status: number; code: string | null; ms: number };
export type AttackResult = {
  attacks: Outcome[];
  /** The other client's GET latencies (ms) and statuses. */
  gets: { ms: number; status: number }[];
};

/** The `q`-quantile of `xs` (nearest rank). */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** The error code of an answer's JSON error shape (null when it has none). */
async function errorCode(res: Response): Promise<string | null> {
  const text = await res.text();
  try {
    const b = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    return typeof b.error?.code === "string" && typeof b.error.message === "string" ? b.error.code : null;
  } catch {
    return null;
  }
}

/** Runs the attack and the timed GETs together until `durationMs` has passed; returns every outcome. */
export async function runAttack(o: AttackOptions): Promise<AttackResult> {
  const stopAt = performance.now() + o.durationMs;
  const attacks: Outcome[] = [];
  const gets: AttackResult["gets"] = [];
  const auth = (k: string) => ({ authorization: `Bearer ${k}` });
  const terms = (n: number) => Array.from({ length: n }, (_, i) => `no such query ${i}`);
  const range = { site_id: o.siteId, start_date: o.start, end_date: o.end };

  const attack = async (kind: string, send: () => Promise<Response>) => {
    const t0 = performance.now();
    try {
      const res = await send();
      // A 2xx body (an export) is read to its end, as a client taking everything would.
      const code = res.ok ? (await res.arrayBuffer(), null) : await errorCode(res);
      attacks.push({ kind, status: res.status, code, ms: performance.now() - t0 });
    } catch (err) {
      attacks.push({ kind, status: 0, code: String(err), ms: performance.now() - t0 });
    }
  };
  const json = (path: string, body: unknown) => () =>
    fetch(`${o.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth(o.attackerKey) },
      body: JSON.stringify(body),
    });
  const lanes: Record<string, () => Promise<void>> = {
    terms10k: () =>
      attack(
        "terms10k",
        json("/api/v1/analytics/ranking-data", { ...range, matching_mode: "partial", queries: terms(10_000), max_results: null }),
      ),
    partialMax: () =>
      attack(
        "partialMax",
        json("/api/v1/analytics/ranking-data", {
          ...range,
          matching_mode: "partial",
          queries: terms(o.maxPartialTerms ?? 100),
          max_results: null,
        }),
      ),
    allRows: () => attack("allRows", json("/api/v1/analytics/ranking-data", { ...range, max_results: null })),
    pageKeywords: () => attack("pageKeywords", json("/api/v1/page-keyword-performance", { site_id: o.siteId, max_results: null })),
    exports: async () => {
      await Promise.all(
        Array.from({ length: 10 }, () =>
          attack("export", () => fetch(`${o.url}/api/v1/sites/${o.siteId}/export?format=csv`, { headers: auth(o.attackerKey) })),
        ),
      );
    },
    mcpSql: () =>
      attack(
        "mcpSql",
        json("/mcp", {
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: {
            name: "query",
            arguments: {
              sql: "with recursive c(x) as (select 1 union all select x + 1 from c where x < 100000000) select count(*) from c",
            },
          },
        }),
      ),
  };
  // The dashboard's data pages with the attacker's key: a site's page (91 days of day totals), insights
  // (eight reports over the range), the queries page's one-character search (every query of the site).
  const ui = (kind: string, path: string) => () => attack(kind, () => fetch(`${o.url}${path}`, { headers: auth(o.attackerKey) }));
  const win = `site_id=${o.siteId}&start=${o.start}&end=${o.end}`;
  lanes.uiSite = ui("uiSite", `/ui/sites/${o.siteId}`);
  lanes.uiInsights = ui("uiInsights", `/ui/insights?${win}`);
  lanes.uiQueries = ui("uiQueries", `/ui/queries?${win}&q=e`);
  const chosen = Object.entries(lanes).filter(([k]) => !o.idle && (!o.lanes || o.lanes.includes(k)));
  const attackers = chosen.map(async ([, lane]) => {
    while (performance.now() < stopAt) await lane();
  });
  // The GETs run in a process of their own: this one reads the attack's downloads.
  const victim = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "bounds-victim.ts"),
      o.url,
      o.victimKey,
      String(o.siteId),
      String(o.durationMs),
      String(o.victims ?? 2),
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const victims = [
    (async () => {
      gets.push(...(JSON.parse(await new Response(victim.stdout).text()) as AttackResult["gets"]));
      await victim.exited;
    })(),
  ];
  await Promise.all([...attackers, ...victims]);
  return { attacks, gets };
}

/** The cumulative buckets of sitesync_event_loop_delay_seconds (every HTTP worker's, summed) from /metrics: le -> count. */
export async function eventLoopBuckets(url: string, key: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^sitesync_event_loop_delay_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$/gm)) {
    out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

/**
 * The seconds observed between two bucket readings (summed over the workers) and how many had a worst
 * event-loop delay above 50 ms, 100 ms, 250 ms and 1 s; `p99`: the bucket bound under which 99% of them stayed.
 */
export function eventLoopSummary(before: Map<string, number>, after: Map<string, number>) {
  const delta = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const seconds = delta("+Inf");
  const over = (le: string) => seconds - delta(le);
  const bounds = [...after.keys()].filter((k) => k !== "+Inf").sort((a, b) => Number(a) - Number(b));
  const p99 = bounds.find((le) => delta(le) >= 0.99 * seconds) ?? "+Inf";
  return { seconds, over50ms: over("0.05"), over100ms: over("0.1"), over250ms: over("0.25"), over1s: over("1"), p99: `<= ${p99} s` };
}

/** Prints the GETs' quantiles of an idle run and an attacked one, and the attack's outcomes by kind and status. */
export function summary(idle: AttackResult["gets"], attacked: AttackResult) {
  const q = (g: AttackResult["gets"]) => ({
    n: g.length,
    p50:
      Math.round(
        quantile(
          g.map((x) => x.ms),
          0.5,
        ) * 10,
      ) / 10,
    p99:
      Math.round(
        quantile(
          g.map((x) => x.ms),
          0.99,
        ) * 10,
      ) / 10,
    max: Math.round(Math.max(...g.map((x) => x.ms))),
  });
  const byKind: Record<string, Record<string, number>> = {};
  for (const a of attacked.attacks) {
    const k = (byKind[a.kind] ??= {});
    const s = `${a.status}${a.code ? ` ${a.code}` : ""}`;
    k[s] = (k[s] ?? 0) + 1;
  }
  return { idle: q(idle), attacked: q(attacked.gets), attacks: byKind };
}

/** The machine's 1-minute load average (Linux), for the verdict line; null elsewhere. */
export async function loadAverage(): Promise<number | null> {
  try {
    return Number((await Bun.file("/proc/loadavg").text()).split(" ")[0]);
  } catch {
    return null;
  }
}

/**
 * Issue 21's verdict in one line: the other client's GETs under the attack (p99 < 1 s), beside the idle
 * baseline of the same run, the load average before and after, and the workers killed (when known).
 */
export function verdictLine(label: string, s: ReturnType<typeof summary>, o: { loads: (number | null)[]; workersKilled?: number }): string {
  const met = s.attacked.n > 0 && s.attacked.p99 < 1000 && (o.workersKilled ?? 0) === 0;
  const loads = o.loads.filter((l) => l !== null).join("-");
  return (
    `VERDICT ${label}: GETs under the attack p50/p99/max ${s.attacked.p50} / ${s.attacked.p99} / ${s.attacked.max} ms (${s.attacked.n} GETs), ` +
    `idle ${s.idle.p50} / ${s.idle.p99} ms (${s.idle.n}); workers killed ${o.workersKilled ?? "not checked"}; load ${loads || "?"}: ` +
    `p99 < 1 s and no worker killed ${met ? "MET" : "NOT MET"}`
  );
}

if (import.meta.main) {
  // bun bench/bounds-load.ts URL ATTACKER_KEY VICTIM_KEY SITE_ID START END [SECONDS]
  const [url, attackerKey, victimKey, siteId, start, end, seconds] = process.argv.slice(2);
  const base = { url: url!, attackerKey: attackerKey!, victimKey: victimKey!, siteId: Number(siteId), start: start!, end: end! };
  const durationMs = Number(seconds ?? 20) * 1000;
  const load0 = await loadAverage();
  const b0 = await eventLoopBuckets(base.url, base.victimKey);
  const idle = (await runAttack({ ...base, durationMs, idle: true })).gets;
  const b1 = await eventLoopBuckets(base.url, base.victimKey);
  const attacked = await runAttack({ ...base, durationMs, lanes: process.env.LANES?.split(",") });
  const b2 = await eventLoopBuckets(base.url, base.victimKey);
  console.log(
    JSON.stringify(
      { ...summary(idle, attacked), eventLoop: { idle: eventLoopSummary(b0, b1), attacked: eventLoopSummary(b1, b2) } },
      null,
      2,
    ),
  );
  console.log(verdictLine(url!, summary(idle, attacked), { loads: [load0, await loadAverage()] }));
}
