// The page URLs a sitemap lists (<url><loc>), read from the sitemap file itself: Search Console's API
// gives a sitemap's counts, not its URLs. A sitemap index is followed one level down. Bounded: at most
// `max` URLs, 10 child sitemaps, 10 MB and `timeoutMs` per file.

const MAX_BYTES = 10 * 1024 * 1024;
const MAX_CHILDREN = 10;

const unescapeXml = (s: string) =>
  s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");

/** The <loc> values of a sitemap (or sitemap index) document, and whether it is an index. */
export function parseSitemap(xml: string): { index: boolean; locs: string[] } {
  const index = /<sitemapindex[\s>]/.test(xml);
  const locs = [...xml.matchAll(/<loc>\s*(?:<!\[CDATA\[)?\s*([^<\]]+?)\s*(?:\]\]>)?\s*<\/loc>/g)].map((m) => unescapeXml(m[1]!));
  return { index, locs };
}

async function download(url: string, signal: AbortSignal, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: "follow" });
  if (!res.ok) throw new Error(`sitemap ${url} answered ${res.status}`);
  const len = Number(res.headers.get("content-length") ?? 0);
  if (len > MAX_BYTES) throw new Error(`sitemap ${url} is larger than 10 MB`);
  const text = await res.text();
  if (text.length > MAX_BYTES) throw new Error(`sitemap ${url} is larger than 10 MB`);
  return text;
}

/** Up to `max` page URLs listed by the sitemap at `url` (following an index one level down). */
export async function fetchSitemapUrls(url: string, opts: { max: number; signal: AbortSignal; timeoutMs?: number }): Promise<string[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const top = parseSitemap(await download(url, opts.signal, timeoutMs));
  if (!top.index) return top.locs.filter((u) => /^https?:\/\//.test(u)).slice(0, opts.max);
  const out: string[] = [];
  for (const child of top.locs.slice(0, MAX_CHILDREN)) {
    if (out.length >= opts.max) break;
    const doc = parseSitemap(await download(child, opts.signal, timeoutMs));
    if (!doc.index) out.push(...doc.locs.filter((u) => /^https?:\/\//.test(u)));
  }
  return out.slice(0, opts.max);
}
