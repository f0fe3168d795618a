import { Database } from "bun:sqlite";
import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createApp, type AppOptions } from "../src/app.ts";
import { openDb } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { createRateLimiter } from "../src/ratelimit/limiter.ts";
import { setLogLevel } from "../src/log.ts";

// `bun bench/request-path.ts`: CPU per request of the service's request path IN ONE PROCESS, without
// sockets: the full app (createApp with the defaults `bun run start` uses: AUTH=auto, audit, metrics,
// rate limit, secure headers) against a bare Hono app serving the same answer from the same file with a
// prepared statement. Then the full app with every middleware timed on its own (exclusive µs: its own
// work before and after next()), and the rest (routing, validation, handler, serialisation) by
// difference. The same client address a served request has (127.0.0.1) is given to the app.
//
//   bun bench/request-path.ts [--requests 20000] [--rounds 5] [--scenarios get_one,list,create,not_found]

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    rounds: { type: "string", default: "5" },
    scenarios: { type: "string", default: "get_one,list,create" },
    json: { type: "boolean", default: false },
    ablate: { type: "boolean", default: false },
  },
});
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);
setLogLevel("error");

const dir = mkdtempSync(join(tmpdir(), "sitesync-reqpath-"));
const path = join(dir, "app.db");
migrate(path);
const db = openDb({ path, role: "test" });
const seed = new Database(path);
const ins = seed.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
seed.transaction(() => {
  for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
})();
seed.close();

// As Bun.serve passes itself: the app reads the client's address from it.
const env = { requestIP: () => ({ address: "127.0.0.1", family: "IPv4", port: 40000 }) };

const baseOptions: AppOptions = {
  rateLimit: createRateLimiter(db, { perKey: 1200, perIp: 120 }),
  auth: { mode: "auto", localAddresses: ["127.0.0.0/8", "::1"], allowedHosts: [], touchIntervalMs: 5000 },
  backups: null,
};
const full = createApp(db, baseOptions);

// The bare peer: the same file, a prepared statement, Hono's router and c.json.
const raw = new Database(path);
raw.run("PRAGMA busy_timeout = 5000");
const byId = raw.query("SELECT id, domain, name, category, is_active, created_at, updated_at FROM sites WHERE id = ?");
const page = raw.query("SELECT id, domain, name, category, is_active, created_at, updated_at FROM sites ORDER BY name, id LIMIT ?");
const insert = raw.query(
  "INSERT INTO sites (domain, name, category, is_active) VALUES (?, ?, ?, 1) RETURNING id, domain, name, category, is_active, created_at, updated_at",
);
const bare = new Hono();
const site = (r: any) => (r ? { ...r, is_active: r.is_active === 1 } : r);
bare.get("/api/v1/sites/:id", (c) => {
  const r = byId.get(Number(c.req.param("id")));
  return r ? c.json(site(r)) : c.json({ error: { code: "not_found", message: "site not found" } }, 404);
});
bare.get("/api/v1/sites", (c) => c.json({ items: page.all(Number(c.req.query("limit") ?? 50)).map(site), next_cursor: null }));
bare.post("/api/v1/sites", async (c) => {
  const b = await c.req.json();
  return c.json(site(insert.get(b.domain, b.name, b.category ?? null)), 201);
});

let created = 0;
const scenarios: Record<string, () => Request> = {
  get_one: () => new Request(`http://127.0.0.1/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}`),
  list: () => new Request("http://127.0.0.1/api/v1/sites?limit=50"),
  create: () =>
    new Request("http://127.0.0.1/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: `sc-domain:c${process.pid}-${++created}.bench.example`, name: `Created ${created}` }),
    }),
  not_found: () => new Request("http://127.0.0.1/api/v1/sites/999999"),
};

type Fetcher = { fetch: (r: Request, env?: unknown) => Response | Promise<Response> };

