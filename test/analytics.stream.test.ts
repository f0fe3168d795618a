import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { children } from "../bench/cpu.ts";
import { exportCsvLine } from "../src/analytics/export.ts";
import { PARQUET_GROUP_ROWS } from "../src/analytics/parquet.ts";
import type { SeedResult } from "../bench/seed-analytics.ts";
import { seededSqliteFile } from "./helpers/seeded-sqlite.ts";
import { seededPgDatabase } from "./helpers/seeded-pg.ts";
import { tempDir, testEngine } from "./helpers/db.ts";
import { type newPgDatabase, psql, psqlBin } from "./helpers/engine.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

// The streamed downloads against the real service (one HTTP worker, so every request below reaches the
// process that is streaming): complete output, reads that stay fresh while a download is paused, and the
// download's own connection closed when the client goes away. On PostgreSQL the download reads a
// server-side cursor on a connection of its own (seen in pg_stat_activity) and aggregations run on the server.

setDefaultTimeout(60_000);

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let seed: SeedResult;
let dbPath: string;
let pgdb: ReturnType<typeof newPgDatabase> | null = null;

beforeAll(async () => {
  dir = tempDir();
  if (testEngine === "pg") {
    // A copy of the run's seeded database (the other file seeding the same rows copies it too).
    ({ pgdb, seed } = await seededPgDatabase({ rows: 120_000, days: 30 }));
    dbPath = pgdb.url;
  } else {
    dbPath = join(dir.dir, "app.db");
    // A copy of the run's seeded file (the other file seeding the same rows copies it too).
    seed = await seededSqliteFile(dbPath, { rows: 120_000, days: 30 });
  }
  server = await startServer({ workers: 1, dbPath });
  // A hang guard for a loaded machine, never a speed assertion: the seed (or the wait for bounds.load's, the same
  // rows) and a server start took over 60 s at load ~50.
}, 180_000);
afterAll(async () => {
  await server?.stop();
  pgdb?.drop();
  dir?.cleanup();
});

/** PostgreSQL: the service's download connections open on the test database right now (pg_stat_activity). */
function pgDownloadConnections(): number {
  return Number(
    psql(`select count(*) from pg_stat_activity where datname = '${pgdb!.name}' and application_name like 'sitesync-%-download'`),
  );
}

/**
 * The service's count of streamed downloads holding a connection: GET /metrics (SQLite), or the
 * download connections the server itself lists (PostgreSQL: pg_stat_activity).
 */
