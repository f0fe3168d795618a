// The reader's statements share one read transaction per event-loop turn (src/db/sqlite/read-snapshot.ts):
// one read lock per turn instead of one per statement, never at the cost of reading stale data across turns
// or missing this process's own writes.
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { readerDataVersion } from "../src/auth/queries.ts";
import { shareReadSnapshots, sharedSnapshotOf } from "../src/db/sqlite/read-snapshot.ts";
import { tempSqliteDb } from "./helpers/db.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function setup() {
  const t = tempSqliteDb();
  cleanups.push(t.cleanup);
  const other = new Database(t.path);
  other.run("PRAGMA busy_timeout = 5000");
  cleanups.push(() => other.close());
  return { ...t, other };
}

const count = (db: Database) => db.query<{ n: number }, []>("SELECT count(*) AS n FROM sites").get()!.n;

describe("shared read snapshots (SQLite reader)", () => {
  test("reads of one turn share one read transaction; the next turn starts a new one", async () => {
    const { path } = setup();
    const reader = new Database(path);
    cleanups.push(() => reader.close());
    const snaps = shareReadSnapshots(reader);
    const stmt = reader.prepare("SELECT 1 AS one FROM sites LIMIT 1");
    for (let i = 0; i < 50; i++) stmt.all();
    count(reader);
    expect(reader.inTransaction).toBe(true);
    expect(snaps.opened).toBe(1);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(reader.inTransaction).toBe(false);
    count(reader);
    expect(snaps.opened).toBe(2);
  });

  test("another connection's commit is seen from the next turn on, never later", async () => {
    const { db, other } = setup();
    const reader = db.raw.reader;
    expect(count(reader)).toBe(0);
    other.run("INSERT INTO sites (domain, name) VALUES ('sc-domain:a.example', 'A')");
    // Same turn: the snapshot taken at the turn's first read.
    expect(count(reader)).toBe(0);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(count(reader)).toBe(1);
  });

  test("this process's own commit is seen by the very next read (read your writes), even in the same turn", async () => {
    const { db } = setup();
    const reader = db.raw.reader;
    expect(count(reader)).toBe(0);
    await db.tx(async (tx) => {
      // A read in the turn that commits: the snapshot of this turn is open when the commit lands.
      expect(count(reader)).toBe(0);
      await tx.insert(db.t.sites).values({ domain: "sc-domain:b.example", name: "B" });
    });
    // Still the same turn (the await resumes in a microtask), yet the own write is seen.
    expect(count(reader)).toBe(1);
    expect((await db.q.select().from(db.t.sites)).length).toBe(1);
  });

  test("a write refused by another connection's commit (a unique index) is followed by a read that sees that commit", async () => {
    const { db, other } = setup();
    const domain = "sc-domain:race.example";
    let seenAfter: number | undefined;
    let failed = false;
    // The turn the write is flushed in: a read first (this turn's snapshot), then another process wins the row, then
    // this process's insert of the same domain fails and its caller reads the winner (as the sync trigger's 409 does).
    setImmediate(() => {
      expect(count(db.raw.reader)).toBe(0);
      other.run("INSERT INTO sites (domain, name) VALUES (?, 'Winner')", [domain]);
    });
    await db
      .tx(async (tx) => {
        await tx.insert(db.t.sites).values({ domain, name: "Loser" });
      })
      .catch(() => {
        failed = true;
        seenAfter = count(db.raw.reader);
      });
    expect(failed).toBe(true);
    expect(seenAfter).toBe(1);
  });

  test("code that opens its own transaction on the reader gets it (the shared one ends first)", () => {
    const { db } = setup();
    const reader = db.raw.reader;
    count(reader);
    expect(reader.inTransaction).toBe(true);
    const begin = reader.prepare("BEGIN");
    const commit = reader.prepare("COMMIT");
    begin.run();
    expect(count(reader)).toBe(0);
    commit.run();
    reader.run("BEGIN");
    reader.run("COMMIT");
    expect(reader.inTransaction).toBe(false);
  });

  test("SQLITE_READ_SNAPSHOT_PER_TURN=false (sharedReadSnapshots: false) leaves every statement on its own", () => {
    const t = tempSqliteDb({ sharedReadSnapshots: false });
    cleanups.push(t.cleanup);
    count(t.db.raw.reader);
    expect(t.db.raw.reader.inTransaction).toBe(false);
  });

  test("sharedSnapshotOf numbers the open shared read transaction; data_version is read once per snapshot", async () => {
    const { db, other } = setup();
    const reader = db.raw.reader;
    // Count the steps of the PRAGMA statement (prepared on first use, after this spy is in place).
    let steps = 0;
    const prepare = reader.prepare.bind(reader);
    reader.prepare = ((sql: string, ...rest: unknown[]) => {
      const stmt = prepare(sql, ...(rest as []));
      if (/data_version/.test(sql)) {
        const get = stmt.get.bind(stmt);
        stmt.get = (...a: unknown[]) => {
          steps++;
          return get(...(a as []));
        };
      }
      return stmt;
    }) as typeof reader.prepare;
    await new Promise((r) => setImmediate(r));
    expect(sharedSnapshotOf(reader)).toBeNull();
    const v1 = readerDataVersion(db);
    const first = sharedSnapshotOf(reader);
    expect(first).not.toBeNull();
    for (let i = 0; i < 10; i++) expect(readerDataVersion(db)).toBe(v1);
    expect(steps).toBe(1);
    expect(sharedSnapshotOf(reader)).toBe(first);
    // Another connection commits: this turn's snapshot (and its version) stays; the next turn sees the change.
    other.run("INSERT INTO sites (domain, name) VALUES ('sc-domain:v.example', 'V')");
    expect(readerDataVersion(db)).toBe(v1);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(sharedSnapshotOf(reader)).toBeNull();
    expect(readerDataVersion(db)).not.toBe(v1);
    expect(sharedSnapshotOf(reader)).toBeGreaterThan(first!);
    expect(steps).toBe(2);
  });
});
