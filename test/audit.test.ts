import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { and, asc, count, eq, sql } from "drizzle-orm";
import { createApp } from "../src/app.ts";
import { createApiKey } from "../src/auth/queries.ts";
import type { Db } from "../src/db/index.ts";
import { tempDb } from "./helpers/db.ts";
import { withDb } from "./helpers/observe.ts";
import { request, startServer } from "./helpers/server.ts";

// The audit log: one row per API write, in the transaction of the change (in-process), and exactly
// the acknowledged writes of a multi-process load (real service, 4 HTTP workers).

const JSON_CT = { "content-type": "application/json" };

/**
 * Makes every audit insert matching `when` (SQL over `new`) fail, as a full disk or a broken table would:
 * an SQLite trigger raising ABORT, or a PostgreSQL trigger function raising an exception.
 */
async function refuseAuditRows(db: Db, when: string): Promise<{ drop: () => Promise<void> }> {
  if (db.engine === "sqlite") {
    const raw = new Database(db.path);
    raw.run(`create trigger audit_refuse before insert on audit_log when ${when} begin select raise(abort, 'audit refused'); end`);
    return {
      async drop() {
        raw.run("drop trigger audit_refuse");
        raw.close();
      },
    };
  }
  await db.q.execute(
    sql.raw("create function audit_refuse() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$"),
  );
  await db.q.execute(
    sql.raw(`create trigger audit_refuse before insert on audit_log for each row when (${when}) execute function audit_refuse()`),
  );
  return {
    async drop() {
      await db.q.execute(sql.raw("drop trigger audit_refuse on audit_log"));
      await db.q.execute(sql.raw("drop function audit_refuse()"));
    },
  };
}

