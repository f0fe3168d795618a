import { sql } from "drizzle-orm";
import { keyScopes, taskStatuses } from "../enums.ts";
import { blob, check, index, integer, primaryKey, real, sqliteTable, sqliteView, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// Property names equal the column names (snake_case), so a row is already the API's JSON shape.
// Timestamps are ISO-8601 UTC text (`2026-11-25T03:00:00.000Z`); dates are `YYYY-MM-DD`.
const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`;

export const sites = sqliteTable(
  "sites",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    domain: text("domain").notNull(),
    name: text("name").notNull(),
    category: text("category"),
    is_active: integer("is_active", { mode: "boolean" }).notNull().default(true),
    created_at: text("created_at").notNull().default(now),
    updated_at: text("updated_at").notNull().default(now),
    // Set by DELETE /api/v1/sites/{id}: hidden from lists, never synced, data kept (restore clears it).
    archived_at: text("archived_at"),
  },
  (t) => [
    uniqueIndex("sites_domain_unique").on(t.domain),
    index("sites_name_id_idx").on(t.name, t.id),
    index("sites_active_name_id_idx").on(t.is_active, t.name, t.id),
  ],
);

export const syncTasks = sqliteTable(
  "sync_tasks",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    task_type: text("task_type").notNull(),
    status: text("status", { enum: taskStatuses }).notNull().default("pending"),
    start_date: text("start_date"),
    end_date: text("end_date"),
    total_records: integer("total_records").notNull().default(0),
    created_at: text("created_at").notNull().default(now),
    completed_at: text("completed_at"),
    params: text("params", { mode: "json" }).$type<Record<string, unknown>>().notNull().default({}),
    attempts: integer("attempts").notNull().default(0),
    max_attempts: integer("max_attempts").notNull().default(3),
    progress_done: integer("progress_done").notNull().default(0),
    progress_total: integer("progress_total").notNull().default(0),
    stats_synced: integer("stats_synced").notNull().default(0),
    stats_failed: integer("stats_failed").notNull().default(0),
    stats_skipped: integer("stats_skipped").notNull().default(0),
    error: text("error"),
    worker_pid: integer("worker_pid"),
    locked_until: text("locked_until"),
    heartbeat_at: text("heartbeat_at"),
    run_at: text("run_at").notNull().default(now),
    started_at: text("started_at"),
    cancel_requested: integer("cancel_requested", { mode: "boolean" }).notNull().default(false),
    // The UTC day a scheduled task was created for; null for tasks started by hand.
    scheduled_for: text("scheduled_for"),
  },
  (t) => [
    check("sync_tasks_status_check", sql`${t.status} in ('pending','running','completed','failed','cancelled')`),
    // At most one pending-or-running task per (site, type): the database, not the code, enforces it.
    uniqueIndex("sync_tasks_one_active_idx").on(t.site_id, t.task_type).where(sql`status in ('pending','running')`),
    // The scheduler creates one task per site, type and day, however many processes run it.
    uniqueIndex("sync_tasks_scheduled_idx").on(t.site_id, t.task_type, t.scheduled_for).where(sql`scheduled_for is not null`),
    index("sync_tasks_claim_idx").on(t.status, t.run_at, t.id),
    index("sync_tasks_site_idx").on(t.site_id, t.id),
  ],
);

// The query detail as it was stored before the compact layout (issue 18): a read-only VIEW over
// gsc_query_detail joined to the page and query dictionaries, with the old columns (text date, device and
// search type names, ctr = clicks/impressions, position = sum_position/impressions/100). Kept so older
// reads and users' SQL (the MCP `query` tool) keep working; it cannot use an index on date (a filter on
// `date` scans the site's rows): new reads go to gsc_query_detail / gsc_day_query_totals. Created by the
// custom migration 0015_query_detail_compact (drizzle-kit leaves an `.existing()` view alone).
export const gscPerformanceData = sqliteView("gsc_performance_data", {
  site_id: integer("site_id").notNull(),
  date: text("date").notNull(),
  page: text("page").notNull(),
  query: text("query").notNull(),
  device: text("device").notNull(),
  search_type: text("search_type").notNull(),
  clicks: integer("clicks").notNull(),
  impressions: integer("impressions").notNull(),
  ctr: real("ctr").notNull(),
  position: real("position").notNull(),
}).existing();

// The distinct query strings of each site's rows, for query search: kept by triggers on
// gsc_performance_data and indexed by the FTS5 trigram table gsc_queries_fts (both in the custom
// migration 0005_query_search_fts, which drizzle-kit cannot describe). The FTS index is written in
// batches (indexPendingQueries), not per row: ids up to gsc_queries_indexed.indexed_through are in it,
// later ones are searched by a scan of those alone; AUTOINCREMENT so an id is never reused below that mark.
// A migration that rebuilds gsc_performance_data drops its triggers: re-create them in that migration
// (test/search.index.test.ts checks they exist).
export const gscQueries = sqliteTable(
  "gsc_queries",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    query: text("query").notNull(),
  },
  (t) => [uniqueIndex("gsc_queries_site_query_unique").on(t.site_id, t.query)],
);

// One row: the highest gsc_queries id already in the FTS index.
export const gscQueriesIndexed = sqliteTable(
  "gsc_queries_indexed",
  {
    id: integer("id").primaryKey(),
    indexed_through: integer("indexed_through").notNull().default(0),
  },
  (t) => [check("gsc_queries_indexed_one_row", sql`${t.id} = 1`)],
);

// One row per (site, day, search type) whose rows were all stored: `sync_mode=skip` skips these, and a
// day cut short by a crash has no row here, so it is fetched again. Also the source of final_days in /sync/status.
export const gscSyncedDays = sqliteTable(
  "gsc_synced_days",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    date: text("date").notNull(),
    search_type: text("search_type").notNull(),
    row_count: integer("row_count").notNull().default(0),
    synced_at: text("synced_at").notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.date, t.search_type] })],
);

// Search Console's hourly data (dimensions HOUR, query, page, device; dataState HOURLY_ALL), as the
// original's hourly_rankings. `date` and `hour` come from the HOUR timestamp in its own offset (Google's
// Pacific day), which `hour_timestamp` keeps as sent. Unique on the row key so a re-sync upserts. The
// original's keyword_id and country columns were never filled from Search Console and are left out.
export const hourlyRankings = sqliteTable(
  "hourly_rankings",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    date: text("date").notNull(),
    hour: integer("hour").notNull(),
    hour_timestamp: text("hour_timestamp").notNull(),
    query: text("query").notNull(),
    page: text("page").notNull(),
    device: text("device").notNull(),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    ctr: real("ctr").notNull().default(0),
    position: real("position").notNull().default(0),
    // The moment the pass that last stored this row started: rows of a day an overwrite pass did not
    // store (gone from the source) are the ones older than that pass.
    fetched_at: text("fetched_at").notNull().default(now),
  },
  (t) => [
    uniqueIndex("hourly_rankings_row_unique").on(t.site_id, t.hour_timestamp, t.query, t.page, t.device),
    index("hourly_rankings_site_date_hour_idx").on(t.site_id, t.date, t.hour),
  ],
);

// Processes that hold a database connection, so any process can list all of them. Keyed by host and
// pid: pids repeat across machines (PostgreSQL serves several hosts; one SQLite file, one host).
export const dbConnections = sqliteTable(
  "db_connections",
  {
    host: text("host").notNull(),
    pid: integer("pid").notNull(),
    role: text("role").notNull(),
    started_at: text("started_at").notNull(),
    last_seen_at: text("last_seen_at").notNull(),
    busy_retries: integer("busy_retries").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.host, t.pid] })],
);

// API keys: only a SHA-256 hash of each key is stored, found by the key's public prefix.
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    name: text("name").notNull(),
    prefix: text("prefix").notNull(),
    key_hash: text("key_hash").notNull(),
    scope: text("scope", { enum: keyScopes }).notNull(),
    created_at: text("created_at").notNull().default(now),
    expires_at: text("expires_at"),
    revoked_at: text("revoked_at"),
    last_used_at: text("last_used_at"),
  },
  (t) => [
    uniqueIndex("api_keys_prefix_unique").on(t.prefix),
    check("api_keys_scope_check", sql`${t.scope} in ('read','write','admin','query')`),
  ],
);

// Dashboard sign-ins: the cookie holds a random token; only its SHA-256 is stored. A session ends at
// expires_at, at sign-out (revoked_at), or when its key is revoked or expires (checked on every use).
export const uiSessions = sqliteTable(
  "ui_sessions",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    token_hash: text("token_hash").notNull(),
    key_id: integer("key_id").notNull(),
    created_at: text("created_at").notNull().default(now),
    expires_at: text("expires_at").notNull(),
    revoked_at: text("revoked_at"),
  },
  (t) => [uniqueIndex("ui_sessions_token_hash_unique").on(t.token_hash), index("ui_sessions_key_id_idx").on(t.key_id)],
);

// One row per write through the API, inserted in the same transaction as the change it records
// (outcome 'ok'), or after a refused or failed request (outcome 'denied' / 'failed', with its status).
export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: text("at").notNull().default(now),
    actor: text("actor").notNull(),
    key_id: integer("key_id"),
    ip: text("ip"),
    method: text("method").notNull(),
    action: text("action").notNull(),
    target: text("target"),
    site_id: integer("site_id"),
    request_id: text("request_id"),
    outcome: text("outcome", { enum: ["ok", "denied", "failed"] }).notNull(),
    status: integer("status"),
  },
  (t) => [
    index("audit_log_at_idx").on(t.at, t.id),
    // Rows of keyless requests (local, UI sessions) are not in it: one index entry less a create (~3 µs on SQLite).
    index("audit_log_key_idx").on(t.key_id, t.id).where(sql`key_id is not null`),
    index("audit_log_site_idx").on(t.site_id, t.id),
  ],
);

// Shared request counters of the rate limiter: each worker reserves tokens of a (bucket, minute) here.
export const rateLimitWindows = sqliteTable(
  "rate_limit_windows",
  {
    bucket: text("bucket").notNull(),
    window_start: integer("window_start").notNull(),
    used: integer("used").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.window_start] })],
);

// Brand terms of a site (insights: brand vs non-brand): a query containing any of them, ignoring case, is a brand query.
export const siteBrandTerms = sqliteTable(
  "site_brand_terms",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    term: text("term").notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.term] })],
);

// Where alerts go: a webhook (its body signed with HMAC-SHA256 under `secret`) or an e-mail address.
// `events`: a JSON list of the event kinds it receives (empty: all); `site_id` null: every site.
export const alertChannels = sqliteTable(
  "alert_channels",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    kind: text("kind", { enum: ["webhook", "email"] }).notNull(),
    target: text("target").notNull(),
    secret: text("secret"),
    events: text("events", { mode: "json" }).$type<string[]>().notNull(),
    site_id: integer("site_id").references(() => sites.id, { onDelete: "cascade" }),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [check("alert_channels_kind_check", sql`${t.kind} in ('webhook','email')`)],
);

// Per-site rule: alert when the site's (or any of its pages') clicks of the last 7 days fell more than
// `drop_share` below the 7 days before, from at least `min_clicks`.
export const alertRules = sqliteTable(
  "alert_rules",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    scope: text("scope", { enum: ["site", "page"] }).notNull(),
    drop_share: real("drop_share").notNull(),
    min_clicks: integer("min_clicks").notNull().default(50),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [uniqueIndex("alert_rules_site_scope_unique").on(t.site_id, t.scope)],
);

// One row per alert raised; `dedupe_key` makes raising it again (another process, another pass) a no-op.
export const alertEvents = sqliteTable(
  "alert_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    kind: text("kind").notNull(),
    site_id: integer("site_id"),
    dedupe_key: text("dedupe_key").notNull(),
    payload: text("payload", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [uniqueIndex("alert_events_dedupe_unique").on(t.dedupe_key)],
);

// The delivery log: one row per (event, channel), retried with backoff until delivered or out of attempts.
export const alertDeliveries = sqliteTable(
  "alert_deliveries",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    event_id: integer("event_id")
      .notNull()
      .references(() => alertEvents.id, { onDelete: "cascade" }),
    channel_id: integer("channel_id")
      .notNull()
      .references(() => alertChannels.id, { onDelete: "cascade" }),
    status: text("status", { enum: ["pending", "delivered", "failed"] })
      .notNull()
      .default("pending"),
    attempts: integer("attempts").notNull().default(0),
    next_attempt_at: text("next_attempt_at").notNull().default(now),
    last_status: integer("last_status"),
    last_error: text("last_error"),
    delivered_at: text("delivered_at"),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [
    uniqueIndex("alert_deliveries_event_channel_unique").on(t.event_id, t.channel_id),
    index("alert_deliveries_due_idx").on(t.status, t.next_attempt_at),
  ],
);

export type Site = typeof sites.$inferSelect;
export type ApiKey = typeof apiKeys.$inferSelect;
export type AuditRow = typeof auditLog.$inferSelect;
export type SyncTask = typeof syncTasks.$inferSelect;
export type NewSyncTask = typeof syncTasks.$inferInsert;
/** A Search Console row of the query detail as the sync receives it (and the compatibility view shows it). */
export type GscRow = typeof gscPerformanceData.$inferSelect;
export type GscSyncedDay = typeof gscSyncedDays.$inferSelect;
export type HourlyRow = typeof hourlyRankings.$inferSelect;
export type AlertChannel = typeof alertChannels.$inferSelect;
export type AlertRule = typeof alertRules.$inferSelect;
export type AlertDelivery = typeof alertDeliveries.$inferSelect;

// Search Console's grains (issues 17/18; docs/design/grains.md). day = days since 1970-01-01 of Google's
// (Pacific) date; type = 1-based index in searchTypeCodes; device = index in deviceCodes (0 = none);
// country = ISO alpha-3 lower case, '' = no country dimension; sum_position = round(position ×
// impressions × sumPositionScale). CTR = Σclicks/Σimpressions, position = Σsum_position/Σimpressions/scale.
// The fact tables (property, page and appearance totals, the query detail and its rollup) are WITHOUT ROWID,
// clustered on their primary key (migrations 0016 and 0021 say so: drizzle-kit cannot; keep it in a rebuild).

/** Page URL dictionary per site (integer ids in the fact tables). Queries use gsc_queries. */
export const gscPages = sqliteTable(
  "gsc_pages",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    page: text("page").notNull(),
  },
  (t) => [uniqueIndex("gsc_pages_site_page_unique").on(t.site_id, t.page)],
);

/** Property totals (no query/page dimension: Search Console's true totals) by country × device. */
export const gscPropertyTotals = sqliteTable(
  "gsc_property_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    country: text("country").notNull().default(""),
    device: integer("device").notNull().default(0),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    sum_position: integer("sum_position").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.country, t.device] })],
);

/** Page totals (aggregation byPage) by page × country × device. */
export const gscPageTotals = sqliteTable(
  "gsc_page_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    page_id: integer("page_id").notNull(),
    country: text("country").notNull().default(""),
    device: integer("device").notNull().default(0),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    sum_position: integer("sum_position").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.page_id, t.country, t.device] })],
);

/**
 * Page totals per week (issue 18): gsc_page_totals summed over every country and device, per week number
 * floor(day / 7) (days 7w .. 7w + 6, Thursday to Wednesday), kept at ingest by replaceDayGrains
 * (src/sync/rollups.ts). Page reports over a window read its whole weeks and the edge days from the daily rows.
 */
export const gscWeekPageTotals = sqliteTable(
  "gsc_week_page_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    week: integer("week").notNull(),
    type: integer("type").notNull(),
    page_id: integer("page_id").notNull(),
    clicks: integer("clicks").notNull(),
    impressions: integer("impressions").notNull(),
    sum_position: integer("sum_position").notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.week, t.type, t.page_id] })],
);

/** Query detail: page × query × device (no country: the 50,000-row cap per day; grains.md). */
export const gscQueryDetail = sqliteTable(
  "gsc_query_detail",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    page_id: integer("page_id").notNull(),
    query_id: integer("query_id").notNull(),
    device: integer("device").notNull().default(0),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    sum_position: integer("sum_position").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.page_id, t.query_id, t.device] })],
);

/** Rollup of the query detail per day × query, kept at ingest so query reports do not scan the detail. */
export const gscDayQueryTotals = sqliteTable(
  "gsc_day_query_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    query_id: integer("query_id").notNull(),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    sum_position: integer("sum_position").notNull().default(0),
  },
  // Keyed by day (migration 0032, WITHOUT ROWID): a synced day's rows are one new key range, so a day's write
  // dirties its own pages, not a page of every query's range (0028 keyed it by query: 716 WAL pages a day at 1 day
  // stored, 37,544 at 160). No second index (issue 18: <= 60 B per detail row): one query's rows are a seek per
  // stored day (rollupDays), every query of a window is the window's key range or the packed sums.
  (t) => [primaryKey({ columns: [t.site_id, t.type, t.day, t.query_id] })],
);

/**
 * Named queries per day and type (issue 18): distinct query ids of the day's query detail over every device
 * (device 0; no other value is kept: migration 0025/pg 0019), kept at ingest (src/sync/rollups.ts) so trends
 * do not count the rollup's rows.
 */
export const gscDayQueryCounts = sqliteTable(
  "gsc_day_query_counts",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    device: integer("device").notNull(),
    queries: integer("queries").notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.device] })],
);

/**
 * Each query's newest day in the day × query rollup, per search type (issue 18), kept by triggers on
 * gsc_day_query_totals (migration 0029): the queries of a window that ends on or after the newest day are those
 * whose newest day is in it, counted here (one row a query) instead of from the window's rollup rows (one a query
 * and day). No foreign key: a site's rows go when its rollup rows do (the triggers).
 */
export const gscQueryLastDays = sqliteTable(
  "gsc_query_last_days",
  {
    site_id: integer("site_id").notNull(),
    type: integer("type").notNull(),
    query_id: integer("query_id").notNull(),
    day: integer("day").notNull(),
    // The query's oldest stored day (migrations sqlite 0033 / pg 0028): a query whose only day is deleted goes at
    // once, and a deleted newest day is looked for again no further back than this.
    first_day: integer("first_day").notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.type, t.query_id] })],
);

/**
 * The day × query rollup of one (site, day, type) in one row (issue 18): every query's sums of that day packed in
 * `data` (src/sync/day-sums.ts: per query in id order, varints of the id's gap, clicks, impressions,
 * sum_position), kept at ingest (src/sync/rollups.ts). Reports over every query of a window decode the window's
 * rows in JS instead of walking the rollup's whole history: flat with the history, ~3.4 B per detail row at 5 M.
 */
export const gscDayQuerySums = sqliteTable(
  "gsc_day_query_sums",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    queries: integer("queries").notNull(),
    data: blob("data", { mode: "buffer" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type] })],
);

// A day × type too big for one transaction (over SYNC_ATOMIC_DAY_ROWS detail rows) is staged here while it
// is fetched, keyed by the sync task (which stages one day × type at a time), then switched into
// gsc_query_detail / gsc_day_query_totals in one short transaction (src/sync/staged-day.ts): readers see
// the old day or the new one. A crashed task's rows are cleared when it runs again, or swept once it is
// no longer pending or running.
// drizzle-kit cannot say WITHOUT ROWID: the migration that made these tables says it (as 0016 does for the detail).
export const gscStagedDetail = sqliteTable(
  "gsc_staged_detail",
  {
    task_id: integer("task_id").notNull(),
    page_id: integer("page_id").notNull(),
    query_id: integer("query_id").notNull(),
    device: integer("device").notNull(),
    clicks: integer("clicks").notNull(),
    impressions: integer("impressions").notNull(),
    sum_position: integer("sum_position").notNull(),
  },
  (t) => [primaryKey({ columns: [t.task_id, t.page_id, t.query_id, t.device] })],
);

/** The staged day's rollup per query (built from gsc_staged_detail before the switch). */
export const gscStagedQueryTotals = sqliteTable(
  "gsc_staged_query_totals",
  {
    task_id: integer("task_id").notNull(),
    query_id: integer("query_id").notNull(),
    clicks: integer("clicks").notNull(),
    impressions: integer("impressions").notNull(),
    sum_position: integer("sum_position").notNull(),
  },
  (t) => [primaryKey({ columns: [t.task_id, t.query_id] })],
);

/** Search appearance totals (the dimension alone, fetched in two steps as Google requires). */
export const gscAppearanceTotals = sqliteTable(
  "gsc_appearance_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    appearance: text("appearance").notNull(),
    clicks: integer("clicks").notNull().default(0),
    impressions: integer("impressions").notNull().default(0),
    sum_position: integer("sum_position").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.appearance] })],
);

/** Completeness per (site, day, type): rows per grain, truncation, anonymized share, dataState. */
export const gscDayCompleteness = sqliteTable(
  "gsc_day_completeness",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    property_rows: integer("property_rows").notNull().default(0),
    page_rows: integer("page_rows").notNull().default(0),
    detail_rows: integer("detail_rows").notNull().default(0),
    appearance_rows: integer("appearance_rows").notNull().default(0),
    page_truncated: integer("page_truncated", { mode: "boolean" }).notNull().default(false),
    detail_truncated: integer("detail_truncated", { mode: "boolean" }).notNull().default(false),
    anonymized_share: real("anonymized_share"),
    data_state: text("data_state").notNull().default("final"),
    derived: integer("derived", { mode: "boolean" }).notNull().default(false),
    fetched_at: text("fetched_at").notNull().default(now),
  },
  (t) => [
    primaryKey({ columns: [t.site_id, t.day, t.type] }),
    check("gsc_day_completeness_state_check", sql`${t.data_state} in ('final','provisional')`),
  ],
);

/** Corrections log: a re-fetched day whose property totals changed (old and new, when). */
export const gscCorrections = sqliteTable(
  "gsc_corrections",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    old_clicks: integer("old_clicks").notNull(),
    old_impressions: integer("old_impressions").notNull(),
    old_sum_position: integer("old_sum_position").notNull(),
    new_clicks: integer("new_clicks").notNull(),
    new_impressions: integer("new_impressions").notNull(),
    new_sum_position: integer("new_sum_position").notNull(),
    detected_at: text("detected_at").notNull().default(now),
  },
  (t) => [index("gsc_corrections_site_day_idx").on(t.site_id, t.day)],
);

// Google accounts syncs read Search Console with (issue 20): each signed-in user (its refresh token stays in
// its authorized-user file, 0600, never here) and the service account. `project`: the Google Cloud project
// whose quota its requests count against. `properties`: what sites.list last answered, `{site_url, permission_level}`.
export const googleAccounts = sqliteTable(
  "google_accounts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    email: text("email").notNull(),
    kind: text("kind", { enum: ["user", "service"] }).notNull(),
    project: text("project"),
    properties: text("properties", { mode: "json" }).$type<{ site_url: string; permission_level: string }[]>().notNull().default([]),
    properties_checked_at: text("properties_checked_at"),
    error: text("error"),
    created_at: text("created_at").notNull().default(now),
    updated_at: text("updated_at").notNull().default(now),
  },
  (t) => [
    uniqueIndex("google_accounts_email_unique").on(t.email),
    check("google_accounts_kind_check", sql`${t.kind} in ('user','service')`),
  ],
);

// A user account's Google sign-in (client id and secret, refresh token, token URL) as JSON, sealed with
// GSC_SIGN_IN_KEY when set (src/google/sealing.ts): every host on one database syncs with it, not only the
// one whose files hold it. Not in google_accounts, whose rows the API shows.
export const googleSignIns = sqliteTable("google_sign_ins", {
  account_id: integer("account_id")
    .primaryKey()
    .references(() => googleAccounts.id, { onDelete: "cascade" }),
  sealed: text("sealed").notNull(),
  updated_at: text("updated_at").notNull().default(now),
});

// Which account a site's syncs use: chosen `auto` (from the accounts' property lists) or `manual`
// (API/CLI). `account_id` null with a `note`: unbound, and why (its account was removed).
export const siteGoogleAccounts = sqliteTable("site_google_accounts", {
  site_id: integer("site_id")
    .primaryKey()
    .references(() => sites.id, { onDelete: "cascade" }),
  account_id: integer("account_id").references(() => googleAccounts.id, { onDelete: "set null" }),
  chosen: text("chosen", { enum: ["auto", "manual"] }).notNull(),
  note: text("note"),
  updated_at: text("updated_at").notNull().default(now),
});

export type GoogleAccount = typeof googleAccounts.$inferSelect;

// Idempotency-Key (src/idempotency): the first answer to a write sent with a key, replayed for a retry
// with the same key and request within 24 h. status null: the first request is still running (until
// locked_until, epoch ms). Keys are per owner (API key, or the keyless principal).
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    owner: text("owner").notNull(),
    key: text("key").notNull(),
    fingerprint: text("fingerprint").notNull(),
    method: text("method").notNull(),
    path: text("path").notNull(),
    status: integer("status"),
    headers: text("headers"),
    body: text("body"),
    // The process running the first request (host, pid): a key held by a process that is gone is free at once.
    holder_host: text("holder_host"),
    holder_pid: integer("holder_pid"),
    created_at: text("created_at").notNull().default(now),
    locked_until: integer("locked_until").notNull(),
    expires_at: integer("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.owner, t.key] }), index("idempotency_keys_expires_idx").on(t.expires_at)],
);

// PostgreSQL's commit tokens (see src/db/pg/schema.ts); unused on SQLite, whose commits are local.
export const commitTokens = sqliteTable(
  "commit_tokens",
  {
    at: integer("at").notNull(),
    token: integer("token").notNull(),
    burned: integer("burned", { mode: "boolean" }).notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.at, t.token] })],
);

// Search Console quota shared by every process and host (src/sync/gsc/quota.ts): requests counted per
// bucket (a limit's scope, e.g. one property's search analytics per minute) and fixed window (epoch ms of its start).
export const gscQuotaWindows = sqliteTable(
  "gsc_quota_windows",
  {
    bucket: text("bucket").notNull(),
    window_start: integer("window_start").notNull(),
    used: integer("used").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.window_start] })],
);

/** A sitemap of a site as Search Console last listed it (sitemaps.list); `removed_at` once it is no longer listed. */
export const gscSitemaps = sqliteTable(
  "gsc_sitemaps",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    path: text("path").notNull(),
    type: text("type"),
    last_submitted: text("last_submitted"),
    last_downloaded: text("last_downloaded"),
    is_pending: integer("is_pending", { mode: "boolean" }).notNull().default(false),
    is_sitemaps_index: integer("is_sitemaps_index", { mode: "boolean" }).notNull().default(false),
    warnings: integer("warnings").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    contents: text("contents", { mode: "json" }).$type<{ type: string; submitted: number }[]>().notNull().default([]),
    first_seen_at: text("first_seen_at").notNull().default(now),
    checked_at: text("checked_at").notNull().default(now),
    removed_at: text("removed_at"),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.path] })],
);

/** Each change of a sitemap's state as seen by a sitemaps sync (one row per change, not per check). */
export const gscSitemapHistory = sqliteTable(
  "gsc_sitemap_history",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    path: text("path").notNull(),
    seen_at: text("seen_at").notNull().default(now),
    type: text("type"),
    last_submitted: text("last_submitted"),
    last_downloaded: text("last_downloaded"),
    is_pending: integer("is_pending", { mode: "boolean" }).notNull().default(false),
    is_sitemaps_index: integer("is_sitemaps_index", { mode: "boolean" }).notNull().default(false),
    warnings: integer("warnings").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    contents: text("contents", { mode: "json" }).$type<{ type: string; submitted: number }[]>().notNull().default([]),
    removed: integer("removed", { mode: "boolean" }).notNull().default(false),
  },
  (t) => [index("gsc_sitemap_history_site_path_idx").on(t.site_id, t.path, t.id)],
);

/** One URL inspection (urlInspection.index.inspect) of a page: kept over time, the newest row is the page's current status. */
export const gscUrlInspections = sqliteTable(
  "gsc_url_inspections",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    inspected_at: text("inspected_at").notNull().default(now),
    verdict: text("verdict"),
    coverage_state: text("coverage_state"),
    indexing_state: text("indexing_state"),
    robots_txt_state: text("robots_txt_state"),
    page_fetch_state: text("page_fetch_state"),
    last_crawl_time: text("last_crawl_time"),
    crawled_as: text("crawled_as"),
    google_canonical: text("google_canonical"),
    user_canonical: text("user_canonical"),
    sitemaps: text("sitemaps", { mode: "json" }).$type<string[]>().notNull().default([]),
    referring_urls: text("referring_urls", { mode: "json" }).$type<string[]>().notNull().default([]),
    mobile_verdict: text("mobile_verdict"),
    rich_results_verdict: text("rich_results_verdict"),
    inspection_link: text("inspection_link"),
    // Why the page was inspected: clicks (a top page), sitemap (listed in one), request (asked for by name).
    chosen_by: text("chosen_by").notNull().default("request"),
  },
  (t) => [
    index("gsc_url_inspections_site_url_idx").on(t.site_id, t.url, t.id),
    index("gsc_url_inspections_site_id_idx").on(t.site_id, t.id),
  ],
);
export type SitemapRow = typeof gscSitemaps.$inferSelect;
export type SitemapHistoryRow = typeof gscSitemapHistory.$inferSelect;
export type UrlInspectionRow = typeof gscUrlInspections.$inferSelect;
