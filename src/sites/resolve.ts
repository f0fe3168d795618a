import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";

/** What an analytics request names its site by: an id, or a host / property string. */
export type SiteRef = { site_id?: number | null; hostname?: string | null };

/** The site a request resolved to. */
export type ResolvedSite = { id: number; domain: string; name: string };

// Candidates are tried in order in one statement: the first that equals a stored domain wins.
const RESOLVE_SQL = `select s.id, s.domain, s.name
  from json_each($candidates) c join sites s on s.domain = c.value
 order by c.key limit 1`;
const BY_ID_SQL = "select id, domain, name from sites where id = $id";

/** Lower-cases the host of a bare host, a `sc-domain:` property or a URL (never a URL's path). */
function lowerHost(s: string): string {
  const m = /^((?:[a-zA-Z][a-zA-Z0-9+.-]*:(?:\/\/)?)?)([^/]*)(.*)$/.exec(s);
  return m ? m[1]!.toLowerCase() + m[2]!.toLowerCase() + m[3]! : s;
}

/**
 * The property strings a hostname may stand for, in the order they are tried: the original's four
 * steps (the value as sent; `sc-domain:` + it; with every `http(s)://` removed and trailing `/`
 * stripped; `sc-domain:` + that), then the URL-prefix properties `https://host/` and
 * `https://www.host/`. Hosts are compared lower-cased (stored domains are normalized that way).
 */
export function hostnameCandidates(hostname: string): string[] {
  const h = lowerHost(hostname.trim());
  const out: string[] = [h];
  if (!h.startsWith("sc-domain:")) out.push(`sc-domain:${h}`);
  let bare = h.replace(/^sc-domain:/, "");
  if (/^https?:\/\//.test(h)) {
    const c = h.replaceAll("https://", "").replaceAll("http://", "").replace(/\/+$/, "");
    out.push(c, `sc-domain:${c}`);
    bare = c;
  }
  // A URL-prefix property is scheme + host + `/`: only a bare host (no path) can name one here.
  bare = bare.replace(/\/+$/, "");
  if (bare && !bare.includes("/")) {
    out.push(`https://${bare}/`);
    if (!bare.startsWith("www.")) out.push(`https://www.${bare}/`);
  }
  return [...new Set(out)];
}

/**
 * Resolves `site_id` or `hostname` to a site, as the original's analytics endpoints did: a truthy
 * `site_id` wins (hostname ignored), else the hostname's candidates (inactive sites included).
 * 400 when neither is given, 404 when nothing matches (also for an unknown site_id: see README).
 */
export async function resolveSite(db: Db, ref: SiteRef): Promise<ResolvedSite> {
  const reader = db.raw.reader;
  if (ref.site_id) {
    const site = reader.query<ResolvedSite, [{ id: number }]>(BY_ID_SQL).get({ id: ref.site_id });
    if (!site) throw new ApiError("not_found", `site ${ref.site_id} not found`);
    return site;
  }
  if (!ref.hostname) {
    throw new ApiError("validation_failed", "either site_id or hostname must be provided", [
      { path: "site_id", message: "give site_id or hostname" },
    ]);
  }
  const candidates = JSON.stringify(hostnameCandidates(ref.hostname));
  const site = reader.query<ResolvedSite, [{ candidates: string }]>(RESOLVE_SQL).get({ candidates });
  if (!site) throw new ApiError("not_found", `site not found: ${ref.hostname}`);
  return site;
}
