import { afterAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { tempDb, testEngine } from "./helpers/db.ts";

// /api/v1/admin/backups on each engine: backups copy the SQLite file (test/backup.test.ts makes them);
// on PostgreSQL there is no file to copy, so both calls answer 501 and point at the server's own tools.

const t = tempDb();
const app = createApp(t.db);
afterAll(() => t.cleanup());

describe("admin backups API", () => {
  const calls = [
    { method: "GET", path: "/api/v1/admin/backups" },
    { method: "POST", path: "/api/v1/admin/backups" },
  ];
  for (const c of calls) {
    test.skipIf(testEngine !== "pg")(
      `PostgreSQL: ${c.method} ${c.path} -> 501 not_implemented, naming pg_dump; nothing audited as done`,
      async () => {
        const res = await app.request(c.path, { method: c.method });
        expect(res.status).toBe(501);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("not_implemented");
        expect(body.error.message).toContain("pg_dump");
        const { auditLog } = t.db.t;
        const rows = await t.db.q.select({ outcome: auditLog.outcome, status: auditLog.status, action: auditLog.action }).from(auditLog);
        // A refused POST is recorded as failed (with its 501), never as a backup made.
        expect(rows.filter((r) => r.outcome === "ok")).toEqual([]);
        if (c.method === "POST") expect(rows).toContainEqual({ outcome: "failed", status: 501, action: "POST /api/v1/admin/backups" });
      },
    );
  }

  test.skipIf(testEngine !== "sqlite")("SQLite: GET /api/v1/admin/backups lists the backups beside the file (none yet)", async () => {
    const res = await app.request("/api/v1/admin/backups");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ backups: [], last_run: null });
  });
});
