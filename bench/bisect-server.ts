import { Database } from "bun:sqlite";
import { SECURITY_HEADERS } from "../src/request-frame.ts";

// The textbook's GET of one site (bench/baseline/server.ts: Bun.serve, a prepared statement, Response.json) and
// the group-commit peer's POST of a site (its write queue: the writes of one event-loop turn in one BEGIN
// IMMEDIATE, each in a SAVEPOINT unless alone), with the service's pieces added one at a time, for
// bench/served-bisect.ts. PIECES (comma list):
//   headers  the service's answer headers (Content-Type, the 6 security headers, X-Request-Id) from one prebuilt
//            Headers, as src/http/fast-path.ts answers
//   ip       server.requestIP(req) on every request (a getpeername system call), as the keyless check asks
//   app      src/app.ts and everything it imports loaded at start (a service-sized heap and code), unused
//   audit    a create also inserts the service's audit row (audit_log, its indexes) in the same transaction
// One process; DB (a migrated file with sites), PORT from the environment; prints "ready" once it listens.
//
//   PIECES=headers,ip DB=a.db PORT=1234 bun bench/bisect-server.ts

const pieces = new Set((process.env.PIECES ?? "").split(",").filter(Boolean));
const db = new Database(process.env.DB!, { strict: true });
db.run("PRAGMA busy_timeout = 5000");
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = NORMAL");
db.run("PRAGMA foreign_keys = ON");
type SiteRow = { is_active: number } & Record<string, unknown>;
const byId = db.query<SiteRow, [number]>("SELECT id, domain, name, category, is_active, created_at, updated_at FROM sites WHERE id = ?");
const site = (r: SiteRow) => ({ ...r, is_active: r.is_active === 1 });
const headers = pieces.has("headers")
  ? new Headers([["Content-Type", "application/json"], ...SECURITY_HEADERS] as [string, string][])
  : null;
const ip = pieces.has("ip");
if (pieces.has("app")) await import("../src/app.ts");
const idPattern = /^[1-9]\d{0,15}$/;
const audit = pieces.has("audit");

const cols = "id, domain, name, category, is_active, created_at, updated_at";
const insertSite = db.query<SiteRow, [string, string, string | null, number]>(
  `INSERT INTO sites (domain, name, category, is_active) VALUES (?, ?, ?, ?) RETURNING ${cols}`,
);
const insertAudit = db.query(
  "INSERT INTO audit_log (actor, key_id, ip, method, action, target, site_id, request_id, outcome, status) VALUES (?, NULL, ?, 'POST', 'POST /api/v1/sites', ?, ?, ?, 'ok', NULL)",
);
type Job = { run: () => SiteRow; resolve: (v: SiteRow) => void; reject: (e: unknown) => void };
let queue: Job[] = [];
let scheduled = false;
let attempt = 0;
const [begin, commit, rollback, savepoint, release, rollbackTo] = [
  "BEGIN IMMEDIATE",
  "COMMIT",
  "ROLLBACK",
  "SAVEPOINT w",
  "RELEASE w",
  "ROLLBACK TO w",
].map((q) => db.prepare(q));
db.run("PRAGMA busy_timeout = 0");
const isBusy = (err: unknown) => String((err as { code?: string }).code).startsWith("SQLITE_BUSY");
function schedule(delayMs: number) {
  if (scheduled) return;
  scheduled = true;
  if (delayMs <= 0) setImmediate(flush);
  else setTimeout(flush, delayMs);
}
/**
 * The group-commit peer's flush (bench/baseline/server.ts), with its busy retry (the next turns of the event loop, then
 * every ~2 ms): with `--workers` above 1 the processes share the file, and a BEGIN IMMEDIATE that finds the lock taken
 * must not fail the batch ("database is locked").
 */
function flush() {
  scheduled = false;
  if (queue.length === 0) return;
  try {
    begin!.run();
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
    if (!solo) savepoint!.run();
    try {
      const value = j.run();
      if (!solo) release!.run();
      return { ok: true, value };
    } catch (err) {
      if (!solo) {
        rollbackTo!.run();
        release!.run();
      }
      return { ok: false, value: err };
    }
  });
  try {
    if (solo && !results[0]!.ok) rollback!.run();
    else commit!.run();
  } catch (err) {
    if (db.inTransaction) rollback!.run();
    for (const j of batch) j.reject(err);
    return;
  }
  batch.forEach((j, i) => (results[i]!.ok ? j.resolve(results[i]!.value as SiteRow) : j.reject(results[i]!.value)));
  if (queue.length > 0) schedule(0);
}
function queued(run: () => SiteRow): Promise<SiteRow> {
  return new Promise((resolve, reject) => {
    queue.push({ run, resolve, reject });
    schedule(0);
  });
}

async function create(req: Request, address: string | null) {
  const body = (await req.json()) as { domain?: unknown; name?: unknown };
  if (typeof body?.domain !== "string" || typeof body.name !== "string") {
    return Response.json({ error: { code: "validation_failed", message: "invalid body" } }, { status: 400 });
  }
  const id = crypto.randomUUID();
  const row = await queued(() => {
    const r = insertSite.get(body.domain as string, body.name as string, null, 1)!;
    if (audit) insertAudit.run("loopback", address, `site:${r.id}`, Number(r.id), id);
    return r;
  });
  if (headers === null) return Response.json(site(row), { status: 201, headers: { Location: `/api/v1/sites/${row.id}` } });
  const res = new Response(JSON.stringify(site(row)), { status: 201, headers });
  res.headers.set("X-Request-Id", id);
  res.headers.set("Location", `/api/v1/sites/${row.id}`);
  return res;
}

const server = Bun.serve({
  port: Number(process.env.PORT),
  hostname: "127.0.0.1",
  reusePort: true,
  fetch(req, srv) {
    const peer = ip ? srv.requestIP(req) : null;
    if (req.method === "POST") return create(req, peer?.address ?? null);
    const path = new URL(req.url).pathname;
    const raw = path.slice("/api/v1/sites/".length);
    const row = idPattern.test(raw) ? byId.get(Number(raw)) : null;
    if (!row) return Response.json({ error: { code: "not_found", message: `no site ${raw}` } }, { status: 404 });
    if (headers === null) return Response.json(site(row));
    const res = new Response(JSON.stringify(site(row)), { status: 200, headers });
    res.headers.set("X-Request-Id", crypto.randomUUID());
    return res;
  },
});
console.log(`ready ${server.port}`);
