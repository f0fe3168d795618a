import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Db } from "../db/index.ts";
import { runReadOnlySqlPg } from "../db/pg/mcp-sql.ts";
import { ApiError } from "../errors.ts";
import { RUNNER_READY, type RunnerAnswer, type RunnerRequest } from "./sql-runner.ts";

/**
 * The tables the `query` tool may read: the site registry and the synced data. gsc_performance_data is the
 * compatibility VIEW of the query detail (old columns); a statement reading it reads the compact tables
 * under it (gsc_query_detail and the gsc_pages / gsc_queries dictionaries), so they are readable too.
 */
export const QUERYABLE_TABLES = [
  "sites",
  "gsc_performance_data",
  "gsc_synced_days",
  "hourly_rankings",
  "gsc_query_detail",
  "gsc_pages",
  "gsc_queries",
  "gsc_day_query_totals",
];

/** One site's rows as a derived table, for the original's placeholders: daily and hourly data. */
const siteRows = {
  daily: (siteId: number) =>
    `(select date, page, query, device, search_type, clicks, impressions, ctr, position from gsc_performance_data where site_id = ${siteId})`,
  hourly: (siteId: number) =>
    `(select date, hour, hour_timestamp, page, query, device, clicks, impressions, ctr, position from hourly_rankings where site_id = ${siteId})`,
};

const runnerPath = join(import.meta.dir, "sql-runner.ts");

export type SqlLimits = { maxRows: number; timeoutMs: number; maxBytes: number; maxMemoryBytes?: number };

/** Resident memory of a process in bytes (Linux /proc), or null when it is gone or unknown. */
function residentBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
export type SqlResult = { columns: string[]; rows: Record<string, unknown>[]; row_count: number; truncated: boolean };

/**
 * Checks that `sql` is a single SELECT (or WITH …/VALUES) statement and returns it without its
 * trailing semicolon; throws a validation error otherwise. Strings, quoted names and comments are
 * skipped, so a `;` inside them does not count.
 */
export function checkSingleSelect(sql: string): string {
  let first = "";
  let end = -1;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    const close = ({ "'": "'", '"': '"', "`": "`", "[": "]" } as Record<string, string>)[ch];
    if (sql.startsWith("--", i)) {
      const j = sql.indexOf("\n", i);
      i = j < 0 ? sql.length : j;
    } else if (sql.startsWith("/*", i)) {
      const j = sql.indexOf("*/", i + 2);
      i = j < 0 ? sql.length : j + 1;
    } else if (end >= 0 && !/\s|;/.test(ch)) {
      throw new ApiError("validation_failed", "only one statement is allowed");
    } else if (close) {
      const j = sql.indexOf(close, i + 1);
      i = j < 0 ? sql.length : j;
    } else if (ch === ";" && end < 0) {
      end = i;
    } else if (first === "" && /[A-Za-z]/.test(ch)) {
      first = /^[A-Za-z]+/.exec(sql.slice(i))![0].toLowerCase();
      i += first.length - 1;
    }
  }
  if (!["select", "with", "values"].includes(first)) {
    throw new ApiError(
      "validation_failed",
      `only read-only SELECT statements are allowed (got ${first ? first.toUpperCase() : "no statement"})`,
    );
  }
  return end < 0 ? sql : sql.slice(0, end);
}

/** A statement's leading comments and WITH [RECURSIVE], if it has them. */
const LEADING_WITH = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*with(?:\s+recursive)?\b/i;

/**
 * Replaces the original tool's placeholders with one site's rows: `{site_hourly}` is its hourly data,
 * `{site}` its daily data (or hourly with dataType "hourly", as the original). SQLite: a derived table
 * in place. PostgreSQL (before 16) wants an alias on every derived table, which `from {site}` lacks:
 * there the placeholders name CTEs (`site_rows`, `site_hourly_rows`) put in front of the statement's own.
 */
