import { lt, sql } from "drizzle-orm";
import type { Db } from "../../db/index.ts";
import type { PgParts } from "../../db/pg/engine.ts";
import { log } from "../../log.ts";
import type { QuotaRequest, RateLimiter } from "./limiter.ts";
import { sleep } from "./sleep.ts";

// Search Console's usage limits, counted in the database (table gsc_quota_windows) so that every sync
// process on every host draws from one budget. Each limit is a bucket (its scope: one property, the
// whole project) and a fixed window (a minute, or Google's day, which starts at midnight Pacific time).
// Before each request a process takes one unit of every bucket the request counts against, in one
// transaction: each bucket's counter moves up only while it is under its limit, and if any bucket is
// full the whole take rolls back, so the sum of all processes' requests in a window never passes a
// limit. The refused process waits for the full window's end (a minute at most), or, when that is
// further away than `maxWaitMs` (a spent daily quota), fails the request with a transient error so the
// task is retried later.

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** The limits, per window; Google's published values are the defaults in src/config.ts. */
export type QuotaLimits = {
  /** searchAnalytics.query per property and minute (Google: 1,200). */
  sitePerMinute: number;
  /** searchAnalytics.query per Cloud project and minute (Google: 40,000). */
  projectPerMinute: number;
  /** searchAnalytics.query per Cloud project and day (Google: 30,000,000). */
  projectPerDay: number;
  /** urlInspection.index.inspect per property and minute (Google: 600). */
  inspectPerMinute: number;
  /** urlInspection.index.inspect per property and day (Google: 2,000). */
  inspectPerDay: number;
  /** Other methods (sitemaps, sites) per minute (Google: 200 per user). */
  otherPerMinute: number;
};

/** One limit a request counts against: its bucket, current window and size. */
export type QuotaCheck = { bucket: string; windowStart: number; windowEnd: number; limit: number; what: string };

let pacificFormat: Intl.DateTimeFormat | undefined;

