import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../app.ts";
import { openDb } from "../db/index.ts";
import { migrate } from "../db/sqlite/migrate.ts";
import { routeTableOf } from "../lazy-routes.ts";

// `bun src/bundle/route-table.ts OUT`: writes the app's route table (each lazy group's methods and paths, as
// src/lazy-routes.ts mounts them) to OUT as JSON. The start bundle's build runs it on the sources it bundles
// (routes.json beside the start files), so an HTTP worker started from the bundle mounts its groups without loading
// them. The app over a throw-away SQLite file: the routes are the same on either engine.

const out = process.argv[2];
if (!out) throw new Error("usage: bun src/bundle/route-table.ts OUT");
const dir = mkdtempSync(join(tmpdir(), "sitesync-routes-"));
try {
  const path = join(dir, "app.db");
  migrate(path);
  const db = openDb({ path, role: "http" });
  writeFileSync(out, JSON.stringify(routeTableOf(createApp(db, { fastPath: false }))));
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
