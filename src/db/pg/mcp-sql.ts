import type pg from "pg";
import type { Db } from "../index.ts";
import { openPgCursor } from "./cursor.ts";

// The MCP `query` tool on PostgreSQL (src/mcp/sql.ts is the entry point; SQLite runs it in a child
// process). One statement on a connection of its own, in a READ ONLY transaction with the tool's
// statement_timeout: the server refuses every write (INSERT, UPDATE, DELETE, DDL, nextval, a
// data-modifying WITH, SELECT ... FOR UPDATE). Before it runs, its plan (EXPLAIN VERBOSE) must read
// only the allowed tables, and call no function that runs SQL given as text or reads server state
// (query_to_xml('select * from api_keys'), ts_stat, pg_read_file, dblink...): the plan names every
// table a statement reads, but not those a function reads. Rows come from a cursor, capped.

export type PgSqlRequest = { sql: string; maxRows: number; maxBytes: number; timeoutMs: number; tables: string[] };
export type PgSqlAnswer =
  | { ok: true; columns: string[]; rows: Record<string, unknown>[]; truncated: boolean }
  | { ok: false; error: string; timedOut?: boolean };

/** Set-returning functions a statement may read from (FROM generate_series(...), unnest...). */
const ROW_FUNCTIONS = new Set([
  "generate_series",
  "unnest",
  "json_array_elements",
  "json_array_elements_text",
  "jsonb_array_elements",
  "jsonb_array_elements_text",
  "json_each",
  "json_each_text",
  "jsonb_each",
  "jsonb_each_text",
  "json_to_recordset",
  "jsonb_to_recordset",
  "regexp_matches",
  "regexp_split_to_table",
  "string_to_table",
]);

/** Calls of functions that run SQL text, touch files, other databases or server settings and state. */
const FORBIDDEN_CALL =
  /\b(?:\w*to_xml\w*|ts_stat|ts_rewrite|dblink\w*|lo_\w+|pg_\w+|current_setting|set_config|txid_\w+|inet_\w+|version|current_user|session_user|current_database)\s*\(/i;

type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

/** Why the plan is not a read of the allowed tables, or null when it is. */
export function refusePlan(plan: PlanNode, allowed: Set<string>): string | null {
  const type = String(plan["Node Type"] ?? "");
  if (type === "ModifyTable" || type === "LockRows") return "only read-only SELECT statements are allowed";
  const relation = plan["Relation Name"];
  if (typeof relation === "string" && (plan.Schema !== "public" || !allowed.has(relation))) {
    const name = plan.Schema === "public" ? relation : `${String(plan.Schema)}.${relation}`;
    return `table '${name}' cannot be queried; readable tables: ${[...allowed].join(", ")}`;
  }
  if (type === "Function Scan" || type === "Table Function Scan") {
    const fn = String(plan["Function Name"] ?? type);
    if (!ROW_FUNCTIONS.has(fn)) return `function '${fn}' cannot be read from; allowed: ${[...ROW_FUNCTIONS].join(", ")}`;
  }
  for (const child of plan.Plans ?? []) {
    const why = refusePlan(child, allowed);
    if (why) return why;
  }
  return null;
}

/** The first forbidden function call in the statement or its plan's expressions, or null. */
export function forbiddenCall(text: string): string | null {
  return FORBIDDEN_CALL.exec(text)?.[0].replace(/\s*\($/, "") ?? null;
}

/** Runs the request; a bad or refused statement is an answer with `ok: false`, never a throw. */
export async function runReadOnlySqlPg(db: Db, req: PgSqlRequest): Promise<PgSqlAnswer> {
  const allowed = new Set(req.tables);
  const check = async (client: pg.Client) => {
    const early = forbiddenCall(req.sql);
    if (early) throw new Refused(`function '${early}' cannot be called from the query tool`);
    const r = await client.query(`explain (verbose, format json) ${req.sql}`);
    const plan = (r.rows[0] as { "QUERY PLAN": [{ Plan: PlanNode }] })["QUERY PLAN"][0].Plan;
    const why = refusePlan(plan, allowed);
    if (why) throw new Refused(why);
    const call = forbiddenCall(JSON.stringify(plan));
    if (call) throw new Refused(`function '${call}' cannot be called from the query tool`);
  };
  let cursor: Awaited<ReturnType<typeof openPgCursor>> | undefined;
  // The server's statement_timeout stops the statement; this stops waiting on a server that does not answer.
  let timer: Timer | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut()), req.timeoutMs + 2000);
  });
  const work = (async () => {
    cursor = await openPgCursor(db, { text: req.sql }, { statementTimeoutMs: req.timeoutMs, name: "mcp-query", numbers: true, check });
    return cursor.fetch<Record<string, unknown>>(req.maxRows + 1);
  })();
  // Given up on (deadline): whatever it opens later is closed, its failure is not unhandled.
  work.catch(() => {}).finally(() => cursor?.close());
  try {
    const { rows, columns } = await Promise.race([work, deadline]);
    const out: Record<string, unknown>[] = [];
    let bytes = 0;
    let truncated = false;
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) if (v instanceof Uint8Array) row[k] = Buffer.from(v).toString("base64");
      bytes += JSON.stringify(row).length;
      if (out.length === req.maxRows || bytes > req.maxBytes) {
        truncated = true;
        break;
      }
      out.push(row);
    }
    return { ok: true, columns, rows: out, truncated };
  } catch (err) {
    if (err instanceof Refused) return { ok: false, error: err.message };
    if (err instanceof TimedOut) {
      cursor?.abort();
      return { ok: false, error: "timed out", timedOut: true };
    }
    // 57014: canceled by statement_timeout.
    if ((err as { code?: string }).code === "57014") return { ok: false, error: "timed out", timedOut: true };
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
    await cursor?.close();
  }
}

class Refused extends Error {}
class TimedOut extends Error {}
