import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { containsPattern } from "../db/sql.ts";
import { ApiError } from "../errors.ts";

/** The path (and query string) of a stored page URL, or null when it is not a URL. */
function pathOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return null;
  }
}

/**
 * Page arguments as the site stores them. A full URL passes through; a path relative to the site
 * (`/trail-running`, as the original v3 tools took) becomes every stored page URL of the site with
 * that path (http and https, with or without www, any subdomain of a domain property) in the page
 * dictionary (gsc_pages). A relative path no stored page has is refused with a 404 naming it, not
 * answered with silence.
 */
export async function resolvePages(db: Db, siteId: number, pages: string[]): Promise<string[]> {
  const out: string[] = [];
  // The site's page dictionary (gsc_pages, unique on (site_id, page)): every page the detail or the page totals hold.
  const g = db.t.gscPages;
  for (const p of pages) {
    if (!p.startsWith("/")) {
      out.push(p);
      continue;
    }
    // Suffix match in SQL (LIKE '%/path', case-sensitive on the path part is checked below), then the exact path.
    const rows = await db.q
      .select({ page: g.page })
      .from(g)
      .where(and(eq(g.site_id, siteId), sql`${g.page} like ${containsPattern(p).slice(0, -1)} escape '\\'`))
      .limit(1000);
    const matches = rows.map((r) => r.page).filter((u) => pathOf(u) === p);
    if (matches.length === 0) throw new ApiError("not_found", `no stored page of site ${siteId} has the path ${p}`);
    out.push(...matches.sort());
  }
  return [...new Set(out)];
}
