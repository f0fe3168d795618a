import { z } from "zod";
import { fetchSitemapUrls } from "../../sitemaps/fetch.ts";
import { listSitemaps, storeSitemaps } from "../../sitemaps/queries.ts";
import {
  insertInspection,
  inspectionChoices,
  listInspectedSince,
  listTopPagesByClicks,
  type InspectionChoice,
} from "../../inspection/queries.ts";
import { findSiteById } from "../../sites/queries.ts";
import { log } from "../../log.ts";
import { PermanentError } from "../errors.ts";
import { GscPermanentError } from "../gsc/client.ts";
import type { TaskContext, TaskHandler } from "./index.ts";

// Tasks reading Search Console's sitemaps and URL inspection for one site (src/sitemaps, src/inspection).

async function siteAndResources(ctx: TaskContext) {
  const site = await findSiteById(ctx.db, ctx.task.site_id);
  if (!site) throw new PermanentError(`site ${ctx.task.site_id} no longer exists`);
  const resources = ctx.source.resources;
  if (!resources) throw new PermanentError(`the ${ctx.source.name} source has no sitemaps or URL inspection`);
  return { site, resources };
}

/** sitemaps_sync: lists the site's sitemaps (sitemaps.list) and stores them with their history. */
export const sitemapsSync: TaskHandler = {
  type: "sitemaps_sync",
  async run(ctx) {
    const { site, resources } = await siteAndResources(ctx);
    const listed = await resources.listSitemaps(site.domain, ctx.signal);
    const now = new Date().toISOString();
    const out = await ctx.write((tx) => storeSitemaps(tx, ctx.db.t, site.id, listed, now));
    log("info", "sitemaps synced", { task_id: ctx.task.id, site_id: site.id, ...out });
    await ctx.progress({ done: 1, synced: 1, failed: 0, skipped: 0, records: out.listed });
  },
};

export const InspectionParams = z.object({
  /** Which pages: the top pages by clicks, the URLs of the site's sitemaps, or the given URLs. */
  by: z.enum(inspectionChoices).default("clicks"),
  urls: z.array(z.string()).default([]),
  limit: z.number().int().min(1).max(2000).default(50),
  /** Days of clicks ranking the pages (by clicks). */
  days: z.number().int().min(1).max(480).default(28),
  /** Pages already inspected today (UTC) are skipped unless set. */
  force: z.boolean().default(false),
});
export type InspectionParams = z.infer<typeof InspectionParams>;

/** The pages an inspection task covers, in order. */
async function pagesToInspect(ctx: TaskContext, siteId: number, p: InspectionParams): Promise<string[]> {
  if (p.by === "request") return p.urls.slice(0, p.limit);
  if (p.by === "clicks") return listTopPagesByClicks(ctx.db, siteId, { days: p.days, limit: p.limit });
  const urls: string[] = [];
  for (const s of await listSitemaps(ctx.db, siteId, { current: true })) {
    if (urls.length >= p.limit) break;
    try {
      urls.push(...(await fetchSitemapUrls(s.path, { max: p.limit - urls.length, signal: ctx.signal })));
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      log("warn", "sitemap not readable", { task_id: ctx.task.id, sitemap: s.path, error: String(err) });
    }
  }
  return [...new Set(urls)].slice(0, p.limit);
}

/**
 * url_inspection: inspects pages (urlInspection.index.inspect) within the property's inspection quota
 * and stores each result. A URL Google refuses (400: not in the property) is counted as failed and the
 * others go on; a spent daily quota stops the task (retried later).
 */
export const urlInspection: TaskHandler = {
  type: "url_inspection",
  async run(ctx) {
    const parsed = InspectionParams.safeParse(ctx.task.params);
    if (!parsed.success) throw new PermanentError(`invalid params: ${parsed.error.issues[0]?.message}`);
    const p = parsed.data;
    const { site, resources } = await siteAndResources(ctx);
    const urls = await pagesToInspect(ctx, site.id, p);
    const today = `${new Date().toISOString().slice(0, 10)}T00:00:00.000Z`;
    const done = p.force ? new Set<string>() : await listInspectedSince(ctx.db, site.id, today);
    const progress = { done: 0, synced: 0, failed: 0, skipped: 0, records: 0 };
    let lastError: string | null = null;
    for (const url of urls) {
      ctx.signal.throwIfAborted();
      if (done.has(url)) {
        progress.skipped++;
      } else {
        try {
          const result = await resources.inspectUrl(site.domain, url, ctx.signal);
          const now = new Date().toISOString();
          await ctx.write((tx) => insertInspection(tx, ctx.db.t, site.id, url, result, p.by as InspectionChoice, now));
          progress.synced++;
          progress.records++;
        } catch (err) {
          // Only a refusal of this URL (400/404) is the URL's; anything else (auth, quota, outage) stops the task.
          if (!(err instanceof GscPermanentError) || (err.status !== 400 && err.status !== 404)) throw err;
          progress.failed++;
          lastError = err.message;
        }
      }
      progress.done++;
      await ctx.progress(progress);
    }
    if (progress.done === 0) await ctx.progress(progress);
    if (progress.failed > 0 && progress.synced === 0) throw new PermanentError(`every URL was refused; last: ${lastError}`);
  },
};
