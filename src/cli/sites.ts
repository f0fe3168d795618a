import { hostnameCandidates } from "../sites/candidates.ts";
import type { SiteJson } from "../sites/schemas.ts";
import { ServiceError, type Api } from "./api.ts";
import { CliError } from "./output.ts";

/**
 * The site a command names: a number is an id; anything else a hostname or property, matched against
 * the registered domains as the API's `hostname` is (`example.com` finds `sc-domain:example.com`).
 */
export async function resolveSite(api: Api, ref: string): Promise<SiteJson> {
  if (/^\d+$/.test(ref)) {
    try {
      return await api.get<SiteJson>(`/api/v1/sites/${ref}`);
    } catch (err) {
      if (err instanceof ServiceError && err.status === 404) throw new CliError(`site ${ref} not found (bun run cli sites list)`);
      throw err;
    }
  }
  const all = await api.all<SiteJson>("/api/v1/sites?limit=500&active_only=false");
  const byDomain = new Map(all.map((s) => [s.domain.toLowerCase(), s]));
  for (const c of hostnameCandidates(ref.trim())) {
    const site = byDomain.get(c.toLowerCase());
    if (site) return site;
  }
  throw new CliError(`no site matches '${ref}' (bun run cli sites list; add it with: bun run cli sites add sc-domain:${ref})`);
}
