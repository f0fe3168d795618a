import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensureStartBundle, sourceKey } from "../src/bundle/build.ts";
import { bundledFile } from "../src/bundle/entry.ts";
import { startServer } from "./helpers/server.ts";

// Every HTTP worker imports the app before it serves anything, and the suite starts hundreds of them and
// hundreds of CLI runs (docs/testing.md): packages only a rare request or command needs are loaded on
// first use, not at start-up; and they start from the start bundle (src/bundle/build.ts). Engine-neutral (no database,
// or a SQLite file whatever the engine under test): run once (scripts/test.ts `engineNeutral`).

const root = join(import.meta.dir, "..");

/** The node_modules packages a fresh `bun ...args` process loaded by the time it exited. */
function packagesLoadedBy(args: string[]): string[] {
  const p = Bun.spawnSync([process.execPath, "--preload", "./test/helpers/loaded-packages.ts", ...args], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const line = p.stderr
    .toString()
    .split("\n")
    .find((l) => l.startsWith("loaded-packages: "));
  if (!line) throw new Error(`bun ${args.join(" ")} (exit ${p.exitCode}) printed no package list: ${p.stderr.toString()}`);
  return JSON.parse(line.slice("loaded-packages: ".length));
}

describe("start-up imports", () => {
  test("the app loads neither the MCP SDK nor the Google and e-mail clients until a request needs them", () => {
    const loaded = packagesLoadedBy(["-e", 'await import("./src/app.ts")']);
    // The check itself works: what every request needs is there.
    expect(loaded).toContain("hono");
    expect(loaded).toContain("zod");
    for (const lazy of [
      "@modelcontextprotocol/sdk",
      "@hono/mcp",
      "ajv",
      "google-auth-library",
      "nodemailer",
      "hyparquet-writer",
      "hyparquet",
    ])
      expect(loaded).not.toContain(lazy);
  });

  test("every process loads prom-client's metric classes without its default metrics (and their @opentelemetry/api)", () => {
    // src/metrics/prom.ts: prom-client's index would load 88 modules; the supervisor and both kinds of workers import
    // the metrics registry.
    const loaded = packagesLoadedBy(["-e", 'await import("./src/app.ts"); await import("./src/metrics/registry.ts")']);
    expect(loaded).toContain("prom-client");
    for (const lazy of ["@opentelemetry/api", "tdigest", "bintrees"]) expect(loaded).not.toContain(lazy);
  });

  test("a sync worker loads no HTTP layer (hono, @hono/zod-openapi): its scheduler's range check is in src/sync/range.ts", () => {
    const loaded = packagesLoadedBy([
      "-e",
      'await import("./src/sync/handlers/index.ts"); await import("./src/sync/scheduler.ts"); await import("./src/sync/source.ts"); await import("./src/sync/worker.ts")',
    ]);
    expect(loaded).toContain("drizzle-orm");
    for (const lazy of ["hono", "@hono/zod-openapi", "drizzle-zod"]) expect(loaded).not.toContain(lazy);
  });

  test("a PostgreSQL process loads one copy of drizzle-orm (its ESM build), not its CommonJS build beside it", () => {
    // What a PostgreSQL supervisor and HTTP worker load: the engine, the schema, the migrator and drizzlePg() (a
    // `require` of the package took its CommonJS build: 104 more modules).
    const script = `
      const { openPgEngine } = require("./src/db/pg/engine.ts");
      const { drizzlePg, pgDriver, pgSchema } = await import("./src/db/pg/driver.ts");
      await import("drizzle-orm/node-postgres/migrator");
      const orm = drizzlePg().drizzle({ client: new (pgDriver().Pool)(), schema: pgSchema() });
      const files = Object.keys(require.cache).filter((k) => k.includes("/node_modules/drizzle-orm/"));
      console.log(JSON.stringify({ engine: typeof openPgEngine, orm: typeof orm.select, esm: files.filter((k) => k.endsWith(".js")).length,
        cjs: files.filter((k) => k.endsWith(".cjs")) }));
      process.exit(0);
    `;
    const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const line = p.stdout.toString().trim().split("\n").at(-1) ?? "";
    if (!line.startsWith("{")) throw new Error(`no result (exit ${p.exitCode}): ${p.stderr.toString()}`);
    const r = JSON.parse(line);
    expect(r.engine).toBe("function");
    expect(r.orm).toBe("function");
    expect(r.esm).toBeGreaterThan(100);
    expect(r.cjs).toEqual([]);
  });

  test("the CLI, an HTTP client of the service, loads no database layer (only its auth commands do)", () => {
    const loaded = packagesLoadedBy(["src/cli/main.ts", "--help"]);
    expect(loaded).toContain("commander");
    for (const lazy of ["drizzle-orm", "pg", "prom-client", "google-auth-library", "hono", "hyparquet"]) expect(loaded).not.toContain(lazy);
  });

  test("the CLI's settings build a few dozen zod schemas, not the service's (~300, made on first use)", () => {
    // zod calls its post-processor hook once per schema it constructs: counted in a fresh process.
    const script = `
      const { z } = await import("zod");
      let n = 0;
      globalThis.__zod_globalConfig.postProcessor = () => { n++; };
      const config = await import("./src/config.ts");
      const atImport = n;
      config.loadCliConfig({});
      const cli = n - atImport;
      const port = config.defaults.PORT;
      console.log(JSON.stringify({ atImport, cli, service: n - atImport - cli, port }));
      process.exit(0);
    `;
    const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const line = p.stdout.toString().trim().split("\n").at(-1) ?? "";
    if (!line.startsWith("{")) throw new Error(`no result (exit ${p.exitCode}): ${p.stderr.toString()}`);
    const r = JSON.parse(line);
    expect(r.atImport).toBeLessThan(100);
    expect(r.cli).toBeLessThan(100);
    // The service's defaults, read on first use, build the whole schema (the check itself works).
    expect(r.service).toBeGreaterThan(200);
    expect(r.port).toBe(8000);
  });

  test("an HTTP worker loads the dashboard's modules on the first request under /ui, which answers as before", () => {
    // A fresh process: the app over a temporary SQLite file (a file, whatever the engine under test), then one page.
    const script = `
      const { mkdtempSync, rmSync } = require("node:fs");
      const dir = mkdtempSync(require("node:path").join(require("node:os").tmpdir(), "sitesync-startup-"));
      const { migrate } = await import("./src/db/sqlite/migrate.ts");
      const { openDb } = await import("./src/db/index.ts");
      const { createApp } = await import("./src/app.ts");
      migrate(dir + "/app.db");
      const app = createApp(openDb({ path: dir + "/app.db" }));
      const ui = () => Object.keys(require.cache).some((k) => k.endsWith("/src/ui/routes.tsx"));
      const before = ui();
      const login = await app.request("/ui/login", { headers: { host: "127.0.0.1" } });
      const html = await login.text();
      const missing = await app.request("/ui/no-such-page", { headers: { host: "127.0.0.1" } });
      const wrongMethod = await app.request("/ui/jobs/1/cancel", { headers: { host: "127.0.0.1" } });
      console.log(JSON.stringify({ before, after: ui(), status: login.status, form: html.includes("<form"),
        csp: login.headers.get("content-security-policy"), requestId: login.headers.get("x-request-id"),
        missing: missing.status, wrongMethod: wrongMethod.status, allow: wrongMethod.headers.get("allow") }));
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    `;
    const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const line = p.stdout.toString().trim().split("\n").at(-1) ?? "";
    if (!line.startsWith("{")) throw new Error(`no result (exit ${p.exitCode}): ${p.stderr.toString()}`);
    const r = JSON.parse(line);
    expect(r.before).toBe(false);
    expect(r.after).toBe(true);
    // The page with the dashboard's own headers and the app's (request id); unknown pages and methods as the app answers them.
    expect(r.status).toBe(200);
    expect(r.form).toBe(true);
    expect(r.csp).toContain("default-src 'self'");
    expect(r.requestId).toBeTruthy();
    expect(r.missing).toBe(404);
    expect(r.wrongMethod).toBe(405);
    expect(r.allow).toBe("POST");
  });
  test("an HTTP worker's route groups are loaded by their first request, answering as the app loaded at once", () => {
    // A fresh process: the app over a temporary SQLite file mounted from a route table (as from the start bundle's
    // routes.json), beside one that loaded every group to read it; the same requests to both.
    const script = `
      const { mkdtempSync, rmSync } = require("node:fs");
      const dir = mkdtempSync(require("node:path").join(require("node:os").tmpdir(), "sitesync-startup-"));
      const { migrate } = await import("./src/db/sqlite/migrate.ts");
      const { openDb } = await import("./src/db/index.ts");
      const { createApp } = await import("./src/app.ts");
      const { routeTableOf } = await import("./src/lazy-routes.ts");
      const table = JSON.parse(process.argv[1]);
      migrate(dir + "/app.db");
      const db = openDb({ path: dir + "/app.db", role: "http" });
      const loaded = (m) => Object.keys(require.cache).some((k) => k.endsWith(m));
      const lazy = createApp(db, { routeTable: table });
      const before = ["/src/sites/routes.ts", "/src/analytics/routes.ts", "/src/analytics/schemas.ts", "/src/insights/schemas.ts", "/src/mcp/routes.ts"].filter(loaded);
      const ask = async (app, method, path, body) => {
        const res = await app.request(path, { method, headers: { host: "127.0.0.1", "content-type": "application/json" }, body: body && JSON.stringify(body) });
        return { status: res.status, allow: res.headers.get("allow"), body: (await res.text()).replace(/"(created_at|updated_at)":"[^"]*"/g, "") };
      };
      const requests = [["POST", "/api/v1/sites", { domain: "sc-domain:lazy.example", name: "Lazy" }], ["PUT", "/api/v1/sites"],
        ["GET", "/api/v1/sites/1/"], ["PATCH", "/api/v1/sites/1", { name: "x".repeat(300) }], ["GET", "/api/v1/no-such-thing"]];
      const answers = [];
      for (const [m, p, b] of requests) answers.push(await ask(lazy, m, p, b));
      const afterSites = { sites: loaded("/src/sites/routes.ts"), analytics: loaded("/src/analytics/routes.ts") };
      const lazyDoc = await (await lazy.request("/openapi.json")).text();
      const eager = createApp(db);
      const eagerAnswers = [];
      for (const [m, p, b] of requests) eagerAnswers.push(await ask(eager, m, p.replace("/1", "/2"), b && { ...b, domain: b.domain && "sc-domain:eager.example" }));
      const eagerDoc = await (await eager.request("/openapi.json")).text();
      console.log(JSON.stringify({ before, afterSites, answers, eagerAnswers, sameTable: JSON.stringify(routeTableOf(eager)) === JSON.stringify(table),
        sameDoc: lazyDoc === eagerDoc, docPaths: Object.keys(JSON.parse(lazyDoc).paths).length }));
      db.close();
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    `;
    const out = join(mkdtempSync(join(tmpdir(), "sitesync-routes-")), "routes.json");
    try {
      const made = Bun.spawnSync([process.execPath, "src/bundle/route-table.ts", out], { cwd: root, stderr: "pipe" });
      if (made.exitCode !== 0) throw new Error(made.stderr.toString());
      const p = Bun.spawnSync([process.execPath, "-e", script, readFileSync(out, "utf8")], { cwd: root, stdout: "pipe", stderr: "pipe" });
      const line = p.stdout.toString().trim().split("\n").at(-1) ?? "";
      if (!line.startsWith("{")) throw new Error(`no result (exit ${p.exitCode}): ${p.stderr.toString()}`);
      const r = JSON.parse(line);
      // Nothing of a group before its request; the sites group after a sites request, no other.
      expect(r.before).toEqual([]);
      expect(r.afterSites).toEqual({ sites: true, analytics: false });
      // The same answers (the second app's site is number 2): created, 405 with Allow, found (trailing slash), refused, 404.
      expect(r.answers.map((a: { status: number }) => a.status)).toEqual([201, 405, 200, 400, 404]);
      expect(r.answers[1].allow).toBe("GET, POST");
      expect(r.answers.map((a: { body: string }) => a.body.replaceAll("lazy", "eager").replace(/"id":\d+/, ""))).toEqual(
        r.eagerAnswers.map((a: { body: string }) => a.body.replace(/"id":\d+/, "")),
      );
      expect(r.answers.map((a: { allow: string | null }) => a.allow)).toEqual(r.eagerAnswers.map((a: { allow: string | null }) => a.allow));
      // The table written for the bundle is the one the app reads by loading its groups; the OpenAPI document is whole.
      expect(r.sameTable).toBe(true);
      expect(r.sameDoc).toBe(true);
      expect(r.docPaths).toBeGreaterThan(50);
    } finally {
      rmSync(dirname(out), { recursive: true, force: true });
    }
  });
});

describe("the start bundle (src/bundle/build.ts)", () => {
  /** A checkout of its own with `files` under src/ (the builder keys and builds any tree). */
  function tree(files: Record<string, string>) {
    const dir = mkdtempSync(join(tmpdir(), "sitesync-bundle-"));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, "src", name)), { recursive: true });
      writeFileSync(join(dir, "src", name), text);
    }
    return dir;
  }
  const run = (file: string) => Bun.spawnSync([process.execPath, file], { stdout: "pipe", stderr: "pipe" }).stdout.toString().trim();

  test("a source changed since the bundle was built is never run: the next start builds a new bundle", async () => {
    const root = tree({
      "main.ts": 'import { value } from "./value.ts";\nconsole.log(value);\n',
      "value.ts": 'export const value = "one";\n',
    });
    try {
      const first = await ensureStartBundle({ root, entries: ["main.ts"] });
      expect(run(bundledFile(first, "main.ts"))).toBe("one");
      // Unchanged sources: the same bundle, not built again.
      expect(await ensureStartBundle({ root, entries: ["main.ts"] })).toBe(first);
      writeFileSync(join(root, "src/value.ts"), 'export const value = "two";\n');
      const second = await ensureStartBundle({ root, entries: ["main.ts"] });
      expect(second).not.toBe(first);
      expect(run(bundledFile(second, "main.ts"))).toBe("two");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a lock left by a builder that died mid-build is taken over at once, not after LOCK_STALE_MS", async () => {
    const root = tree({ "main.ts": 'console.log("built");\n' });
    try {
      const dir = join(root, "node_modules/.cache/sitesync-start", sourceKey(root, ["main.ts"]));
      mkdirSync(dirname(dir), { recursive: true });
      // A fresh lock of a process that is gone (a test's server start killed at its timeout while building).
      const dead = Bun.spawnSync(["true"]).pid;
      writeFileSync(`${dir}.lock`, String(dead));
      const built = await Promise.race([
        ensureStartBundle({ root, entries: ["main.ts"] }),
        Bun.sleep(20_000).then(() => "still waiting for the dead builder's lock"),
      ]);
      expect(built).toBe(dir);
      expect(run(bundledFile(dir, "main.ts"))).toBe("built");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);

  test("bundled modules keep their sources' locations, and only a start file run as a script is the main one", async () => {
    const root = tree({
      "main.ts": 'import { where } from "./sub/where.ts";\nconsole.log(JSON.stringify({ ...where, entryMain: import.meta.main }));\n',
      "sub/where.ts":
        "export const where = { dir: import.meta.dir, path: import.meta.path, url: import.meta.url, main: import.meta.main };\n",
    });
    try {
      const out = JSON.parse(run(bundledFile(await ensureStartBundle({ root, entries: ["main.ts"] }), "main.ts")));
      expect(out).toEqual({
        dir: join(root, "src/sub"),
        path: join(root, "src/sub/where.ts"),
        url: Bun.pathToFileURL(join(root, "src/sub/where.ts")).href,
        main: false,
        entryMain: true,
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("each start file is built with its bytecode beside it and runs as strict code, a lazy import run on first use", async () => {
    const root = tree({
      "main.ts": `
        const self = (function (this: unknown) { return this; })();
        let frozen = "silent";
        try { (Object.freeze({ a: 1 }) as { a: number }).a = 2; } catch { frozen = "throws"; }
        const before = (globalThis as { lazyRan?: boolean }).lazyRan ?? false;
        void import("./lazy.ts").then(({ value }) => console.log(JSON.stringify({ self: self === undefined, frozen, before, value })));
      `,
      "lazy.ts": '(globalThis as { lazyRan?: boolean }).lazyRan = true;\nexport const value = "lazy";\n',
    });
    try {
      const dir = await ensureStartBundle({ root, entries: ["main.ts"] });
      expect(readFileSync(bundledFile(dir, "main.ts"), "utf8").split("\n")[0]).toContain("@bytecode");
      expect(statSync(`${bundledFile(dir, "main.ts")}.jsc`).size).toBeGreaterThan(0);
      expect(JSON.parse(run(bundledFile(dir, "main.ts")))).toEqual({ self: true, frozen: "throws", before: false, value: "lazy" });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a start file that another one imports (its code bundled into the other) is the main one only when it is run", async () => {
    const root = tree({
      "main.ts": 'import { name } from "./runner.ts";\nconsole.log("main", name, import.meta.main);\n',
      "runner.ts": 'export const name = "runner";\nif (import.meta.main) console.log("runner runs");\n',
    });
    try {
      const dir = await ensureStartBundle({ root, entries: ["main.ts", "runner.ts"] });
      expect(run(bundledFile(dir, "main.ts"))).toBe("main runner true");
      expect(run(bundledFile(dir, "runner.ts"))).toBe("runner runs");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a start file run from a checkout whose node_modules is a symbolic link is the main one (the CLI runs)", async () => {
    const root = tree({ "main.ts": "console.log('main', import.meta.main);\n" });
    const modules = mkdtempSync(join(tmpdir(), "sitesync-modules-"));
    try {
      symlinkSync(modules, join(root, "node_modules"));
      const dir = await ensureStartBundle({ root, entries: ["main.ts"] });
      expect(dir.startsWith(join(root, "node_modules/"))).toBe(true);
      expect(run(bundledFile(dir, "main.ts"))).toBe("main true");
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(modules, { recursive: true, force: true });
    }
  });

  test("the tests' servers run the current bundle, and its supervisor starts its workers from it", async () => {
    const dir = await ensureStartBundle();
    // The bundle the tests start is the sources' current state (the same key), not an older build.
    expect(dir.endsWith(sourceKey())).toBe(true);
    const server = await startServer({ workers: 1, syncWorkers: 1, env: { SYNC_SCHEDULER: "0" } });
    try {
      const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      expect(cmdline(server.proc.pid)[1]).toBe(bundledFile(dir, "main.ts"));
      const res = await fetch(`${server.url}/health`);
      expect(res.status).toBe(200);
      const children = readFileSync(`/proc/${server.proc.pid}/task/${server.proc.pid}/children`, "utf8").trim().split(" ").map(Number);
      expect(children.map((pid) => cmdline(pid)[1]).sort()).toEqual([
        bundledFile(dir, "server.ts"),
        bundledFile(dir, "sync/worker-main.ts"),
      ]);
    } finally {
      await server.cleanup();
    }
  });
});
