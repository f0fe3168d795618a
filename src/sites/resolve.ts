import { eq, inArray } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";

/** What an analytics request names its site by: an id, or a host / property string. */
export type SiteRef = { site_id?: number | null; hostname?: string | null };

/** The site a request resolved to. */
export type ResolvedSite = { id: number; domain: string; name: string };

// SQLite: candidates are tried in order in one statement (the first that equals a stored domain wins),
// a statement bun:sqlite caches, asked on every analytics request.
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
  if (ref.site_id) {
    const site = await findResolvedById(db, ref.site_id);
    if (!site) throw new ApiError("not_found", `site ${ref.site_id} not found`);
    return site;
  }
  if (!ref.hostname) {
    throw new ApiError("validation_failed", "either site_id or hostname must be provided", [
      { path: "site_id", message: "give site_id or hostname" },
    ]);
  }
  const site = await findFirstCandidate(db, hostnameCandidates(ref.hostname));
  if (!site) throw new ApiError("not_found", `site not found: ${ref.hostname}`);
  return site;
}

async function findResolvedById(db: Db, id: number): Promise<ResolvedSite | undefined> {
  if (db.engine === "sqlite") return db.raw.reader.query<ResolvedSite, [{ id: number }]>(BY_ID_SQL).get({ id }) ?? undefined;
  const { sites } = db.t;
  return first(await db.q.select({ id: sites.id, domain: sites.domain, name: sites.name }).from(sites).where(eq(sites.id, id)));
}

/** The site whose domain equals the earliest of the candidates. */
async function findFirstCandidate(db: Db, candidates: string[]): Promise<ResolvedSite | undefined> {
  if (db.engine === "sqlite") {
    return (
      db.raw.reader.query<ResolvedSite, [{ candidates: string }]>(RESOLVE_SQL).get({ candidates: JSON.stringify(candidates) }) ?? undefined
    );
  }
  const { sites } = db.t;
  const found = await db.q
    .select({ id: sites.id, domain: sites.domain, name: sites.name })
    .from(sites)
    .where(inArray(sites.domain, candidates));
  // Domains are unique: at most one row per candidate.
  return candidates.map((c) => found.find((s) => s.domain === c)).find((s) => s !== undefined);
}