export function expandSitePlaceholders(
  sql: string,
  siteId: number | null,
  dataType: "daily" | "hourly" = "daily",
  engine: Db["engine"] = "sqlite",
): string {
  if (!sql.includes("{site}") && !sql.includes("{site_hourly}")) return sql;
  if (siteId === null) throw new ApiError("validation_failed", "the SQL uses {site} or {site_hourly}: give site_id or hostname");
  const daily = siteRows[dataType](siteId);
  const hourly = siteRows.hourly(siteId);
  if (engine === "sqlite") return sql.replaceAll("{site_hourly}", hourly).replaceAll("{site}", daily);
  const ctes = [
    sql.includes("{site}") ? `site_rows as ${daily}` : null,
    sql.includes("{site_hourly}") ? `site_hourly_rows as ${hourly}` : null,
  ]
    .filter((c) => c !== null)
    .join(", ");
  const body = sql.replaceAll("{site_hourly}", "site_hourly_rows").replaceAll("{site}", "site_rows");
  const lead = LEADING_WITH.exec(body);
  return lead ? `${lead[0]} ${ctes}, ${body.slice(lead[0].length)}` : `with ${ctes} ${body}`;
}

// Runs of this process: at most maxConcurrent children at once, the next callers wait their turn.
let running = 0;
const waiting: (() => void)[] = [];
const MAX_WAITING = 64;

async function takeSlot(maxConcurrent: number) {
  if (running < maxConcurrent) {
    running++;
    return;
  }
  if (waiting.length >= MAX_WAITING)
    throw new ApiError("unavailable", "too many SQL queries are waiting in this process; retry in a moment");
  // The slot is handed over by giveSlot, so `running` stays counted.
  await new Promise<void>((resolve) => waiting.push(resolve));
}

function giveSlot() {
  const next = waiting.shift();
  if (next) next();
  else running--;
}

// Calls per caller (a key's id, or "loopback") running or waiting in this process: one key cannot take
// every slot and the whole wait queue while other callers' queries wait behind it.
const perCaller = new Map<string, number>();

/** Who runs a query and how many of theirs may run or wait at once in this process. */
export type SqlCaller = { id: string; maxConcurrent: number };

/**
 * Runs one read-only SELECT of the allowed tables, capped in rows, bytes and time. SQLite: over a
 * read-only connection (query_only) in a child process that is killed with SIGKILL once `timeoutMs`
 * has passed. PostgreSQL: in a READ ONLY transaction with that statement_timeout, on a connection of
 * its own (src/db/pg/mcp-sql.ts). At most `maxConcurrent` run at once in this process; later calls
 * wait for a free slot.
 */
export async function runReadOnlySql(
  db: Db,
  sql: string,
  limits: SqlLimits & { maxConcurrent: number },
  caller?: SqlCaller,
): Promise<SqlResult> {
  const statement = checkSingleSelect(sql);
  if (caller) {
    const mine = perCaller.get(caller.id) ?? 0;
    if (mine >= caller.maxConcurrent) {
      throw new ApiError(
        "rate_limited",
        `this caller already has ${mine} SQL quer${mine === 1 ? "y" : "ies"} running (at most ${caller.maxConcurrent} at once); retry when it ends`,
        undefined,
        { "Retry-After": "1" },
      );
    }
    perCaller.set(caller.id, mine + 1);
  }
  try {
    return await runInSlot(db, statement, limits);
  } finally {
    if (caller) {
      const left = (perCaller.get(caller.id) ?? 1) - 1;
      if (left > 0) perCaller.set(caller.id, left);
      else perCaller.delete(caller.id);
    }
  }
}

