import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { createApp } from "../src/app.ts";
import { tempDb } from "./helpers/db.ts";
import { anchors, at, type CodeBlock, docFiles, inlineCode, links, readDoc, root } from "./helpers/markdown.ts";
import { request, type RunningServer, startServer } from "./helpers/server.ts";

// Examples that cannot rot: README.md, BENCHMARKS.md and docs/**/*.md checked against the code.
// (a) every relative link and image points to an existing file, and to an existing heading when it has an anchor;
// (b) every `bun run <script>` names a script of package.json, every `bun <file>.ts` an existing file, every
//     setting (`SOME_SETTING`, `SOME_SETTING=value`) is read by src/config.ts, every /api/v1 path (and its method,
//     when one is written before it) is in the OpenAPI document, every src/, test/, scripts/, bench/,
//     migrations/ path in inline code exists;
// (c) the README's quick-start blocks marked `<!-- docs-check: label -->` run as written against a real service
//     (temp database, free port, a demo sync worker), and each label's output is checked below.

const docs = docFiles().map(readDoc);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };

/** Shell commands of the docs: fenced blocks of a shell (or no) language, and inline code spans. */
function commands(): { text: string; where: string }[] {
  const out: { text: string; where: string }[] = [];
  for (const d of docs) {
    for (const b of d.blocks) {
      if (!["", "sh", "bash", "shell", "console"].includes(b.lang)) continue;
      b.code.split("\n").forEach((l, i) => out.push({ text: l.replace(/#.*$/, ""), where: at(d.file, b.line + 1 + i) }));
    }
    for (const c of inlineCode(d)) out.push({ text: c.code, where: at(d.file, c.line) });
  }
  return out;
}

describe("links", () => {
  test("every relative link and image of the docs points to an existing file and heading", () => {
    const byFile = new Map(docs.map((d) => [d.file, d]));
    const problems: string[] = [];
    let checked = 0;
    for (const d of docs) {
      for (const { target, line } of links(d)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
        checked++;
        const [path, anchor] = target.split("#", 2) as [string, string | undefined];
        const file = path ? normalize(join(dirname(d.file), decodeURIComponent(path))) : d.file;
        if (file.startsWith("..") || !existsSync(join(root, file))) {
          problems.push(`${at(d.file, line)}: ${target}: no such file ${file}`);
          continue;
        }
        if (anchor === undefined || !file.endsWith(".md")) continue;
        const linked = byFile.get(file) ?? readDoc(file);
        if (!anchors(linked).has(anchor)) problems.push(`${at(d.file, line)}: ${target}: ${file} has no heading #${anchor}`);
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });
});

describe("commands, settings, paths", () => {
  test("every `bun run <script>` is a script of package.json, every `bun <file>.ts` a file", () => {
    const problems: string[] = [];
    const scripts = new Set<string>();
    for (const { text, where } of commands()) {
      for (const m of text.matchAll(/\bbun run (?:--\S+ )*([\w:.@/-]+)/g)) {
        const name = m[1]!.replace(/[.:]+$/, "");
        if (name.includes("/") || name.endsWith(".ts")) continue; // `bun run file.ts` runs a file
        scripts.add(name);
        if (!pkg.scripts[name]) problems.push(`${where}: bun run ${name}: no such script in package.json`);
      }
      for (const m of text.matchAll(/\bbun (?:test )?((?:src|test|scripts|bench)\/[\w./-]+\.tsx?)\b/g)) {
        if (!existsSync(join(root, m[1]!))) problems.push(`${where}: bun ${m[1]}: no such file`);
      }
    }
    expect(problems).toEqual([]);
    // The check reads what the docs say: the quick start's commands are among them.
    for (const s of ["start", "test", "cli", "keys", "migrate", "db:copy", "bench"]) expect(scripts).toContain(s);
  });

  /** Upper-case names in the docs that are not settings of the service. */
  const notSettings: Record<string, string> = {
    SQLITE_BUSY: "SQLite's result code",
    SO_REUSEPORT: "a socket option",
    GROUP_CONCAT: "an SQL function",
  };
  /** Settings of the test harness, not of the service: read by scripts/ or test/, not src/config.ts. */
  const harness = [
    "TEST_POSTGRES_URL",
    "TEST_ENGINE",
    "REQUIRE_BROWSER",
    "REQUIRE_POSTGRES",
    "SEARCH_SEED",
    "SCREENSHOTS",
    "TEST_JOBS",
    "TEST_WAIT_LANE",
    "TEST_HEAVY_PAIRS",
    "TEST_GROUPS",
    "TEST_GROUP_CPU",
    "TEST_GROUP_WALL",
    "TEST_PG_TEMPLATE",
    "TEST_PG_AHEAD",
    "TEST_DB_TAG",
    "TEST_PG_RUNS_TOO",
    "TEST_RETRY_FAILED",
    "TEST_CGROUPS",
    "TEST_PRIORITY_LANE",
    "FAKE_GSC_REUSE_BODIES",
    "FAKE_GSC_DELAY_MS",
    // Bun's, set by scripts/test.ts for the processes a file starts.
    "BUN_GC_TIMER_DISABLE",
    "BUN_GC_TIMER_INTERVAL",
  ];

  test("every setting the docs name is read by src/config.ts (test-harness settings by scripts/ or test/)", () => {
    const config = readFileSync(join(root, "src/config.ts"), "utf8");
    const harnessSources = [".ci/run", "scripts/test.ts", ...readdirSync(join(root, "test")).map((f) => `test/${f}`)]
      .concat(readdirSync(join(root, "test/helpers")).map((f) => `test/helpers/${f}`))
      .filter((f) => statSync(join(root, f)).isFile())
      .map((f) => readFileSync(join(root, f), "utf8"))
      .join("\n");
    const problems: string[] = [];
    const names = new Set<string>();
    const check = (name: string, where: string) => {
      names.add(name);
      if (notSettings[name]) return;
      if (name.endsWith("_*")) {
        if (!new RegExp(`\\b${name.slice(0, -1)}\\w+`).test(config)) problems.push(`${where}: ${name}: no such settings in src/config.ts`);
        return;
      }
      const re = new RegExp(`\\b${name}\\b`);
      if (harness.includes(name)) {
        if (!re.test(harnessSources)) problems.push(`${where}: ${name}: the test harness no longer reads it`);
      } else if (!re.test(config)) {
        problems.push(`${where}: ${name}: not a setting in src/config.ts (if it is not a setting, add it to notSettings with why)`);
      }
    };
    for (const d of docs) {
      for (const c of inlineCode(d)) {
        const span = c.code.trim();
        if (/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+(_\*)?$/.test(span)) check(span, at(d.file, c.line));
        for (const m of span.matchAll(/(?:^|\s)([A-Z][A-Z0-9_]*)=/g)) check(m[1]!, at(d.file, c.line));
      }
      for (const b of d.blocks) {
        b.code.split("\n").forEach((l, i) => {
          for (const m of l.matchAll(/(?:^|\s)([A-Z][A-Z0-9_]*)=/g)) check(m[1]!, at(d.file, b.line + 1 + i));
        });
      }
    }
    expect(problems).toEqual([]);
    expect(names.size).toBeGreaterThan(40);
  });

  const t = tempDb();
  afterAll(() => t.cleanup());

  /**
   * The original tool's paths named in docs/compatibility.md: not endpoints of our OpenAPI document (the v1
   * paths are aliases src/compat routes to today's handlers; test/compat.api.test.ts calls them).
   */
  const originalOnly = new Set(["/api/v1/ranking-data-hourly", "/api/v1/ranking-data", "/api/v1/daily-data"]);

  test("every /api/v1 path of the docs, with its method when one is written, is in the OpenAPI document", async () => {
    const res = await createApp(t.db).request("/openapi.json");
    const spec = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
    // Path parameters, however written ({site_id}, :id, 1, <id>), compare as one placeholder.
    const shape = (p: string) =>
      p
        .replace(/\/+$/, "")
        .split("/")
        .map((s) => (/^(\{.*\}|:\w+|\d+|<.*>)$/.test(s) ? "{}" : s))
        .join("/");
    const api = new Map<string, Set<string>>();
    for (const [p, ops] of Object.entries(spec.paths)) {
      api.set(shape(p), new Set([...(api.get(shape(p)) ?? []), ...Object.keys(ops).map((m) => m.toUpperCase())]));
    }
    const problems: string[] = [];
    let checked = 0;
    const scan = (text: string, where: (index: number) => string) => {
      for (const m of text.matchAll(/(?:\b(GET|POST|PUT|PATCH|DELETE)\s+)?(\/api\/v1\/[^\s`'"?)<>|,;\\]*)/g)) {
        const path = m[2]!.replace(/[.:]+$/, "");
        if (originalOnly.has(path.replace(/\/+$/, ""))) continue;
        checked++;
        const s = shape(path);
        const found = s.endsWith("/*") ? [...api.keys()].some((k) => k.startsWith(s.slice(0, -1))) : api.has(s);
        if (!found) problems.push(`${where(m.index)}: ${path}: not in the OpenAPI document`);
        else if (m[1] && !s.endsWith("/*") && !api.get(s)!.has(m[1])) problems.push(`${where(m.index)}: ${m[1]} ${path}: no such method`);
      }
    };
    for (const d of docs) {
      scan(d.prose, (i) => at(d.file, d.prose.slice(0, i).split("\n").length));
      for (const b of d.blocks) scan(b.code, (i) => at(d.file, b.line + b.code.slice(0, i).split("\n").length));
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });

  test("every src/, test/, scripts/, bench/ and migrations/ path in inline code exists", () => {
    const problems: string[] = [];
    for (const d of docs) {
      // The history names files as they were when it was measured.
      if (d.file.startsWith("docs/benchmarks/history")) continue;
      for (const c of inlineCode(d)) {
        for (const m of c.code.matchAll(/(?<![\w/.-])((?:src|test|scripts|bench|migrations)\/[\w./-]*[\w/])/g)) {
          const path = m[1]!;
          if (/\/x\.test\.ts$/.test(path) || path.startsWith("bench/results/")) continue; // a placeholder; git-ignored output
          if (existsSync(join(root, path))) continue;
          // `migrations/pg/0001` names a migration by its number.
          const dir = join(root, dirname(path));
          const base = path.slice(path.lastIndexOf("/") + 1);
          if (existsSync(dir) && readdirSync(dir).some((f) => f.startsWith(`${base}_`))) continue;
          problems.push(`${at(d.file, c.line)}: ${path}: no such file or folder`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("the README's quick start, run as written", () => {
  let server: RunningServer;
  const blocks: CodeBlock[] = docs.find((d) => d.file === "README.md")!.blocks.filter((b) => b.label);

  beforeAll(async () => {
    // The demo source (no Google credentials) and no scheduler, so the only sync is the one the README starts.
    server = await startServer({ workers: 1, syncWorkers: 1, env: { SYNC_SOURCE: "demo", SYNC_SCHEDULER: "false" } });
  }, 30_000);
  afterAll(() => server?.cleanup());

  /** Runs a block with sh as a reader would on the service's machine: localhost:8000 is the test server. */
  async function run(block: CodeBlock) {
    const { SITESYNC_API_KEY: _k, GSC_CREDENTIALS_FILE: _c, ...env } = process.env;
    const proc = Bun.spawn(["sh", "-e", "-c", block.code.replaceAll("http://localhost:8000", server.url)], {
      cwd: root,
      env: { ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? ""}`, SITESYNC_URL: server.url, NO_COLOR: "1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 45_000);
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    if (code !== 0) throw new Error(`${at(block.file, block.line)} (${block.label}) exited ${code}:\n${stdout}\n${stderr}`);
    return stdout;
  }

  /** What each labelled block must have done. */
  const checks: Record<string, (out: string) => Promise<void> | void> = {
    "add-site": async (out) => {
      const sites = (await request(server.url, "GET", "/api/v1/sites")).body as { domain: string }[];
      expect(sites.map((s) => s.domain)).toContain("sc-domain:example.com");
      expect(out).toContain('"domain":"sc-domain:example.com"');
    },
    "cli-sites": (out) => {
      expect(out).toMatch(/Added site \d+: sc-domain:example\.org/);
      expect(out).toMatch(/sc-domain:example\.com\s+Example\s/);
      expect(out).toMatch(/sc-domain:example\.org\s+Example org\s/);
    },
    sync: async (out) => {
      expect(out).toMatch(/daily_sync .*completed 7\/7 days/);
      const jobs = (await request(server.url, "GET", "/api/v1/sync/jobs")).body as { jobs: { status: string }[] };
      expect(jobs.jobs.map((j) => j.status)).toEqual(["completed"]);
    },
    search: (out) => {
      const body = JSON.parse(out) as { site_id: number; queries: { query: string }[] };
      expect(body.site_id).toBe(1);
      expect(body.queries.length).toBeGreaterThan(0);
      for (const q of body.queries) expect(q.query).toContain("shoes");
    },
    mcp: (out) => {
      const body = JSON.parse(out) as { result: { isError?: boolean; content: { text: string }[] } };
      expect(body.result.isError).toBeFalsy();
      const sites = JSON.parse(body.result.content[0]!.text).sites as { domain: string }[];
      expect(sites.map((s) => s.domain)).toEqual(["sc-domain:example.com", "sc-domain:example.org"]);
    },
  };

  test("every marked block has a check, every check a block", () => {
    expect(blocks.map((b) => b.label).sort()).toEqual(Object.keys(checks).sort());
  });

  test("the marked blocks run in order and do what the README says", async () => {
    for (const block of blocks) {
      const out = await run(block);
      await checks[block.label!]!(out);
    }
  }, 90_000);
});
