// The fake Search Console's sitemaps (webmasters v3 sitemaps.list / sitemaps.get) and URL inspection
// (v1 urlInspection.index.inspect), answered as Google's reference documents them: sitemaps with
// `path`, `lastSubmitted`, `isPending`, `isSitemapsIndex`, `type`, `lastDownloaded`, `warnings` and
// `errors` (int64, sent as JSON strings) and `contents[]` (`type`, `submitted` as a string, `indexed`
// deprecated); an inspection as `{ inspectionResult: { inspectionResultLink, indexStatusResult,
// mobileUsabilityResult, richResultsResult } }`. Mounted by fake-gsc.ts.

/** A sitemap as sitemaps.list returns it. */
export type FakeSitemap = {
  path: string;
  lastSubmitted?: string;
  lastDownloaded?: string;
  isPending: boolean;
  isSitemapsIndex: boolean;
  type: string;
  warnings: string;
  errors: string;
  contents: { type: string; submitted: string; indexed?: string }[];
};

/** One logged call to these endpoints. */
export type ResourceRequest = {
  at: number;
  kind: "sitemaps.list" | "sitemaps.get" | "inspect";
  site: string;
  url?: string;
  status: number;
};

/** The default sitemaps of a property: an index and one plain sitemap with pages and images. */
export function defaultSitemaps(site: string): FakeSitemap[] {
  const host = site
    .replace(/^sc-domain:/, "")
    .replace(/^https?:\/\//, "")
    .replace(/\/$/, "");
  return [
    {
      path: `https://${host}/sitemap_index.xml`,
      lastSubmitted: "2026-11-01T10:00:00.000Z",
      lastDownloaded: "2026-12-01T04:12:31.000Z",
      isPending: false,
      isSitemapsIndex: true,
      type: "sitemap",
      warnings: "0",
      errors: "0",
      contents: [{ type: "web", submitted: "120", indexed: "0" }],
    },
    {
      path: `https://${host}/sitemap-posts.xml`,
      lastSubmitted: "2026-11-02T09:30:00.000Z",
      lastDownloaded: "2026-12-02T06:00:00.000Z",
      isPending: false,
      isSitemapsIndex: false,
      type: "sitemap",
      warnings: "3",
      errors: "1",
      contents: [
        { type: "web", submitted: "97", indexed: "0" },
        { type: "image", submitted: "40", indexed: "0" },
      ],
    },
  ];
}

/** The inspection result the fake gives a URL: indexed, unless its path says otherwise (…/noindex, …/missing). */
export function fakeInspection(site: string, url: string) {
  const blocked = url.includes("/noindex");
  const missing = url.includes("/missing");
  const host = site
    .replace(/^sc-domain:/, "")
    .replace(/^https?:\/\//, "")
    .replace(/\/$/, "");
  return {
    inspectionResult: {
      inspectionResultLink: `https://search.google.com/search-console/inspect?resource_id=${encodeURIComponent(site)}&id=${encodeURIComponent(url)}`,
      indexStatusResult: missing
        ? {
            verdict: "NEUTRAL",
            coverageState: "URL is unknown to Google",
            robotsTxtState: "ROBOTS_TXT_STATE_UNSPECIFIED",
            indexingState: "INDEXING_STATE_UNSPECIFIED",
            pageFetchState: "PAGE_FETCH_STATE_UNSPECIFIED",
          }
        : {
            sitemap: [`https://${host}/sitemap-posts.xml`],
            referringUrls: [`https://${host}/`],
            verdict: blocked ? "FAIL" : "PASS",
            coverageState: blocked ? "Excluded by ‘noindex’ tag" : "Submitted and indexed",
            robotsTxtState: "ALLOWED",
            indexingState: blocked ? "BLOCKED_BY_META_TAG" : "INDEXING_ALLOWED",
            lastCrawlTime: "2026-12-03T08:15:00Z",
            pageFetchState: "SUCCESSFUL",
            googleCanonical: blocked ? undefined : url,
            userCanonical: url,
            crawledAs: "MOBILE",
          },
      mobileUsabilityResult: { verdict: "VERDICT_UNSPECIFIED" },
      ...(missing ? {} : { richResultsResult: { verdict: "PASS", detectedItems: [] } }),
    },
  };
}

/**
 * The state and request handler of the sitemaps and inspection endpoints; `handle` answers a request it
 * owns (else null). `authorize` gives the answer for a request that is refused (401/403, injected), or null.
 */
export function fakeResources(opts: { authorize: (req: Request, site: string) => Response | null }) {
  const sitemaps = new Map<string, FakeSitemap[]>();
  const inspections = new Map<string, ReturnType<typeof fakeInspection>>();
  const requests: ResourceRequest[] = [];
  // Sitemap files served at /sitemap-files/<name> (the site's own sitemaps, as a crawler would fetch them).
  const files = new Map<string, string>();
  const error = (status: number, statusText: string, message: string) =>
    Response.json({ error: { code: status, message, status: statusText } }, { status });
  const sitemapsOf = (site: string) => sitemaps.get(site) ?? defaultSitemaps(site);

  function log(kind: ResourceRequest["kind"], site: string, res: Response, url?: string) {
    requests.push({ at: Date.now(), kind, site, url, status: res.status });
    return res;
  }

  async function handle(req: Request, url: URL): Promise<Response | null> {
    const file = /^\/sitemap-files\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && file) {
      const body = files.get(file[1]!);
      return body === undefined
        ? new Response("not found", { status: 404 })
        : new Response(body, { headers: { "content-type": "application/xml" } });
    }
    const list = /^\/webmasters\/v3\/sites\/([^/]+)\/sitemaps$/.exec(url.pathname);
    const get = /^\/webmasters\/v3\/sites\/([^/]+)\/sitemaps\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && list) {
      const site = decodeURIComponent(list[1]!);
      const refused = opts.authorize(req, site);
      if (refused) return log("sitemaps.list", site, refused);
      const index = url.searchParams.get("sitemapIndex");
      // With sitemapIndex: the sitemaps that index lists (here: the non-index ones).
      const all = sitemapsOf(site).filter((s) => (index ? !s.isSitemapsIndex : true));
      return log("sitemaps.list", site, Response.json(all.length > 0 ? { sitemap: all } : {}));
    }
    if (req.method === "GET" && get) {
      const site = decodeURIComponent(get[1]!);
      const feed = decodeURIComponent(get[2]!);
      const refused = opts.authorize(req, site);
      if (refused) return log("sitemaps.get", site, refused, feed);
      const one = sitemapsOf(site).find((s) => s.path === feed);
      return log("sitemaps.get", site, one ? Response.json(one) : error(404, "NOT_FOUND", "Requested entity was not found."), feed);
    }
    if (req.method === "POST" && url.pathname === "/v1/urlInspection/index:inspect") {
      const body = (await req.json().catch(() => ({}))) as { inspectionUrl?: string; siteUrl?: string; languageCode?: string };
      const site = body.siteUrl ?? "";
      const refused = opts.authorize(req, site);
      if (refused) return log("inspect", site, refused, body.inspectionUrl);
      if (!body.inspectionUrl || !site)
        return log("inspect", site, error(400, "INVALID_ARGUMENT", "inspectionUrl and siteUrl are required."));
      const host = site
        .replace(/^sc-domain:/, "")
        .replace(/^https?:\/\//, "")
        .replace(/\/$/, "");
      let under: boolean;
      try {
        const u = new URL(body.inspectionUrl);
        under = site.startsWith("sc-domain:")
          ? u.hostname === host || u.hostname.endsWith(`.${host}`)
          : body.inspectionUrl.startsWith(site);
      } catch {
        under = false;
      }
      if (!under)
        return log(
          "inspect",
          site,
          error(400, "INVALID_ARGUMENT", `URL '${body.inspectionUrl}' is not in property '${site}'.`),
          body.inspectionUrl,
        );
      const result = inspections.get(body.inspectionUrl) ?? fakeInspection(site, body.inspectionUrl);
      return log("inspect", site, Response.json(result), body.inspectionUrl);
    }
    return null;
  }

  return {
    handle,
    requests,
    /** Sets the sitemaps sitemaps.list returns for a property (default: defaultSitemaps). */
    setSitemaps(site: string, list: FakeSitemap[]) {
      sitemaps.set(site, list);
    },
    /** Sets the answer for inspecting one URL. */
    setInspection(url: string, result: ReturnType<typeof fakeInspection>) {
      inspections.set(url, result);
    },
    /** Serves a sitemap file at /sitemap-files/<name>: a urlset of `urls`, or with `index` a sitemapindex of them. */
    setSitemapFile(name: string, urls: string[], index = false) {
      const tag = index ? "sitemap" : "url";
      const root = index ? "sitemapindex" : "urlset";
      files.set(
        name,
        `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${urls.map((u) => `  <${tag}><loc>${u.replace(/&/g, "&amp;")}</loc></${tag}>`).join("\n")}\n</${root}>\n`,
      );
    },
    reset() {
      files.clear();
      sitemaps.clear();
      inspections.clear();
      requests.length = 0;
    },
  };
}
