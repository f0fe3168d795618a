import { Database } from "bun:sqlite";
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../src/app.ts";
import { fileIdentity, guardFile } from "../src/db/sqlite/identity.ts";
import { FileChangedError, openDb } from "../src/db/index.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { sites } from "../src/db/sqlite/schema.ts";
import { tempSqliteDb, tempDir } from "./helpers/db.ts";
import { request, startServer } from "./helpers/server.ts";

// The file is the file: a database deleted or replaced under a running instance stops it from
// acknowledging writes, turns /health unhealthy, and stops the supervisor (exit 2) instead of letting
// restarted workers open the other file. Nothing ever creates a file at the path on the way.

setDefaultTimeout(60_000);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const site = (domain: string) => ({ domain: `sc-domain:${domain}`, name: domain });

describe("in one process", () => {
  const changes = [
    { name: "deleted", change: (path: string) => unlinkSync(path), reason: /was deleted while in use/ },
    {
      name: "replaced",
      change: (path: string) => {
        const other = `${path}.new`;
        migrate(other);
        renameSync(other, path);
      },
      reason: /was replaced by another file while in use \(device:inode \d+:\d+ became \d+:\d+\)/,
    },
  ];
  for (const c of changes) {
    test(`file ${c.name}: writes 503 with Retry-After, /health 503 with the reason, diagnostics create nothing`, async () => {
      const t = tempSqliteDb();
      cleanups.push(t.cleanup);
      const app = createApp(t.db);
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await app.request(
          path,
          body ? { method, body: JSON.stringify(body), headers: { "content-type": "application/json" } } : { method },
        );
        return { status: res.status, headers: res.headers, json: (await res.json()) as any };
      };
      expect((await call("POST", "/api/v1/sites", site("before.example"))).status).toBe(201);
      const before = fileIdentity(t.path);
      c.change(t.path);
      const after = fileIdentity(t.path);

      const w = await call("POST", "/api/v1/sites", site("after.example"));
      expect(w.status).toBe(503);
      expect(w.json.error.code).toBe("unavailable");
      expect(w.json.error.message).toMatch(/deleted or replaced/);
      expect(w.headers.get("retry-after")).toBe("1");
      // The write, and the audit row recording its failure, were both refused.
      expect(t.db.stats.refusedFileChanged).toBeGreaterThanOrEqual(1);

      const h = await call("GET", "/health");
      expect(h.status).toBe(503);
      expect(h.json).toMatchObject({ status: "unhealthy", database_connected: false, connection_info: null });
      expect(h.json.reasons[0]).toMatch(c.reason);

      const d = await call("GET", "/api/v1/diagnostics/test-db-connection");
      expect(d.status).toBe(200);
      expect(d.json.connection_test).toMatchObject({ success: false, error: expect.stringMatching(c.reason) });
      const cl = await call("GET", "/api/v1/diagnostics/check-locks");
      expect(cl.json.lock_state).toBe("file_changed");
      expect(cl.json.storage.file_problem).toMatch(c.reason);
      expect(cl.json.warnings[0]).toMatch(c.reason);
      // Nothing created a file at the path, or replaced the one there.
      expect(fileIdentity(t.path)).toBe(after);
      expect(before).not.toBe(after);
    });
  }

  test("a write committed just as the file is replaced is not acknowledged", async () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    await t.db.write((tx) => tx.insert(sites).values(site("warm.example")).run());
    // Within the 100 ms the check before BEGIN may reuse, the check after COMMIT (a fresh stat) catches it.
    const pending = t.db.write((tx) => {
      unlinkSync(t.path);
      return tx.insert(sites).values(site("inflight.example")).run();
    });
    await expect(pending).rejects.toMatchObject({ code: "unavailable" });
  });

  test("a path that cannot be looked up any more (a directory of it now a file) reads as deleted, never throws", () => {
    // The check runs after every COMMIT, outside the write's try: a throw there would leave the write queue stuck.
    const d = tempDir();
    cleanups.push(d.cleanup);
    const sub = join(d.dir, "sub");
    mkdirSync(sub);
    writeFileSync(join(sub, "app.db"), "x");
    const guard = guardFile(join(sub, "app.db"));
    expect(guard.problem(0)).toBeNull();
    rmSync(sub, { recursive: true });
    writeFileSync(sub, "a file now"); // stat: ENOTDIR, not ENOENT
    expect(guard.problem(0)).toMatch(/was deleted while in use/);
  });

  test("a worker handed its supervisor's identity refuses a file that is not that one", () => {
    const t = tempSqliteDb();
    cleanups.push(t.cleanup);
    expect(() => openDb({ path: t.path, role: "test", expectedIdentity: "1:1" })).toThrow(FileChangedError);
    expect(openDb({ path: t.path, role: "test", expectedIdentity: fileIdentity(t.path)! }).guard.problem()).toBeNull();
  });
});

