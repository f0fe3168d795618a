import { inArray } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { sites, type Site } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { findSiteById } from "./queries.ts";

/** How a request names a site: by id, or by the hostname/property it was registered under. */
export type SiteRef = { site_id?: number | null; hostname?: string | null };

/**
 * The `sites.domain` values a hostname may match, in the original's order (reference §0.6): as sent,
 * with `sc-domain:` prepended, and both again with `http(s)://` removed and trailing slashes stripped.
 */
export function hostnameCandidates(hostname: string): string[] {
  const out = [hostname];
  if (!hostname.startsWith("sc-domain:")) out.push(`sc-domain:${hostname}`);
  if (/^https?:\/\//.test(hostname)) {
    const bare = hostname.replaceAll("https://", "").replaceAll("http://", "").replace(/\/+$/, "");
    out.push(bare, `sc-domain:${bare}`);
  }
  return out;
}

/** The site named by id or hostname (id wins); throws 400 when neither is given, 404 when none matches. */
export async function resolveSite(db: Db, ref: SiteRef): Promise<Site> {
  if (ref.site_id) {
    const site = await findSiteById(db, ref.site_id);
    if (!site) throw new ApiError("not_found", `site ${ref.site_id} not found`);
    return site;
  }
  if (!ref.hostname) throw new ApiError("validation_failed", "either site_id or hostname must be provided");
  const candidates = hostnameCandidates(ref.hostname);
  const found = await db.read.select().from(sites).where(inArray(sites.domain, candidates));
  // The first candidate that matches wins, as in the original's step order.
  for (const c of candidates) {
    const site = found.find((s) => s.domain === c);
    if (site) return site;
  }
  throw new ApiError("not_found", `site not found: ${ref.hostname}`);
}
