import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkBackupFile } from "../src/backup/backup.ts";
import { activeKeysIn, schemaProblems } from "../src/backup/verify.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { runScript } from "./helpers/client.ts";
import { tempDir } from "./helpers/db.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

// Backups of the running service under a write load (CLI and API), pruning, the supervisor's schedule,
// and restore (refused while the service runs; checked; then served).

const root = join(import.meta.dir, "..");
const backupFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /^sitesync-.*\.db$/.test(f))
    .sort();
const idsIn = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return new Set((db.query("select id from sites").all() as { id: number }[]).map((r) => r.id));
  } finally {
    db.close();
  }
};

/** Creates sites from several clients until stopped; each acknowledged id with when its 201 arrived. */
function writeLoad(base: string, clients = 4) {
  const acked: { id: number; at: number }[] = [];
  let stop = false;
  let n = 0;
  const done = Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (!stop) {
        const i = n++;
        const r = await request(base, "POST", "/api/v1/sites", { domain: `sc-domain:w${c}-${i}.backup.example`, name: `W${i}` });
        if (r.status !== 201) throw new Error(`write failed: ${r.status} ${JSON.stringify(r.body)}`);
        acked.push({ id: r.body.id, at: performance.now() });
      }
    }),
  );
  return {
    acked,
    async stop() {
      stop = true;
      await done;
    },
  };
}

describe("backup and restore", () => {
  const dirs = tempDir("sitesync-backup-");
  const backups = join(dirs.dir, "backups");
  let s: RunningServer;
  // Every server started here: the restore test starts a second one on the first one's file, whose temp
  // folder only the first one's cleanup removes (it was left behind, ~3 MB a run).
  const servers: RunningServer[] = [];
  beforeAll(async () => {
    s = await startServer({ workers: 2, env: { BACKUP_DIR: backups, BACKUP_KEEP: "3" } });
    servers.push(s);
  });
  afterAll(async () => {
    for (const x of servers.reverse()) await x.cleanup();
    dirs.cleanup();
  });

  test("CLI and API backups during a write load hold every write acknowledged before they started", async () => {
    const load = writeLoad(s.url);
    try {
      while (load.acked.length < 200) await Bun.sleep(20);
      const cliStart = performance.now();
      const cli = await runScript(root, ["src/backup/cli.ts", "--to", backups], { DATABASE_URL: s.dbPath, BACKUP_KEEP: "3" });
      expect(cli.code).toBe(0);
      const run = JSON.parse(cli.stdout.trim());
      expect(run).toMatchObject({ ok: true, error: null });
      const file = join(backups, run.file);
      checkBackupFile(file);
      const before = load.acked.filter((a) => a.at < cliStart);
      const inBackup = idsIn(file);
      expect(before.length).toBeGreaterThanOrEqual(200);
      expect(before.filter((a) => !inBackup.has(a.id))).toEqual([]);

      const apiStart = performance.now();
      const api = await request(s.url, "POST", "/api/v1/admin/backups");
      expect(api.status).toBe(201);
      // (toMatchObject with matchers would replace the body's values in place.)
      expect(api.body.file).toMatch(/^sitesync-\d{8}T\d{9}Z\.db$/);
      expect(api.body.size_bytes).toBeGreaterThan(0);
      const apiFile = join(backups, api.body.file);
      checkBackupFile(apiFile);
      const inApi = idsIn(apiFile);
      expect(load.acked.filter((a) => a.at < apiStart && !inApi.has(a.id))).toEqual([]);
      expect(inApi.size).toBeGreaterThan(inBackup.size);
    } finally {
      await load.stop();
    }
    const audit = new Database(s.dbPath, { readonly: true });
    expect(audit.query("select actor, outcome from audit_log where action = 'POST /api/v1/admin/backups'").all()).toEqual([
      { actor: "loopback", outcome: "ok" },
    ]);
    audit.close();
    const list = await request(s.url, "GET", "/api/v1/admin/backups");
    expect(list.status).toBe(200);
    expect(list.body.backups).toHaveLength(2);
    expect(list.body.last_run).toMatchObject({ ok: true });
    expect(list.body.backups[0].created_at > list.body.backups[1].created_at).toBe(true);
  });

  test("old backups are pruned to BACKUP_KEEP", async () => {
    for (let i = 0; i < 3; i++) {
      expect((await runScript(root, ["src/backup/cli.ts"], { DATABASE_URL: s.dbPath, BACKUP_DIR: backups, BACKUP_KEEP: "3" })).code).toBe(
        0,
      );
      await Bun.sleep(5);
    }
    expect(backupFiles(backups)).toHaveLength(3);
    // Backups hold every key hash and row: readable by the service's user only (they were 0644).
    for (const f of backupFiles(backups)) expect(statSync(join(backups, f)).mode & 0o777).toBe(0o600);
  });

  test("restore: refused while the service runs and for a bad file; then restores and serves the backup", async () => {
    const [oldest] = backupFiles(backups);
    const file = join(backups, oldest!);
    const expected = idsIn(file);
    const running = await runScript(root, ["src/backup/restore-cli.ts", file], { DATABASE_URL: s.dbPath });
    expect(running.code).toBe(1);
    expect(running.stderr).toContain("service is running");

    // Rows written after the backup, gone after the restore.
    const late = await request(s.url, "POST", "/api/v1/sites", { domain: "sc-domain:late.backup.example", name: "late" });
    expect(late.status).toBe(201);
    expect(await s.stop()).toBe(0);

    const garbage = join(dirs.dir, "garbage.db");
    writeFileSync(garbage, "not a database at all".repeat(100));
    const bad = await runScript(root, ["src/backup/restore-cli.ts", garbage], { DATABASE_URL: s.dbPath });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("restore refused");

    const ok = await runScript(root, ["src/backup/restore-cli.ts", file], { DATABASE_URL: s.dbPath });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("previous database kept as");
    checkBackupFile(s.dbPath);
    expect(idsIn(s.dbPath)).toEqual(expected);

    s = await startServer({ workers: 1, dbPath: s.dbPath, env: { BACKUP_DIR: backups } });
    servers.push(s);
    const one = await request(s.url, "GET", `/api/v1/sites/${[...expected][0]}`);
    expect(one.status).toBe(200);
    expect((await request(s.url, "GET", `/api/v1/sites/${late.body.id}`)).status).toBe(404);
  });
});

