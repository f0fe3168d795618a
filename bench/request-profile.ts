import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { sampleSteps, stepOrder, type CpuProfile } from "./profile-steps.ts";

// `bun bench/request-profile.ts`: where the service's request path spends its CPU, step by step, from a
// sampling profile (`bun --cpu-prof`) of the full app (createApp with the defaults `bun run start` uses:
// AUTH=auto, audit, metrics, rate limit, secure headers) answering in-process requests, beside the bare
// Hono app of bench/request-path.ts. Each sample is charged to the innermost step its stack is in (the
// table's rows: routing, validation, key check, host/origin checks, rate limit, audit context, metrics,
// headers, request id and log context, the handler's query, serialisation, the middleware chain itself);
// µs per request = the samples' time / requests. What the profiler does not see (the garbage collector's
// and JIT's threads, the sampler itself) is the gap to the process's CPU per request, printed below it.
//
//   bun bench/request-profile.ts [--scenarios get_one,list,create] [--requests 100000] [--interval 100] [--markdown]

const { values } = parseArgs({
  options: {
    scenarios: { type: "string", default: "get_one,list,create" },
    requests: { type: "string", default: "60000" },
    interval: { type: "string", default: "100" },
    markdown: { type: "boolean", default: false },
    // Internal: the profiled child run.
    child: { type: "string" },
    side: { type: "string" },
  },
});

type Side = "full" | "bare";

