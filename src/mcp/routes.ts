import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { scopeAllows } from "../auth/keys.ts";
import { principalOf } from "../auth/middleware.ts";
import type { Db } from "../db/index.ts";
import type { McpOptions } from "./tools.ts";
import { defaultBounds, heavyRequest, type Bounds } from "../analytics/bounds.ts";
import { boundedDb } from "../db/bounded.ts";

/**
 * The MCP endpoint (Streamable HTTP), mounted at /mcp. Stateless: every POST gets a fresh server and
 * transport and is answered with plain JSON, so any HTTP worker can answer any request and no session
 * lives in one process's memory. There is no server-to-client stream, so GET and DELETE answer 405.
 */
// The MCP SDK (with ajv and zod-to-json-schema) is loaded on the first MCP request, not with every HTTP
// worker: most workers never answer one, and the import is ~0.2 s of CPU per process start.
let sdk: Promise<[typeof import("@hono/mcp"), typeof import("./tools.ts")]> | undefined;
const loadSdk = () => (sdk ??= Promise.all([import("@hono/mcp"), import("./tools.ts")]));

export function mcpRoutes(plain: Db, opts: McpOptions, bounds: Bounds = defaultBounds) {
  const app = new Hono();
  // Tool calls are heavy reads: a key's concurrency, and the request's time limit and caps on every read
  // (bounded Drizzle, docs/security.md#cost-bounds); `query` has its own runner and limits besides.
  // Keyless local clients wait for the query processes instead of being refused.
  app.post("/", heavyRequest(bounds, "query", { keysOnly: true }));
  const db = boundedDb(plain);

  app.post("/", async (c) => {
    const p = principalOf(c);
    const mayRunSql = p?.kind === "loopback" || (p?.kind === "key" && scopeAllows(p.key.scope, "query"));
    // Keys are capped each (MCP_QUERY_PER_KEY); this machine's keyless clients only by the process's cap.
    const sqlCaller = p?.kind === "key" ? `key:${p.key.id}` : undefined;
    const [{ StreamableHTTPTransport }, { createMcpServer }] = await loadSdk();
    const server = createMcpServer(db, { ...opts, mayRunSql, sqlCaller });
    const transport = new StreamableHTTPTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    try {
      await server.connect(transport);
      return (await transport.handleRequest(c)) ?? c.body(null, 202);
    } catch (err) {
      // The transport answers protocol errors (bad JSON, wrong Accept or Content-Type) as JSON-RPC errors.
      if (err instanceof HTTPException) return err.getResponse();
      throw err;
    } finally {
      await server.close();
    }
  });

  app.on(["GET", "DELETE"], "/", (c) =>
    c.json(
      {
        jsonrpc: "2.0",
        error: { code: -32000, message: "Method not allowed: this server is stateless, POST JSON-RPC messages to /mcp" },
        id: null,
      },
      405,
      {
        Allow: "POST",
      },
    ),
  );

  return app;
}
