import { Database } from "bun:sqlite";
import { parseArgs } from "node:util";

// One process of the textbook baseline the benchmark compares the service with: Bun.serve with
// reusePort, plain bun:sqlite prepared statements, no framework, no ORM, and the textbook cure for
// "database is locked": WAL, synchronous=NORMAL, busy_timeout=5000 and one BEGIN IMMEDIATE
// transaction per write request. It serves the endpoints the benchmark drives, with the service's
// JSON shapes and status codes.
// --group-commit: the bare group-commit peer instead (the reference for the service's writes): busy_timeout=0,
// writes queued in one event-loop turn share one BEGIN IMMEDIATE (each in its own SAVEPOINT unless alone),
// a taken lock is retried asynchronously (the next turns, then every ~2 ms), answers only after the COMMIT.
//
//   bun bench/baseline/server.ts --db path --port 1234 [--host 127.0.0.1] [--group-commit]

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    "group-commit": { type: "boolean", default: false },
  },
  strict: true,
});
if (!args.db || !args.port) throw new Error("usage: server.ts --db path --port n [--host h]");

const db = new Database(args.db, { strict: true });
db.run("PRAGMA busy_timeout = 5000");
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = NORMAL");
db.run("PRAGMA foreign_keys = ON");
const groupCommit = args["group-commit"] === true;
if (groupCommit) db.run("PRAGMA busy_timeout = 0");

type SiteRow = {
  id: number;
  domain: string;
  name: string;
  category: string | null;
  is_active: number;
  created_at: string;
  updated_at: string;
};
const cols = "id, domain, name, category, is_active, created_at, updated_at";
const byId = db.query<SiteRow, [number]>(`SELECT ${cols} FROM sites WHERE id = ?`);
const firstPageActive = db.query<SiteRow, [number]>(`SELECT ${cols} FROM sites WHERE is_active = 1 ORDER BY name, id LIMIT ?`);
const firstPage = db.query<SiteRow, [number]>(`SELECT ${cols} FROM sites ORDER BY name, id LIMIT ?`);
const insertSite = db.query<SiteRow, [string, string, string | null, number]>(
  `INSERT INTO sites (domain, name, category, is_active) VALUES (?, ?, ?, ?) RETURNING ${cols}`,
);
const siteExists = db.query<{ id: number }, [number]>("SELECT id FROM sites WHERE id = ?");
const insertTask = db.query<{ id: number }, [number, string, string, string, number]>(
  `INSERT INTO sync_tasks (site_id, task_type, start_date, end_date, params, progress_total)
   VALUES (?, 'daily_sync', ?, ?, ?, ?) RETURNING id`,
);
const activeTask = db.query<{ id: number }, [number]>(
  "SELECT id FROM sync_tasks WHERE site_id = ? AND task_type = 'daily_sync' AND status IN ('pending','running')",
);

const createSiteRow = (domain: string, name: string, category: string | null, active: boolean) =>
  insertSite.get(domain, name, category, active ? 1 : 0);
const triggerSyncRows = (siteId: number, start: string, end: string, days: number, mode: string) => {
  if (!siteExists.get(siteId)) return { status: 404 as const };
  try {
    const task = insertTask.get(siteId, start, end, JSON.stringify({ sync_mode: mode }), days)!;
    return { status: 202 as const, id: task.id };
  } catch (err) {
    if ((err as { code?: string }).code !== "SQLITE_CONSTRAINT_UNIQUE") throw err;
    return { status: 409 as const, id: activeTask.get(siteId)?.id };
  }
};

// The group-commit write queue (--group-commit).
type Job = { run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void };
let queue: Job[] = [];
let scheduled = false;
let attempt = 0;
const beginImmediate = db.prepare("BEGIN IMMEDIATE");
const commitTx = db.prepare("COMMIT");
const rollbackTx = db.prepare("ROLLBACK");
const savepoint = db.prepare("SAVEPOINT w");
const releaseSp = db.prepare("RELEASE w");
const rollbackSp = db.prepare("ROLLBACK TO w");
const isBusy = (err: unknown) => String((err as { code?: string }).code).startsWith("SQLITE_BUSY");

function schedule(delayMs: number) {
  if (scheduled) return;
  scheduled = true;
  if (delayMs <= 0) setImmediate(flush);
  else setTimeout(flush, delayMs);
}

function flush() {
  scheduled = false;
  if (queue.length === 0) return;
  try {
    beginImmediate.run();
  } catch (err) {
    if (!isBusy(err)) {
      for (const j of queue.splice(0)) j.reject(err);
      return;
    }
    attempt++;
    return schedule(attempt <= 10 ? 0 : 2 * (0.5 + Math.random()));
  }
  attempt = 0;
  const batch = queue;
  queue = [];
  const solo = batch.length === 1;
  const results = batch.map((j) => {
    if (!solo) savepoint.run();
    try {
      const value = j.run();
      if (!solo) releaseSp.run();
      return { ok: true, value };
    } catch (err) {
      if (!solo) {
        rollbackSp.run();
        releaseSp.run();
      }
      return { ok: false, value: err };
    }
  });
  try {
    if (solo && !results[0]!.ok) rollbackTx.run();
    else commitTx.run();
  } catch (err) {
    if (db.inTransaction) rollbackTx.run();
    for (const j of batch) j.reject(err);
    return;
  }
  batch.forEach((j, i) => (results[i]!.ok ? j.resolve(results[i]!.value) : j.reject(results[i]!.value)));
  if (queue.length > 0) schedule(0);
}

