import pg from "pg";

// COPY ... FROM STDIN through node-postgres (which has no API of its own for it): a Query whose copy-in step sends
// the rows as one CopyData message in COPY's text format. The server parses plain text instead of one array
// literal per column (INSERT ... SELECT FROM unnest($1::int[], ...)), and no statement is planned per batch.

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
    const q = new pg.Query(`copy "${table}" (${list}) from stdin`, (err, res) =>
      err ? reject(err) : resolve(res.rowCount ?? rows.length),
    );
    // node-postgres calls this when the server is ready for the data (pg.Query's own answers "no source stream").
    (q as unknown as { handleCopyInResponse: (c: pg.Connection) => void }).handleCopyInResponse = (c) => {
      const con = c as unknown as { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void };
      con.sendCopyFromChunk(Buffer.from(text));
      con.endCopyFrom();
    };
    client.query(q);
  });
}
