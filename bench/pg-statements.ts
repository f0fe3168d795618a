import { join } from "node:path";

// `TEST_ENGINE=pg TEST_POSTGRES_URL=postgres://… bun bench/pg-statements.ts [checkout]`: client CPU and wall time
// per call of the request path's hot PostgreSQL queries (site by id, the first list page of 50, "any active key",
// a site create with its transaction), on a fresh database of that server (test/helpers' tempDb), 200 sites.
// Give another checkout's path to measure its tree the same way (before/after comparisons).

const root = process.argv[2] ?? join(import.meta.dir, "..");
const { tempDb } = await import(`${root}/test/helpers/db.ts`);
const { findSiteById, createSite, listSites } = await import(`${root}/src/sites/queries.ts`);
const { hasActiveKey } = await import(`${root}/src/auth/queries.ts`);
const t = await tempDb();
const db = t.db;
if (db.engine !== "pg") throw new Error("run with TEST_ENGINE=pg and TEST_POSTGRES_URL set");
for (let i = 0; i < 200; i++) await createSite(db, { domain: `sc-domain:s${i}.bench.example`, name: `S${i}` });

async function measure(label: string, fn: (i: number) => Promise<unknown>, n = 3000) {
  for (let i = 0; i < 500; i++) await fn(i);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  const d = process.cpuUsage(c0);
  console.log(
    `${label.padEnd(10)} ${((d.user + d.system) / n).toFixed(1).padStart(7)} µs client CPU per call, ${(((performance.now() - t0) * 1000) / n).toFixed(0).padStart(6)} µs wall`,
  );
}
await measure("by id", (i) => findSiteById(db, 1 + (i % 200)));
await measure("list 50", () => listSites(db, { activeOnly: true, limit: 50 }));
await measure("any key", () => hasActiveKey(db));
let k = 0;
await measure("create", () => createSite(db, { domain: `sc-domain:c${k++}.bench.example`, name: `C${k}` }), 1000);
await t.cleanup();
process.exit(0);
