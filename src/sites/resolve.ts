import { inArray } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { hostnameCandidates } from "./candidates.ts";
import { findSiteById } from "./queries.ts";

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
/** A site's answer fields by id (named parameter `$site_id`), for a report that reads it in its own round trip (allRowsOfSite). */
export const SITE_BY_ID_SQL = "select id, domain, name from sites where id = $site_id";

/** 404 for a `site_id` that names no site. */
export function siteNotFound(id: number): ApiError {
  return new ApiError("not_found", `site ${id} not found`);
}

/**
 * Resolves `site_id` or `hostname` to a site, as the original's analytics endpoints did: a truthy
 * `site_id` wins (hostname ignored), else the hostname's candidates (inactive sites included).
 * 400 when neither is given, 404 when nothing matches (also for an unknown site_id: see README).
 */
export async function resolveSite(db: Db, ref: SiteRef): Promise<ResolvedSite> {
  if (ref.site_id) {
    const site = await findResolvedById(db, ref.site_id);
    if (!site) throw siteNotFound(ref.site_id);
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
  // PostgreSQL: the sites' named statement by id (parsed and planned once per connection), not a Drizzle select
  // built, parsed and planned on every analytics request.
  const site = await findSiteById(db, id);
  return site && { id: site.id, domain: site.domain, name: site.name };
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
