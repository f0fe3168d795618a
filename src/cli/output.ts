// What the CLI prints: tables for people, JSON for scripts (--json), messages on stderr.

/** A failure to report as one message and exit code (1 unless said otherwise), without a stack. */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export type Out = {
  json: boolean;
  /** A line on stdout. */
  line(text: string): void;
  /** A message on stderr (progress, hints, errors). */
  err(text: string): void;
  /** The result: as JSON with --json, else through `human`. */
  result<T>(value: T, human: (v: T) => void): void;
};

/** The printer for this run. */
export function createOut(json: boolean): Out {
  return {
    json,
    line: (text) => process.stdout.write(`${escapeControls(text)}\n`),
    err: (text) => process.stderr.write(`${escapeControls(text)}\n`),
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      else human(value);
    },
  };
}

// C0 controls but tab and newline, DEL and C1: a site name or a query from a stranger's search could carry
// ANSI escapes that rewrite the terminal (hide lines, change the title). Shown as \xHH instead.
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Text safe to print on a terminal: control characters (but tab and newline) shown as `\xHH`. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Rows as an aligned text table under a header; cells cut at `max` characters. */
export function table(header: string[], rows: (string | number | boolean | null | undefined)[][], max = 48): string {
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "-" : typeof v === "boolean" ? (v ? "yes" : "no") : String(v);
    return s.length > max ? `${s.slice(0, max - 1)}…` : s;
  };
  const cells = [header, ...rows.map((r) => r.map(cell))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
