import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";

// COPY ... FROM STDIN through pg-copy-streams (node-postgres' own companion for COPY): the server parses plain text
// instead of one array literal per column (INSERT ... SELECT FROM unnest($1::int[], ...)), and no statement is
// planned per batch.

const special = /[\\\n\r\t]/;
const escapes: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** One value as COPY's text format writes it (null as \N; bytes as \\x hex; objects as JSON). */
function copyField(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "t" : "f";
  if (v instanceof Uint8Array) return `\\\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}`;
  if (v instanceof Date) return v.toISOString();
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return special.test(s) ? s.replace(/[\\\n\r\t]/g, (c) => escapes[c]!) : s;
}

/** Loads `rows` (driver values in `columns` order) into `table` with one COPY FROM STDIN; returns the rows copied. */
export function copyIn(client: pg.Client, table: string, columns: string[], rows: unknown[][]): Promise<number> {
  let text = "";
  for (const r of rows) text += `${r.map(copyField).join("\t")}\n`;
  const list = columns.map((n) => `"${n}"`).join(", ");
  return new Promise((resolve, reject) => {
    const stream = client.query(copyFrom(`copy "${table}" (${list}) from stdin`));
    stream.on("error", reject);
    stream.on("finish", () => resolve(stream.rowCount ?? rows.length));
    stream.end(Buffer.from(text));
  });
}
