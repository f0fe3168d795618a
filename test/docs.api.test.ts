import { afterAll, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { tempDb } from "./helpers/db.ts";

// /docs works offline: the page loads its script from this server (node_modules), nothing from a CDN.

const t = tempDb();
afterAll(() => t.cleanup());

test("the reference page references only this server", async () => {
  const app = createApp(t.db);
  const res = await app.request("/docs");
  expect(res.status).toBe(200);
  const html = await res.text();
  expect(html).toContain('<script src="/docs/scalar.js"></script>');
  expect(html).not.toMatch(/(src|href)="https?:/);
  expect(html).not.toContain("cdn.jsdelivr.net");
});

test("the script is served from node_modules, with an ETag the browser can revalidate", async () => {
  const app = createApp(t.db);
  const res = await app.request("/docs/scalar.js");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("javascript");
  const body = await res.text();
  expect(body.length).toBeGreaterThan(100_000);
  expect(body).toContain("createApiReference");
  const again = await app.request("/docs/scalar.js", { headers: { "if-none-match": res.headers.get("etag")! } });
  expect(again.status).toBe(304);
});
