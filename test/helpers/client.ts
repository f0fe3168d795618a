import http from "node:http";

/**
 * An HTTP request sent from a chosen local address (e.g. 127.0.0.2, which the tests do not count as
 * local), on a fresh connection each time; returns status, headers and the parsed JSON body.
 */
export function requestFrom(
  localAddress: string,
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; text: string }> {
  const url = new URL(path, base);
  const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const h: Record<string, string> = { ...headers };
  if (data !== undefined) {
    h["content-type"] ??= "application/json";
    h["content-length"] = String(Buffer.byteLength(data));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: h, localAddress, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: json, text });
        });
      },
    );
    req.on("error", reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Runs `bun run <script> ...args` against a database and returns its exit code and output. */
export async function runScript(root: string, args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}
