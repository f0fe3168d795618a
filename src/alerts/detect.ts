import type { Db } from "../db/index.ts";
import { comparePeriods, defaultPeriods, findNewestDataDay } from "../insights/queries.ts";
import { listRules, findFailedTasksSince, findRetryingTasks, raiseAlert } from "./queries.ts";

// What raises alerts. Each check is idempotent: every alert has a dedupe key, so running the checks
// again (another pass, another process) raises nothing twice.

const AUTH = /\b401\b|invalid_grant|expired or revoked|refresh token|sign-?in/i;
const QUOTA = /\b429\b|quota|rateLimitExceeded|usageLimits/i;

/** The alert kinds a task error stands for besides sync_failed: sign-in expired, quota exhausted. */
export function errorKinds(error: string | null): ("auth_expired" | "quota_exhausted")[] {
  if (!error) return [];
  const out: ("auth_expired" | "quota_exhausted")[] = [];
  if (AUTH.test(error)) out.push("auth_expired");
  if (QUOTA.test(error)) out.push("quota_exhausted");
  return out;
}

/** Raises sync_failed (and auth_expired / quota_exhausted by the error) for tasks that failed since `since`; returns how many were new. */
export async function checkFailedSyncs(db: Db, since: string): Promise<number> {
  let raised = 0;
  for (const t of await findFailedTasksSince(db, since)) {
    const payload = {
      site_name: t.site_name,
      domain: t.domain,
      job_id: t.id,
      task_type: t.task_type,
      range: t.start_date && t.end_date ? `${t.start_date}..${t.end_date}` : null,
      error: t.error,
      failed_at: t.completed_at,
      status_url: `/api/v1/sync/job/${t.id}`,
    };
    if (await raiseAlert(db, { kind: "sync_failed", siteId: t.site_id, dedupeKey: `sync_failed:${t.id}`, payload })) raised++;
    for (const kind of errorKinds(t.error)) {
      if (await raiseAlert(db, { kind, siteId: t.site_id, dedupeKey: `${kind}:task:${t.id}`, payload })) raised++;
    }
  }
  // A task waiting to retry after a quota or sign-in error: said once per task, before it finally fails.
  for (const t of await findRetryingTasks(db)) {
    for (const kind of errorKinds(t.error)) {
      const payload = { site_name: t.site_name, domain: t.domain, job_id: t.id, error: t.error, attempts: t.attempts };
      if (await raiseAlert(db, { kind, siteId: t.site_id, dedupeKey: `${kind}:task:${t.id}`, payload })) raised++;
    }
  }
  return raised;
}

/**
 * Click drops, per site rule: the site's clicks (scope `site`) or each page's (scope `page`) in the 7
 * days ending at the newest day with data against the 7 before, alerting when they fell by more than
 * `drop_share` from at least `min_clicks`. Once per rule, key and week.
 */
export async function checkClickDrops(db: Db): Promise<number> {
  let raised = 0;
  for (const r of await listRules(db)) {
    const end = await findNewestDataDay(db, r.site_id, "web");
    if (!end) continue;
    const { current, previous } = defaultPeriods(end, 7);
    const c = await comparePeriods(db, { siteId: r.site_id, searchType: "web", by: "page", current, previous, limit: 1000 });
    const drops =
      r.scope === "site"
        ? [{ key: null as string | null, before: c.previous.clicks, after: c.current.clicks }]
        : c.losers.map((l) => ({ key: String((l as Record<string, unknown>).page), before: l.previous.clicks, after: l.current.clicks }));
    for (const d of drops) {
      if (d.before < r.min_clicks || d.before === 0) continue;
      const share = (d.before - d.after) / d.before;
      if (share <= r.drop_share) continue;
      const payload = {
        rule_id: r.id,
        scope: r.scope,
        ...(d.key ? { page: d.key } : {}),
        previous: previous,
        current: current,
        clicks_before: d.before,
        clicks_after: d.after,
        drop_pct: Math.round(share * 1000) / 10,
        threshold_pct: Math.round(r.drop_share * 1000) / 10,
      };
      const key = `clicks_drop:${r.id}:${d.key ?? "site"}:${end}`;
      if (await raiseAlert(db, { kind: "clicks_drop", siteId: r.site_id, dedupeKey: key, payload })) raised++;
    }
  }
  return raised;
}