test("the supervisor makes a backup every BACKUP_INTERVAL and logs it", async () => {
  const dirs = tempDir("sitesync-backup-");
  const s = await startServer({ workers: 1, env: { BACKUP_DIR: dirs.dir, BACKUP_INTERVAL: "500ms", LOG_LEVEL: "info" } });
  try {
    const deadline = Date.now() + 15_000;
    while (backupFiles(dirs.dir).length < 2 && Date.now() < deadline) await Bun.sleep(100);
    expect(backupFiles(dirs.dir).length).toBeGreaterThanOrEqual(2);
    expect(s.output()).toContain('"msg":"backup made"');
    expect(existsSync(join(dirs.dir, "last-backup.json"))).toBe(true);
  } finally {
    await s.cleanup();
    dirs.cleanup();
  }
});

describe("restore checks the file (issue 21)", () => {
  // A sitesync-shaped file from elsewhere: the right tables, plus what an attacker adds. Before, it was
  // restored silently, planted admin key and trigger included.
  const dirs = tempDir("sitesync-restore-");
  const target = join(dirs.dir, "app.db");
  let n = 0;
  const plantedFile = (extra: string[] = []) => {
    const path = join(dirs.dir, `planted-${n++}.db`);
    migrate(path);
    const db = new Database(path);
    db.run("insert into api_keys (name, scope, prefix, key_hash) values ('planted', 'admin', 'ssk_0123456789ab', 'x')");
    db.run("insert into sites (domain, name) values ('sc-domain:restored.example', 'Restored')");
    for (const stmt of extra) db.run(stmt);
    db.run("PRAGMA journal_mode = DELETE");
    db.close();
    return path;
  };
  const sitesOfTarget = () => {
    const db = new Database(target, { readonly: true });
    try {
      return (db.query("select domain from sites").all() as { domain: string }[]).map((r) => r.domain);
    } finally {
      db.close();
    }
  };
  const restore = (file: string, ...flags: string[]) =>
    runScript(root, ["src/backup/restore-cli.ts", file, ...flags], { DATABASE_URL: target });
  beforeAll(() => migrate(target));
  afterAll(() => dirs.cleanup());

  test("schemaProblems names unknown triggers, views and tables and missing indexes; a migrated file has none", () => {
    expect(schemaProblems(target)).toEqual([]);
    const file = plantedFile([
      "create trigger keep after update of revoked_at on api_keys begin update api_keys set revoked_at = null where id = new.id; end",
      "create view leak as select * from api_keys",
      "create table extra (x)",
      "drop index ui_sessions_key_id_idx",
    ]);
    const problems = schemaProblems(file);
    expect(problems).toHaveLength(4);
    expect(problems.join("\n")).toContain("unknown trigger keep");
    expect(problems.join("\n")).toContain("unknown view leak");
    expect(problems.join("\n")).toContain("unknown table extra");
    expect(problems.join("\n")).toContain("missing index ui_sessions_key_id_idx");
  });

  test("a file with a planted trigger is refused and nothing is replaced", async () => {
    const file = plantedFile([
      "create trigger keep after update of revoked_at on api_keys begin update api_keys set revoked_at = null where id = new.id; end",
    ]);
    const r = await restore(file, "--keep-keys");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("restore refused: its schema is not the one the migrations build");
    expect(r.stderr).toContain("unknown trigger keep");
    expect(sitesOfTarget()).toEqual([]);
    expect(readdirSync(dirs.dir).filter((f) => f.includes("restore-tmp"))).toEqual([]);
  });

  test("active keys in the file are listed and need --keep-keys or --revoke-keys", async () => {
    const file = plantedFile();
    const asked = await restore(file);
    expect(asked.code).toBe(1);
    expect(asked.stdout).toContain("the backup holds 1 active key(s)");
    expect(asked.stdout).toMatch(/ssk_0123456789ab\tplanted\tadmin/);
    expect(asked.stderr).toContain("--keep-keys");
    expect(sitesOfTarget()).toEqual([]);

    const revoked = await restore(file, "--revoke-keys");
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain("revoked 1 key(s)");
    expect(sitesOfTarget()).toEqual(["sc-domain:restored.example"]);
    expect(activeKeysIn(target)).toEqual([]);

    const kept = await restore(file, "--keep-keys");
    expect(kept.code).toBe(0);
    expect(activeKeysIn(target).map((k) => k.prefix)).toEqual(["ssk_0123456789ab"]);
  });
});
