// scripts/pg-cluster.ts: the throw-away PostgreSQL of the tests and .ci/run.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { findPgBin, startCluster, stopCluster } from "../scripts/pg-cluster.ts";
import { tempDir } from "./helpers/db.ts";

test("findPgBin picks the newest version that has both initdb and pg_ctl", () => {
  const d = tempDir();
  try {
    expect(findPgBin(join(d.dir, "absent"))).toBeNull();
    const bin = (v: string, files: string[]) => {
      mkdirSync(join(d.dir, v, "bin"), { recursive: true });
      for (const f of files) writeFileSync(join(d.dir, v, "bin", f), "");
    };
    bin("9.6", ["initdb", "pg_ctl"]);
    bin("15", ["initdb", "pg_ctl"]);
    bin("16", ["initdb"]); // incomplete
    bin("notaversion", ["initdb", "pg_ctl"]);
    expect(findPgBin(d.dir)).toBe(join(d.dir, "15", "bin"));
  } finally {
    d.cleanup();
  }
});

describe.skipIf(findPgBin() === null)("a real cluster", () => {
  test("starts on 127.0.0.1 as the postgres user, removes clusters whose owner is gone (only those), and stop removes it", async () => {
    const parent = tempDir();
    chmodSync(parent.dir, 0o755); // the postgres user must reach its cluster inside
    try {
      // A cluster left by a test run killed before its cleanup (its owner pid no longer exists).
      const orphan = join(parent.dir, "sitesync-pg-orphan");
      mkdirSync(orphan);
      writeFileSync(join(orphan, "owner.pid"), String(2 ** 22 + 12345)); // above Linux's pid_max
      // One whose owner lives (another test run's) is left alone.
      const alive = join(parent.dir, "sitesync-pg-alive");
      mkdirSync(alive);
      writeFileSync(join(alive, "owner.pid"), String(process.pid));
      const c = startCluster({ parent: parent.dir });
      try {
        expect(existsSync(orphan)).toBe(false);
        expect(existsSync(alive)).toBe(true);
        expect(c.url).toBe(`postgres://postgres@127.0.0.1:${c.port}/postgres`);
        const client = new pg.Client({ connectionString: c.url });
        await client.connect();
        try {
          const r = await client.query("select current_user as u, current_setting('lc_collate') as c, current_setting('fsync') as f");
          expect(r.rows[0]).toEqual({ u: "postgres", c: "C", f: "off" });
        } finally {
          await client.end();
        }
      } finally {
        stopCluster(c.dir);
      }
      expect(existsSync(c.dir)).toBe(false);
    } finally {
      parent.cleanup();
    }
  });

  test("starts in a folder too deep for a Unix socket's path (107 bytes): without the socket, over TCP", async () => {
    const parent = tempDir();
    chmodSync(parent.dir, 0o755);
    // As deep as a runner group's folder can put it (named after its first file): it could not start at all.
    const deep = join(parent.dir, "x".repeat(Math.max(1, 100 - parent.dir.length)));
    mkdirSync(deep);
    chmodSync(deep, 0o755);
    try {
      const c = startCluster({ parent: deep });
      try {
        expect(join(c.dir, `.s.PGSQL.${c.port}`).length).toBeGreaterThan(107);
        const client = new pg.Client({ connectionString: c.url });
        await client.connect();
        try {
          expect((await client.query("select 1 as one")).rows[0]).toEqual({ one: 1 });
        } finally {
          await client.end();
        }
      } finally {
        stopCluster(c.dir);
      }
    } finally {
      parent.cleanup();
    }
  });
});
