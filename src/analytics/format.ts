// Number and CSV formatting with the original's (Python's) rules, and the download headers.

/**
 * `x` with `digits` decimals as Python's `'%.*f' % x` writes it: the exact binary value rounded, a
 * tie (only possible when the value is exactly halfway) to the even digit. `toFixed` rounds ties up.
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return String(x);
  // toFixed(100) is the exact decimal expansion for every |x| >= 2^-48; smaller values round to 0 here.
  const exact = Math.abs(x).toFixed(100);
  const point = exact.indexOf(".");
  const kept = exact.slice(0, point) + exact.slice(point + 1, point + 1 + digits);
  const rest = exact.slice(point + 1 + digits);
  const first = rest.charCodeAt(0) - 48;
  const beyond = /[1-9]/.test(rest.slice(1));
  const lastKept = kept.charCodeAt(kept.length - 1) - 48;
  const up = first > 5 || (first === 5 && (beyond || lastKept % 2 === 1));
  const n = BigInt(kept) + (up ? 1n : 0n);
  const negative = x < 0 && n !== 0n;
  let s = n.toString().padStart(digits + 1, "0");
  if (digits > 0) s = `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  return negative ? `-${s}` : s;
}

/** Python's `round(x, digits)` on a float: half-even on the exact binary value. */
export function roundHalfEven(x: number, digits = 0): number {
  if (digits === 0 && Number.isFinite(x)) {
    // To a whole number without the exact expansion (a ranking answer rounds ~90 positions): x minus its floor is
    // exact in binary, so a tie is seen exactly as formatFixed sees it.
    const floor = Math.floor(x);
    const frac = x - floor;
    const n = frac < 0.5 ? floor : frac > 0.5 ? floor + 1 : floor % 2 === 0 ? floor : floor + 1;
    return n === 0 ? 0 : n; // formatFixed writes -0.4 as "0", not "-0"
  }
  return Number(formatFixed(x, digits));
}

/**
 * A text cell that a spreadsheet would run as a formula (OWASP "CSV injection": it starts with `=`, `+`, `-`, `@`,
 * tab or CR) prefixed with a single quote, so Excel, LibreOffice and Sheets show it as text. Numbers are never changed.
 */
export function neutralizeFormula(s: string): string {
  return /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
}

/**
 * One CSV field as Python's csv.writer writes it (RFC 4180): quoted only when it holds `,` `"` CR or LF; text
 * cells neutralised against formulas unless `raw`.
 */
export function csvField(v: string | number | null | undefined, raw = false): string {
  if (v === null || v === undefined) return "";
  const s = typeof v === "string" && !raw ? neutralizeFormula(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One CSV record with its CRLF terminator (`raw`: text cells as stored, see csvField). */
export function csvLine(fields: readonly (string | number | null | undefined)[], raw = false): string {
  return `${fields.map((f) => csvField(f, raw)).join(",")}\r\n`;
}

/** The UTF-8 byte order mark: Excel reads a CSV that starts with it as UTF-8 (otherwise as the system's code page). */
export const UTF8_BOM = "\uFEFF";

/** RFC 5987 encoding of a UTF-8 string (for `filename*`). */
function encodeRfc5987(s: string): string {
  return encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * `attachment` with an ASCII `filename` (non-ASCII characters dropped, for old clients) and the exact
 * UTF-8 `filename*` (RFC 6266), so any site name makes a valid header.
 */
export function attachmentHeader(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, "").replace(/["\\]/g, "_") || "download";
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeRfc5987(filename)}`;
}

/** The original's `<safe_name>`: letters and digits of any script, `-` and `_`. */
export function safeName(name: string): string {
  return name.replace(/[^\p{L}\p{N}_-]/gu, "");
}

/** `YYYYmmdd_HHMMSS` of a moment, UTC. */
export function fileStamp(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 10).replaceAll("-", "")}_${iso.slice(11, 19).replaceAll(":", "")}`;
}