/** CPU µs per request over n requests, 64 in flight (creates then share group commits, as when served). */
async function cpuPerRequest(app: Fetcher, make: () => Request, n: number, inFlight = 64): Promise<number> {
  const reqs = Array.from({ length: n }, make);
  const before = process.cpuUsage();
  for (let i = 0; i < n; i += inFlight) {
    const batch = reqs.slice(i, i + inFlight).map(async (r) => {
      const res = await app.fetch(r, env);
      if (res.status >= 500) throw new Error(`${r.method} ${r.url}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    });
    await Promise.all(batch);
  }
  const d = process.cpuUsage(before);
  return (d.user + d.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Per-step exclusive times, from an app whose middleware are wrapped.
const own = new Map<string, number>();
const timed = (name: string, mw: MiddlewareHandler): MiddlewareHandler => {
  own.set(name, 0);
  return async (c, next) => {
    const t0 = performance.now();
    let inner = 0;
    const r = await mw(c, async () => {
      const t1 = performance.now();
      await next();
      inner += performance.now() - t1;
    });
    own.set(name, own.get(name)! + (performance.now() - t0 - inner));
    return r;
  };
};
const instrumented = createApp(db, { ...baseOptions, step: timed });

const out: Record<string, unknown> = {};
for (const name of values.scenarios!.split(",")) {
  const make = scenarios[name];
  if (!make) throw new Error(`unknown scenario ${name}`);
  await cpuPerRequest(full, make, 2000);
  await cpuPerRequest(bare, make, 2000);
  const f: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    f.push(await cpuPerRequest(full, make, N));
    b.push(await cpuPerRequest(bare, make, N));
  }
  for (const k of own.keys()) own.set(k, 0);
  const t0 = performance.now();
  // One at a time, so each step's own time is not another request's.
  await cpuPerRequest(instrumented, make, N, 1);
  const wall = ((performance.now() - t0) * 1000) / N;
  const steps = Object.fromEntries([...own].map(([k, v]) => [k, Math.round((v * 1000 * 10) / N) / 10]));
  const stepSum = Object.values(steps).reduce((a, v) => a + v, 0);
  const row = {
    full_us: Math.round(median(f) * 10) / 10,
    bare_us: Math.round(median(b) * 10) / 10,
    ratio_bare_over_full: Math.round((median(b) / median(f)) * 100) / 100,
    steps_us: steps,
    rest_us: Math.round((wall - stepSum) * 10) / 10,
    instrumented_wall_us: Math.round(wall * 10) / 10,
  };
  out[name] = row;
  if (!values.json) {
    console.log(`\n${name}: full ${row.full_us} µs CPU/request, bare ${row.bare_us} µs (bare/full ${row.ratio_bare_over_full}x)`);
    console.log(
      `  exclusive µs per step (instrumented, wall): ${Object.entries(steps)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
    console.log(`  routing + validation + handler + serialisation: ${row.rest_us} µs (of ${row.instrumented_wall_us} µs wall)`);
  }
}
if (values.json) console.log(JSON.stringify(out, null, 2));

// --ablate: the full app again with one middleware at a time replaced by a pass-through: its marginal
// CPU per request, measured like the full app (64 in flight), so it includes the async frame it adds.
if (values.ablate) {
  const names = [...own.keys()];
  const pass: MiddlewareHandler = (_c, next) => next();
  const without = (skip: string[]) => createApp(db, { ...baseOptions, step: (n, mw) => (skip.includes(n) ? pass : mw) });
  for (const name of values.scenarios!.split(",")) {
    const make = scenarios[name]!;
    const variants = [
      { label: "full", app: full },
      ...names.map((n) => ({ label: `-${n}`, app: without([n]) })),
      { label: "-all", app: without(names) },
    ];
    const cpu = new Map<string, number[]>(variants.map((v) => [v.label, []]));
    for (const v of variants) await cpuPerRequest(v.app, make, 2000);
    for (let r = 0; r < ROUNDS; r++) for (const v of variants) cpu.get(v.label)!.push(await cpuPerRequest(v.app, make, N));
    const f = median(cpu.get("full")!);
    console.log(`\n${name} ablation (µs CPU/request saved without it; full ${f.toFixed(1)}):`);
    for (const v of variants.slice(1)) console.log(`  ${v.label.padEnd(16)} ${(f - median(cpu.get(v.label)!)).toFixed(1)}`);
  }
}
db.close();
raw.close();
rmSync(dir, { recursive: true, force: true });
