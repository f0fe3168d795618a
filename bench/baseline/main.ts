import type { Subprocess } from "bun";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaults } from "../../src/config.ts";
import { migrate } from "../../src/db/sqlite/migrate.ts";
import { migratePg } from "../../src/db/pg/migrate.ts";
import { withoutPassword } from "../pg.ts";

// Starts the textbook baseline: the project's schema (its own migrations) on the given file, then
// N processes of baseline/server.ts sharing one port with reusePort. No supervisor tricks: a dead
// worker is not restarted. Prints "baseline listening on <url>" once every process listens.
// A postgres:// URL instead of a file: the PostgreSQL migrations, and processes of baseline/pg-server.ts.
//
// --group-commit (SQLite): the bare group-commit peer (see server.ts).
//
//   bun bench/baseline/main.ts --db path|postgres://… --port 1234 [--workers 4] [--host 127.0.0.1] [--group-commit]

const { values: args } = parseArgs({
  options: {
    db: { type: "string" },
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    workers: { type: "string", default: "4" },
    "group-commit": { type: "boolean", default: false },
  },
  strict: true,
});
if (!args.db || !args.port) throw new Error("usage: main.ts --db path --port n [--workers n] [--host h]");
const workers = Number(args.workers);

const postgres = /^postgres(ql)?:\/\//i.test(args.db);
if (postgres) await migratePg(args.db);
else migrate(args.db);
const server = postgres
  ? [join(import.meta.dir, "pg-server.ts"), "--pool", String(defaults.PG_POOL_SIZE)]
  : [join(import.meta.dir, "server.ts"), ...(args["group-commit"] ? ["--group-commit"] : [])];

let ready = 0;
const procs: Subprocess[] = Array.from({ length: workers }, () =>
  Bun.spawn([process.execPath, ...server, "--db", args.db!, "--port", args.port!, "--host", args.host], {
    stdio: ["ignore", "inherit", "inherit"],
    ipc(message) {
      if ((message as { type?: string }).type === "ready" && ++ready === workers) {
        console.log(
          `baseline listening on http://${args.host}:${args.port} (${workers} processes${args["group-commit"] ? ", group commit" : ""}, database ${postgres ? withoutPassword(args.db!) : args.db})`,
        );
      }
    },
  }),
);

async function shutdown() {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
