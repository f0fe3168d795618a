import { join } from "node:path";

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
