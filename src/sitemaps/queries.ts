import { and, desc, eq, isNull, lt } from "drizzle-orm";
import type { Db, Q } from "../db/index.ts";
import type { SitemapHistoryRow, SitemapRow } from "../db/model.ts";
import type { GscSitemap } from "../sync/gsc/resources.ts";

// Sitemaps as Search Console lists them: the current state per (site, path) in gsc_sitemaps, and each
// change (and each disappearance) in gsc_sitemap_history, so a sitemap's errors, downloads and counts
// can be followed over time.

type SitemapState = Pick<
  SitemapRow,
  "type" | "last_submitted" | "last_downloaded" | "is_pending" | "is_sitemaps_index" | "warnings" | "errors" | "contents"
>;

/** A listed sitemap as the columns store it. */
function stateOf(s: GscSitemap): SitemapState {
  return {
    type: s.type ?? null,
    last_submitted: s.lastSubmitted ?? null,
    last_downloaded: s.lastDownloaded ?? null,
    is_pending: s.isPending,
    is_sitemaps_index: s.isSitemapsIndex,
    warnings: s.warnings,
    errors: s.errors,
    contents: s.contents.map((c) => ({ type: c.type, submitted: c.submitted })),
  };
}

const sameState = (a: SitemapState, b: SitemapState) =>
  a.type === b.type &&
  a.last_submitted === b.last_submitted &&
  a.last_downloaded === b.last_downloaded &&
  a.is_pending === b.is_pending &&
  a.is_sitemaps_index === b.is_sitemaps_index &&
  a.warnings === b.warnings &&
  a.errors === b.errors &&
  JSON.stringify(a.contents) === JSON.stringify(b.contents);

/**
 * Stores one sitemaps.list answer for a site (inside a task's write): upserts each listed sitemap, adds a
 * history row for each new or changed one, and marks those no longer listed as removed (with a history row).
 */
export async function storeSitemaps(tx: Q, t: Db["t"], siteId: number, listed: GscSitemap[], now: string) {
  const { gscSitemaps: sm, gscSitemapHistory: h } = t;
  const current = new Map((await tx.select().from(sm).where(eq(sm.site_id, siteId))).map((r) => [r.path, r as SitemapRow]));
  let changed = 0;
  let removed = 0;
  const seen = new Set<string>();
  for (const s of listed) {
    if (seen.has(s.path)) continue;
    seen.add(s.path);
    const state = stateOf(s);
    const before = current.get(s.path);
    if (!before || before.removed_at !== null || !sameState(before, state)) {
      changed++;
      await tx.insert(h).values({ site_id: siteId, path: s.path, seen_at: now, ...state, removed: false });
    }
    await tx
      .insert(sm)
      .values({ site_id: siteId, path: s.path, ...state, first_seen_at: now, checked_at: now })
      .onConflictDoUpdate({ target: [sm.site_id, sm.path], set: { ...state, checked_at: now, removed_at: null } });
  }
  for (const [path, row] of current) {
    if (seen.has(path) || row.removed_at !== null) continue;
    removed++;
    await tx
      .update(sm)
      .set({ removed_at: now, checked_at: now })
      .where(and(eq(sm.site_id, siteId), eq(sm.path, path)));
    const { site_id: _s, path: _p, first_seen_at: _f, checked_at: _c, removed_at: _r, ...state } = row;
    await tx.insert(h).values({ site_id: siteId, path, seen_at: now, ...state, removed: true });
  }
  return { listed: seen.size, changed, removed };
}

/** A site's sitemaps, current state, by path (removed ones too, with removed_at, unless `current`). */
export async function listSitemaps(db: Db, siteId: number, opts: { current?: boolean } = {}): Promise<SitemapRow[]> {
  const { gscSitemaps: sm } = db.t;
  const where = opts.current ? and(eq(sm.site_id, siteId), isNull(sm.removed_at)) : eq(sm.site_id, siteId);
  return (await db.q.select().from(sm).where(where).orderBy(sm.path)) as SitemapRow[];
}

/** A site's sitemap history, newest first (one sitemap's with `path`); `before` pages by id. */
export async function listSitemapHistory(
  db: Db,
  siteId: number,
  opts: { path?: string; limit: number; before?: number },
): Promise<SitemapHistoryRow[]> {
  const { gscSitemapHistory: h } = db.t;
  const conds = [eq(h.site_id, siteId)];
  if (opts.path !== undefined) conds.push(eq(h.path, opts.path));
  if (opts.before !== undefined) conds.push(lt(h.id, opts.before));
  const rows = await db.q
    .select()
    .from(h)
    .where(and(...conds))
    .orderBy(desc(h.id))
    .limit(opts.limit);
  return rows.map((r) => ({ ...r, id: Number(r.id) })) as SitemapHistoryRow[];
}
