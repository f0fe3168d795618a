import type { Db } from "../db/index.ts";
import { log } from "../log.ts";
import { createSenders, type Senders } from "./deliver.ts";
import { checkClickDrops, checkFailedSyncs } from "./detect.ts";
import { claimDelivery, findDueDeliveries, recordAttempt } from "./queries.ts";

export type AlertLoopOptions = {
  pollMs: number;
  retryBaseMs: number;
  maxAttempts: number;
  timeoutMs: number;
  smtpUrl: string | null;
  from: string;
  /** Click drops are checked at most this often (they change once a day). */
  dropsEveryMs?: number;
  senders?: Senders;
};

/** The wait before attempt `n + 1` after `n` failed ones: base × 2^(n−1), at most an hour. */
export function retryDelayMs(base: number, failedAttempts: number): number {
  return Math.min(base * 2 ** Math.max(0, failedAttempts - 1), 3_600_000);
}

/** One pass: raise what is new, then send what is due. Returns the counts (for tests and logs). */
export async function runAlertPass(db: Db, o: AlertLoopOptions & { since: string; checkDrops: boolean; senders: Senders }) {
  const raised = (await checkFailedSyncs(db, o.since)) + (o.checkDrops ? await checkClickDrops(db) : 0);
  let sent = 0;
  let failed = 0;
  const now = new Date();
  for (const d of await findDueDeliveries(db, now.toISOString(), 50)) {
    // Leased for the send's time limit plus a margin: a process dying mid-send leaves it due again.
    const lease = new Date(now.getTime() + o.timeoutMs + 30_000).toISOString();
    if (!(await claimDelivery(db, d, lease))) continue;
    const r = d.channel_kind === "webhook" ? await o.senders.webhook(d) : await o.senders.email(d);
    const attempts = d.attempts + 1;
    const at = new Date();
    const retryAt = !r.ok && attempts < o.maxAttempts ? new Date(at.getTime() + retryDelayMs(o.retryBaseMs, attempts)).toISOString() : null;
    await recordAttempt(db, d.id, { ok: r.ok, status: r.status, error: r.error, at: at.toISOString(), retryAt });
    if (r.ok) sent++;
    else {
      failed++;
      log("warn", "alert delivery failed", { delivery: d.id, channel: d.channel_id, attempt: attempts, error: r.error, retry_at: retryAt });
    }
  }
  return { raised, sent, failed };
}

/**
 * Runs the alert passes every `pollMs` in this process (the supervisor: one per instance; passes in
 * several instances are safe, each alert is raised once and each delivery claimed by one). Failed
 * syncs are looked for from an hour before the start on, so a restart does not miss one.
 */
export function startAlerts(db: Db, o: AlertLoopOptions): { stop: () => Promise<void> } {
  const senders = o.senders ?? createSenders({ timeoutMs: o.timeoutMs, smtpUrl: o.smtpUrl, from: o.from });
  const since = new Date(Date.now() - 3_600_000).toISOString();
  const dropsEvery = o.dropsEveryMs ?? 3_600_000;
  let lastDrops = 0;
  let stopped = false;
  let running: Promise<void> | null = null;
  const tick = async () => {
    const checkDrops = Date.now() - lastDrops >= dropsEvery;
    if (checkDrops) lastDrops = Date.now();
    try {
      await runAlertPass(db, { ...o, since, checkDrops, senders });
    } catch (err) {
      log("warn", "alert pass failed", { error: String(err) });
    }
  };
  // One pass at a time: a slow pass (a webhook timing out) makes the next wait, never pile up.
  const kick = () => {
    if (stopped || running) return;
    running = tick().finally(() => {
      running = null;
    });
  };
  const timer = setInterval(kick, o.pollMs);
  kick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
