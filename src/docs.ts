import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import { html, raw } from "hono/html";
import { fileHandler, packageFile } from "./assets.ts";

/** The parts of an OpenAPI document the /redoc page reads. */
type OpenApiDoc = {
  info: { title: string; version: string; description?: string };
  paths?: Record<
    string,
    Partial<
      Record<
        (typeof methods)[number],
        { summary?: string; description?: string; tags?: string[]; parameters?: { name: string; in: string; required?: boolean }[] }
      >
    >
  >;
};

const methods = ["get", "post", "put", "patch", "delete"] as const;

/**
 * The Scalar reference's settings: the script from node_modules (works offline), no web fonts, and every
 * feature that talks to Scalar's own servers switched off — the agent chat ("Ask AI"), the developer
 * toolbar (Configure / Share / Deploy / Generate SDK), the "Generate SDKs & MCP" offer, telemetry.
 * The external URLs point back at this server, so even a feature missed here cannot reach another host.
 */
export const scalarConfig = {
  url: "/openapi.json",
  pageTitle: "sitesync API",
  cdn: "/docs/scalar.js",
  withDefaultFonts: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: "never",
  telemetry: false,
  externalUrls: { dashboardUrl: "/docs", registryUrl: "/docs", proxyUrl: "/docs", apiBaseUrl: "/docs" },
} as const;

/** GET /docs (the Scalar reference, offline) and GET /docs/scalar.js (its script, from node_modules). */
export function scalarRoutes() {
  const app = new Hono();
  app.get("/docs", Scalar({ ...scalarConfig }));
  app.get(
    "/docs/scalar.js",
    fileHandler(packageFile("@scalar/api-reference", "dist/browser/standalone.js"), "text/javascript; charset=utf-8"),
  );
  return app;
}

/** HTML of a description's inline markdown: text escaped, `code` spans and **bold** rendered (what our descriptions use). */
export function inlineMarkdown(text: string): string {
  const escaped = text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return escaped.replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
}

/**
 * GET / (the original's API info, with our own fields added) and GET /redoc: a read-only reference
 * rendered on the server from the OpenAPI document, grouped by tag like ReDoc, with no script and
 * nothing loaded from elsewhere.
 */
export function apiInfoRoutes(openApi: () => object) {
  const app = new Hono();
  // Only the fields above are read; the generator's own type is much wider.
  const document = () => openApi() as OpenApiDoc;

  app.get("/", (c) =>
    c.json({
      name: "GSC-CLI API",
      version: "0.3.0",
      description: "Google Search Console data management API",
      documentation: "/docs",
      health_check: "/health",
      service: "sitesync",
      service_version: document().info.version,
      redoc: "/redoc",
      openapi: "/openapi.json",
    }),
  );

  app.get("/redoc", (c) => {
    const doc = document();
    const byTag = new Map<string, { method: string; path: string; summary: string; description: string; params: string }[]>();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const m of methods) {
        const op = item[m];
        if (!op) continue;
        const tag = op.tags?.[0] ?? "other";
        const params = (op.parameters ?? []).map((p) => `${p.name} (${p.in}${p.required ? ", required" : ""})`).join(", ");
        const list = byTag.get(tag) ?? [];
        list.push({ method: m.toUpperCase(), path, summary: op.summary ?? "", description: op.description ?? "", params });
        byTag.set(tag, list);
      }
    }
    const sections = [...byTag].map(
      ([tag, ops]) => html`<section id="tag-${tag}">
  <h2>${tag}</h2>
  ${ops.map(
    (o) => html`<article>
    <h3><span class="m ${o.method.toLowerCase()}">${o.method}</span> <code>${o.path}</code></h3>
    <p>${raw(inlineMarkdown(o.summary))}</p>
    ${o.description ? html`<p class="d">${raw(inlineMarkdown(o.description))}</p>` : ""}
    ${o.params ? html`<p class="p">Parameters: ${o.params}</p>` : ""}
  </article>`,
  )}
</section>`,
    );
    const nav = [...byTag.keys()].map((t) => html`<li><a href="#tag-${t}">${t}</a></li>`);
    return c.html(html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${doc.info.title} API reference</title>
<style>
${raw(`body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#222;display:flex}
nav{width:220px;min-height:100vh;background:#fafafa;border-right:1px solid #ddd;padding:1rem;position:sticky;top:0;align-self:flex-start}
main{flex:1;padding:1rem 2rem;max-width:960px}
article{border-bottom:1px solid #eee;padding:.5rem 0}
h3{font-size:1rem;margin:.3rem 0}
.m{display:inline-block;min-width:4.2em;text-align:center;border-radius:3px;color:#fff;font-size:.8rem;padding:0 .3em}
.get{background:#2f8132}.post{background:#186faf}.patch,.put{background:#95507c}.delete{background:#cc3333}
.d,.p{color:#555;font-size:.9rem}
code{background:#f3f3f3;border-radius:3px;padding:0 .2em;font-size:.9em}`)}
</style>
</head>
<body>
<nav><strong>${doc.info.title} ${doc.info.version}</strong><ul>${nav}</ul>
<p><a href="/openapi.json">openapi.json</a> · <a href="/docs">interactive docs</a></p></nav>
<main><h1>${doc.info.title} API reference</h1><p>${raw(inlineMarkdown(doc.info.description ?? ""))}</p>${sections}</main>
</body>
</html>`);
  });

  return app;
}
