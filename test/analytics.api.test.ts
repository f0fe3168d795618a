import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { addDays } from "../src/sync/dates.ts";
import type { SearchType } from "../src/sync/source.ts";
import { tempDb, testEngine } from "./helpers/db.ts";
import { stableToday } from "./helpers/day.ts";
import { markSynced, storeHourlyRows, storeRows } from "./helpers/rows.ts";
import { pgStatementsOf } from "./helpers/pg-statements.ts";

// The original's analytics endpoints (reference §0.6, §1.5-§1.7, §4 rows 4-6), table-driven from the
// reference, over rows stored the way the daily sync stores them.

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
const ids: Record<string, number> = {};
const today = await stableToday();

type Fixture = [
  day: string,
  type: SearchType,
  page: string,
  query: string,
  device: string,
  clicks: number,
  impressions: number,
  ctr: number,
  position: number,
];

const A = "https://example.com";
// Site A. Index order within a day is (page, query, device, search_type); "理" (U+7406) sorts before "男" (U+7537).
const rowsA: Fixture[] = [
  ["2025-07-01", "web", `${A}/a`, "男士 理髮", "DESKTOP", 1, 10, 0.1, 2.5], // r1
  ["2025-07-01", "web", `${A}/b`, "男士 理髮", "MOBILE", 3, 30, 0.1, 3.5], // r2
  ["2025-07-01", "image", `${A}/a`, "男士 理髮", "MOBILE", 0, 5, 0.0, 4.5], // r3
  ["2025-07-01", "web", `${A}/a`, "理髮店", "DESKTOP", 5, 50, 0.1, 2.5], // r4
  ["2025-07-01", "web", `${A}/c`, "100% cotton", "DESKTOP", 2, 20, 0.1, 7], // r5
  ["2025-07-01", "web", `${A}/c`, "1000 cotton", "DESKTOP", 1, 10, 0.1, 9], // r6
  ["2025-07-01", "web", `${A}/c`, "a,b", "MOBILE", 1, 10, 0.1, 1], // r7
  ["2025-07-02", "web", `${A}/a`, "男士 理髮", "DESKTOP", 2, 20, 0.1, 3.0], // r8
  ["2025-07-02", "web", `${A}/b`, "理髮店", "DESKTOP", 1, 10, 0.1, 5.5], // r9
  ["2025-07-02", "web", `${A}/a`, "zero", "DESKTOP", 0, 0, 0, 0], // r10
  ["2025-07-03", "web", `${A}/a`, "Men Haircut", "DESKTOP", 4, 40, 0.1, 1.5], // r11
];

async function store(siteId: number, rows: Fixture[]) {
  for (const [day, type, page, query, device, clicks, impressions, ctr, position] of rows) {
    await storeRows(t.db, siteId, day, type, [{ page, query, device, clicks, impressions, ctr, position }]);
  }
}

async function call(method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  expect(text).not.toMatch(/SQLITE|stack/);
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    // CSV or HTML
  }
  return { status: res.status, headers: res.headers, text, json };
}

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  const mk = async (key: string, domain: string, name: string, is_active = true) => {
    const r = await call("POST", "/api/v1/sites", { domain, name, is_active });
    expect(r.status).toBe(201);
    ids[key] = r.json.id;
  };
  await mk("A", "sc-domain:example.com", "Example 中文");
  await mk("B", "https://www.foo.com/", "foo.com");
  await mk("C", "sc-domain:bar.com", "bar", false);
  await mk("D", "https://baz.com/", "baz");
  await mk("E", "sc-domain:recent.example", "recent.example");
  await mk("F", "sc-domain:quotes.example", "quotes");
  await mk("G", "sc-domain:trend.example", "trend");
  await mk("H", "sc-domain:empty.example", "empty");
  await store(ids.A!, rowsA);
  const R = "https://recent.example";
  await store(ids.E!, [
    [today, "web", `${R}/today`, "q", "DESKTOP", 1, 10, 0.1, 1],
    [addDays(today, -31), "web", `${R}/d31`, "q", "DESKTOP", 2, 10, 0.1, 1],
    [addDays(today, -32), "web", `${R}/d32`, "q", "DESKTOP", 4, 10, 0.1, 1],
  ]);
  await markSynced(t.db, ids.E!, today, "web", 1);
  const yesterday = addDays(today, -1);
  await storeHourlyRows(t.db, ids.E!, [
    {
      date: yesterday,
      hour: 3,
      hour_timestamp: `${yesterday}T03:00:00+00:00`,
      query: "q",
      page: `${R}/h`,
      device: "DESKTOP",
      clicks: 1,
      impressions: 1,
      ctr: 1,
      position: 1,
    },
  ]);
  await store(ids.F!, [["2025-01-01", "web", 'https://quotes.example/p?x="1",y=2', 'say "hi"\nthere', "DESKTOP", 1, 2, 0.5, 1.25]]);
  // Nine days with clicks 1,1,1,1,1,1,1,1,5: the 8th day's week-over-week change is 0, the 9th's 4.
  const clicks = [1, 1, 1, 1, 1, 1, 1, 1, 5];
  await store(
    ids.G!,
    clicks.map((c, i): Fixture => [addDays("2025-03-01", i), "web", "https://trend.example/", "q", "DESKTOP", c, 10 * c, 0.1, 2 + i]),
  );
});
afterAll(() => t.cleanup());

