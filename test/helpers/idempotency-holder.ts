import { openDb, openPgDb, type Db } from "../../src/db/index.ts";
import { registerProcess } from "../../src/db/process-registry.ts";
import { claimIdempotencyKey } from "../../src/idempotency/queries.ts";

// A process that claims an Idempotency-Key (as a worker does when a request arrives with one), prints
// "claimed" and then never answers: a test SIGKILLs it to stand for a worker that died between its
// commit and storing the answer. Arguments: the database (SQLite file or postgres:// URL), owner, key, and the
// registry's heartbeat (ms, default 2000).

const [url, owner, key, beat] = process.argv.slice(2) as [string, string, string, string?];
const heartbeatMs = Number(beat ?? 2000);
const db: Db = url.startsWith("postgres")
  ? openPgDb({ url, role: "test", poolSize: 2, heartbeatMs })
  : openDb({ path: url, role: "test", heartbeatMs });
await registerProcess(db);
const now = Date.now();
const claim = await claimIdempotencyKey(
  db,
  { owner, key, fingerprint: "f", method: "POST", path: "/api/v1/sites" },
  now,
  now + 5 * 60_000,
  now + 24 * 3600_000,
);
console.log(claim.kind);
setInterval(() => {}, 60_000);
