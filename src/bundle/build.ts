import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { bundledFile, ROUTE_TABLE } from "./entry.ts";

// The start bundle: the supervisor, the HTTP and sync workers and the CLI built into one minified file each, with its
// bytecode (lazy imports kept lazy), so a process loads one compiled file instead of parsing ~600 modules to get ready
// (BENCHMARKS.md "Start-up"). It lives under node_modules/.cache/, one folder per state of the sources
// (every file under src/, package.json, bun.lock, tsconfig.json, Bun's version): a changed source makes a new key, so a
// stale bundle is never run; the first start after a change builds it (~2 s of CPU). `bun run start` (src/start.ts)
// and the tests' servers and CLI runs start from it; `bun src/main.ts` still runs the sources.

/** The start files built, relative to src/: the processes the supervisor and the tests start. */
export const startEntries = ["main.ts", "server.ts", "sync/worker-main.ts", "cli/main.ts"];

const repoRoot = join(import.meta.dir, "../..");
// Bundles not used for this long are removed when another is built (~21 MB each): one asked for a while ago may still
// be about to start a process (a test file's servers); one a running process runs is kept whatever its age.
const KEEP_UNUSED_MS = 3600_000;
// A builder that holds the lock this long without finishing is taken for dead.
const LOCK_STALE_MS = 120_000;

export type StartBundleOptions = {
  /** The checkout whose src/ is built (default: this one). */
  root?: string;
  /** The start files, relative to src/ (default {@link startEntries}). */
  entries?: string[];
};

/** The key of the sources' state: changes when a file under src/ (or the package files, or Bun) changes. */
export function sourceKey(root = repoRoot, entries = startEntries): string {
  const h = new Bun.CryptoHasher("sha1");
  h.update(`${Bun.version}\0${entries.join(",")}\0`);
  const src = join(root, "src");
  const files = (readdirSync(src, { recursive: true }) as string[]).map((f) => join(src, f)).sort();
  for (const f of [...files, ...["package.json", "bun.lock", "tsconfig.json"].map((f) => join(root, f))]) {
    let s: ReturnType<typeof statSync> | undefined;
    try {
      s = statSync(f);
    } catch {
      continue;
    }
    if (s.isFile()) h.update(`${relative(root, f)}\0${s.size}\0${s.mtimeMs}\0`);
  }
  return h.digest("hex").slice(0, 16);
}

/** The folder of the current start bundle of `root`, built first when the sources changed since (or it never was). */
export async function ensureStartBundle(opts: StartBundleOptions = {}): Promise<string> {
  const root = opts.root ?? repoRoot;
  const entries = opts.entries ?? startEntries;
  const base = join(root, "node_modules/.cache/sitesync-start");
  const dir = join(base, sourceKey(root, entries));
  if (isReady(dir)) return touched(dir);
  mkdirSync(base, { recursive: true });
  const lock = `${dir}.lock`;
  // One builder at a time (the suite's files start at once); the others wait for its bundle.
  for (const deadline = Date.now() + 2 * LOCK_STALE_MS; ; ) {
    if (isReady(dir)) return touched(dir);
    if (takeLock(lock)) break;
    if (Date.now() > deadline) throw new Error(`the start bundle ${dir} was not built in time (lock ${lock})`);
    await Bun.sleep(50);
  }
  try {
    if (isReady(dir)) return touched(dir);
    await build(root, entries, dir);
    prune(base, dir);
    return dir;
  } finally {
    rmSync(lock, { force: true });
  }
}

function isReady(dir: string) {
  return existsSync(join(dir, "ready"));
}

function touched(dir: string) {
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // Read-only: it is only used to keep it from being pruned.
  }
  return dir;
}

/**
 * Takes the build lock (a file made exclusively, holding the builder's pid); a lock whose builder is gone, or older
 * than LOCK_STALE_MS (a builder on another host sharing the folder), is taken for a dead builder's.
 */
function takeLock(lock: string): boolean {
  try {
    const fd = openSync(lock, "wx");
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    try {
      // A builder killed mid-build (a test's start timing out, SIGKILL) leaves its lock: without the pid check every
      // start waited LOCK_STALE_MS for it, with nothing printed.
      if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS || !isAlive(Number(readFileSync(lock, "utf8")))) {
        rmSync(lock, { force: true });
      }
    } catch {
      // Gone meanwhile: try again.
    }
    return false;
  }
}

