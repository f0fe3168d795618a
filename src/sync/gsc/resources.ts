import { z } from "zod";
import { GscError, gscSender, type GscClientOptions } from "./client.ts";

// Search Console's sitemaps (webmasters v3 sitemaps.list) and URL inspection (v1 urlInspection.index.inspect)
// through the client's send policy (quota, retries, token refresh). Answers are checked with zod: int64
// fields arrive as JSON strings, and every field may be absent.

const int64 = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    ctx.addIssue({ code: "custom", message: "expected a count" });
    return z.NEVER;
  }
  return n;
});

const SitemapSchema = z.object({
  path: z.string().min(1),
  lastSubmitted: z.string().optional(),
  lastDownloaded: z.string().optional(),
  isPending: z.boolean().default(false),
  isSitemapsIndex: z.boolean().default(false),
  type: z.string().optional(),
  warnings: int64.default(0),
  errors: int64.default(0),
  contents: z.array(z.object({ type: z.string(), submitted: int64.default(0) })).default([]),
});
export type GscSitemap = z.infer<typeof SitemapSchema>;

const SitemapsListSchema = z.object({ sitemap: z.array(SitemapSchema).default([]) });

const IndexStatusSchema = z.object({
  verdict: z.string().optional(),
  coverageState: z.string().optional(),
  robotsTxtState: z.string().optional(),
  indexingState: z.string().optional(),
  lastCrawlTime: z.string().optional(),
  pageFetchState: z.string().optional(),
  googleCanonical: z.string().optional(),
  userCanonical: z.string().optional(),
  crawledAs: z.string().optional(),
  sitemap: z.array(z.string()).default([]),
  referringUrls: z.array(z.string()).default([]),
});

const InspectSchema = z.object({
  inspectionResult: z.object({
    inspectionResultLink: z.string().optional(),
    indexStatusResult: IndexStatusSchema.default({ sitemap: [], referringUrls: [] }),
    mobileUsabilityResult: z.object({ verdict: z.string().optional() }).optional(),
    richResultsResult: z.object({ verdict: z.string().optional() }).optional(),
  }),
});
export type GscInspection = z.infer<typeof InspectSchema>["inspectionResult"];

/** Parses an answer or fails like an unreadable answer (transient: Google's format is not ours to break). */
function parse<T>(schema: z.ZodType<T>, answer: unknown, what: string): T {
  const r = schema.safeParse(answer ?? {});
  if (!r.success) throw new GscError(`Search Console's ${what} answer is not as documented (${r.error.issues[0]?.path.join(".")})`);
  return r.data;
}

/** The sitemaps and URL inspection calls of one client configuration. */
export function createGscResources(opts: Omit<GscClientOptions, "rowLimit">) {
  const send = gscSender(opts);
  const base = opts.baseUrl.replace(/\/+$/, "");

  return {
    /** sitemaps.list: every sitemap submitted for the property (with `sitemapIndex`: those an index lists). */
    async listSitemaps(siteUrl: string, signal: AbortSignal, sitemapIndex?: string): Promise<GscSitemap[]> {
      const q = sitemapIndex ? `?sitemapIndex=${encodeURIComponent(sitemapIndex)}` : "";
      const url = `${base}/webmasters/v3/sites/${encodeURIComponent(siteUrl)}/sitemaps${q}`;
      const answer = await send({ method: "GET", url, site: siteUrl, quota: "other", label: "sitemaps list" }, signal);
      return parse(SitemapsListSchema, answer, "sitemaps.list").sitemap;
    },
    /** urlInspection.index.inspect: Google's index status of one URL of the property. */
    async inspectUrl(siteUrl: string, inspectionUrl: string, signal: AbortSignal): Promise<GscInspection> {
      const url = `${base}/v1/urlInspection/index:inspect`;
      const body = { inspectionUrl, siteUrl, languageCode: "en-US" };
      const answer = await send({ method: "POST", url, body, site: siteUrl, quota: "inspect", label: "URL inspection" }, signal);
      return parse(InspectSchema, answer, "urlInspection.index.inspect").inspectionResult;
    },
  };
}

/** What sitemaps and inspection tasks read from: Search Console, or the demo generator. */
export type ResourceSource = ReturnType<typeof createGscResources>;

/** Demo sitemaps and inspections (SYNC_SOURCE=demo, or no credentials yet): two sitemaps, every page indexed. */
export function demoResources(): ResourceSource {
  return {
    async listSitemaps(siteUrl) {
      const host = siteUrl
        .replace(/^sc-domain:/, "")
        .replace(/^https?:\/\//, "")
        .replace(/\/$/, "");
      const day = new Date().toISOString().slice(0, 10);
      return [
        {
          path: `https://${host}/sitemap.xml`,
          lastSubmitted: `${day}T00:00:00.000Z`,
          lastDownloaded: `${day}T03:00:00.000Z`,
          isPending: false,
          isSitemapsIndex: true,
          type: "sitemap",
          warnings: 0,
          errors: 0,
          contents: [{ type: "web", submitted: 200 }],
        },
        {
          path: `https://${host}/sitemap-images.xml`,
          lastSubmitted: `${day}T00:00:00.000Z`,
          lastDownloaded: `${day}T03:00:00.000Z`,
          isPending: false,
          isSitemapsIndex: false,
          type: "sitemap",
          warnings: 1,
          errors: 0,
          contents: [{ type: "image", submitted: 50 }],
        },
      ];
    },
    async inspectUrl(_siteUrl, url) {
      return {
        indexStatusResult: {
          verdict: "PASS",
          coverageState: "Submitted and indexed",
          robotsTxtState: "ALLOWED",
          indexingState: "INDEXING_ALLOWED",
          pageFetchState: "SUCCESSFUL",
          lastCrawlTime: new Date(Date.now() - 86_400_000).toISOString(),
          googleCanonical: url,
          userCanonical: url,
          crawledAs: "MOBILE",
          sitemap: [],
          referringUrls: [],
        },
      };
    },
  };
}
