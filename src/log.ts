// One JSON line per event on stderr; LOG_LEVEL filters.
const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;
let threshold: number = levels.info;

/** Sets the lowest level that is printed. */
export function setLogLevel(level: LogLevel) {
  threshold = levels[level];
}

/** Prints one structured log line. */
export function log(level: Exclude<LogLevel, "silent">, msg: string, fields: Record<string, unknown> = {}) {
  if (levels[level] < threshold) return;
  console.error(JSON.stringify({ t: new Date().toISOString(), level, pid: process.pid, msg, ...fields }));
}
