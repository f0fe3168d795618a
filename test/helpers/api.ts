import { expect, test } from "bun:test";

// One way to call the HTTP API from a test (an in-process app or a running server) and a table-driven
// runner for request/answer scenarios. Every answer is checked for leaked internals (a stack trace or the
// database's own error text) whatever the test asserts.

/** Something that answers requests: a Hono app (`app.request`) or a running server's base URL. */
export type ApiTarget = { request: (path: string, init?: RequestInit) => Response | Promise<Response> } | string;

/** One answer: status, headers, the raw text and the parsed JSON (or the text when it is not JSON). */
export type ApiAnswer = { status: number; headers: Headers; text: string; json: any };

/** Text no answer may contain: a stack trace, SQLite's error text, the lock error. */
export const LEAKS: (string | RegExp)[] = ["stack", "SQLITE", "database is locked", /\n\s+at \S+/];

/** Sends one request (a JSON body unless it is a string) and checks the answer leaks nothing. */
export async function call(
  target: ApiTarget,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiAnswer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = typeof target === "string" ? await fetch(new URL(path, target), init) : await target.request(path, init);
  const text = await res.text();
  for (const leak of LEAKS) {
    if (typeof leak === "string") expect(text).not.toContain(leak);
    else expect(text).not.toMatch(leak);
  }
  let json: any;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** One request and what its answer must be. */
export type ApiScenario = {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  /** The JSON answer matches this (toMatchObject; use expect.any(...) and friends inside). */
  json?: unknown;
  /** The raw text contains each of these. */
  contains?: string[];
  /** The raw text contains none of these. */
  notContains?: string[];
  /** Response headers (lower-case names) and their expected values; a RegExp matches, null means absent. */
  responseHeaders?: Record<string, string | RegExp | null>;
};

/** Checks one answer against a scenario. */
export function expectScenario(s: ApiScenario, r: ApiAnswer): void {
  expect({ status: r.status, text: r.text }).toMatchObject({ status: s.status });
  if (s.json !== undefined) expect(r.json).toMatchObject(s.json as object);
  for (const c of s.contains ?? []) expect(r.text).toContain(c);
  for (const c of s.notContains ?? []) expect(r.text).not.toContain(c);
  for (const [h, v] of Object.entries(s.responseHeaders ?? {})) {
    const got = r.headers.get(h);
    if (v === null) expect(got).toBeNull();
    else if (typeof v === "string") expect(got).toBe(v);
    else expect(got ?? "").toMatch(v);
  }
}

/** One bun test per scenario, against a target resolved when the test runs (after beforeAll). */
export function runScenarios(target: () => ApiTarget, cases: ApiScenario[]): void {
  for (const s of cases) {
    test(s.name, async () => {
      expectScenario(s, await call(target(), s.method, s.path, s.body, s.headers));
    });
  }
}
