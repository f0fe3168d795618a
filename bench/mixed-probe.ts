import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { treeCpuSeconds } from "./cpu.ts";
import { runLoad, type LoadRequest } from "./load.ts";
import { startService } from "./processes.ts";
import { seedSites } from "./seed.ts";

// Diagnosis: reads alone vs reads with 5% creates beside them, per service configuration (env variants).
//   bun bench/mixed-probe.ts [seconds] [variant...]
const secs = Number(process.argv[2] ?? 4);
const variants: Record<string, Record<string, string>> = {
  default: {},
  mmap: { SQLITE_MMAP_SIZE: "268435456" },
  nosnap: { SQLITE_READ_SNAPSHOT_PER_TURN: "0" },
  noauto: { SQLITE_WAL_AUTOCHECKPOINT: "0" },
  nockpt: { SQLITE_WAL_AUTOCHECKPOINT: "0", CHECKPOINT_INTERVAL_MS: "3600000" },
};
const pick = process.argv.slice(3);
for (const [name, env] of Object.entries(variants)) {
  if (pick.length && !pick.includes(name)) continue;
  const dir = mkdtempSync(join(tmpdir(), "mixed-probe-"));
  const svc = await startService({ dbPath: join(dir, "s.db"), workers: 4, syncWorkers: 0, env });
  const ids = await seedSites(svc.url, 1000);
  let n = 0;
  const tag = Math.random().toString(36).slice(2, 8);
  const one = (): LoadRequest => ({ method: "GET", path: `/api/v1/sites/${ids[Math.floor(Math.random() * ids.length)]}` });
  const create = (): LoadRequest => ({
    method: "POST",
    path: "/api/v1/sites",
    body: JSON.stringify({ domain: `sc-domain:p-${tag}-${++n}.bench.example`, name: `P ${n}` }),
  });
  const mixed = () => (Math.random() < 0.95 ? one() : create());
  await runLoad({ url: svc.url, connections: 64, durationSec: 1, next: one });
  for (const [label, next] of [
    ["reads", one],
    ["mixed", mixed],
    ["reads", one],
    ["mixed", mixed],
  ] as const) {
    const c0 = treeCpuSeconds(svc.pid) ?? 0;
    const r = await runLoad({ url: svc.url, connections: 64, durationSec: secs, next });
    const c1 = treeCpuSeconds(svc.pid) ?? 0;
    console.log(
      `${name.padEnd(8)} ${label}  ${Math.round(r.rps)} req/s  p50 ${r.p50Ms.toFixed(2)}  p99 ${r.p99Ms.toFixed(1)}  max ${r.maxMs.toFixed(0)}  cpu µs/req ${(((c1 - c0) * 1e6) / r.requests).toFixed(0)}  5xx ${r.server5xx} sock ${r.socketErrors}  load ${(await Bun.file("/proc/loadavg").text()).split(" ")[0]}`,
    );
  }
  await svc.stop();
  rmSync(dir, { recursive: true, force: true });
}
