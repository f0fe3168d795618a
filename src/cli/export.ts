import { createWriteStream } from "node:fs";
import { Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ServiceError, type Api } from "./api.ts";
import { CliError } from "./output.ts";

export const exportFormats = ["csv", "json", "jsonl", "parquet"] as const;

/** JSON lines in, one JSON array out, streaming (never the whole export in memory). */
function jsonLinesToArray(): Transform {
  let rest = "";
  let first = true;
  const items = (text: string) => {
    let s = "";
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      s += `${first ? "[\n" : ",\n"}${line}`;
      first = false;
    }
    return s;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const text = rest + chunk.toString("utf8");
      const cut = text.lastIndexOf("\n");
      rest = text.slice(cut + 1);
      done(null, items(text.slice(0, cut + 1)));
    },
    flush(done) {
      const tail = items(rest);
      done(null, `${tail}${first ? "[" : ""}\n]\n`);
    },
  });
}

/**
 * Counts the records of the service's stream going through: lines of JSON lines, or CSV records (a
 * newline inside a quoted field does not end one). The CSV header is counted too: the caller subtracts it.
 */
export function recordCounter(format: "csv" | "jsonl", onRecord: () => void): Transform {
  let quoted = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      for (const byte of chunk) {
        if (format === "csv" && byte === 0x22) quoted = !quoted;
        else if (byte === 0x0a && !quoted) onRecord();
      }
      done(null, chunk);
    },
  });
}

/** Counts the bytes going through. */
function byteCounter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

/**
 * Streams a site's export (GET /api/v1/sites/{id}/export, CSV, JSON lines or Parquet) to a file or stdout, with
 * backpressure end to end; `json` turns the JSON lines into one array on the way. Returns the rows written
 * (Parquet: read from the file's footer; to stdout unknown, null) and the bytes.
 */
export async function exportSite(
  api: Api,
  siteId: number,
  o: { format: (typeof exportFormats)[number]; output?: string; startDate?: string; endDate?: string; searchType?: string; raw?: boolean },
): Promise<{ rows: number | null; bytes: number }> {
  const wire = o.format === "json" ? "jsonl" : o.format;
  const q = new URLSearchParams({ format: wire });
  if (o.startDate) q.set("start_date", o.startDate);
  if (o.endDate) q.set("end_date", o.endDate);
  if (o.searchType) q.set("search_type", o.searchType);
  // CSV cells starting like a formula get a leading ' unless --raw (the service's default).
  if (o.raw && o.format === "csv") q.set("raw", "1");
  let res: Response;
  try {
    const accept = { csv: "text/csv", jsonl: "application/x-ndjson", parquet: "application/vnd.apache.parquet" }[wire];
    res = await api.send("GET", `/api/v1/sites/${siteId}/export?${q}`, undefined, accept);
  } catch (err) {
    if (err instanceof ServiceError && err.status === 404 && /no route/.test(err.message)) {
      throw new CliError("this sitesync service has no export endpoint (GET /api/v1/sites/{id}/export): update it");
    }
    throw err;
  }
  if (!res.body) return { rows: 0, bytes: 0 };
  let records = 0;
  let bytes = 0;
  const dest: Writable = o.output ? createWriteStream(o.output) : process.stdout;
  // Counted on the service's stream (CSV or JSON lines), before json turns the lines into an array.
  const steps: (NodeJS.ReadableStream | NodeJS.ReadWriteStream | NodeJS.WritableStream)[] = [
    Readable.fromWeb(res.body as never),
    wire === "parquet" ? byteCounter((n) => (bytes += n)) : recordCounter(wire, () => records++),
  ];
  if (o.format === "json") steps.push(jsonLinesToArray());
  steps.push(dest);
  // stdout must stay open for whatever prints after; a file is closed by the pipeline.
  await (pipeline as (...s: unknown[]) => Promise<void>)(...steps, o.output ? {} : { end: false });
  if (wire === "parquet") {
    // A Parquet file says how many rows it holds in its footer (hyparquet loaded here only: 27 modules every
    // other command would load for nothing).
    const { asyncBufferFromFile, parquetMetadataAsync } = await import("hyparquet");
    const rows = o.output ? Number((await parquetMetadataAsync(await asyncBufferFromFile(o.output))).num_rows) : null;
    return { rows, bytes };
  }
  return { rows: o.format === "csv" ? Math.max(0, records - 1) : records, bytes };
}
