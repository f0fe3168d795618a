import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { createSite } from "../sites/queries.ts";
import { CreateSiteSchema } from "../sites/schemas.ts";
import { queueBackfill } from "../sync/queries.ts";
import type { GoogleAccounts } from "./accounts.ts";
import { bindSite, chooseAccount, findSiteBindingByDomain, listGoogleAccounts, listSiteBindings } from "./queries.ts";

// Property discovery (issue 17.7): the properties the Google accounts can see, and adding them as sites,
// each bound to an account that sees it and backfilled newest first.

/** One property some account can see, with the account a site for it would use and the site if registered. */
export type VisibleProperty = {
  site_url: string;
  permission_level: string;
  account_id: number;
  account: string;
  /** Every account that sees it. */
  accounts: string[];
  site_id: number | null;
};

/** Every property the registered accounts can see (their last lists), by URL. */
export async function listVisibleProperties(db: Db): Promise<VisibleProperty[]> {
  const accounts = await listGoogleAccounts(db);
  const sites = new Map((await listSiteBindings(db)).map((s) => [s.domain, s.site_id]));
  const urls = [...new Set(accounts.flatMap((a) => a.properties.map((p) => p.site_url)))].sort();
  const out: VisibleProperty[] = [];
  for (const url of urls) {
    const pick = chooseAccount(accounts, url);
    const seen = accounts.filter((a) => a.properties.some((p) => p.site_url === url));
    const by = pick ?? seen[0]!;
    out.push({
      site_url: url,
      permission_level: by.properties.find((p) => p.site_url === url)!.permission_level,
      account_id: by.id,
      account: by.email,
      accounts: seen.map((a) => a.email),
      site_id: sites.get(url) ?? null,
    });
  }
  return out;
}

export type ImportOutcome = {
  site_url: string;
  /** added: a new site; exists: already registered; not_visible: no account can read its data; invalid: not a property name sitesync takes. */
  status: "added" | "exists" | "not_visible" | "invalid";
  site_id: number | null;
  account: string | null;
  /** The backfill queued for a new site (null: none asked, or one was already running). */
  job_id: number | null;
  message: string;
};

/** The site name a property gets: its host (and path), without the scheme or `sc-domain:`. */
export function siteNameOf(siteUrl: string): string {
  return (
    siteUrl
      .replace(/^sc-domain:/i, "")
      .replace(/^https?:\/\//i, "")
      .replace(/\/$/, "") || siteUrl
  );
}

/**
 * Adds properties as sites: every one the accounts can read (`siteUrls` unset), or those named. Lists
 * are asked again first. Each new site is bound to the account that sees it and, with `backfill`,
 * gets a daily_sync of the 16 months Search Console keeps, newest day first (resumable: a day stored
 * is not fetched again). Sites already registered are left as they are (bound if they had no account).
 */
export async function importProperties(
  db: Db,
  accounts: GoogleAccounts,
  opts: { siteUrls?: string[]; backfill: boolean; maxAttempts: number },
): Promise<ImportOutcome[]> {
  await accounts.refresh();
  const all = await listGoogleAccounts(db);
  const visible = await listVisibleProperties(db);
  const wanted = opts.siteUrls ?? visible.filter((p) => chooseAccount(all, p.site_url)).map((p) => p.site_url);
  const out: ImportOutcome[] = [];
  for (const asked of wanted) {
    const parsed = CreateSiteSchema.safeParse({ domain: asked, name: siteNameOf(asked) });
    if (!parsed.success) {
      out.push({
        site_url: asked,
        status: "invalid",
        site_id: null,
        account: null,
        job_id: null,
        message: parsed.error.issues[0]!.message,
      });
      continue;
    }
    const url = parsed.data.domain;
    const pick = chooseAccount(all, url);
    const existing = await findSiteBindingByDomain(db, url);
    if (existing) {
      if (existing.account_id === null && pick) await bindSite(db, existing.site_id, pick.id, "auto");
      out.push({
        site_url: url,
        status: "exists",
        site_id: existing.site_id,
        account: pick?.email ?? null,
        job_id: null,
        message: `already registered as site ${existing.site_id}`,
      });
      continue;
    }
    if (!pick) {
      const seen = visible.find((v) => v.site_url === url);
      out.push({
        site_url: url,
        status: "not_visible",
        site_id: null,
        account: null,
        job_id: null,
        message: seen
          ? `${seen.accounts.join(", ")} see it only as ${seen.permission_level}, which cannot read its data: verify it in Search Console`
          : "no signed-in Google account can see this property (bun run cli auth status lists what each can see)",
      });
      continue;
    }
    let siteId: number;
    try {
      siteId = (await createSite(db, parsed.data)).id;
    } catch (err) {
      // Another import (or a person) added it meanwhile.
      if (!(err instanceof ApiError && err.code === "conflict")) throw err;
      const now = await findSiteBindingByDomain(db, url);
      out.push({
        site_url: url,
        status: "exists",
        site_id: now?.site_id ?? null,
        account: pick.email,
        job_id: null,
        message: "added meanwhile",
      });
      continue;
    }
    await bindSite(db, siteId, pick.id, "auto");
    const job = opts.backfill ? await queueBackfill(db, { siteId, maxAttempts: opts.maxAttempts }) : null;
    out.push({
      site_url: url,
      status: "added",
      site_id: siteId,
      account: pick.email,
      job_id: job?.id ?? null,
      message: job ? `added; backfill ${job.start}..${job.end} queued as job ${job.id}, newest day first` : "added",
    });
  }
  return out;
}
