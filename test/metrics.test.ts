import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { parseExposition, sumOf, type Sample } from "./helpers/prom.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(60_000);

// /metrics: one scrape on any HTTP worker shows every process (the supervisor merges them over IPC).

// A new connection per request, so the kernel spreads them over the workers (reusePort).
const fresh = { connection: "close" };

async function scrape(base: string): Promise<Sample[]> {
  const res = await fetch(`${base}/metrics`, { headers: fresh, signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parseExposition(await res.text());
}

describe("/metrics across 4 HTTP workers and a sync worker", () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer({ workers: 4, syncWorkers: 1, env: { METRICS_TIMEOUT_MS: "500", SYNC_POLL_MS: "50" }, timeoutMs: 60_000 });
  });
  afterAll(async () => s?.cleanup());

  test("request counts equal the requests made, whichever worker answered them", async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const r = await request(s.url, "GET", "/health", undefined, fresh);
      expect(r.status).toBe(200);
      pids.add(r.body.process_id);
    }
    // The requests really were spread: more than one worker's counters must be merged.
    expect(pids.size).toBeGreaterThan(1);
    for (let i = 0; i < 12; i++) {
      expect((await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:m${i}.example`, name: `M${i}` }, fresh)).status).toBe(201);
    }
    for (let i = 0; i < 5; i++) expect((await request(s.url, "GET", `/api/v1/sites/${900 + i}`, undefined, fresh)).status).toBe(404);
    for (let i = 0; i < 7; i++)
      expect((await request(s.url, "GET", `/no/such/path-${crypto.randomUUID()}`, undefined, fresh)).status).toBe(404);

    // Every scrape, on whichever worker it lands, sees the same totals.
    for (let k = 0; k < 6; k++) {
      const m = await scrape(s.url);
      expect(sumOf(m, "http_requests_total", { route: "/health", method: "GET", status: "200" })).toBe(40);
      expect(sumOf(m, "http_requests_total", { route: "/api/v1/sites", method: "POST", status: "201" })).toBe(12);
      expect(sumOf(m, "http_requests_total", { route: "/api/v1/sites/:id", status: "404" })).toBe(5);
      expect(sumOf(m, "http_request_duration_seconds_count", { route: "/health" })).toBe(40);
      // Unmatched paths share one route label: they never create a series of their own.
      expect(sumOf(m, "http_requests_total", { route: "/*", status: "404" })).toBe(7);
      expect(m.some((x) => Object.values(x.labels).some((v) => v.includes("/no/such")))).toBe(false);
      // Gauges: one per process, summed; values read from the file come from the supervisor alone.
      expect(sumOf(m, "sitesync_process_up", { role: "http" })).toBe(4);
      expect(sumOf(m, "sitesync_process_up", { role: "sync" })).toBe(1);
      expect(sumOf(m, "sitesync_process_up", { role: "primary" })).toBe(1);
      expect(m.filter((x) => x.name === "sitesync_wal_bytes")).toHaveLength(1);
      if (testEngine === "pg") {
        // Each process's pool, summed by role; the server's facts from the supervisor.
        for (const role of ["http", "sync", "primary"]) {
          expect(m.some((x) => x.name === "sitesync_pg_pool_connections" && x.labels.role === role && x.labels.state === "total")).toBe(
            true,
          );
        }
        expect(sumOf(m, "sitesync_pg_pool_connections", { state: "total" })).toBeGreaterThanOrEqual(6);
        expect(sumOf(m, "sitesync_pg_database_bytes")).toBeGreaterThan(1_000_000);
        expect(sumOf(m, "sitesync_pg_max_connections")).toBeGreaterThan(0);
        expect(sumOf(m, "sitesync_pg_server_connections")).toBeGreaterThanOrEqual(6);
        expect(sumOf(m, "sitesync_pg_locks_waiting")).toBe(0);
      } else {
        expect(m.some((x) => x.name === "sitesync_pg_pool_connections")).toBe(false);
        expect(sumOf(m, "sitesync_wal_bytes")).toBeGreaterThan(0);
      }
      // 12 creates by the HTTP workers, at least: the processes' heartbeats write too.
      expect(sumOf(m, "sitesync_writes_total", { role: "http" })).toBeGreaterThanOrEqual(12);
      expect(sumOf(m, "sitesync_write_group_size_count")).toBeGreaterThan(0);
      expect(sumOf(m, "sitesync_metrics_scrape_missing_total")).toBe(0);
    }
  });

  test("a demo sync shows up as tasks, task duration and rows ingested", async () => {
    const site = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:sync.example", name: "Sync" });
    const job = await request(s.url, "POST", `/api/v1/sync/trigger/${site.body.id}?days=2`);
    expect(job.status).toBe(202);
    for (let i = 0; i < 200; i++) {
      if ((await request(s.url, "GET", `/api/v1/sync/job/${job.body.job_id}`)).body.status === "completed") break;
      await Bun.sleep(50);
    }
    const m = await scrape(s.url);
    expect(sumOf(m, "sitesync_tasks", { status: "completed", type: "daily_sync" })).toBe(1);
    expect(sumOf(m, "sitesync_task_duration_seconds_count", { type: "daily_sync", outcome: "completed" })).toBe(1);
    const done = await request(s.url, "GET", `/api/v1/sync/job/${job.body.job_id}`);
    expect(sumOf(m, "sitesync_rows_ingested_total", { source: "demo" })).toBe(done.body.total_records);
    expect(done.body.total_records).toBeGreaterThan(0);
  });

  test("a worker that does not answer is left out and counted; the scrape is not blocked", async () => {
    const conns = await request(s.url, "GET", "/api/v1/diagnostics/connections");
    const victim = (conns.body.processes as { pid: number; role: string }[]).find((p) => p.role === "sync")!.pid;
    process.kill(victim, "SIGSTOP");
    try {
      const t0 = performance.now();
      const m = await scrape(s.url);
      // A stopped worker never answers: the scrape ends by METRICS_TIMEOUT_MS (1 s) and the http figures
      // below show it was the aggregator's own answer (not the supervisor's fallback). A hang guard only.
      expect(performance.now() - t0).toBeLessThan(15_000);
      expect(sumOf(m, "sitesync_process_up", { role: "sync" })).toBe(0);
      expect(sumOf(m, "sitesync_process_up", { role: "http" })).toBe(4);
      expect(sumOf(m, "sitesync_metrics_scrape_missing_total", { role: "sync" })).toBe(1);
    } finally {
      process.kill(victim, "SIGCONT");
    }
    const after = await scrape(s.url);
    expect(sumOf(after, "sitesync_process_up", { role: "sync" })).toBe(1);
  });
});

describe("/metrics of a single process (createApp alone)", () => {
  const t = tempDb();
  afterAll(() => t.cleanup());
  test("serves this process's registry in the exposition format", async () => {
    const app = createApp(t.db);
    await app.request("/api/v1/sites");
    const res = await app.request("/metrics");
    expect(res.status).toBe(200);
    const m = parseExposition(await res.text());
    expect(sumOf(m, "http_requests_total", { route: "/api/v1/sites" })).toBeGreaterThanOrEqual(1);
  });
});
