import { parseArgs } from "node:util";
import pg from "pg";

// One process of the textbook PostgreSQL baseline (`bun run bench --database postgres`): the same
// endpoints, JSON shapes and statuses as server.ts, on plain node-postgres: a pool per process of the
// service's default size, named (prepared once per connection) statements, no framework, no ORM, each
// write one autocommitted statement. Unique and foreign-key violations answer 409 and 404.
//
//   bun bench/baseline/pg-server.ts --db postgres://… --port 1234 [--host 127.0.0.1] [--pool 10]

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    pool: { type: "string", default: "10" },
  },
  strict: true,
});
if (!args.db || !args.port) throw new Error("usage: pg-server.ts --db postgres://… --port n [--host h] [--pool n]");

const pool = new pg.Pool({ connectionString: args.db, max: Number(args.pool) });
// An idle connection that breaks emits 'error'; unhandled it would end the process.
pool.on("error", (err) => console.error(`baseline: idle connection lost: ${err.message}`));

type SiteRow = {
  id: number;
  domain: string;
  name: string;
  category: string | null;
  is_active: boolean;
  created_at: string;
  updated_at: string;
};
const cols = "id, domain, name, category, is_active, created_at, updated_at";

/**
 * A named statement: node-postgres prepares it once per connection. Not pool.query(): on any error,
 * even a unique violation, it destroys the connection (a new backend per 409 costs milliseconds of the
 * server's CPU); here only a broken connection is dropped.
 */
const statement =
  <R extends pg.QueryResultRow>(name: string, text: string) =>
  async (...values: unknown[]): Promise<R[]> => {
    const client = await pool.connect();
    try {
      const rows = (await client.query<R>({ name, text, values })).rows;
      client.release();
      return rows;
    } catch (err) {
      client.release(err instanceof pg.DatabaseError ? undefined : (err as Error));
      throw err;
    }
  };

const byId = statement<SiteRow>("by_id", `SELECT ${cols} FROM sites WHERE id = $1`);
const firstPageActive = statement<SiteRow>("first_page_active", `SELECT ${cols} FROM sites WHERE is_active ORDER BY name, id LIMIT $1`);
const firstPage = statement<SiteRow>("first_page", `SELECT ${cols} FROM sites ORDER BY name, id LIMIT $1`);
const insertSite = statement<SiteRow>(
  "insert_site",
  `INSERT INTO sites (domain, name, category, is_active) VALUES ($1, $2, $3, $4) RETURNING ${cols}`,
);
const insertTask = statement<{ id: number }>(
  "insert_task",
  `INSERT INTO sync_tasks (site_id, task_type, start_date, end_date, params, progress_total)
   VALUES ($1, 'daily_sync', $2, $3, $4::jsonb, $5) RETURNING id`,
);
const activeTask = statement<{ id: number }>(
  "active_task",
  "SELECT id FROM sync_tasks WHERE site_id = $1 AND task_type = 'daily_sync' AND status IN ('pending','running')",
);

const codeOf = (err: unknown) => (err as { code?: string }).code;
const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => Response.json(body, { status, headers });
const error = (status: number, code: string, message: string, details?: unknown) =>
  json({ error: details === undefined ? { code, message } : { code, message, details } }, status);
const domainPattern = /^(sc-domain:[a-z0-9-]+(\.[a-z0-9-]+)+|https?:\/\/[^\s/?#]+(:\d+)?\/[^\s?#]*)$/i;
const idPattern = /^[1-9]\d{0,15}$/;
// Ids are PostgreSQL integers: a larger one names no row (rather than an out-of-range error).
const MAX_ID = 2_147_483_647;
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
    const row = (await insertSite(domain, name.trim(), category, is_active))[0]!;
    return json(row, 201, { Location: `/api/v1/sites/${row.id}` });
  } catch (err) {
    if (codeOf(err) === "23505") return error(409, "conflict", `a site with domain '${domain}' already exists`, { domain });
    throw err;
  }
}

async function handleList(url: URL) {
  const limit = Number(url.searchParams.get("limit") ?? 100);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) return error(400, "validation_failed", "invalid query: limit");
  const activeOnly = (url.searchParams.get("active_only") ?? "true") !== "false";
  const rows = await (activeOnly ? firstPageActive : firstPage)(limit + 1);
  const headers: Record<string, string> = {};
  if (rows.length > limit) {
    rows.length = limit;
    const last = rows[limit - 1]!;
    url.searchParams.set("cursor", Buffer.from(JSON.stringify([last.name, last.id])).toString("base64url"));
    headers.Link = `<${url.pathname}${url.search}>; rel="next"`;
  }
  return json(rows, 200, headers);
}

async function handleTrigger(rawId: string, url: URL) {
  if (!idPattern.test(rawId)) return error(400, "validation_failed", "invalid site id");
  const days = Number(url.searchParams.get("days") ?? 7);
  if (!Number.isInteger(days) || days < 1 || days > 365) return error(400, "validation_failed", "invalid query: days");
  const mode = url.searchParams.get("sync_mode") ?? "skip";
  const newest = Date.now() - 2 * DAY_MS;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const siteId = Number(rawId);
  if (siteId > MAX_ID) return error(404, "not_found", `site ${rawId} not found`);
  try {
    const task = (await insertTask(siteId, day(newest - (days - 1) * DAY_MS), day(newest), JSON.stringify({ sync_mode: mode }), days))[0]!;
    return json({ job_id: task.id, message: `sync started for site ${rawId}`, status_url: `/api/v1/sync/job/${task.id}` }, 202);
  } catch (err) {
    if (codeOf(err) === "23503") return error(404, "not_found", `site ${rawId} not found`);
    if (codeOf(err) !== "23505") throw err;
    const id = (await activeTask(siteId))[0]?.id;
    return error(409, "conflict", `site ${rawId} already has a pending or running daily_sync`, { job_id: id });
  }
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
        if (req.method === "GET") return await handleList(url);
        if (req.method === "POST") return await handleCreate(req);
      } else if (path.startsWith("/api/v1/sites/") && req.method === "GET") {
        const raw = path.slice("/api/v1/sites/".length);
        if (!idPattern.test(raw)) return error(400, "validation_failed", "invalid site id");
        const row = Number(raw) > MAX_ID ? undefined : (await byId(Number(raw)))[0];
        return row ? json(row) : error(404, "not_found", `site ${raw} not found`);
      } else if (path.startsWith("/api/v1/sync/trigger/") && req.method === "POST") {
        return await handleTrigger(path.slice("/api/v1/sync/trigger/".length), url);
      } else if (path === "/health") {
        return json({ status: "healthy", process_id: process.pid });
      }
      return error(404, "not_found", `no route for ${req.method} ${path}`);
    } catch (err) {
      return error(500, "internal", String(err));
    }
  },
});
process.send?.({ type: "ready", pid: process.pid, port: server.port });
process.on("SIGTERM", () => {
  void server.stop(false).then(async () => {
    await pool.end().catch(() => {});
    process.exit(0);
  });
});
process.on("disconnect", () => process.exit(0));
