import { AsyncLocalStorage } from "node:async_hooks";
import { redact } from "./redact.ts";

// One line per event on stderr; LOG_LEVEL filters, LOG_FORMAT picks JSON (default) or pretty.
const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;
export type LogFormat = "json" | "pretty";
let threshold: number = levels.info;
let format: LogFormat = "json";

// Fields every line logged inside a request or a task carries (request_id, task_id), without passing them down.
const context = new AsyncLocalStorage<Record<string, unknown>>();

/** Sets the lowest level that is printed. */
export function setLogLevel(level: LogLevel) {
  threshold = levels[level];
}

/** Sets the line format: json (one object per line) or pretty (for a terminal). */
export function setLogFormat(f: LogFormat) {
  format = f;
}

/** Runs `fn` with `fields` added to every line it logs (also after its awaits); `fields` must not change afterwards. */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  // Once per request: outside any other context, the caller's object is the context, not a copy of it.
  const outer = context.getStore();
  return context.run(outer === undefined ? fields : { ...outer, ...fields }, fn);
}

/** Prints one structured log line. */
export function log(level: Exclude<LogLevel, "silent">, msg: string, fields: Record<string, unknown> = {}) {
  if (levels[level] < threshold) return;
  const t = new Date().toISOString();
  const all = { ...context.getStore(), ...fields };
  // Every line passes the secret filter: an error's text may carry a token from upstream.
  if (format === "pretty") return console.error(redact(prettyLine(t, level, msg, all)));
  console.error(redact(JSON.stringify({ t, level, pid: process.pid, msg, ...all })));
}

const colours: Record<string, string> = { debug: "\x1b[90m", info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m" };

/** `12:00:01.123 INFO  [4242] request method=GET route=/api/v1/sites status=200 duration_ms=1.2`. */
function prettyLine(t: string, level: string, msg: string, fields: Record<string, unknown>) {
  const tty = process.stderr.isTTY;
  const lvl = level.toUpperCase().padEnd(5);
  const kv = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${t.slice(11, 23)} ${tty ? `${colours[level]}${lvl}\x1b[0m` : lvl} [${process.pid}] ${msg}${kv ? ` ${kv}` : ""}`;
}

type Window = {
  until: number;
  intervalMs: number;
  repeated: number;
  level: Exclude<LogLevel, "silent">;
  msg: string;
  fields: Record<string, unknown>;
};
const windows = new Map<string, Window>();
let flushTimer: Timer | null = null;

/**
 * Logs an event at most once per `intervalMs` per `key`: the first occurrence is printed at once, the
 * repeats within the interval are counted and printed as one line (`repeated: n`, with the last
 * occurrence's fields) when the interval ends. A disk-full storm prints a few lines, not one per request.
 */
export function logOncePer(
  key: string,
  intervalMs: number,
  level: Exclude<LogLevel, "silent">,
  msg: string,
  fields: Record<string, unknown> = {},
) {
  const now = performance.now();
  const w = windows.get(key);
  if (w && now < w.until) {
    w.repeated++;
    w.fields = fields;
    return;
  }
  if (w && w.repeated > 0) flushWindow(w);
  windows.set(key, { until: now + intervalMs, intervalMs, repeated: 0, level, msg, fields });
  log(level, msg, fields);
  flushTimer ??= setInterval(flushEnded, Math.min(intervalMs, 1000));
  flushTimer.unref();
}

function flushWindow(w: Window) {
  log(w.level, `${w.msg} (repeated)`, { ...w.fields, repeated: w.repeated, interval_ms: w.intervalMs });
  w.repeated = 0;
}

/** Prints the counts of intervals that ended; forgets quiet keys. */
function flushEnded() {
  const now = performance.now();
  for (const [key, w] of windows) {
    if (now < w.until) continue;
    if (w.repeated > 0) flushWindow(w);
    windows.delete(key);
  }
  if (windows.size === 0 && flushTimer) {
    clearInterval(flushTimer);
    flushTimer = null;
  }
}
