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
    line: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      else human(value);
    },
  };
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