const ranking = (body: Record<string, unknown>) =>
  call("POST", "/api/v1/analytics/ranking-data", { start_date: "2025-07-01", end_date: "2025-07-03", ...body });
/** Compact [date, key, clicks] triples of a ranking response. */
const triples = (data: { date: string; query: string | null; page: string | null; clicks: number }[]) =>
  data.map((d) => [d.date, d.query ?? d.page, d.clicks]);

describe("site resolution (§0.6, extended)", () => {
  const cases: {
    name: string;
    ref: Record<string, unknown> | (() => Record<string, unknown>);
    site?: string;
    status?: number;
    message?: RegExp;
  }[] = [
    { name: "bare host of a domain property", ref: { hostname: "example.com" }, site: "A" },
    { name: "the property itself", ref: { hostname: "sc-domain:example.com" }, site: "A" },
    { name: "a URL with scheme and slash", ref: { hostname: "https://example.com/" }, site: "A" },
    { name: "http and no slash", ref: { hostname: "http://example.com" }, site: "A" },
    { name: "host in capitals (extension)", ref: { hostname: "EXAMPLE.COM" }, site: "A" },
    { name: "property in capitals (extension)", ref: { hostname: "SC-DOMAIN:Example.com" }, site: "A" },
    { name: "www. is not stripped", ref: { hostname: "www.example.com" }, status: 404, message: /site not found: www\.example\.com/ },
    { name: "URL-prefix property from its host (extension)", ref: { hostname: "www.foo.com" }, site: "B" },
    { name: "URL-prefix property from the bare host via www (extension)", ref: { hostname: "foo.com" }, site: "B" },
    { name: "URL-prefix property from a URL without slash (extension)", ref: { hostname: "https://www.foo.com" }, site: "B" },
    { name: "URL-prefix property exactly", ref: { hostname: "https://www.foo.com/" }, site: "B" },
    { name: "URL-prefix property without www", ref: { hostname: "baz.com" }, site: "D" },
    { name: "inactive sites are eligible", ref: { hostname: "bar.com" }, site: "C" },
    { name: "site_id wins over hostname", ref: () => ({ site_id: ids.A, hostname: "nope.example" }), site: "A" },
    { name: "site_id 0 counts as absent", ref: { site_id: 0, hostname: "example.com" }, site: "A" },
    { name: "site_id as a numeric string (lax int)", ref: () => ({ site_id: String(ids.D) }), site: "D" },
    { name: "neither", ref: {}, status: 400, message: /either site_id or hostname must be provided/ },
    { name: "empty hostname and null id", ref: { site_id: null, hostname: "" }, status: 400, message: /either site_id or hostname/ },
    { name: "unknown hostname", ref: { hostname: "nope.example" }, status: 404, message: /site not found: nope\.example/ },
    { name: "unknown site_id", ref: { site_id: 987654 }, status: 404, message: /site 987654 not found/ },
    { name: "site_id not an integer", ref: { site_id: "abc" }, status: 400, message: /site_id/ },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.site ?? c.status}`, async () => {
      const ref = typeof c.ref === "function" ? c.ref() : c.ref;
      const r = await ranking({ ...ref, max_results: 1 });
      if (c.site) {
        expect(r.status).toBe(200);
        expect(r.json.site_id).toBe(ids[c.site]!);
      } else {
        expect(r.status).toBe(c.status!);
        expect(r.json.error.message).toMatch(c.message!);
      }
    });
  }
  // The reads whose site row PostgreSQL takes in the report's own round trip (allRowsOfSite): the same answers.
  test("daily rows of exact queries and an empty window: the site by id or host, an unknown site_id 404", async () => {
    const daily = { queries: ["男士 理髮"], aggregation_mode: "daily" };
    const backwards = { start_date: "2025-07-03", end_date: "2025-07-01" };
    for (const body of [daily, backwards]) {
      const byId = await ranking({ ...body, site_id: ids.A, hostname: "nope.example" });
      expect(byId.status).toBe(200);
      expect(byId.json.site_id).toBe(ids.A!);
      expect((await ranking({ ...body, hostname: "example.com" })).json.site_id).toBe(ids.A!);
      const unknown = await ranking({ ...body, site_id: 987654 });
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.message).toMatch(/site 987654 not found/);
    }
    expect(triples((await ranking({ ...daily, site_id: ids.A })).json.data)).toEqual([
      ["2025-07-02", "男士 理髮", 2],
      ["2025-07-01", "男士 理髮", 4],
    ]);
    expect((await ranking({ ...backwards, site_id: ids.A })).json.data).toEqual([]);
  });
});

describe("POST /api/v1/analytics/ranking-data (§1.5)", () => {
  const site = () => ({ site_id: ids.A });
  const cases: { name: string; body: Record<string, unknown>; expected: (string | number | null)[][] }[] = [
    {
      name: "raw, no filter: every row in (date, page, query, device, type) order",
      body: {},
      expected: [
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 1],
        ["2025-07-01", "男士 理髮", 0],
        ["2025-07-01", "男士 理髮", 3],
        ["2025-07-01", "100% cotton", 2],
        ["2025-07-01", "1000 cotton", 1],
        ["2025-07-01", "a,b", 1],
        ["2025-07-02", "zero", 0],
        ["2025-07-02", "男士 理髮", 2],
        ["2025-07-02", "理髮店", 1],
        ["2025-07-03", "Men Haircut", 4],
      ],
    },
    {
      name: "raw, exact: per term in request order, each by date",
      body: { queries: ["理髮店", "男士 理髮"] },
      expected: [
        ["2025-07-01", "理髮店", 5],
        ["2025-07-02", "理髮店", 1],
        ["2025-07-01", "男士 理髮", 1],
        ["2025-07-01", "男士 理髮", 0],
        ["2025-07-01", "男士 理髮", 3],
        ["2025-07-02", "男士 理髮", 2],
      ],
    },
    { name: "raw, exact is case- and space-sensitive", body: { queries: ["men haircut", "男士理髮"] }, expected: [] },
    {
      name: "raw, a duplicated term counts once",
      body: { queries: ["Men Haircut", "Men Haircut"] },
      expected: [["2025-07-03", "Men Haircut", 4]],
    },
    {
      name: "an empty queries list is no filter",
      body: { queries: [], max_results: 2 },
      expected: [
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 1],
      ],
    },
    {
      name: "raw, partial: any term is a substring, rows once, date order",
      body: { queries: ["理髮", "男士"], matching_mode: "partial" },
      expected: [
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 1],
        ["2025-07-01", "男士 理髮", 0],
        ["2025-07-01", "男士 理髮", 3],
        ["2025-07-02", "男士 理髮", 2],
        ["2025-07-02", "理髮店", 1],
      ],
    },
    { name: "partial: % is literal", body: { queries: ["0%"], matching_mode: "partial" }, expected: [["2025-07-01", "100% cotton", 2]] },
    { name: "partial: _ is literal", body: { queries: ["_"], matching_mode: "partial" }, expected: [] },
    { name: "partial is case-sensitive", body: { queries: ["haircut"], matching_mode: "partial" }, expected: [] },
    {
      name: "daily, partial: any term is a substring, newest day first",
      body: { queries: ["理髮", "Men"], matching_mode: "partial", aggregation_mode: "daily" },
      expected: [
        ["2025-07-03", "Men Haircut", 4],
        ["2025-07-02", "男士 理髮", 2],
        ["2025-07-02", "理髮店", 1],
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 4],
      ],
    },
    {
      name: "daily, partial: % and _ are literal, case-sensitive",
      body: { queries: ["0%", "_", "haircut"], matching_mode: "partial", aggregation_mode: "daily" },
      expected: [["2025-07-01", "100% cotton", 2]],
    },
    {
      name: "daily, no filter: newest day first, groups in order of appearance",
      body: { aggregation_mode: "daily" },
      expected: [
        ["2025-07-03", "Men Haircut", 4],
        ["2025-07-02", "zero", 0],
        ["2025-07-02", "男士 理髮", 2],
        ["2025-07-02", "理髮店", 1],
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 4],
        ["2025-07-01", "100% cotton", 2],
        ["2025-07-01", "1000 cotton", 1],
        ["2025-07-01", "a,b", 1],
      ],
    },
    {
      name: "daily, exact: newest day first, terms in request order within a day",
      body: { aggregation_mode: "daily", queries: ["男士 理髮", "理髮店"] },
      expected: [
        ["2025-07-02", "男士 理髮", 2],
        ["2025-07-02", "理髮店", 1],
        ["2025-07-01", "男士 理髮", 4],
        ["2025-07-01", "理髮店", 5],
      ],
    },
    {
      name: "group_by page, pages filter (exact)",
      body: { group_by: "page", pages: [`${A}/c`, `${A}/b`] },
      expected: [
        ["2025-07-01", `${A}/c`, 2],
        ["2025-07-01", `${A}/c`, 1],
        ["2025-07-01", `${A}/c`, 1],
        ["2025-07-01", `${A}/b`, 3],
        ["2025-07-02", `${A}/b`, 1],
      ],
    },
    {
      name: "group_by page ignores a queries filter (as the original)",
      body: { group_by: "page", queries: ["zero"], aggregation_mode: "daily" },
      expected: [
        ["2025-07-03", `${A}/a`, 4],
        ["2025-07-02", `${A}/a`, 2],
        ["2025-07-02", `${A}/b`, 1],
        ["2025-07-01", `${A}/a`, 6],
        ["2025-07-01", `${A}/b`, 3],
        ["2025-07-01", `${A}/c`, 4],
      ],
    },
    {
      name: "group_by query ignores a pages filter",
      body: { pages: [`${A}/b`], end_date: "2025-07-01", max_results: 1 },
      expected: [["2025-07-01", "理髮店", 5]],
    },
    {
      name: "max_results cuts",
      body: { max_results: 2, aggregation_mode: "daily" },
      expected: [
        ["2025-07-03", "Men Haircut", 4],
        ["2025-07-02", "zero", 0],
      ],
    },
    {
      name: "a negative max_results drops from the end (the original's slice)",
      body: { max_results: -8 },
      expected: [
        ["2025-07-01", "理髮店", 5],
        ["2025-07-01", "男士 理髮", 1],
        ["2025-07-01", "男士 理髮", 0],
      ],
    },
    { name: "start after end: empty, not an error", body: { start_date: "2025-07-03", end_date: "2025-07-01" }, expected: [] },
    {
      name: "both ends included",
      body: { start_date: "2025-07-03", end_date: "2025-07-03" },
      expected: [["2025-07-03", "Men Haircut", 4]],
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await ranking({ ...site(), ...c.body });
      expect(r.status).toBe(200);
      expect(triples(r.json.data)).toEqual(c.expected);
      expect(r.json.total_results).toBe(c.expected.length);
    });
  }

  test("response fields: echo, null for the other dimension, raw values as stored", async () => {
    const r = await ranking({ ...site(), queries: ["Men Haircut"] });
    expect(r.json).toEqual({
      site_id: ids.A,
      start_date: "2025-07-01",
      end_date: "2025-07-03",
      group_by: "query",
      total_results: 1,
      data: [{ date: "2025-07-03", query: "Men Haircut", page: null, clicks: 4, impressions: 40, ctr: 0.1, position: 1.5 }],
    });
  });

  test("daily formulas: sums, ctr = Σclicks/Σimpressions, half-even rounded impression-weighted position", async () => {
    const r = await ranking({ ...site(), aggregation_mode: "daily", queries: ["男士 理髮", "理髮店", "zero", "Men Haircut"] });
    const by = (date: string, q: string) => r.json.data.find((d: { date: string; query: string }) => d.date === date && d.query === q);
    // r1 (1 click, 10 impressions, 2.5), r2 (3, 30, 3.5), r3 (0, 5, 4.5): ctr 4/45; position
    // (2.5×10 + 3.5×30 + 4.5×5) / 45 = 152.5/45 = 3.39 -> 3 (the plain means were 0.0667 and 3.5 -> 4).
    expect(by("2025-07-01", "男士 理髮")).toEqual({
      date: "2025-07-01",
      query: "男士 理髮",
      page: null,
      clicks: 4,
      impressions: 45,
      ctr: 4 / 45,
      position: 3,
    });
    expect(by("2025-07-01", "理髮店").position).toBe(2); // 2.5 -> 2 (half to even)
    expect(by("2025-07-02", "理髮店").position).toBe(6); // 5.5 -> 6
    expect(by("2025-07-03", "Men Haircut").position).toBe(2); // 1.5 -> 2
    expect(by("2025-07-02", "zero")).toMatchObject({ clicks: 0, impressions: 0, ctr: 0, position: 0 });
  });

  test("daily by page: position (7×20 + 9×10 + 1×10) / 40 = 6", async () => {
    const r = await ranking({ ...site(), group_by: "page", pages: [`${A}/c`], aggregation_mode: "daily" });
    expect(r.json.data).toEqual([
      { date: "2025-07-01", query: null, page: `${A}/c`, clicks: 4, impressions: 40, ctr: expect.closeTo(0.1, 12), position: 6 },
    ]);
  });

  test("max_results: default 1000, null and 0 mean all", async () => {
    for (const max_results of [undefined, null, 0]) {
      const r = await ranking({ ...site(), ...(max_results === undefined ? {} : { max_results }) });
      expect(r.json.total_results).toBe(11);
    }
  });

  const invalid: { name: string; body: Record<string, unknown>; message: RegExp }[] = [
    { name: "missing start_date", body: { start_date: undefined }, message: /start_date/ },
    { name: "a date that is not one", body: { end_date: "2025-02-30" }, message: /end_date/ },
    { name: "unknown group_by (the original answered 500)", body: { group_by: "country" }, message: /group_by/ },
    { name: "unknown aggregation_mode", body: { aggregation_mode: "weekly" }, message: /aggregation_mode/ },
    { name: "queries not a list", body: { queries: "a,b" }, message: /queries/ },
    { name: "max_results not an integer", body: { max_results: 1.5 }, message: /max_results/ },
  ];
  for (const c of invalid) {
    test(`400: ${c.name}`, async () => {
      const r = await ranking({ ...site(), ...c.body });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe("validation_failed");
      expect(r.json.error.message).toMatch(c.message);
    });
  }

  test("malformed JSON -> 400 invalid_json", async () => {
    const res = await app.request("/api/v1/analytics/ranking-data", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
  });
});

const pageA = {
  url: `${A}/a`,
  total_clicks: 12,
  // Web only (the default search type; r3 is an image row): page totals derived from the detail (no grain stored).
  total_impressions: 120,
  avg_ctr: 10, // 12 / 120
  avg_position: 2.25, // (2.5×10 + 2.5×50 + 3×20 + 1.5×40) / 120 = 270 / 120 (the plain mean was 2.375)
  keywords: ["Men Haircut", "理髮店", "男士 理髮"],
  keyword_count: 3,
};
const pageB = {
  url: `${A}/b`,
  total_clicks: 4,
  total_impressions: 40,
  avg_ctr: 10,
  avg_position: 4, // (3.5×30 + 5.5×10) / 40 (the plain mean was 4.5)
  keywords: ["理髮店", "男士 理髮"],
  keyword_count: 2,
};
const pageC = {
  url: `${A}/c`,
  total_clicks: 4,
  total_impressions: 40,
  avg_ctr: 10,
  avg_position: 6, // (7×20 + 9×10 + 1×10) / 40 (the plain mean was 5.67)
  keywords: ["100% cotton", "1000 cotton", "a,b"],
  keyword_count: 3,
};

describe("POST /api/v1/page-keyword-performance/ (§1.6)", () => {
  const pk = (body: Record<string, unknown>) => call("POST", "/api/v1/page-keyword-performance/", body);
  const cases: { name: string; body: () => Record<string, unknown>; expected: () => object }[] = [
    {
      name: "all time: totals, ctr as a percentage, rows without clicks or impressions left out, a comma query kept whole",
      body: () => ({ site_id: ids.A }),
      expected: () => ({ site_id: ids.A, time_range: "All time", total_results: 3, data: [pageA, pageB, pageC] }),
    },
    {
      name: "URL filter (substring)",
      body: () => ({ hostname: "example.com", query: "/b" }),
      expected: () => ({ total_results: 1, data: [pageB] }),
    },
    {
      name: "URL filter before max_results",
      body: () => ({ site_id: ids.A, query: "/c", max_results: 1 }),
      expected: () => ({ total_results: 1, data: [pageC] }),
    },
    {
      name: "search_type image: the image row alone (with impressions, no clicks)",
      body: () => ({ site_id: ids.A, search_type: "image" }),
      expected: () => ({
        total_results: 1,
        data: [
          {
            url: `${A}/a`,
            total_clicks: 0,
            total_impressions: 5,
            avg_ctr: 0,
            avg_position: 4.5,
            keywords: ["男士 理髮"],
            keyword_count: 1,
          },
        ],
      }),
    },
    {
      name: "max_results honoured",
      body: () => ({ site_id: ids.A, max_results: 1 }),
      expected: () => ({ total_results: 1, data: [pageA] }),
    },
    {
      name: "URL filter is case-sensitive and literal",
      body: () => ({ site_id: ids.A, query: "/A%" }),
      expected: () => ({ total_results: 0, data: [] }),
    },
    {
      name: "days=30 reaches back to today minus 31 (the original's days+1)",
      body: () => ({ site_id: ids.E, days: 30 }),
      expected: () => ({
        time_range: "Last 30 days",
        data: [
          expect.objectContaining({ url: "https://recent.example/d31" }),
          expect.objectContaining({ url: "https://recent.example/today" }),
        ],
      }),
    },
    {
      name: "days=0 is all time",
      body: () => ({ site_id: ids.E, days: 0 }),
      expected: () => ({ time_range: "All time", total_results: 3 }),
    },
    {
      name: "a site without rows",
      body: () => ({ hostname: "empty.example" }),
      expected: () => ({ site_id: ids.H, time_range: "All time", total_results: 0, data: [] }),
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await pk(c.body());
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject(c.expected());
    });
  }

  test("errors: no site 400, unknown host 404, negative days 400", async () => {
    expect((await pk({})).status).toBe(400);
    expect((await pk({ hostname: "nope.example" })).status).toBe(404);
    expect((await pk({ site_id: ids.A, days: -3 })).status).toBe(400);
  });
});

describe("GET /api/v1/page-keyword-performance/csv/ (§1.7)", () => {
  const header = "url,total_clicks,total_impressions,avg_ctr,avg_position,keywords,keyword_count\r\n";

  test("rows as the original formats them: ctr %.4f, position %.1f, keywords piped, RFC 4180 quoting, CRLF", async () => {
    const r = await call("GET", `/api/v1/page-keyword-performance/csv/?site_id=${ids.A}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(r.text).toBe(
      header +
        `${A}/a,12,120,10.0000,2.2,Men Haircut|理髮店|男士 理髮,3\r\n` +
        `${A}/b,4,40,10.0000,4.0,理髮店|男士 理髮,2\r\n` +
        `${A}/c,4,40,10.0000,6.0,"100% cotton|1000 cotton|a,b",3\r\n`,
    );
  });

  test("quotes and newlines in fields are quoted and doubled", async () => {
    const r = await call("GET", `/api/v1/page-keyword-performance/csv?hostname=quotes.example`);
    expect(r.text).toBe(`${header}"https://quotes.example/p?x=""1"",y=2",1,2,50.0000,1.2,"say ""hi""\nthere",1\r\n`);
  });

  test("a non-Latin site name gives a valid header with RFC 6266 filename*", async () => {
    const r = await call("GET", `/api/v1/page-keyword-performance/csv/?hostname=example.com`);
    const cd = r.headers.get("content-disposition")!;
    expect(cd).toMatch(
      /^attachment; filename="page_keyword_performance_Example_\d{8}_\d{6}\.csv"; filename\*=UTF-8''page_keyword_performance_Example%E4%B8%AD%E6%96%87_\d{8}_\d{6}\.csv$/,
    );
  });

  test("header row even with no rows; filters as the JSON endpoint", async () => {
    expect((await call("GET", `/api/v1/page-keyword-performance/csv/?site_id=${ids.H}`)).text).toBe(header);
    const f = await call("GET", `/api/v1/page-keyword-performance/csv/?site_id=${ids.A}&query=/b&days=0`);
    expect(f.text).toBe(`${header}${A}/b,4,40,10.0000,4.0,理髮店|男士 理髮,2\r\n`);
    const m = await call("GET", `/api/v1/page-keyword-performance/csv/?site_id=${ids.A}&max_results=1`);
    expect(m.text.split("\r\n")).toHaveLength(3);
  });

  test("errors are JSON: 400 without a site, 404 unknown host, 400 for ?site_id=", async () => {
    expect((await call("GET", "/api/v1/page-keyword-performance/csv/")).status).toBe(400);
    const nf = await call("GET", "/api/v1/page-keyword-performance/csv/?hostname=nope.example");
    expect(nf.status).toBe(404);
    expect(nf.json.error.message).toBe("site not found: nope.example");
    expect((await call("GET", "/api/v1/page-keyword-performance/csv/?site_id=")).status).toBe(400);
  });
});