/** Start of Google's quota day (midnight America/Los_Angeles) containing `now` (epoch ms). */
export function pacificDayStart(now: number): number {
  // One formatter for the process (making one cost ~0.1 ms, twice per Search Console request).
  const fmt = (pacificFormat ??= new Intl.DateTimeFormat("en-US", {
    timeZone: "America/Los_Angeles",
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }));
  const wall = (t: number) => {
    const p = Object.fromEntries(fmt.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return { y: +p.year!, m: +p.month!, d: +p.day!, utc: Date.UTC(+p.year!, +p.month! - 1, +p.day!, +p.hour!, +p.minute!, +p.second!) };
  };
  const w = wall(now);
  const offset = w.utc - Math.floor(now / 1000) * 1000; // wall clock minus UTC (negative: -7 h or -8 h)
  let start = Date.UTC(w.y, w.m - 1, w.d) - offset;
  // A day on which DST changes: midnight had the other offset.
  const s = wall(start);
  if (s.d !== w.d || s.utc !== Date.UTC(w.y, w.m - 1, w.d)) start -= s.utc - Date.UTC(w.y, w.m - 1, w.d);
  return start;
}

/** The limits a request counts against at `now`, in a fixed order (so concurrent takes lock rows alike). */
export function quotaChecks(req: QuotaRequest, limits: QuotaLimits, now: number, project = "default"): QuotaCheck[] {
  const minute = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const m = (bucket: string, limit: number, what: string): QuotaCheck => ({
    bucket: `${bucket}/min`,
    windowStart: minute,
    windowEnd: minute + MINUTE_MS,
    limit,
    what: `${limit} per minute ${what}`,
  });
  const d = (bucket: string, limit: number, what: string): QuotaCheck => {
    const day = pacificDayStart(now);
    return {
      bucket: `${bucket}/day`,
      windowStart: day,
      windowEnd: pacificDayStart(day + DAY_MS + 3_600_000 * 3),
      limit,
      what: `${limit} per day ${what}`,
    };
  };
  const checks =
    req.kind === "search"
      ? [
          m(`search:project:${project}`, limits.projectPerMinute, `for search analytics (project ${project})`),
          d(`search:project:${project}`, limits.projectPerDay, `for search analytics (project ${project})`),
          m(`search:site:${req.site}`, limits.sitePerMinute, `for search analytics of ${req.site}`),
        ]
      : req.kind === "inspect"
        ? [
            m(`inspect:site:${req.site}`, limits.inspectPerMinute, `for URL inspection of ${req.site}`),
            d(`inspect:site:${req.site}`, limits.inspectPerDay, `for URL inspection of ${req.site}`),
          ]
        : [m("other", limits.otherPerMinute, "for sitemaps and sites")];
  return checks.sort((a, b) => (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : 0));
}

class Full extends Error {
  constructor(readonly check: QuotaCheck) {
    super("quota window full");
  }
}

/**
 * Takes one unit of every check at once; returns null when taken, else the first full check (nothing taken).
 * SQLite: a conditional upsert under the write lock. PostgreSQL: one autocommitted statement (takePg).
 */
export async function takeQuota(db: Db, checks: QuotaCheck[]): Promise<QuotaCheck | null> {
  if (db.engine === "pg") return takePg(db.pg, checks);
  const { gscQuotaWindows: w } = db.t;
  try {
    await db.tx(async (tx) => {
      // One statement for every bucket. A full bucket's row is not returned; the first of them rolls the whole
      // take back.
      const limit = sql.join(
        checks.map((c) => sql`when ${c.bucket} then ${sql.raw(String(Math.trunc(c.limit)))}`),
        sql` `,
      );
      const taken = await tx
        .insert(w)
        .values(checks.map((c) => ({ bucket: c.bucket, window_start: c.windowStart, used: 1 })))
        .onConflictDoUpdate({
          target: [w.bucket, w.window_start],
          set: { used: sql`${w.used} + 1` },
          setWhere: sql`${w.used} < case ${w.bucket} ${limit} end`,
        })
        .returning({ bucket: w.bucket });
      const got = new Set(taken.map((r) => r.bucket));
      const full = checks.find((c) => !got.has(c.bucket));
      if (full) throw new Full(full);
    }, "gsc quota");
    return null;
  } catch (err) {
    if (err instanceof Full) return err.check;
    throw err;
  }
}

// PostgreSQL's take: the checks' rows locked in bucket order (FOR UPDATE in a CTE: each read is the row's latest
// version), and only when every one is under its limit the commit token is written and every row moves up, in the
// same statement. It commits on its own, so the rows stay locked for the statement alone: a transaction (BEGIN with
// its token, the upsert, COMMIT) held them over two round trips, and every search request of every process takes
// the project's rows (the sync workers queued there). A full take writes nothing, its token neither (an outcome
// check after a lost answer finds it aborted; it runs again).
const PG_TAKE = `with l as (
  select * from unnest($1::text[], $2::bigint[], $3::integer[]) as l(bucket, window_start, lim)
), cur as (
  select w.bucket, w.window_start, w.used, l.lim from gsc_quota_windows w
  join l on w.bucket = l.bucket and w.window_start = l.window_start
  order by w.bucket for update of w
), ok as (
  select count(*) = cardinality($1::text[]) and coalesce(bool_and(used < lim), true) as ok from cur
), commit_token as (
  insert into commit_tokens (at, token) select $4::bigint, $5::bigint from ok where ok.ok returning 1
), taken as (
  update gsc_quota_windows w set used = w.used + 1 from cur, commit_token
  where w.bucket = cur.bucket and w.window_start = cur.window_start returning 1
)
select (select count(*)::integer from taken) as taken, (select count(*)::integer from cur) as present,
  (select min(bucket) from cur where used >= lim) as full`;
// A window's first take: its rows made at 0 (in bucket order; a row another process makes meanwhile is left to it).
const PG_WINDOWS = `insert into gsc_quota_windows (bucket, window_start, used)
  select bucket, window_start, 0 from unnest($1::text[], $2::bigint[]) as l(bucket, window_start) order by bucket
  on conflict do nothing`;

/** takeQuota on PostgreSQL: one statement, with the retries and lost-answer check of a one-statement write. */
async function takePg(pg: PgParts, checks: QuotaCheck[]): Promise<QuotaCheck | null> {
  const buckets = checks.map((c) => c.bucket);
  const starts = checks.map((c) => c.windowStart);
  const limits = checks.map((c) => Math.trunc(c.limit));
  return pg.oneStatement<QuotaCheck | null>(
    {
      run: async (client, token) => {
        for (let tries = 0; ; tries++) {
          const r = await client.query<{ taken: number; present: number; full: string | null }>({
            name: "gsc_quota_take",
            text: PG_TAKE,
            values: [buckets, starts, limits, token.at, token.token],
          });
          const { taken, present, full } = r.rows[0]!;
          if (taken === checks.length) return null;
          if (full !== null) return checks.find((c) => c.bucket === full)!;
          // Rows missing (the window's first take): made, then taken again.
          if (present === checks.length || tries >= 3) throw new Error(`gsc quota take: ${present} of ${checks.length} windows found`);
          await client.query({ name: "gsc_quota_windows", text: PG_WINDOWS, values: [buckets, starts] });
        }
      },
      // Its token committed: the take did.
      recover: async () => null,
    },
    "gsc quota",
  );
}

/** Marks the checks' windows as used up (Google refused for quota): every process waits for the next window. */
export async function spendQuota(db: Db, checks: QuotaCheck[]): Promise<void> {
  const { gscQuotaWindows: w } = db.t;
  await db.tx(async (tx) => {
    for (const c of checks) {
      await tx
        .insert(w)
        .values({ bucket: c.bucket, window_start: c.windowStart, used: c.limit })
        .onConflictDoUpdate({
          target: [w.bucket, w.window_start],
          set: { used: sql`case when ${w.used} > ${c.limit} then ${w.used} else ${c.limit} end` },
        });
    }
  }, "gsc quota spent");
}

/** What a bucket has used in its current window, per bucket (for /sync/status and tests). */
export async function readQuota(db: Db, now = Date.now()): Promise<{ bucket: string; window_start: number; used: number }[]> {
  const { gscQuotaWindows: w } = db.t;
  const rows = await db.q
    .select()
    .from(w)
    .where(sql`${w.window_start} >= ${now - 2 * DAY_MS}`);
  return rows.map((r) => ({ bucket: r.bucket, window_start: Number(r.window_start), used: r.used }));
}

/** The quota is used up for longer than a request may wait: the task fails this attempt and is retried later. */
export class QuotaExhausted extends Error {
  override name = "QuotaExhausted";
  constructor(
    message: string,
    readonly retryAt: number,
  ) {
    super(message);
  }
}

export type DbQuotaOptions = {
  limits: QuotaLimits;
  /** Longest a request waits for a window to reopen; beyond it, QuotaExhausted. */
  maxWaitMs: number;
  /** The Google Cloud project whose quota the requests count against (several accounts: one per project). */
  project?: string;
  /** Tests: a clock. */
  now?: () => number;
};

/**
 * Search Console's limits enforced in the database for every process and host (see the top of this file).
 * A failing database never blocks a request: the take is logged and the request goes ahead.
 */
export function createDbQuota(db: Db, opts: DbQuotaOptions): RateLimiter {
  const now = opts.now ?? Date.now;
  let cleaned = 0;

  function cleanup(t: number) {
    // Once an hour per process: forget windows more than two days old.
    if (t - cleaned < 3_600_000) return;
    cleaned = t;
    const { gscQuotaWindows: w } = db.t;
    db.tx(async (tx) => {
      await tx.delete(w).where(lt(w.window_start, t - 2 * DAY_MS));
    }, "gsc quota cleanup").catch(() => {});
  }

  return {
    async acquire(signal, req = { site: "", kind: "search" }) {
      for (;;) {
        signal?.throwIfAborted();
        const t = now();
        cleanup(t);
        let full: QuotaCheck | null;
        try {
          full = await takeQuota(db, quotaChecks(req, opts.limits, t, opts.project));
        } catch (err) {
          log("warn", "search console quota could not be counted; request sent", { error: String(err) });
          return;
        }
        if (!full) return;
        const wait = full.windowEnd - t;
        if (wait > opts.maxWaitMs) {
          throw new QuotaExhausted(
            `Search Console quota of ${full.what} is used up until ${new Date(full.windowEnd).toISOString()}`,
            full.windowEnd,
          );
        }
        log("info", "search console quota window full; waiting", { limit: full.what, wait_ms: wait });
        // A little jitter so the waiting processes do not all take at the same instant.
        await sleep(wait + Math.random() * 250, signal);
      }
    },
    async refused(req) {
      // Google refused for quota although our counts allowed it (a lower grant, the load limits, another
      // client on the project): the property's minute window (for sitemaps: the shared one) is marked full
      // so that every process waits for the next minute; other properties go on.
      const minute = quotaChecks(req, opts.limits, now(), opts.project).filter(
        (c) => c.bucket.endsWith("/min") && !c.bucket.startsWith("search:project:"),
      );
      await spendQuota(db, minute).catch((err) => log("warn", "search console quota refusal not recorded", { error: String(err) }));
    },
  };
}