async function runInSlot(db: Db, statement: string, limits: SqlLimits & { maxConcurrent: number }): Promise<SqlResult> {
  await takeSlot(limits.maxConcurrent);
  try {
    if (db.engine === "pg") {
      const started = performance.now();
      const answer = await runReadOnlySqlPg(db, {
        sql: statement,
        maxRows: limits.maxRows,
        maxBytes: limits.maxBytes,
        timeoutMs: limits.timeoutMs,
        tables: QUERYABLE_TABLES,
      });
      if (!answer.ok && answer.timedOut) throw timedOut(performance.now() - started, limits.timeoutMs);
      if (!answer.ok) throw new ApiError("validation_failed", `SQL error: ${answer.error}`);
      return { columns: answer.columns, rows: answer.rows, row_count: answer.rows.length, truncated: answer.truncated };
    }
    const request: RunnerRequest = {
      path: db.path,
      sql: statement,
      maxRows: limits.maxRows,
      maxBytes: limits.maxBytes,
      tables: QUERYABLE_TABLES,
    };
    // The time limit counts the statement, not the child's start: on a loaded host starting a process can
    // take longer than the limit itself. The child writes READY to stderr when the statement begins; until
    // then only a start-up bound applies, and a child that never gets there is "unavailable", not "too slow".
    let started = performance.now();
    let killedFor: "time" | "start" | null = null;
    // The child's own watchdog (limit + 1 s from its READY) covers a parent that died.
    const child = Bun.spawn([process.execPath, runnerPath, String(limits.timeoutMs + 1000)], {
      stdin: new Blob([JSON.stringify(request)]),
      stdout: "pipe",
      stderr: "pipe",
    });
    const kill = (why: "time" | "start") => {
      killedFor ??= why;
      child.kill("SIGKILL");
    };
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const startGuard = setTimeout(() => kill("start"), RUNNER_START_BOUND_MS);
    const onReady = () => {
      clearTimeout(startGuard);
      started = performance.now();
      deadline = setTimeout(() => kill("time"), limits.timeoutMs);
    };
    // SQLite in Bun keeps no heap statistics (hard_heap_limit does nothing): the child's resident memory is
    // watched instead, and a statement past the cap (randomblob(1e9), a huge sort) is killed like a slow one.
    let overMemory = false;
    const cap = limits.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES;
    const watch = setInterval(() => {
      const rss = residentBytes(child.pid);
      if (rss !== null && rss > cap) {
        overMemory = true;
        child.kill("SIGKILL");
      }
    }, 20);
    const [out, err] = await Promise.all([new Response(child.stdout).text(), readStderr(child.stderr, onReady), child.exited]).finally(
      () => {
        clearInterval(watch);
        clearTimeout(startGuard);
        clearTimeout(deadline);
      },
    );
    if (overMemory) {
      throw new ApiError("validation_failed", `query stopped: it needed more than ${Math.round(cap / 1024 / 1024)} MB of memory`);
    }
    if (killedFor === "start") {
      throw new ApiError("unavailable", "the query runner did not start in time (the host is overloaded); retry in a moment", undefined, {
        "Retry-After": "5",
      });
    }
    if (child.signalCode === "SIGKILL") throw timedOut(performance.now() - started, limits.timeoutMs);
    let answer: RunnerAnswer;
    try {
      answer = JSON.parse(out) as RunnerAnswer;
    } catch {
      throw new Error(`SQL runner exited ${child.exitCode} without an answer: ${err.slice(0, 500)}`);
    }
    if (!answer.ok) throw new ApiError("validation_failed", `SQL error: ${answer.error}`);
    return { columns: answer.columns, rows: answer.rows, row_count: answer.rows.length, truncated: answer.truncated };
  } finally {
    giveSlot();
  }
}

/** How long the `query` tool's child may take to start before the call answers 503 (a hang guard on a starved host). */
const RUNNER_START_BOUND_MS = 15_000;

/** Reads the runner's stderr, calling `onReady` at its READY mark (which is not part of the returned text). */
async function readStderr(stream: ReadableStream<Uint8Array>, onReady: () => void): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let ready = false;
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    if (!ready && text.startsWith(RUNNER_READY)) {
      ready = true;
      text = text.slice(RUNNER_READY.length);
      onReady();
    }
  }
  return text + decoder.decode();
}

/** The memory cap of one `query` statement's child process unless MCP_QUERY_MAX_MEMORY_MB says otherwise. */
export const DEFAULT_MAX_MEMORY_BYTES = 256 * 1024 * 1024;

function timedOut(ms: number, limitMs: number) {
  return new ApiError("validation_failed", `query stopped after ${Math.round(ms)} ms: it ran past the ${limitMs} ms time limit`);
}
