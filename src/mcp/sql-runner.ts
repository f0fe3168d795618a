import { Database } from "bun:sqlite";
import { writeSync } from "node:fs";

// Child process of the MCP `query` tool (src/mcp/sql.ts): runs ONE statement over a read-only
// connection and prints the rows as JSON. It lives in its own process because SQLite cannot be
// interrupted from JavaScript: a Worker's terminate() leaves the statement running (measured), while
// the parent's SIGKILL always stops it. Imports nothing of the app, so it starts in ~20 ms.

export type RunnerRequest = { path: string; sql: string; maxRows: number; maxBytes: number; tables: string[] };
export type RunnerAnswer =
  | { ok: true; columns: string[]; rows: Record<string, unknown>[]; truncated: boolean }
  | { ok: false; error: string };

/** Written to stderr when the statement begins: the parent's time limit starts there, not at the spawn. */
export const RUNNER_READY = "\u0006READY\n";

type Op = { opcode: string; p1: number; p2: number; p3: number };

/** Why the compiled program is not a read of the allowed tables, or null when it is. */
export function refuseProgram(ops: Op[], rootTables: Map<number, string>, allowed: Set<string>): string | null {
  for (const op of ops) {
    if (op.opcode === "OpenWrite" || op.opcode === "Vacuum" || op.opcode === "VUpdate" || (op.opcode === "Transaction" && op.p2 !== 0)) {
      return "only read-only SELECT statements are allowed";
    }
    if (op.opcode !== "OpenRead" || op.p2 === 1) continue; // page 1 is sqlite_schema: the table list
    const table = op.p3 === 0 ? rootTables.get(op.p2) : undefined;
    if (table === undefined || !allowed.has(table)) {
      return `table ${table === undefined ? "(outside the main database)" : `'${table}'`} cannot be queried; readable tables: ${[...allowed].join(", ")}`;
    }
  }
  return null;
}

/**
 * Table-valued functions a statement may use: JSON and the schema's own description. Every other virtual
 * table is refused: pragma_database_list names the file, dbstat the size of api_keys, sqlite_dbpage reads
 * raw pages of any table, and a module's tables (FTS, R*Tree) are not on the readable list.
 */
export const ALLOWED_TABLE_FUNCTIONS = new Set([
  "json_each",
  "json_tree",
  "pragma_table_info",
  "pragma_table_xinfo",
  "pragma_index_list",
  "pragma_index_info",
  "pragma_index_xinfo",
  "pragma_foreign_key_list",
]);

/** Why the statement names a virtual table or table-valued function off the allow-list, or null. */
export function refuseVirtualTables(sql: string, virtualTables: string[]): string | null {
  const words = sql.toLowerCase().match(/[a-z_][a-z0-9_]*/g) ?? [];
  const virtual = new Set(virtualTables.map((t) => t.toLowerCase()));
  const shape = /^(pragma_\w+|dbstat|sqlite_dbpage|sqlite_stmt|sqlite_memstat|fts\d\w*|rtree\w*|geopoly\w*|generate_series)$/;
  for (const w of words) {
    if (ALLOWED_TABLE_FUNCTIONS.has(w)) continue;
    if (shape.test(w) || virtual.has(w)) {
      return `'${w}' cannot be used here; table-valued functions allowed: ${[...ALLOWED_TABLE_FUNCTIONS].join(", ")}`;
    }
  }
  return null;
}

/** A connection that cannot write: opened read-only, and query_only on top. */
export function openReadOnly(path: string): Database {
  const db = new Database(path, { readonly: true });
  db.run("PRAGMA query_only = ON");
  db.run("PRAGMA busy_timeout = 5000");
  return db;
}

/** Runs the request and returns the answer (never throws for a bad statement). */
export function runStatement(req: RunnerRequest): RunnerAnswer {
  let db: Database | undefined;
  try {
    db = openReadOnly(req.path);
    const stmt = db.prepare<Record<string, unknown>, []>(req.sql);
    // Only a query: PRAGMA statements (database_list names the file) and the like are not reads of data.
    if (!/^\s*(select|with|values)\b/i.test(req.sql.replace(/^(\s*(--[^\n]*\n|\/\*[\s\S]*?\*\/))*/, ""))) {
      return { ok: false, error: "only read-only SELECT statements are allowed" };
    }
    const virtualTables = db
      .query<{ name: string }, []>("select name from sqlite_schema where type = 'table' and sql like 'CREATE VIRTUAL TABLE%'")
      .all()
      .map((r) => r.name);
    const offList = refuseVirtualTables(req.sql, virtualTables);
    if (offList) return { ok: false, error: offList };
    const roots = new Map(
      db
        .query<{ rootpage: number; tbl_name: string }, []>("select rootpage, tbl_name from sqlite_schema where rootpage > 0")
        .all()
        .map((r) => [r.rootpage, r.tbl_name] as const),
    );
    const refused = refuseProgram(db.query<Op, []>(`EXPLAIN ${req.sql}`).all(), roots, new Set(req.tables));
    if (refused) return { ok: false, error: refused };
    const rows: Record<string, unknown>[] = [];
    let bytes = 0;
    let truncated = false;
    for (const row of stmt.iterate()) {
      for (const [k, v] of Object.entries(row)) if (v instanceof Uint8Array) row[k] = Buffer.from(v).toString("base64");
      bytes += JSON.stringify(row).length;
      if (rows.length === req.maxRows || bytes > req.maxBytes) {
        truncated = true;
        break;
      }
      rows.push(row);
    }
    return { ok: true, columns: stmt.columnNames, rows, truncated };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    db?.close();
  }
}

/**
 * Kills this process after `ms`, or as soon as its parent is gone, from a thread of its own (the main
 * thread is stuck inside SQLite): a runaway statement cannot outlive a worker that was SIGKILLed.
 */
function startWatchdog(ms: number) {
  const code = `const parent = ${process.ppid};
setTimeout(() => process.kill(process.pid, "SIGKILL"), ${ms});
setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, "SIGKILL"); }, 100);`;
  new Worker(URL.createObjectURL(new Blob([code], { type: "application/javascript" }))).unref();
}

/** Run as a script: one statement from stdin, its answer to stdout (no top-level await: src/mcp/sql.ts's constants are in the CommonJS start bundle). */
async function runAsScript() {
  // The deadline comes as the first argument; it starts with the statement, as the parent's limit does.
  const deadlineMs = Number(process.argv[2]);
  const request = (await Bun.stdin.json()) as RunnerRequest;
  if (deadlineMs > 0) startWatchdog(deadlineMs);
  // Synchronous: the statement blocks this thread, so a buffered write would arrive after it.
  writeSync(2, RUNNER_READY);
  const answer = runStatement(request);
  await Bun.write(Bun.stdout, JSON.stringify(answer));
}

if (import.meta.main) void runAsScript();
