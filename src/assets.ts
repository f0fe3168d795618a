import type { Handler } from "hono";
import { dirname, join } from "node:path";

/** Path of a file inside an installed package (resolved from its main entry, so `exports` maps do not hide it). */
export function packageFile(pkg: string, ...rel: string[]): string {
  return join(dirname(Bun.resolveSync(`${pkg}/package.json`, import.meta.dir)), ...rel);
}

/** A GET handler that sends one file, with an ETag and a day of browser cache. */
export function fileHandler(path: string, contentType: string): Handler {
  const file = Bun.file(path);
  const etag = `"${file.size.toString(36)}-${file.lastModified.toString(36)}"`;
  return (c) => {
    if (c.req.header("if-none-match") === etag) return c.body(null, 304);
    return c.body(file.stream(), 200, { "content-type": contentType, etag, "cache-control": "public, max-age=86400" });
  };
}