async function openDownloads(): Promise<number> {
  if (testEngine === "pg") return pgDownloadConnections();
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^sitesync_downloads_open(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
}

/** SQLite: tries a TRUNCATE checkpoint from a connection of the test's own: true when it completed (no reader held an old snapshot). */
function truncateCheckpoint(): boolean {
  const conn = new Database(dbPath);
  try {
    conn.run("PRAGMA busy_timeout = 0");
    return conn.query<{ busy: number }, []>("PRAGMA wal_checkpoint(TRUNCATE)").get()?.busy === 0;
  } finally {
    conn.close();
  }
}

describe("streamed export on the real service", () => {
  test("the seeded site is searchable (the seeder fills the query-search index as a sync does)", async () => {
    const r = await request(server.url, "GET", `/api/v1/sites/${seed.siteId}/queries/search?search_term=trail`);
    expect(r.status).toBe(200);
    expect(r.body.queries.length).toBeGreaterThan(0);
    expect(r.body.queries.every((q: { query: string }) => q.query.includes("trail"))).toBe(true);
  });

  test("the whole site as CSV: header, every row, CRLF", async () => {
    const res = await fetch(`${server.url}/api/v1/sites/${seed.siteId}/export?format=csv`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBeNull();
    const text = await res.text();
    const lines = text.split("\r\n");
    expect(lines[0]).toBe("date,page,query,device,search_type,clicks,impressions,ctr,position");
    expect(lines.at(-1)).toBe("");
    expect(lines.length - 2).toBe(seed.rows);
    expect(lines[1]!.startsWith(`${seed.start},https://bench-analytics.example/`)).toBe(true);
    expect(text.includes("\n") && !/[^\r]\n/.test(text)).toBe(true);
    // Each line as csvLine writes the same row of the JSON lines (the served encoder reuses its chunks' memory).
    const jsonl = (await (await fetch(`${server.url}/api/v1/sites/${seed.siteId}/export?format=jsonl`)).text()).trim().split("\n");
    expect(jsonl.length).toBe(seed.rows);
    for (let i = 0; i < jsonl.length; i++) {
      const want = exportCsvLine(JSON.parse(jsonl[i]!), false);
      if (`${lines[i + 1]}\r\n` !== want) expect({ i, line: lines[i + 1] }).toEqual({ i, line: want.slice(0, -2) });
    }
  });

  // SQLite: the served CSV and Parquet write each next chunk into the memory of the last (the direct stream to Bun's
  // HTTP response); PostgreSQL's downloads make every chunk new.
  test.skipIf(testEngine === "pg")(
    "a CSV and a Parquet download read slowly (the client pausing, the server waiting on it) give the same bytes as read at once",
    async () => {
      for (const format of ["csv", "parquet"]) {
        const url = `${server.url}/api/v1/sites/${seed.siteId}/export?format=${format}`;
        const fast = Buffer.from(await (await fetch(url)).arrayBuffer());
        const reader = (await fetch(url)).body!.getReader();
        const parts: Uint8Array[] = [];
        let size = 0;
        let paused = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
          size += value.length;
          // A pause every 256 KiB read: the socket's buffers fill and the server's writes wait for the client.
          if (size >= (paused + 1) * 256 * 1024) {
            paused++;
            await Bun.sleep(10);
          }
        }
        expect(paused).toBeGreaterThan(2);
        expect(Buffer.concat(parts).equals(fast)).toBe(true);
      }
    },
  );

  test("the whole site as Parquet: several row groups, the same rows and order as JSON lines (read back with hyparquet)", async () => {
    const res = await fetch(`${server.url}/api/v1/sites/${seed.siteId}/export?format=parquet`).catch((e) => {
      console.error(server.output());
      throw e;
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.apache.parquet");
    expect(res.headers.get("content-disposition")).toContain(".parquet");
    const file = await res.arrayBuffer();
    const meta = parquetMetadata(file);
    expect(Number(meta.num_rows)).toBe(seed.rows);
    expect(meta.row_groups.length).toBe(Math.ceil(seed.rows / PARQUET_GROUP_ROWS));
    const rows = await parquetReadObjects({ file });
    const jsonl = (await (await fetch(`${server.url}/api/v1/sites/${seed.siteId}/export?format=jsonl`)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.length).toBe(jsonl.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const j = jsonl[i]!;
      if (
        (r.date as Date).toISOString().slice(0, 10) !== j.date ||
        r.page !== j.page ||
        r.query !== j.query ||
        Number(r.clicks as bigint) !== Number(j.clicks)
      ) {
        expect({ i, ...r }).toEqual({ i, ...j });
      }
      expect(r.ctr).toBeCloseTo(Number(j.ctr), 12);
      expect(r.position).toBeCloseTo(Number(j.position), 12);
    }
  });

  test("while a download is paused the worker's other reads see new writes; a client that goes away closes its connection", async () => {
    // A raw socket that stops reading after the first bytes: the server must stop too (backpressure).
    const url = new URL(server.url);
    const sock = connect({ host: url.hostname, port: Number(url.port) });
    const firstBytes = new Promise<string>((resolve) => sock.once("data", (d) => resolve(String(d))));
    sock.write(`GET /api/v1/sites/${seed.siteId}/export?format=jsonl HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
    expect(await firstBytes).toStartWith("HTTP/1.1 200");
    sock.pause();
    await Bun.sleep(300);
    expect(await openDownloads()).toBe(1);

    const created = await request(server.url, "POST", "/api/v1/sites", { domain: "sc-domain:during-export.example", name: "during" });
    expect(created.status).toBe(201);
    const got = await request(server.url, "GET", `/api/v1/sites/${created.body.id}`);
    expect(got.status).toBe(200);
    const pk = await request(server.url, "POST", "/api/v1/page-keyword-performance/", { hostname: "during-export.example" });
    expect(pk.status).toBe(200);
    // The paused download still holds its snapshot: SQLite's WAL cannot be reset past the site just
    // written; PostgreSQL's download connection stays open (idle in its read-only transaction).
    const released = () => (testEngine === "pg" ? pgDownloadConnections() === 0 : truncateCheckpoint());
    expect(released()).toBe(false);

    sock.destroy();
    // Once the client is gone the server finalizes the statement and closes that connection, at once.
    const deadline = Date.now() + 2000;
    let done = released();
    while (!done && Date.now() < deadline) {
      await Bun.sleep(50);
      done = released();
    }
    expect(done).toBe(true);
    expect(await openDownloads()).toBe(0);
  });

  test.skipIf(testEngine === "pg")(
    "a slow aggregation runs off the event loop: the same worker answers other requests meanwhile (SQLite: in query processes of lower priority)",
    async () => {
      const body = { site_id: seed.siteId };
      // The aggregation is held for 0.5 s whatever the machine's speed, as the PostgreSQL test below holds its tables:
      // the worker's query processes (started by this request if none is yet) are stopped (SIGSTOP) while it runs.
      // Unheld it took ~100 ms on a quiet machine, as short as a few GETs: a CI run saw 1 answered meanwhile.
      expect((await request(server.url, "POST", "/api/v1/page-keyword-performance/", body)).status).toBe(200);
      const held = children(server.proc.pid).flatMap((w) => children(w));
      expect(held.length).toBeGreaterThan(0);
      for (const p of held) process.kill(p, "SIGSTOP");
      setTimeout(() => {
        for (const p of held) process.kill(p, "SIGCONT");
      }, 500);
      let slowDone = false;
      const slow = request(server.url, "POST", "/api/v1/page-keyword-performance/", body).then((r) => {
        slowDone = true;
        return r;
      });
      // Reads one after another for as long as the aggregation runs: off the event loop they keep being answered; on
      // it, at most one would get through before it ends.
      let answeredMeanwhile = 0;
      while (!slowDone) {
        const r = await request(server.url, "GET", `/api/v1/sites/${seed.siteId}`);
        expect(r.status).toBe(200);
        if (!slowDone) answeredMeanwhile++;
      }
      const r = await slow;
      expect(r.status).toBe(200);
      expect(r.body.total_results).toBe(24);
      expect(answeredMeanwhile).toBeGreaterThanOrEqual(5);

      // The query ran in a query process of lower scheduling priority (nice 10): the worker keeps nice 0.
      const niceOf = (pid: number) => {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
      };
      const workers = children(server.proc.pid);
      expect(workers.map(niceOf)).toEqual([0]);
      const queryProcesses = workers.flatMap((w) => children(w));
      expect(queryProcesses.length).toBeGreaterThan(0);
      expect(queryProcesses.every((p) => niceOf(p) === 10)).toBe(true);
    },
  );

  test.skipIf(testEngine === "sqlite")(
    "a slow aggregation runs on the server: the same worker answers other requests meanwhile (PostgreSQL)",
    async () => {
      // The aggregation is made slow on the server, whatever the machine's speed: this test holds a lock on the
      // tables it reads for 2 s, so it waits there (as a long scan would) while the worker should keep answering.
      // Reading the seed alone took 0.1-0.2 s after the page reads got faster: too short to tell the two apart.
      const tables = "gsc_query_detail, gsc_page_totals, gsc_pages, gsc_queries";
      const holder = Bun.spawn(
        [psqlBin(), pgdb!.url, "-qAtc", `begin; lock table ${tables} in access exclusive mode; select pg_sleep(2); commit;`],
        { stdout: "ignore", stderr: "inherit" },
      );
      const held = () =>
        Number(
          psql(
            `select count(*) from pg_locks where mode = 'AccessExclusiveLock' and granted and relation = 'gsc_query_detail'::regclass`,
            pgdb!.url,
          ),
        );
      while (held() === 0) await Bun.sleep(20);
      let slowDone = false;
      const slow = request(server.url, "POST", "/api/v1/page-keyword-performance/", { site_id: seed.siteId }).then((r) => {
        slowDone = true;
        return r;
      });
      let answeredMeanwhile = 0;
      while (!slowDone) {
        const r = await request(server.url, "GET", `/api/v1/sites/${seed.siteId}`);
        expect(r.status).toBe(200);
        if (!slowDone) answeredMeanwhile++;
      }
      const r = await slow;
      expect(await holder.exited).toBe(0);
      expect(r.status).toBe(200);
      expect(r.body.total_results).toBe(24);
      // If the worker waited with the aggregation, at most one read would get through in those 2 s.
      expect(answeredMeanwhile).toBeGreaterThanOrEqual(5);
    },
  );
});
