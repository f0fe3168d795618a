import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Why SQLITE_MMAP_SIZE defaults to 0: a reader's read transaction right after another connection's
// commit, with and without a memory map. SQLite drops a connection's whole map when its read transaction
// sees the database changed (pager reset + unfetch: one munmap and one mmap per commit, strace -c), then
// faults in again every page it touches. Same process, as in a service worker (writer + reader connections).
//
//   bun bench/mmap-commit.ts [reads=100000] [write every N reads=20]

const reads = Number(process.argv[2] ?? 100_000);
const every = Number(process.argv[3] ?? 20);

function run(mmapSize: number) {
  const dir = mkdtempSync(join(tmpdir(), "mmap-commit-"));
  const path = join(dir, "m.db");
  const open = () => {
    const d = new Database(path, { create: true, strict: true });
    d.run("PRAGMA journal_mode = WAL");
    d.run("PRAGMA synchronous = NORMAL");
    d.run("PRAGMA cache_size = -64000");
    d.run(`PRAGMA mmap_size = ${mmapSize}`);
    return d;
  };
  const w = open();
  w.run("CREATE TABLE sites (id INTEGER PRIMARY KEY, domain TEXT UNIQUE, name TEXT, created_at TEXT)");
  const ins = w.prepare("INSERT INTO sites (domain, name, created_at) VALUES (?, ?, ?)");
  w.transaction(() => {
    for (let i = 0; i < 20_000; i++) ins.run(`sc-domain:s${i}.example`, `Site ${i}`, "2026-01-01");
  })();
  w.run("PRAGMA wal_checkpoint(TRUNCATE)");
  const r = open();
  const get = r.prepare("SELECT * FROM sites WHERE id = ?");
  const begin = r.prepare("BEGIN");
  const commit = r.prepare("COMMIT");
  let after = 0;
  let nAfter = 0;
  let other = 0;
  let nOther = 0;
  let k = 0;
  const faults0 = process.resourceUsage().minorPageFault;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < reads; i++) {
    const wrote = i % every === 0;
    if (wrote) ins.run(`x${k++}.example`, "n", "2026-01-01");
    const t0 = Bun.nanoseconds();
    begin.run();
    get.get(1 + ((i * 7919) % 20_000));
    commit.run();
    const ns = Bun.nanoseconds() - t0;
    if (wrote) {
      after += ns;
      nAfter++;
    } else {
      other += ns;
      nOther++;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const faults = process.resourceUsage().minorPageFault - faults0;
  r.close();
  w.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `mmap_size ${String(mmapSize).padStart(9)}: read after a commit ${(after / nAfter / 1000).toFixed(1)} µs, other reads ${(other / nOther / 1000).toFixed(1)} µs, ` +
      `CPU ${((cpu.user + cpu.system) / reads) | 0} µs per read (writes included), ${(faults / nAfter).toFixed(1)} page faults per commit`,
  );
}

for (let round = 0; round < 2; round++) {
  run(268_435_456);
  run(0);
}