/** The profiled process: warm up, then answer `n` requests in `measured` (the frame the analysis keeps). */
async function childRun(scenario: string, side: Side, n: number) {
  const { createApp } = await import("../src/app.ts");
  const { openDb } = await import("../src/db/index.ts");
  const { migrate } = await import("../src/db/sqlite/migrate.ts");
  const { createRateLimiter } = await import("../src/ratelimit/limiter.ts");
  const { setLogLevel } = await import("../src/log.ts");
  setLogLevel("error");
  const dir = mkdtempSync(join(tmpdir(), "sitesync-reqprof-"));
  const path = join(dir, "app.db");
  migrate(path);
  const seed = new Database(path);
  const ins = seed.prepare("INSERT INTO sites (domain, name) VALUES (?, ?)");
  seed.transaction(() => {
    for (let i = 1; i <= 1000; i++) ins.run(`sc-domain:site${i}.bench.example`, `Site ${i}`);
  })();
  seed.close();
  const db = side === "full" ? openDb({ path, role: "test" }) : null;
  const app: { fetch: (r: Request, env?: unknown) => Response | Promise<Response> } = db
    ? createApp(db, {
        rateLimit: createRateLimiter(db, { perKey: 1200, perIp: 120 }),
        auth: { mode: "auto", localAddresses: ["127.0.0.0/8", "::1"], allowedHosts: [], touchIntervalMs: 5000 },
        backups: null,
      })
    : bareApp(path);
  // As Bun.serve passes itself (the client's address), and the Host header a served request has.
  const env = { requestIP: () => ({ address: "127.0.0.1", family: "IPv4", port: 40000 }) };
  const host = { host: "127.0.0.1:8080" };
  let created = 0;
  // With its Content-Length, as autocannon and any HTTP/1.1 client send a body (a body without one is
  // streamed through the body limit).
  const jsonPost = (body: string) =>
    new Request("http://127.0.0.1:8080/api/v1/sites", {
      method: "POST",
      headers: { ...host, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      body,
    });
  const make: Record<string, () => Request> = {
    get_one: () => new Request(`http://127.0.0.1:8080/api/v1/sites/${1 + Math.floor(Math.random() * 1000)}`, { headers: host }),
    list: () => new Request("http://127.0.0.1:8080/api/v1/sites?limit=50", { headers: host }),
    create: () => jsonPost(JSON.stringify({ domain: `sc-domain:c${++created}.bench.example`, name: `Created ${created}` })),
  };
  const next = make[scenario];
  if (!next) throw new Error(`unknown scenario ${scenario}`);
  const makeBatch = (k: number) => Array.from({ length: k }, next);
  const drain = async (res: Response) => {
    if (res.status >= 500) throw new Error(`${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const oneRequest = async (r: Request) => drain(await app.fetch(r, env));
  // 64 in flight, as the served load (creates share group commits).
  async function run(count: number) {
    for (let i = 0; i < count; i += 64) {
      const batch = makeBatch(64);
      await Promise.all(batch.map(oneRequest));
    }
  }
  async function warm() {
    await run(Math.min(n, 20_000));
  }
  await warm();
  const before = process.cpuUsage();
  // The samples between the two markers are the measured requests (their stacks start at the event
  // loop, not in a frame of ours, once the first await is passed).
  profileMarkBegin();
  await run(n);
  profileMarkEnd();
  const d = process.cpuUsage(before);
  console.log(JSON.stringify({ cpu_us_per_request: (d.user + d.system) / n }));
  db?.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The bare peer of bench/request-path.ts: the same file, prepared statements, Hono's router and c.json. */
function bareApp(path: string) {
  const raw = new Database(path);
  raw.run("PRAGMA busy_timeout = 5000");
  raw.run("PRAGMA journal_mode = WAL");
  raw.run("PRAGMA synchronous = NORMAL");
  const cols = "id, domain, name, category, is_active, created_at, updated_at";
  const byId = raw.query(`SELECT ${cols} FROM sites WHERE id = ?`);
  const page = raw.query(`SELECT ${cols} FROM sites ORDER BY name, id LIMIT ?`);
  const insert = raw.query(`INSERT INTO sites (domain, name, category, is_active) VALUES (?, ?, ?, 1) RETURNING ${cols}`);
  const bare = new Hono();
  const site = (r: any) => (r ? { ...r, is_active: r.is_active === 1 } : r);
  bare.get("/api/v1/sites/:id", function bareGetOne(c) {
    const r = byId.get(Number(c.req.param("id")));
    return r ? c.json(site(r)) : c.json({ error: { code: "not_found", message: "site not found" } }, 404);
  });
  bare.get("/api/v1/sites", function bareList(c) {
    return c.json(page.all(Number(c.req.query("limit") ?? 50)).map(site));
  });
  bare.post("/api/v1/sites", async function bareCreate(c) {
    const b = await c.req.json();
    return c.json(site(insert.get(b.domain, b.name, b.category ?? null)), 201);
  });
  return bare;
}

/** Spins ~5 ms: a block of samples in a function of this name marks where the measured requests begin. */
function profileMarkBegin() {
  const t = performance.now();
  while (performance.now() - t < 5);
}

/** Spins ~5 ms: marks where the measured requests end. */
function profileMarkEnd() {
  const t = performance.now();
  while (performance.now() - t < 5);
}

/** Microseconds per request per step, from a .cpuprofile, over the samples between the markers. */
function attribute(profile: CpuProfile, requests: number) {
  const steps = sampleSteps(profile, ["profileMarkBegin", "profileMarkEnd"]);
  const begin = steps.lastIndexOf("profileMarkBegin");
  const end = steps.indexOf("profileMarkEnd", begin);
  if (begin < 0 || end < 0) throw new Error("the profile has no begin/end markers");
  const us = new Map<string, number>();
  // timeDeltas[i] is the time before sample i: the time up to the next sample is charged to sample i.
  for (let i = begin + 1; i < end; i++) {
    const step = steps[i]!;
    us.set(step, (us.get(step) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  for (const [k, v] of us) us.set(k, v / requests);
  return us;
}

async function profiled(scenario: string, side: Side, requests: number, interval: number) {
  const dir = mkdtempSync(join(tmpdir(), "sitesync-cpuprof-"));
  try {
    const proc = Bun.spawnSync(
      [
        process.execPath,
        "--cpu-prof",
        `--cpu-prof-interval=${interval}`,
        `--cpu-prof-dir=${dir}`,
        import.meta.path,
        "--child",
        scenario,
        "--side",
        side,
        "--requests",
        String(requests),
      ],
      { stderr: "inherit" },
    );
    if (proc.exitCode !== 0) throw new Error(`profiled run failed (${proc.exitCode})`);
    const line = proc.stdout.toString().trim().split("\n").pop()!;
    const { cpu_us_per_request } = JSON.parse(line) as { cpu_us_per_request: number };
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) throw new Error("no .cpuprofile written");
    const steps = attribute(JSON.parse(readFileSync(join(dir, file), "utf8")), requests);
    return { cpu: cpu_us_per_request, steps };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function parentRun() {
  const requests = Number(values.requests);
  const interval = Number(values.interval);
  const order = stepOrder;
  for (const scenario of values.scenarios!.split(",")) {
    const full = await profiled(scenario, "full", requests, interval);
    const bare = await profiled(scenario, "bare", requests, interval);
    const client = "bench client (excluded)";
    // Samples are wall time (a busy machine stretches syscalls most), so each step's µs is its share of
    // the app's samples times the app's CPU per request (the process's, less the bench client's share).
    const apportion = (r: { cpu: number; steps: Map<string, number> }) => {
      const all = [...r.steps.values()].reduce((a, v) => a + v, 0);
      const app = all - (r.steps.get(client) ?? 0);
      const appCpu = r.cpu * (app / all);
      return { appCpu, us: new Map([...r.steps].filter(([k]) => k !== client).map(([k, v]) => [k, (v / app) * appCpu])) };
    };
    const F = apportion(full);
    const B = apportion(bare);
    const rows = order.filter((s) => s !== client && ((F.us.get(s) ?? 0) >= 0.05 || (B.us.get(s) ?? 0) >= 0.05));
    const f = (v: number | undefined) => (v === undefined ? "" : v.toFixed(1));
    const lines: string[] = [];
    if (values.markdown) {
      lines.push(`\n${scenario} (CPU µs per request by step, ${requests} requests, 64 in flight, sampled every ${interval} µs)\n`);
      lines.push("| step | service | bare Hono |", "|---|---:|---:|");
      for (const s of rows) lines.push(`| ${s} | ${f(F.us.get(s))} | ${f(B.us.get(s))} |`);
      lines.push(`| **app, total** | **${f(F.appCpu)}** | **${f(B.appCpu)}** |`);
    } else {
      lines.push(`\n${scenario}: CPU µs per request by step (${requests} requests, 64 in flight, sampled every ${interval} µs)`);
      lines.push(`  ${"step".padEnd(44)} ${"service".padStart(8)} ${"bare".padStart(8)}`);
      for (const s of rows) lines.push(`  ${s.padEnd(44)} ${f(F.us.get(s)).padStart(8)} ${f(B.us.get(s)).padStart(8)}`);
      lines.push(`  ${"app, total".padEnd(44)} ${f(F.appCpu).padStart(8)} ${f(B.appCpu).padStart(8)}`);
      lines.push(`  ${"process CPU/request (with the bench client)".padEnd(44)} ${f(full.cpu).padStart(8)} ${f(bare.cpu).padStart(8)}`);
    }
    console.log(lines.join("\n"));
  }
}

if (values.child) await childRun(values.child, values.side === "bare" ? "bare" : "full", Number(values.requests));
else await parentRun();