describe("a running instance (real processes)", () => {
  /** Clients creating sites until the service stops answering; returns the domains acknowledged. */
  function writeLoad(url: string, prefix: string, clients = 8) {
    const acked: string[] = [];
    const refused: number[] = [];
    let stop = false;
    const loops = Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        const domain = `${prefix}-${c}-${i}.example`;
        const r = await request(url, "POST", "/api/v1/sites", site(domain)).catch(() => null);
        if (r === null) {
          await Bun.sleep(20);
          continue;
        }
        if (r.status === 201) acked.push(domain);
        else refused.push(r.status);
      }
    });
    return {
      acked,
      refused,
      async stop() {
        stop = true;
        await Promise.all(loops);
      },
    };
  }

  /** Opens a copy of the original file (kept by a hard link) with the WAL it was left with. */
  function openKept(kept: string, wal: string) {
    if (existsSync(wal)) copyFileSync(wal, `${kept}-wal`);
    return new Database(kept, { readonly: false });
  }

  const scenarios = [
    { name: "deleted", change: (p: string) => unlinkSync(p), reason: /was deleted while in use/ },
    {
      name: "replaced",
      change: (p: string) => {
        migrate(`${p}.new`);
        renameSync(`${p}.new`, p);
      },
      reason: /was replaced by another file/,
    },
  ];
  for (const sc of scenarios) {
    test(`file ${sc.name} under load: the supervisor exits 2 saying why; every acknowledged write is in the original file`, async () => {
      const tmp = tempDir();
      cleanups.push(tmp.cleanup);
      const dbPath = join(tmp.dir, "app.db");
      const s = await startServer({ workers: 2, dbPath });
      cleanups.push(s.cleanup);
      const load = writeLoad(s.url, sc.name);
      while (load.acked.length < 50) await Bun.sleep(10);
      // Keep the original inode reachable, then pull the file out from under the instance.
      const kept = join(tmp.dir, "kept.db");
      linkSync(dbPath, kept);
      sc.change(dbPath);
      const replacement = fileIdentity(dbPath);
      const changedAt = performance.now();
      const code = await s.proc.exited;
      const exitedMs = performance.now() - changedAt;
      await load.stop();
      expect(code).toBe(2);
      const out = s.output();
      expect(out).toMatch(/"msg":"shutting down","signal":"database file changed"/);
      expect(out).toMatch(sc.reason);
      expect(out).not.toMatch(/\n\s+at /);
      // No worker was restarted onto another file, and nobody created or swapped a file at the path.
      expect(out).not.toContain("worker exited; restarting");
      expect(fileIdentity(dbPath)).toBe(replacement);
      console.log(
        `file ${sc.name}: supervisor exited ${Math.round(exitedMs)} ms after the change; ${load.acked.length} writes acknowledged, ${load.refused.length} refused (${[...new Set(load.refused)].join(",")})`,
      );
      expect(load.refused.every((st) => st === 503)).toBe(true);

      const db = openKept(kept, `${dbPath}-wal`);
      const have = new Set(
        db
          .query<{ domain: string }, []>("select domain from sites")
          .all()
          .map((r) => r.domain),
      );
      db.close();
      const lost = load.acked.filter((d) => !have.has(`sc-domain:${d}`));
      expect(lost).toEqual([]);
    });
  }

  test("the lock file of a replaced database is left for the next start, which serves the new file", async () => {
    const s = await startServer({ workers: 1 });
    cleanups.push(s.cleanup);
    migrate(`${s.dbPath}.new`);
    const marker = new Database(`${s.dbPath}.new`);
    marker.run("INSERT INTO sites (domain, name) VALUES ('sc-domain:marker.example', 'Marker')");
    marker.close();
    // Away with the old WAL too, as an operator restoring a backup would.
    renameSync(`${s.dbPath}.new`, s.dbPath);
    expect(await s.proc.exited).toBe(2);
    for (const f of ["-wal", "-shm"]) if (existsSync(s.dbPath + f)) unlinkSync(s.dbPath + f);
    const next = await startServer({ workers: 1, dbPath: s.dbPath });
    cleanups.push(next.cleanup);
    const list = await request(next.url, "GET", "/api/v1/sites");
    expect(list.body.map((x: { domain: string }) => x.domain)).toEqual(["sc-domain:marker.example"]);
    expect(JSON.parse(readFileSync(`${s.dbPath}.lock`, "utf8")).pid).toBe(next.proc.pid);
  });
});