/** Whether process `pid` of this host is alive (a lock being written reads as empty: alive). */
function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Builds the bundle into a folder of its own, then moves it into place (a reader never sees half of it). */
async function build(root: string, entries: string[], dir: string) {
  const src = join(root, "src");
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const entryPaths = new Set(entries.map((e) => join(src, e)));
  // Bun.main names the file run by its real path: node_modules (where the bundle lives) may be a symbolic link.
  const realDir = join(realpathSync(dirname(dir)), basename(dir));
  const result = await Bun.build({
    entrypoints: [...entryPaths],
    root: src,
    outdir: tmp,
    target: "bun",
    // Bytecode (JavaScriptCore's, made at build time): a process loads its compiled code instead of parsing and
    // compiling ~2 MB of JavaScript. Without `compile` Bun makes it only for CommonJS, which has no code splitting: each
    // start file is one file with all it imports (lazy imports stay lazy: their code runs on first use) and no
    // top-level await. Strict as the ES modules it is built from.
    format: "cjs",
    bytecode: true,
    banner: '"use strict";',
    // Names kept: error and class names are part of what a process logs and answers.
    minify: { whitespace: true, syntax: true, identifiers: true, keepNames: true },
    // src/bundle/entry.ts: the bundle's processes start the bundle's children.
    define: { SITESYNC_START_BUNDLE: JSON.stringify(dir) },
    plugins: [
      {
        name: "sitesync-source-paths",
        setup(b) {
          // A module's own location stays its source's: files it reads or starts beside it (migrations, static files,
          // child scripts) are found where they are, and a module run as a script is told so only when it is one.
          b.onLoad({ filter: new RegExp(`^${escapeRegExp(src)}/.*\\.tsx?$`) }, async (args) => {
            const text = await Bun.file(args.path).text();
            const entry = entryPaths.has(args.path) ? bundledFile(realDir, relative(src, args.path)) : null;
            return { contents: sourcePaths(text, args.path, entry), loader: args.path.endsWith(".tsx") ? "tsx" : "ts" };
          });
        },
      },
    ],
  });
  if (!result.success) {
    rmSync(tmp, { recursive: true, force: true });
    throw new AggregateError(result.logs, `building the start bundle failed: ${result.logs.map(String).join("\n")}`);
  }
  // With the HTTP worker: the app's route table, from the same sources (src/bundle/route-table.ts); the worker's route
  // groups are mounted from it and loaded on first use.
  if (entries.includes("server.ts")) writeRouteTable(root, src, tmp);
  writeFileSync(join(tmp, "ready"), JSON.stringify({ root, built: new Date().toISOString(), bun: Bun.version }));
  try {
    renameSync(tmp, dir);
  } catch (err) {
    // Another builder (a stale lock taken over) finished first: its bundle is the same.
    rmSync(tmp, { recursive: true, force: true });
    if (!isReady(dir)) throw err;
  }
}

/** Writes the app's route table of the sources in `src` into the bundle being built in `tmp` (removed on failure). */
function writeRouteTable(root: string, src: string, tmp: string) {
  const table = Bun.spawnSync([process.execPath, join(src, "bundle/route-table.ts"), join(tmp, ROUTE_TABLE)], {
    cwd: root,
    stdout: "ignore",
    stderr: "pipe",
  });
  if (table.exitCode !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`writing the start bundle's route table failed (exit ${table.exitCode}): ${table.stderr.toString()}`);
  }
}

/**
 * `text` with `import.meta`'s location fields as the literal values of the source file `path`; import.meta.main true
 * when the process runs `path` or, for a start file, its bundled file `entry` (wherever the bundler put its code).
 */
export function sourcePaths(text: string, path: string, entry: string | null): string {
  if (!text.includes("import.meta.")) return text;
  const values: Record<string, string> = {
    dir: JSON.stringify(dirname(path)),
    dirname: JSON.stringify(dirname(path)),
    path: JSON.stringify(path),
    filename: JSON.stringify(path),
    url: JSON.stringify(Bun.pathToFileURL(path).href),
    main: `(Bun.main === ${JSON.stringify(path)}${entry ? ` || Bun.main === ${JSON.stringify(entry)}` : ""})`,
  };
  return text.replace(/\bimport\.meta\.(dirname|dir|path|filename|url|main)\b/g, (_, field: string) => values[field]!);
}

/** Removes the other bundles nobody used for KEEP_UNUSED_MS and no running process runs (its workers would restart from it), and leftovers of builders that died. */
function prune(base: string, keep: string) {
  let running: string | null = null;
  for (const name of readdirSync(base)) {
    const path = join(base, name);
    if (path === keep || name.endsWith(".lock")) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs <= KEEP_UNUSED_MS) continue;
      running ??= commandLines();
      if (!running.includes(`${path}/`)) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed by another builder.
    }
  }
}

/** The command lines of this machine's processes, one string (Linux /proc; elsewhere empty). */
function commandLines(): string {
  const out: string[] = [];
  try {
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        out.push(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
      } catch {
        // Gone meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return out.join("\n");
}

function escapeRegExp(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