describe("in-process", () => {
  const t = tempDb();
  const app = createApp(t.db);
  afterAll(() => t.cleanup());
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, { method, headers: { ...JSON_CT, ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const rows = async (): Promise<Record<string, unknown>[]> => t.db.q.select().from(t.db.t.auditLog).orderBy(asc(t.db.t.auditLog.id));

  test("each write and refusal is recorded with who, what, target, request id and outcome", async () => {
    const created = await call("POST", "/api/v1/sites", { domain: "sc-domain:audit.example", name: "A" });
    const site = ((await created.json()) as { id: number }).id;
    const dup = await call("POST", "/api/v1/sites", { domain: "sc-domain:audit.example", name: "A" });
    expect(dup.status).toBe(409);
    expect((await call("PATCH", `/api/v1/sites/${site}`, { name: "B" })).status).toBe(200);
    const trig = await call("POST", `/api/v1/sync/trigger/${site}`);
    const job = ((await trig.json()) as { job_id: number }).job_id;
    expect((await call("DELETE", `/api/v1/sync/job/${job}`)).status).toBe(200);
    expect((await call("DELETE", `/api/v1/sites/${site}`)).status).toBe(204);
    expect((await call("GET", "/api/v1/sites")).status).toBe(200);
    const got = (await rows()).map((r) => [r.actor, r.action, r.target, r.site_id, r.outcome, r.status]);
    expect(got).toEqual([
      ["loopback", "POST /api/v1/sites", `site:${site}`, site, "ok", null],
      ["loopback", "POST /api/v1/sites", null, null, "failed", 409],
      ["loopback", "PATCH /api/v1/sites/:id", `site:${site}`, site, "ok", null],
      ["loopback", "POST /api/v1/sync/trigger/:site_id", `job:${job}`, site, "ok", null],
      ["loopback", "DELETE /api/v1/sync/job/:job_id", `job:${job}`, null, "ok", null],
      ["loopback", "DELETE /api/v1/sites/:id", `site:${site}`, site, "ok", null],
    ]);
    expect((await rows())[0]!.request_id).toBe(created.headers.get("x-request-id"));
  });

  test("a change of a site that does not exist is audited as failed 404, never ok (PATCH, DELETE, purge, restore)", async () => {
    const before = (await rows()).length;
    const missing = 987_654;
    expect((await call("PATCH", `/api/v1/sites/${missing}`, { name: "X" })).status).toBe(404);
    expect((await call("DELETE", `/api/v1/sites/${missing}`)).status).toBe(404);
    expect((await call("DELETE", `/api/v1/sites/${missing}?purge=true&confirm=x`)).status).toBe(404);
    expect((await call("POST", `/api/v1/sites/${missing}/restore`)).status).toBe(404);
    const got = (await rows()).slice(before).map((r) => [r.action, r.target, r.outcome, r.status]);
    expect(got).toEqual([
      ["PATCH /api/v1/sites/:id", `site:${missing}`, "failed", 404],
      ["DELETE /api/v1/sites/:id", `site:${missing}`, "failed", 404],
      ["DELETE /api/v1/sites/:id (purge)", `site:${missing}`, "failed", 404],
      ["POST /api/v1/sites/:id/restore", `site:${missing}`, "failed", 404],
    ]);
  });

  test("keys: the actor is the key's name; a wrong scope is recorded as denied", async () => {
    const { key, info } = await createApiKey(t.db, { name: "reader", scope: "read" });
    const before = (await rows()).length;
    const r = await call("POST", "/api/v1/sites", { domain: "sc-domain:denied.example", name: "D" }, { authorization: `Bearer ${key}` });
    expect(r.status).toBe(403);
    const last = (await rows()).slice(before);
    expect(last).toEqual([
      expect.objectContaining({ actor: "reader", key_id: info.id, outcome: "denied", status: 403, action: "POST /api/v1/sites" }),
    ]);
  });

  test("no change without its audit row: when the audit insert fails, the change rolls back", async () => {
    const { key } = await createApiKey(t.db, { name: "writer", scope: "admin" });
    const auth = { authorization: `Bearer ${key}` };
    const site = (
      (await (await call("POST", "/api/v1/sites", { domain: "sc-domain:atomic.example", name: "Before" }, auth)).json()) as { id: number }
    ).id;
    const refusal = await refuseAuditRows(t.db, "new.action like 'PATCH%' and new.outcome = 'ok'");
    try {
      const r = await call("PATCH", `/api/v1/sites/${site}`, { name: "After" }, auth);
      expect(r.status).toBe(500);
      const stored = (await (await call("GET", `/api/v1/sites/${site}`, undefined, auth)).json()) as { name: string };
      expect(stored.name).toBe("Before");
      expect((await rows()).filter((x) => x.action === "PATCH /api/v1/sites/:id" && x.outcome === "ok" && x.site_id === site)).toEqual([]);
    } finally {
      await refusal.drop();
    }
  });

  test("GET /api/v1/audit: admin only, filters and pages", async () => {
    const { key: admin, info } = await createApiKey(t.db, { name: "auditor", scope: "admin" });
    const { key: writer } = await createApiKey(t.db, { name: "w2", scope: "write" });
    const auth = { authorization: `Bearer ${admin}` };
    expect((await call("GET", "/api/v1/audit", undefined, { authorization: `Bearer ${writer}` })).status).toBe(403);
    for (let i = 0; i < 5; i++) await call("POST", "/api/v1/sites", { domain: `sc-domain:p${i}.audit.example`, name: `P${i}` }, auth);
    const page1 = (await (await call("GET", `/api/v1/audit?key_id=${info.id}&limit=3`, undefined, auth)).json()) as any;
    expect(page1.entries.map((e: { actor: string }) => e.actor)).toEqual(["auditor", "auditor", "auditor"]);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const page2 = (await (
      await call("GET", `/api/v1/audit?key_id=${info.id}&limit=3&cursor=${page1.next_cursor}`, undefined, auth)
    ).json()) as any;
    expect(page2.entries).toHaveLength(2);
    expect(page2.next_cursor).toBeNull();
    expect(page1.entries[0].id).toBeGreaterThan(page2.entries[0].id);
    const denied = (await (await call("GET", "/api/v1/audit?outcome=denied", undefined, auth)).json()) as any;
    // Reads are not audited: only the read key's refused POST.
    expect(denied.entries.map((e: { actor: string }) => e.actor)).toEqual(["reader"]);
    const future = (await (await call("GET", "/api/v1/audit?since=2999-01-01T00:00:00Z", undefined, auth)).json()) as any;
    expect(future.entries).toEqual([]);
    expect((await call("GET", "/api/v1/audit?since=yesterday", undefined, auth)).status).toBe(400);
  });
});

describe("multi-process", () => {
  test("audit rows match the acknowledged writes of a concurrent load over 4 workers exactly", async () => {
    const s = await startServer({ workers: 4 });
    try {
      const acknowledged = new Map<string, string>(); // request id -> action
      const sitesMade: number[] = [];
      const clients = Array.from({ length: 12 }, async (_, c) => {
        for (let i = 0; i < 15; i++) {
          const r = await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:c${c}-${i}.load.example`, name: `L${c}-${i}` });
          if (r.status === 201) {
            acknowledged.set(r.headers.get("x-request-id")!, "POST /api/v1/sites");
            sitesMade.push(r.body.id);
            const p = await request(s.url, "PATCH", `/api/v1/sites/${r.body.id}`, { category: "x" });
            if (p.status === 200) acknowledged.set(p.headers.get("x-request-id")!, "PATCH /api/v1/sites/:id");
            if (i % 3 === 0) {
              const d = await request(s.url, "DELETE", `/api/v1/sites/${r.body.id}`);
              if (d.status === 204) acknowledged.set(d.headers.get("x-request-id")!, "DELETE /api/v1/sites/:id");
            }
          }
          // A duplicate: refused, so no ok row.
          await request(s.url, "POST", "/api/v1/sites", { domain: `sc-domain:c${c}-${i}.load.example`, name: "dup" });
        }
      });
      await Promise.all(clients);
      expect(acknowledged.size).toBe(12 * 15 * 2 + 12 * 5);
      await withDb(s.dbPath, async (db) => {
        const { auditLog, sites } = db.t;
        const ok = await db.q
          .select({ request_id: auditLog.request_id, action: auditLog.action })
          .from(auditLog)
          .where(eq(auditLog.outcome, "ok"));
        expect(new Map(ok.map((r) => [r.request_id, r.action]))).toEqual(acknowledged);
        expect(ok).toHaveLength(acknowledged.size);
        const [failed] = await db.q
          .select({ n: count() })
          .from(auditLog)
          .where(and(eq(auditLog.outcome, "failed"), eq(auditLog.status, 409)));
        expect(failed!.n).toBe(12 * 15);
        const [n] = await db.q.select({ n: count() }).from(sites);
        expect(n!.n).toBe(sitesMade.length);
      });
    } finally {
      await s.cleanup();
    }
  });
});
