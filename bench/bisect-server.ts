import { Database } from "bun:sqlite";
import { SECURITY_HEADERS } from "../src/request-frame.ts";

// The textbook's GET of one site (bench/baseline/server.ts: Bun.serve, a prepared statement, Response.json)
// with the service's pieces added one at a time, for bench/served-bisect.ts. PIECES (comma list):
//   headers  the service's answer headers (Content-Type, the 6 security headers, X-Request-Id) from one prebuilt
//            Headers, as src/http/fast-path.ts answers
//   ip       server.requestIP(req) on every request (a getpeername system call), as the keyless check asks
//   app      src/app.ts and everything it imports loaded at start (a service-sized heap and code), unused
// One process; DB (a migrated file with sites), PORT from the environment; prints "ready" once it listens.
//
//   PIECES=headers,ip DB=a.db PORT=1234 bun bench/bisect-server.ts

const pieces = new Set((process.env.PIECES ?? "").split(",").filter(Boolean));
const db = new Database(process.env.DB!, { strict: true });
db.run("PRAGMA busy_timeout = 5000");
db.run("PRAGMA journal_mode = WAL");
type SiteRow = { is_active: number } & Record<string, unknown>;
const byId = db.query<SiteRow, [number]>("SELECT id, domain, name, category, is_active, created_at, updated_at FROM sites WHERE id = ?");
const site = (r: SiteRow) => ({ ...r, is_active: r.is_active === 1 });
const headers = pieces.has("headers")
  ? new Headers([["Content-Type", "application/json"], ...SECURITY_HEADERS] as [string, string][])
  : null;
const ip = pieces.has("ip");
if (pieces.has("app")) await import("../src/app.ts");
const idPattern = /^[1-9]\d{0,15}$/;

const server = Bun.serve({
  port: Number(process.env.PORT),
  hostname: "127.0.0.1",
  reusePort: true,
  fetch(req, srv) {
    if (ip) srv.requestIP(req);
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
