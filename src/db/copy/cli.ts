import { Presets, SingleBar } from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { ConfigError, parseDatabaseUrl, type DatabaseTarget } from "../../config.ts";
import type { CopyMode, CopyProgress } from "./index.ts";
import { CopyRefusedError } from "./types.ts";

// `bun run db:copy --from ./data/app.db --to postgres://…` (or the other way round): moves a database between
// SQLite and PostgreSQL. Progress on stderr (a bar on a terminal, a line per table and per tenth otherwise), the
// per-table row counts on stdout. Exit 0 copied and verified, 1 refused, failed or counts differ, 2 bad arguments.

/** A postgres:// URL, or an SQLite file given as a path, file: or sqlite:/// URL (parsed as DATABASE_URL is). */
function endpoint(v: string): DatabaseTarget {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) && !/^(file|sqlite|postgres|postgresql):/i.test(v)) {
    throw new InvalidArgumentError(
      `expected an SQLite file (a path, file: or sqlite:/// URL) or a postgres:// or postgresql:// URL, got '${v}'`,
    );
  }
  try {
    return parseDatabaseUrl(v);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof ConfigError ? Object.values(err.fields).flat().join("; ") : String(err));
  }
}

const program = new Command("db:copy")
  .description("Copy every table between an SQLite file and a PostgreSQL database, either way (ids kept, counts verified)")
  .requiredOption("--from <database>", "source: an SQLite file (path, file: or sqlite:/// URL) or a postgres:// URL", endpoint)
  .requiredOption("--to <database>", "target, the other engine (migrated first; an SQLite file is created)", endpoint)
  .addOption(new Option("--resume", "finish an interrupted copy: keep the rows already there, copy the rest").conflicts("replace"))
  .addOption(new Option("--replace", "delete every row of the target first, then copy"))
  .option(
    "--batch-size <n>",
    "rows per insert",
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 50_000) throw new InvalidArgumentError("expected an integer from 1 to 50000");
      return n;
    },
    5000,
  )
  .addOption(new Option("--progress <how>", "progress on stderr").choices(["auto", "bar", "lines", "none"]).default("auto"))
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program.parse();
const o = program.opts<{
  from: DatabaseTarget;
  to: DatabaseTarget;
  resume?: boolean;
  replace?: boolean;
  batchSize: number;
  progress: string;
}>();
if (o.from.dialect === o.to.dialect) {
  console.error(
    `db:copy: --from and --to are both ${o.from.dialect === "sqlite" ? "SQLite files (copy a file with bun run backup)" : "PostgreSQL databases (use pg_dump)"}; one must be SQLite and the other PostgreSQL`,
  );
  process.exit(2);
}
const mode: CopyMode = o.resume ? "resume" : o.replace ? "replace" : "fresh";
const how = o.progress === "auto" ? (process.stderr.isTTY ? "bar" : "lines") : o.progress;

/** Shows each table's progress on stderr as a bar (one per table) or as lines at each tenth. */
function progressReporter(how: string) {
  let bar: SingleBar | null = null;
  let current = "";
  let lastTenth = -1;
  return {
    update(p: CopyProgress) {
      if (how === "bar") {
        if (p.table !== current) {
          bar?.stop();
          bar = new SingleBar(
            {
              format: " {table} {bar} {percentage}% | {value}/{total} rows | {eta_formatted} left",
              stream: process.stderr,
              noTTYOutput: true,
              hideCursor: true,
            },
            Presets.shades_classic,
          );
          bar.start(Math.max(p.total, 1), p.done, { table: p.table.padEnd(22) });
        }
        bar!.update(p.done);
      } else if (how === "lines") {
        const tenth = p.total === 0 ? 10 : Math.floor((10 * p.done) / p.total);
        if (p.table !== current || tenth !== lastTenth) console.error(`${p.table}: ${p.done}/${p.total} rows`);
        lastTenth = tenth;
      }
      current = p.table;
    },
    stop: () => bar?.stop(),
  };
}

const progress = progressReporter(how);
try {
  // Loaded once the arguments are good: both engines' drivers and schemas (~0.25 s of CPU) are not needed to refuse them.
  const { copyDatabase } = await import("./index.ts");
  const r = await copyDatabase({ from: o.from, to: o.to, mode, batchSize: o.batchSize, onProgress: progress.update });
  progress.stop();
  const width = Math.max(...r.counts.map((c) => c.table.length), ...r.notCopied.map((c) => c.table.length));
  for (const c of r.counts) {
    console.log(`${c.table.padEnd(width)}  source ${c.source}  target ${c.target}  ${c.source === c.target ? "ok" : "DIFFERENT"}`);
  }
  for (const c of r.notCopied) console.log(`${c.table.padEnd(width)}  not copied: ${c.why}`);
  const rowsPerSec = r.ms > 0 ? Math.round((r.copiedRows * 1000) / r.ms) : r.copiedRows;
  if (r.verified) {
    console.log(`copied ${r.copiedRows} rows in ${(r.ms / 1000).toFixed(1)} s (${rowsPerSec} rows/s); every table's row count matches`);
  } else {
    const bad = r.counts.filter((c) => c.source !== c.target).map((c) => c.table);
    console.error(
      `db:copy: row counts differ in ${bad.join(", ")}. The source changed since an earlier run (a resume adds rows, ` +
        "it does not delete or update them): run again with --replace.",
    );
    process.exit(1);
  }
} catch (err) {
  progress.stop();
  const refused = err instanceof CopyRefusedError;
  console.error(`db:copy ${refused ? "refused" : "failed"}: ${(err as Error).message}`);
  process.exit(1);
}