function queued<A extends unknown[], T>(fn: (...a: A) => T): (...a: A) => Promise<T> {
  return (...a) =>
    new Promise<T>((resolve, reject) => {
      queue.push({ run: () => fn(...a), resolve: resolve as (v: unknown) => void, reject });
      schedule(0);
    });
}

// Textbook: one BEGIN IMMEDIATE per request, SQLite's busy handler waits for the lock.
const textbook = <A extends unknown[], T>(fn: (...a: A) => T) => {
  const tx = db.transaction(fn);
  return (...a: A) => Promise.resolve(tx.immediate(...a));
};
const createSite = groupCommit ? queued(createSiteRow) : textbook(createSiteRow);
const triggerSync = groupCommit ? queued(triggerSyncRows) : textbook(triggerSyncRows);

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => Response.json(body, { status, headers });
const error = (status: number, code: string, message: string, details?: unknown) =>
  json({ error: details === undefined ? { code, message } : { code, message, details } }, status);
const site = (r: SiteRow) => ({ ...r, is_active: r.is_active === 1 });
const domainPattern = /^(sc-domain:[a-z0-9-]+(\.[a-z0-9-]+)+|https?:\/\/[^\s/?#]+(:\d+)?\/[^\s?#]*)$/i;
const idPattern = /^[1-9]\d{0,15}$/;
const DAY_MS = 86_400_000;

async function handleCreate(req: Request) {
  let body: any;
  try {
    body = await req.json();
  } catch {
    return error(400, "invalid_json", "request body is not valid JSON");
  }
  const { domain, name, category = null, is_active = true } = body ?? {};
  if (typeof domain !== "string" || domain.length > 2048 || !domainPattern.test(domain)) {
    return error(400, "validation_failed", "invalid body: domain");
  }
  if (typeof name !== "string" || name.trim().length === 0 || name.length > 200) {
    return error(400, "validation_failed", "invalid body: name");
  }
  if ((category !== null && typeof category !== "string") || typeof is_active !== "boolean") {
    return error(400, "validation_failed", "invalid body");
  }
  try {
    const row = (await createSite(domain, name.trim(), category, is_active))!;
    return json(site(row), 201, { Location: `/api/v1/sites/${row.id}` });
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
      return error(409, "conflict", `a site with domain '${domain}' already exists`, { domain });
    }
    throw err;
  }
}

function handleList(url: URL) {
  const limit = Number(url.searchParams.get("limit") ?? 100);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) return error(400, "validation_failed", "invalid query: limit");
  const activeOnly = (url.searchParams.get("active_only") ?? "true") !== "false";
  const rows = (activeOnly ? firstPageActive : firstPage).all(limit + 1);
  const headers: Record<string, string> = {};
  if (rows.length > limit) {
    rows.length = limit;
    const last = rows[limit - 1]!;
    url.searchParams.set("cursor", Buffer.from(JSON.stringify([last.name, last.id])).toString("base64url"));
    headers.Link = `<${url.pathname}${url.search}>; rel="next"`;
  }
  return json(rows.map(site), 200, headers);
}

async function handleTrigger(rawId: string, url: URL) {
  if (!idPattern.test(rawId)) return error(400, "validation_failed", "invalid site id");
  const days = Number(url.searchParams.get("days") ?? 7);
  if (!Number.isInteger(days) || days < 1 || days > 365) return error(400, "validation_failed", "invalid query: days");
  const mode = url.searchParams.get("sync_mode") ?? "skip";
  const newest = Date.now() - 2 * DAY_MS;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const r = await triggerSync(Number(rawId), day(newest - (days - 1) * DAY_MS), day(newest), days, mode);
  if (r.status === 404) return error(404, "not_found", `site ${rawId} not found`);
  if (r.status === 409) {
    return error(409, "conflict", `site ${rawId} already has a pending or running daily_sync`, { job_id: r.id });
  }
  return json({ job_id: r.id, message: `sync started for site ${rawId}`, status_url: `/api/v1/sync/job/${r.id}` }, 202);
}

const server = Bun.serve({
  port: Number(args.port),
  hostname: args.host,
  reusePort: true,
  async fetch(req) {
    const url = new URL(req.url);
    const path = url.pathname;
    try {
      if (path === "/api/v1/sites" || path === "/api/v1/sites/") {
        if (req.method === "GET") return handleList(url);
        if (req.method === "POST") return await handleCreate(req);
      } else if (path.startsWith("/api/v1/sites/") && req.method === "GET") {
        const raw = path.slice("/api/v1/sites/".length);
        if (!idPattern.test(raw)) return error(400, "validation_failed", "invalid site id");
        const row = byId.get(Number(raw));
        return row ? json(site(row)) : error(404, "not_found", `site ${raw} not found`);
      } else if (path.startsWith("/api/v1/sync/trigger/") && req.method === "POST") {
        return await handleTrigger(path.slice("/api/v1/sync/trigger/".length), url);
      } else if (path === "/health") {
        return json({ status: "healthy", process_id: process.pid });
      }
      return error(404, "not_found", `no route for ${req.method} ${path}`);
    } catch (err) {
      // The textbook setup's failure mode: SQLITE_BUSY after busy_timeout reaches the client as a 500.
      return error(500, "internal", String(err));
    }
  },
});
process.send?.({ type: "ready", pid: process.pid, port: server.port });
process.on("SIGTERM", () => {
  void server.stop(false).then(() => {
    db.close();
    process.exit(0);
  });
});
process.on("disconnect", () => process.exit(0));
