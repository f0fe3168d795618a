import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { RouteTable } from "../lazy-routes.ts";

// Set by the start bundle's build (src/bundle/build.ts `define`): the folder of the bundle this code was built into.
// Undeclared (running from the sources), `typeof` answers "undefined".
declare const SITESYNC_START_BUNDLE: string | undefined;

const srcDir = join(import.meta.dir, "..");

/** The folder of the start bundle this process runs from, or null when it runs the sources. */
export function startBundleDir(): string | null {
  return typeof SITESYNC_START_BUNDLE === "string" ? SITESYNC_START_BUNDLE : null;
}

/** The file a child process runs for the start file `source` (relative to src/): the start bundle's when this process runs from one. */
export function entryFile(source: string): string {
  const dir = startBundleDir();
  return dir ? bundledFile(dir, source) : join(srcDir, source);
}

/** The start bundle's file in `dir` for the start file `source` (relative to src/), e.g. `bundledFile(dir, "main.ts")`. */
export function bundledFile(dir: string, source: string): string {
  return join(dir, source.replace(/\.tsx?$/, ".js"));
}

/** The route table's file in a start bundle (src/bundle/route-table.ts). */
export const ROUTE_TABLE = "routes.json";

/** The app's route table from the start bundle this process runs from; undefined when it runs the sources. */
export function bundledRouteTable(): RouteTable | undefined {
  const dir = startBundleDir();
  return dir ? (JSON.parse(readFileSync(join(dir, ROUTE_TABLE), "utf8")) as RouteTable) : undefined;
}
