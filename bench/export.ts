// `bun bench/export.ts [--rows 1000000] [--days 90] [--db path (kept; reused when it exists)] [--formats csv,parquet]`:
// the export's speed through the real endpoint (GET /api/v1/sites/{id}/export) of the service (one HTTP
// worker) on SQLite: one site seeded with `rows` demo rows, each format downloaded by curl (its bytes
// counted by wc, so the client costs little CPU), with rows/s in wall time, the server's CPU per row
// (user + system of its process tree, from /proc: rows per CPU-second, what a free core would do; the HTTP worker's
// apart) and its RSS before and at the highest sample during the download (every 50 ms).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { asyncBufferFromFile, parquetMetadataAsync } from "hyparquet";
import { startService } from "./processes.ts";
import { treeRss } from "./rss.ts";
import { seedAnalytics } from "./seed-analytics.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    days: { type: "string", default: "90" },
    db: { type: "string" },
    formats: { type: "string", default: "csv,parquet" },
  },
});
const MiB = 1024 * 1024;
const dir = args.db ? null : mkdtempSync(join(tmpdir(), "sitesync-bench-export-"));
const dbPath = args.db ?? join(dir!, "app.db");
const seeded = existsSync(dbPath);
if (!seeded) {
  const t = performance.now();
  const s = await seedAnalytics(dbPath, { rows: Number(args.rows), days: Number(args.days) });
  console.log(`seeded ${s.rows} rows in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

/** CPU milliseconds (user + system) of a process and each of its descendants, by pid, from /proc. */
function treeCpuMs(pid: number): Map<number, number> {
  const ms = new Map<number, number>();
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      ms.set(p, (Number(f[11]) + Number(f[12])) * 10);
      for (const t of readdirSync(`/proc/${p}/task`))
        stack.push(...readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // gone meanwhile
    }
  }
  return ms;
}

const server = await startService({ dbPath, workers: 1, syncWorkers: 0 });
try {
  const site = ((await (await fetch(`${server.url}/api/v1/sites?limit=1`)).json()) as { id: number }[])[0]!.id;
  const curl = Bun.which("curl");
  if (!curl) throw new Error("curl is needed");
  for (const format of args.formats.split(",")) {
    // A small warm-up download (JIT), then the measured one.
    await (
      await fetch(`${server.url}/api/v1/sites/${site}/export?format=${format}&start_date=2000-01-01&end_date=2000-01-02`)
    ).arrayBuffer();
    const file = format === "parquet" ? join(mkdtempSync(join(tmpdir(), "sitesync-bench-export-pq-")), "export.parquet") : null;
    const rss = () => [...(treeRss(server.pid)?.values() ?? [])].reduce((a, b) => a + b.rss, 0);
    const rssBefore = rss();
    let rssPeak = rssBefore;
    const timer = setInterval(() => {
      rssPeak = Math.max(rssPeak, rss());
    }, 50);
    const cpu0 = treeCpuMs(server.pid);
    const t = performance.now();
    const to = file ? `-o "${file}"` : "";
    const p = Bun.spawn(
      [
        "sh",
        "-c",
        `{ "${curl}" -sS --fail ${to} "${server.url}/api/v1/sites/${site}/export?format=${format}"; echo "curl exit $?" >&2; } | wc -lc`,
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const seconds = (performance.now() - t) / 1000;
    // The HTTP worker (the process that spent the most) apart from the rest of the tree (the supervisor's idle work
    // grows with the download's wall time, i.e. with the machine's load).
    const spent = [...treeCpuMs(server.pid)].map(([p, ms]) => ms - (cpu0.get(p) ?? 0));
    const cpu = spent.reduce((a, b) => a + b, 0);
    const worker = Math.max(...spent);
    clearInterval(timer);
    if (!err.includes("curl exit 0")) throw new Error(`curl failed: ${err.trim()}`);
    let [lines, bytes] = out.trim().split(/\s+/).map(Number) as [number, number];
    let rows = lines - 1;
    if (file) {
      bytes = statSync(file).size;
      rows = Number((await parquetMetadataAsync(await asyncBufferFromFile(file))).num_rows);
      rmSync(dirname(file), { recursive: true, force: true });
    }
    console.log(
      `${format.padEnd(8)} ${rows} rows, ${(bytes / MiB).toFixed(1)} MiB in ${seconds.toFixed(2)} s = ${Math.round(rows / seconds)} rows/s wall (load ${loadavg()[0]!.toFixed(1)}); ` +
        `server CPU ${((cpu * 1000) / rows).toFixed(2)} µs/row = ${Math.round((rows / cpu) * 1000)} rows per CPU-second ` +
        `(HTTP worker ${((worker * 1000) / rows).toFixed(2)} µs/row, the rest ${cpu - worker} ms); RSS ${(rssBefore / MiB).toFixed(0)} → peak ${(rssPeak / MiB).toFixed(0)} MiB`,
    );
  }
} finally {
  await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
