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
  /** Only these attack lanes (default: all). */
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

if (import.meta.main) {
  // bun bench/bounds-load.ts URL ATTACKER_KEY VICTIM_KEY SITE_ID START END [SECONDS]
  const [url, attackerKey, victimKey, siteId, start, end, seconds] = process.argv.slice(2);
  const base = { url: url!, attackerKey: attackerKey!, victimKey: victimKey!, siteId: Number(siteId), start: start!, end: end! };
  const durationMs = Number(seconds ?? 20) * 1000;
  const idle = (await runAttack({ ...base, durationMs, idle: true })).gets;
  const attacked = await runAttack({ ...base, durationMs, lanes: process.env.LANES?.split(",") });
  console.log(JSON.stringify(summary(idle, attacked), null, 2));
}