describe("GET /api/v1/sites/{site_id}/export", () => {
  const header = "date,page,query,device,search_type,clicks,impressions,ctr,position\r\n";

  test("CSV: header and every row in (date, page, query, device, type) order", async () => {
    const r = await call("GET", `/api/v1/sites/${ids.A}/export?format=csv`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    const lines = r.text.split("\r\n");
    expect(`${lines[0]}\r\n`).toBe(header);
    expect(lines).toHaveLength(13); // header, 11 rows, "" after the last CRLF
    expect(lines[1]).toBe(`2025-07-01,${A}/a,理髮店,DESKTOP,web,5,50,0.1,2.5`);
    expect(lines[7]).toBe(`2025-07-01,${A}/c,"a,b",MOBILE,web,1,10,0.1,1`);
    expect(lines[11]).toBe(`2025-07-03,${A}/a,Men Haircut,DESKTOP,web,4,40,0.1,1.5`);
  });

  test("JSON lines with the same columns; date range and search type filters", async () => {
    const r = await call("GET", `/api/v1/sites/${ids.A}/export?format=jsonl&start_date=2025-07-01&end_date=2025-07-01&search_type=image`);
    expect(r.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
    expect(
      r.text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([
      {
        date: "2025-07-01",
        page: `${A}/a`,
        query: "男士 理髮",
        device: "MOBILE",
        search_type: "image",
        clicks: 0,
        impressions: 5,
        ctr: 0,
        position: 4.5,
      },
    ]);
    const range = await call("GET", `/api/v1/sites/${ids.A}/export?format=jsonl&start_date=2025-07-02`);
    expect(range.text.trim().split("\n")).toHaveLength(4);
  });

  test("empty site: header only; errors", async () => {
    expect((await call("GET", `/api/v1/sites/${ids.H}/export`)).text).toBe(header);
    expect((await call("GET", `/api/v1/sites/${ids.H}/export?format=jsonl`)).text).toBe("");
    expect((await call("GET", `/api/v1/sites/987654/export`)).status).toBe(404);
    expect((await call("GET", `/api/v1/sites/${ids.A}/export?format=xml`)).status).toBe(400);
    expect((await call("GET", `/api/v1/sites/${ids.A}/export?start_date=2025-13-01`)).status).toBe(400);
  });
});

describe("GET /api/v1/analytics/performance-trends (§4 row 4)", () => {
  test("newest days with data, newest first, with 7-day average, running sum and summary", async () => {
    // Site A stores query detail only (no property totals): every day is derived from the detail and
    // flagged so. Totals are per search type (web by default, as Search Console): r3 (image) is not in them.
    const r = await call("GET", `/api/v1/analytics/performance-trends?hostname=example.com`);
    expect(r.status).toBe(200);
    expect(r.json.data).toEqual([
      {
        date: "2025-07-03",
        total_clicks: 4,
        total_impressions: 40,
        avg_position: expect.closeTo(1.5, 12),
        unique_queries: 1,
        clicks_7d_avg: 20 / 3,
        clicks_wow_change: null,
        cumulative_clicks: 20,
        ctr: 0.1,
        derived: true,
      },
      {
        date: "2025-07-02",
        total_clicks: 3,
        total_impressions: 30,
        avg_position: expect.closeTo(115 / 30, 12), // (3×20 + 5.5×10 + 0×0) / 30
        unique_queries: 3,
        clicks_7d_avg: 8,
        clicks_wow_change: null,
        cumulative_clicks: 16,
        ctr: 0.1,
        derived: true,
      },
      {
        date: "2025-07-01",
        total_clicks: 13,
        total_impressions: 130,
        avg_position: expect.closeTo(495 / 130, 12), // Σ position × impressions of the web rows r1, r2, r4-r7 / 130
        unique_queries: 5,
        clicks_7d_avg: 13,
        clicks_wow_change: null,
        cumulative_clicks: 13,
        ctr: 0.1,
        derived: true,
      },
    ]);
    expect(r.json.summary).toEqual({
      total_clicks: 20,
      avg_position: expect.closeTo((60 + 115 + 495) / 200, 12),
      unique_queries: 9,
      total_impressions: 200,
      ctr: 0.1,
      anonymized_clicks_share: null,
      derived_days: 3,
      search_type: "web",
    });
    // The image row alone: search_type=image.
    const image = await call("GET", `/api/v1/analytics/performance-trends?hostname=example.com&search_type=image`);
    expect(image.json.data).toEqual([
      expect.objectContaining({ date: "2025-07-01", total_clicks: 0, total_impressions: 5, avg_position: 4.5 }),
    ]);
  });

  test("days counts days with data, not calendar days", async () => {
    const r = await call("GET", `/api/v1/analytics/performance-trends?site_id=${ids.A}&days=2`);
    expect(r.json.data.map((d: { date: string; cumulative_clicks: number }) => [d.date, d.cumulative_clicks])).toEqual([
      ["2025-07-03", 7],
      ["2025-07-02", 3],
    ]);
  });

  test("week-over-week change: null for the first 7 rows, a real 0 stays 0", async () => {
    const r = await call("GET", `/api/v1/analytics/performance-trends?site_id=${ids.G}&days=30`);
    const asc = [...r.json.data].reverse();
    expect(asc.map((d: { clicks_wow_change: number | null }) => d.clicks_wow_change)).toEqual([
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      0,
      4,
    ]);
    expect(asc[8].clicks_7d_avg).toBeCloseTo(11 / 7, 12);
  });

  test.skipIf(testEngine !== "pg")(
    "PostgreSQL, a site by id: its row, its days and the window's reads in one query, as by hostname",
    async () => {
      let byId: Awaited<ReturnType<typeof call>> | undefined;
      const sent = (
        await pgStatementsOf(t.db, async () => {
          byId = await call("GET", `/api/v1/analytics/performance-trends?site_id=${ids.A}&days=2`);
        })
      ).filter((text) => text.includes("gsc_"));
      // The first query: the site, its first and newest days and the grain reads of the window they give; after it
      // only the sums of the days no grain covers (this file's rows have none), read from the detail.
      expect(sent[0]).toContain("newest_window");
      expect(sent[0]).toContain("from gsc_property_totals x where");
      for (const later of sent.slice(1)) expect(later).toContain("from gsc_query_detail g where");
      const byHost = await call("GET", "/api/v1/analytics/performance-trends?hostname=example.com&days=2");
      expect(byId!.json).toEqual(byHost.json);
      expect(byId!.json.data.length).toBe(2);
    },
  );

  test("no data: empty, zero summary; errors 400/404", async () => {
    const r = await call("GET", `/api/v1/analytics/performance-trends?site_id=${ids.H}`);
    expect(r.json).toEqual({
      data: [],
      summary: {
        total_clicks: 0,
        avg_position: 0,
        unique_queries: 0,
        total_impressions: 0,
        ctr: 0,
        anonymized_clicks_share: null,
        derived_days: 0,
        search_type: "web",
      },
    });
    expect((await call("GET", "/api/v1/analytics/performance-trends")).status).toBe(400);
    expect((await call("GET", "/api/v1/analytics/performance-trends?hostname=nope.example")).status).toBe(404);
    const unknown = await call("GET", "/api/v1/analytics/performance-trends?site_id=987654");
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toMatch(/site 987654 not found/);
    expect((await call("GET", `/api/v1/analytics/performance-trends?site_id=${ids.A}&days=0`)).status).toBe(400);
  });
});

describe("GET /api/v1/sync/status?site_id=|hostname=&days= (§4 row 5)", () => {
  test("one key per day from today minus days to today; true where rows exist", async () => {
    const r = await call("GET", `/api/v1/sync/status?hostname=recent.example&days=30`);
    expect(r.status).toBe(200);
    const keys = Object.keys(r.json.daily_coverage);
    expect(keys).toHaveLength(31);
    expect(keys[0]).toBe(addDays(today, -30));
    expect(keys[30]).toBe(today);
    expect(Object.entries(r.json.daily_coverage).filter(([, v]) => v)).toEqual([[today, true]]);
    // Hourly coverage: the same days, true where hourly rows exist (v2 always sent {}).
    expect(Object.keys(r.json.hourly_coverage)).toEqual(keys);
    expect(Object.entries(r.json.hourly_coverage).filter(([, v]) => v)).toEqual([[addDays(today, -1), true]]);
    expect(r.json).toMatchObject({
      site_id: ids.E,
      site_name: "recent.example",
      total_records: 1,
      last_sync: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const wider = await call("GET", `/api/v1/sync/status/?site_id=${ids.E}&days=31`);
    expect(wider.json.total_records).toBe(2);
  });

  test("never synced: last_sync null; errors", async () => {
    expect((await call("GET", `/api/v1/sync/status?site_id=${ids.H}&days=0`)).json).toMatchObject({
      daily_coverage: { [today]: false },
      last_sync: null,
      total_records: 0,
    });
    expect((await call("GET", "/api/v1/sync/status")).status).toBe(400);
    expect((await call("GET", "/api/v1/sync/status?hostname=nope.example")).status).toBe(404);
    const unknown = await call("GET", "/api/v1/sync/status?site_id=987654");
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toMatch(/site 987654 not found/);
  });
});

describe("POST /api/v1/sync/trigger with a JSON body (§4 row 6)", () => {
  test("queues a real daily_sync task for a site named by hostname; the job is readable; a second is a 409", async () => {
    const r = await call("POST", "/api/v1/sync/trigger", { hostname: "baz.com", days: 3 });
    expect(r.status).toBe(201);
    const jobId = r.json.job_id;
    expect(r.headers.get("location")).toBe(`/api/v1/sync/job/${jobId}`);
    expect(r.json).toMatchObject({
      status: "queued",
      job_id: expect.any(Number),
      site_id: ids.D,
      days: 3,
      sync_mode: "skip",
      force: false,
    });
    const job = await call("GET", `/api/v1/sync/job/${jobId}`);
    expect(job.json).toMatchObject({ site_id: ids.D, task_type: "daily_sync", status: "pending", sync_mode: "skip", total_tasks: 3 });
    const again = await call("POST", "/api/v1/sync/trigger/", { site_id: ids.D });
    expect(again.status).toBe(409);
  });

  test("force means overwrite", async () => {
    const r = await call("POST", "/api/v1/sync/trigger", { site_id: ids.B, force: true });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ days: 7, sync_mode: "overwrite", force: true });
  });

  const invalid = [
    { body: {}, status: 400 },
    { body: { hostname: "nope.example" }, status: 404 },
    { body: { site_id: 1, sync_mode: "merge" }, status: 400 },
    { body: { site_id: 1, days: 0 }, status: 400 },
  ];
  for (const c of invalid) {
    test(`${JSON.stringify(c.body)} -> ${c.status}`, async () => {
      expect((await call("POST", "/api/v1/sync/trigger", c.body)).status).toBe(c.status);
    });
  }
});

describe("paths with and without the trailing slash, API info, ReDoc page", () => {
  const paths: [string, string, unknown?][] = [
    ["POST", "/api/v1/analytics/ranking-data", { site_id: 1, start_date: "2025-07-01", end_date: "2025-07-01" }],
    ["POST", "/api/v1/analytics/ranking-data/", { site_id: 1, start_date: "2025-07-01", end_date: "2025-07-01" }],
    ["POST", "/api/v1/page-keyword-performance", { site_id: 1 }],
    ["POST", "/api/v1/page-keyword-performance/", { site_id: 1 }],
    ["GET", "/api/v1/page-keyword-performance/csv?site_id=1"],
    ["GET", "/api/v1/page-keyword-performance/csv/?site_id=1"],
    ["GET", "/api/v1/analytics/performance-trends/?site_id=1"],
    ["GET", "/api/v1/sites/1/export/"],
    ["GET", "/"],
    ["GET", "/redoc"],
    ["GET", "/redoc/"],
  ];
  for (const [method, path, body] of paths) {
    test(`${method} ${path} -> 200`, async () => {
      expect((await call(method, path, body)).status).toBe(200);
    });
  }

  test("GET / has the original's fields", async () => {
    expect((await call("GET", "/")).json).toMatchObject({
      name: "GSC-CLI API",
      version: "0.3.0",
      description: "Google Search Console data management API",
      documentation: "/docs",
      health_check: "/health",
    });
  });

  test("GET /redoc lists the endpoints without loading any script", async () => {
    const r = await call("GET", "/redoc");
    expect(r.headers.get("content-type")).toMatch(/^text\/html/);
    expect(r.text).toContain("/api/v1/analytics/ranking-data");
    expect(r.text).toContain("/api/v1/page-keyword-performance/csv");
    expect(r.text).not.toMatch(/<script|https?:\/\/cdn/);
  });
});
