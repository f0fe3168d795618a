import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  pgView,
  primaryKey,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { keyScopes, taskStatuses } from "../enums.ts";

// The PostgreSQL twin of src/db/sqlite/schema.ts: same tables, column names, nullability, defaults, unique keys,
// partial unique indexes and foreign keys (test/schema-drift.test.ts fails when they drift apart).
// Types map as: SQLite integer -> integer (bigint for the ids of tables that grow with synced data),
// integer boolean -> boolean, real (8 bytes) -> double precision, JSON text -> jsonb.
// Timestamps and dates stay ISO-8601 UTC text (`2026-11-25T03:00:00.000Z`, `YYYY-MM-DD`), exactly as on
// SQLite, so a row is the same JSON on both engines and a query comparing them is written once.
// clock_timestamp(), not now(): now() is the transaction's start, and one transaction holds many writes.
const now = sql`to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

// Ids are identity columns "by default", so `bun run db:copy` can insert the SQLite ids as they are
// (and then moves each sequence past the highest id).
const id = () => integer("id").primaryKey().generatedByDefaultAsIdentity();
const bigId = () => bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity();

export const sites = pgTable(
  "sites",
  {
    id: id(),
    domain: text("domain").notNull(),
    name: text("name").notNull(),
    category: text("category"),
    is_active: boolean("is_active").notNull().default(true),
    created_at: text("created_at").notNull().default(now),
    updated_at: text("updated_at").notNull().default(now),
    archived_at: text("archived_at"),
  },
  (t) => [
    uniqueIndex("sites_domain_unique").on(t.domain),
    index("sites_name_id_idx").on(t.name, t.id),
    index("sites_active_name_id_idx").on(t.is_active, t.name, t.id),
  ],
);

export const syncTasks = pgTable(
  "sync_tasks",
  {
    id: id(),
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
    params: jsonb("params").$type<Record<string, unknown>>().notNull().default({}),
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
    cancel_requested: boolean("cancel_requested").notNull().default(false),
    scheduled_for: text("scheduled_for"),
  },
  (t) => [
    check("sync_tasks_status_check", sql`${t.status} in ('pending','running','completed','failed','cancelled')`),
    // At most one pending-or-running task per (site, type), and one scheduled task per site, type and day.
    uniqueIndex("sync_tasks_one_active_idx").on(t.site_id, t.task_type).where(sql`status in ('pending','running')`),
    uniqueIndex("sync_tasks_scheduled_idx").on(t.site_id, t.task_type, t.scheduled_for).where(sql`scheduled_for is not null`),
    index("sync_tasks_claim_idx").on(t.status, t.run_at, t.id),
    index("sync_tasks_site_idx").on(t.site_id, t.id),
  ],
);

// The old query detail as a read-only VIEW over gsc_query_detail and the dictionaries (as on SQLite;
// custom migration 0011_query_detail_compact).
export const gscPerformanceData = pgView("gsc_performance_data", {
  site_id: integer("site_id").notNull(),
  date: text("date").notNull(),
  page: text("page").notNull(),
  query: text("query").notNull(),
  device: text("device").notNull(),
  search_type: text("search_type").notNull(),
  clicks: integer("clicks").notNull(),
  impressions: integer("impressions").notNull(),
  ctr: doublePrecision("ctr").notNull(),
  position: doublePrecision("position").notNull(),
}).existing();

// Distinct query strings per site, kept by triggers on gsc_performance_data as on SQLite
// (migrations/pg/0002_query_search_triggers.sql). Substring search goes through the pg_trgm GIN index
// (SQLite: the FTS5 table gsc_queries_fts); what a search needs to know: src/db/pg/search-index.ts.
export const gscQueries = pgTable(
  "gsc_queries",
  {
    id: bigId(),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    query: text("query").notNull(),
  },
  (t) => [
    uniqueIndex("gsc_queries_site_query_unique").on(t.site_id, t.query),
    // PostgreSQL only (the drift test's list of engine-specific search indexes).
    index("gsc_queries_query_trgm_idx").using("gin", t.query.op("gin_trgm_ops")),
  ],
);

// One row, as on SQLite, where it marks the highest gsc_queries id in the FTS index (batched indexing).
// Unused on PostgreSQL: the trigram index is maintained with each write. db:copy sets it on either target.
export const gscQueriesIndexed = pgTable(
  "gsc_queries_indexed",
  {
    id: integer("id").primaryKey(),
    indexed_through: bigint("indexed_through", { mode: "number" }).notNull().default(0),
  },
  (t) => [check("gsc_queries_indexed_one_row", sql`${t.id} = 1`)],
);

export const gscSyncedDays = pgTable(
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

export const hourlyRankings = pgTable(
  "hourly_rankings",
  {
    id: bigId(),
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
    ctr: doublePrecision("ctr").notNull().default(0),
    position: doublePrecision("position").notNull().default(0),
    fetched_at: text("fetched_at").notNull().default(now),
  },
  (t) => [
    uniqueIndex("hourly_rankings_row_unique").on(t.site_id, t.hour_timestamp, t.query, t.page, t.device),
    index("hourly_rankings_site_date_hour_idx").on(t.site_id, t.date, t.hour),
  ],
);

// Keyed by host and pid: several machines serve one database, and pids repeat across them.
export const dbConnections = pgTable(
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

export const apiKeys = pgTable(
  "api_keys",
  {
    id: id(),
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

export const uiSessions = pgTable(
  "ui_sessions",
  {
    id: id(),
    token_hash: text("token_hash").notNull(),
    key_id: integer("key_id").notNull(),
    created_at: text("created_at").notNull().default(now),
    expires_at: text("expires_at").notNull(),
    revoked_at: text("revoked_at"),
  },
  (t) => [uniqueIndex("ui_sessions_token_hash_unique").on(t.token_hash), index("ui_sessions_key_id_idx").on(t.key_id)],
);

export const auditLog = pgTable(
  "audit_log",
  {
    id: bigId(),
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

export const rateLimitWindows = pgTable(
  "rate_limit_windows",
  {
    bucket: text("bucket").notNull(),
    // Epoch milliseconds on SQLite's 64-bit integer: past int4's range.
    window_start: bigint("window_start", { mode: "number" }).notNull(),
    used: integer("used").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.window_start] })],
);

// Brand terms of a site (insights: brand vs non-brand): a query containing any of them, ignoring case, is a brand query.
export const siteBrandTerms = pgTable(
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
export const alertChannels = pgTable(
  "alert_channels",
  {
    id: id(),
    kind: text("kind", { enum: ["webhook", "email"] }).notNull(),
    target: text("target").notNull(),
    secret: text("secret"),
    events: jsonb("events").$type<string[]>().notNull(),
    site_id: integer("site_id").references(() => sites.id, { onDelete: "cascade" }),
    active: boolean("active").notNull().default(true),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [check("alert_channels_kind_check", sql`${t.kind} in ('webhook','email')`)],
);

// Per-site rule: alert when the site's (or any of its pages') clicks of the last 7 days fell more than
// `drop_share` below the 7 days before, from at least `min_clicks`.
export const alertRules = pgTable(
  "alert_rules",
  {
    id: id(),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    scope: text("scope", { enum: ["site", "page"] }).notNull(),
    drop_share: doublePrecision("drop_share").notNull(),
    min_clicks: integer("min_clicks").notNull().default(50),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [uniqueIndex("alert_rules_site_scope_unique").on(t.site_id, t.scope)],
);

// One row per alert raised; `dedupe_key` makes raising it again (another process, another pass) a no-op.
export const alertEvents = pgTable(
  "alert_events",
  {
    id: id(),
    kind: text("kind").notNull(),
    site_id: integer("site_id"),
    dedupe_key: text("dedupe_key").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    created_at: text("created_at").notNull().default(now),
  },
  (t) => [uniqueIndex("alert_events_dedupe_unique").on(t.dedupe_key)],
);

// The delivery log: one row per (event, channel), retried with backoff until delivered or out of attempts.
export const alertDeliveries = pgTable(
  "alert_deliveries",
  {
    id: id(),
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

// Search Console's grains (issues 17/18; docs/design/grains.md). day = days since 1970-01-01 of Google's
// (Pacific) date; type = 1-based index in searchTypeCodes; device = index in deviceCodes (0 = none);
// country = ISO alpha-3 lower case, '' = no country dimension; sum_position = round(position ×
// impressions × sumPositionScale). CTR = Σclicks/Σimpressions, position = Σsum_position/Σimpressions/scale.

/** Page URL dictionary per site (integer ids in the fact tables). Queries use gsc_queries. */
export const gscPages = pgTable(
  "gsc_pages",
  {
    id: bigId(),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    page: text("page").notNull(),
  },
  (t) => [uniqueIndex("gsc_pages_site_page_unique").on(t.site_id, t.page)],
);

/** Property totals (no query/page dimension: Search Console's true totals) by country × device. */
export const gscPropertyTotals = pgTable(
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
    sum_position: bigint("sum_position", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.country, t.device] })],
);

/** Page totals (aggregation byPage) by page × country × device. */
export const gscPageTotals = pgTable(
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
    sum_position: bigint("sum_position", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.page_id, t.country, t.device] })],
);

/**
 * Page totals per week (issue 18): gsc_page_totals summed over every country and device, per week number
 * floor(day / 7) (days 7w .. 7w + 6, Thursday to Wednesday), kept at ingest by replaceDayGrains
 * (src/sync/rollups.ts). Page reports over a window read its whole weeks and the edge days from the daily rows.
 */
export const gscWeekPageTotals = pgTable(
  "gsc_week_page_totals",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    week: integer("week").notNull(),
    type: integer("type").notNull(),
    page_id: integer("page_id").notNull(),
    clicks: bigint("clicks", { mode: "number" }).notNull(),
    impressions: bigint("impressions", { mode: "number" }).notNull(),
    sum_position: bigint("sum_position", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.week, t.type, t.page_id] })],
);

/** Query detail: page × query × device (no country: the 50,000-row cap per day; grains.md). */
export const gscQueryDetail = pgTable(
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
    sum_position: bigint("sum_position", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.page_id, t.query_id, t.device] })],
);

/** Rollup of the query detail per day × query, kept at ingest so query reports do not scan the detail. */
export const gscDayQueryTotals = pgTable(
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
    sum_position: bigint("sum_position", { mode: "number" }).notNull().default(0),
  },
  // Keyed by query as on SQLite (migration 0022); PostgreSQL's heap keeps its own index on (site_id, day, type,
  // query_id), made by that migration only (not a key: schema-drift compares keys), for the day's writes and reads.
  // The key carries the sums (INCLUDE, migration 0027: a read by the key is index-only; drizzle cannot say INCLUDE).
  (t) => [primaryKey({ columns: [t.site_id, t.query_id, t.day, t.type] })],
);

/**
 * Named queries per day and type (issue 18): distinct query ids of the day's query detail over every device
 * (device 0; no other value is kept: migration 0025/pg 0019), kept at ingest (src/sync/rollups.ts) so trends
 * do not count the rollup's rows.
 */
export const gscDayQueryCounts = pgTable(
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
 * gsc_day_query_totals (migration 0023; since 0025 the writers of one site and type keep it one at a time): the
 * queries of a window that ends on or after the newest day are those whose newest day is in it, counted here (one
 * row a query) instead of from the window's rollup rows (one a query and day). No foreign key: a site's rows go when its rollup rows do (the triggers).
 */
export const gscQueryLastDays = pgTable(
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

/** PostgreSQL's bytea as bytes (node-postgres gives a Buffer). */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" });

/**
 * The day × query rollup of one (site, day, type) in one row (issue 18): every query's sums of that day packed in
 * `data` (src/sync/day-sums.ts: per query in id order, varints of the id's gap, clicks, impressions,
 * sum_position), kept at ingest (src/sync/rollups.ts). Reports over every query of a window decode the window's
 * rows in JS instead of walking the rollup's whole history: flat with the history, ~3.4 B per detail row at 5 M.
 */
export const gscDayQuerySums = pgTable(
  "gsc_day_query_sums",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    queries: integer("queries").notNull(),
    data: bytea("data").notNull(),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type] })],
);

// A day × type too big for one transaction (over SYNC_ATOMIC_DAY_ROWS detail rows) is staged here while it
// is fetched, keyed by the sync task (which stages one day × type at a time), then switched into
// gsc_query_detail / gsc_day_query_totals in one short transaction (src/sync/staged-day.ts): readers see
// the old day or the new one. A crashed task's rows are cleared when it runs again, or swept once it is
// no longer pending or running.
export const gscStagedDetail = pgTable(
  "gsc_staged_detail",
  {
    task_id: integer("task_id").notNull(),
    page_id: integer("page_id").notNull(),
    query_id: integer("query_id").notNull(),
    device: integer("device").notNull(),
    clicks: integer("clicks").notNull(),
    impressions: integer("impressions").notNull(),
    sum_position: bigint("sum_position", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.task_id, t.page_id, t.query_id, t.device] })],
);

/** The staged day's rollup per query (built from gsc_staged_detail before the switch). */
export const gscStagedQueryTotals = pgTable(
  "gsc_staged_query_totals",
  {
    task_id: integer("task_id").notNull(),
    query_id: integer("query_id").notNull(),
    clicks: integer("clicks").notNull(),
    impressions: integer("impressions").notNull(),
    sum_position: bigint("sum_position", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.task_id, t.query_id] })],
);

/** Search appearance totals (the dimension alone, fetched in two steps as Google requires). */
export const gscAppearanceTotals = pgTable(
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
    sum_position: bigint("sum_position", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.day, t.type, t.appearance] })],
);

/** Completeness per (site, day, type): rows per grain, truncation, anonymized share, dataState. */
export const gscDayCompleteness = pgTable(
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
    page_truncated: boolean("page_truncated").notNull().default(false),
    detail_truncated: boolean("detail_truncated").notNull().default(false),
    anonymized_share: doublePrecision("anonymized_share"),
    data_state: text("data_state").notNull().default("final"),
    derived: boolean("derived").notNull().default(false),
    fetched_at: text("fetched_at").notNull().default(now),
  },
  (t) => [
    primaryKey({ columns: [t.site_id, t.day, t.type] }),
    check("gsc_day_completeness_state_check", sql`${t.data_state} in ('final','provisional')`),
  ],
);

/** Corrections log: a re-fetched day whose property totals changed (old and new, when). */
export const gscCorrections = pgTable(
  "gsc_corrections",
  {
    id: bigId(),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    day: integer("day").notNull(),
    type: integer("type").notNull(),
    old_clicks: integer("old_clicks").notNull(),
    old_impressions: integer("old_impressions").notNull(),
    old_sum_position: bigint("old_sum_position", { mode: "number" }).notNull(),
    new_clicks: integer("new_clicks").notNull(),
    new_impressions: integer("new_impressions").notNull(),
    new_sum_position: bigint("new_sum_position", { mode: "number" }).notNull(),
    detected_at: text("detected_at").notNull().default(now),
  },
  (t) => [index("gsc_corrections_site_day_idx").on(t.site_id, t.day)],
);

// Google accounts syncs read Search Console with (issue 20): see the SQLite schema.
export const googleAccounts = pgTable(
  "google_accounts",
  {
    id: id(),
    email: text("email").notNull(),
    kind: text("kind", { enum: ["user", "service"] }).notNull(),
    project: text("project"),
    properties: jsonb("properties").$type<{ site_url: string; permission_level: string }[]>().notNull().default([]),
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

// A user account's Google sign-in, sealed (see the SQLite schema).
export const googleSignIns = pgTable("google_sign_ins", {
  account_id: integer("account_id")
    .primaryKey()
    .references(() => googleAccounts.id, { onDelete: "cascade" }),
  sealed: text("sealed").notNull(),
  updated_at: text("updated_at").notNull().default(now),
});

// Which account a site's syncs use (see the SQLite schema).
export const siteGoogleAccounts = pgTable("site_google_accounts", {
  site_id: integer("site_id")
    .primaryKey()
    .references(() => sites.id, { onDelete: "cascade" }),
  account_id: integer("account_id").references(() => googleAccounts.id, { onDelete: "set null" }),
  chosen: text("chosen", { enum: ["auto", "manual"] }).notNull(),
  note: text("note"),
  updated_at: text("updated_at").notNull().default(now),
});

// Idempotency-Key (src/idempotency): the first answer to a write sent with a key, replayed for a retry
// with the same key and request within 24 h. status null: the first request is still running (until
// locked_until, epoch ms). Keys are per owner (API key, or the keyless principal).
export const idempotencyKeys = pgTable(
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
    // Epoch milliseconds on SQLite's 64-bit integer: past int4's range.
    locked_until: bigint("locked_until", { mode: "number" }).notNull(),
    expires_at: bigint("expires_at", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.owner, t.key] }), index("idempotency_keys_expires_idx").on(t.expires_at)],
);

// A row written by each PostgreSQL write transaction (src/db/pg/engine.ts): when the connection is lost during
// COMMIT, reading it back on a new connection tells whether the transaction committed (xids can be handed
// out again after a crash; this cannot). `burned`: inserted by that check for a transaction that did not
// commit, so it never can. Swept after 15 minutes. Unused on SQLite (its commits are local).
export const commitTokens = pgTable(
  "commit_tokens",
  {
    // Epoch milliseconds when written: the sweep deletes by a range of it.
    at: bigint("at", { mode: "number" }).notNull(),
    // 53 random bits (a JavaScript number): unique enough within one millisecond.
    token: bigint("token", { mode: "number" }).notNull(),
    burned: boolean("burned").notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.at, t.token] })],
);

export const gscQuotaWindows = pgTable(
  "gsc_quota_windows",
  {
    bucket: text("bucket").notNull(),
    // Epoch milliseconds: past int4's range.
    window_start: bigint("window_start", { mode: "number" }).notNull(),
    used: integer("used").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.window_start] })],
);

export const gscSitemaps = pgTable(
  "gsc_sitemaps",
  {
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    path: text("path").notNull(),
    type: text("type"),
    last_submitted: text("last_submitted"),
    last_downloaded: text("last_downloaded"),
    is_pending: boolean("is_pending").notNull().default(false),
    is_sitemaps_index: boolean("is_sitemaps_index").notNull().default(false),
    warnings: integer("warnings").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    contents: jsonb("contents").$type<{ type: string; submitted: number }[]>().notNull().default([]),
    first_seen_at: text("first_seen_at").notNull().default(now),
    checked_at: text("checked_at").notNull().default(now),
    removed_at: text("removed_at"),
  },
  (t) => [primaryKey({ columns: [t.site_id, t.path] })],
);

export const gscSitemapHistory = pgTable(
  "gsc_sitemap_history",
  {
    id: bigId(),
    site_id: integer("site_id")
      .notNull()
      .references(() => sites.id, { onDelete: "cascade" }),
    path: text("path").notNull(),
    seen_at: text("seen_at").notNull().default(now),
    type: text("type"),
    last_submitted: text("last_submitted"),
    last_downloaded: text("last_downloaded"),
    is_pending: boolean("is_pending").notNull().default(false),
    is_sitemaps_index: boolean("is_sitemaps_index").notNull().default(false),
    warnings: integer("warnings").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    contents: jsonb("contents").$type<{ type: string; submitted: number }[]>().notNull().default([]),
    removed: boolean("removed").notNull().default(false),
  },
  (t) => [index("gsc_sitemap_history_site_path_idx").on(t.site_id, t.path, t.id)],
);

export const gscUrlInspections = pgTable(
  "gsc_url_inspections",
  {
    id: bigId(),
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
    sitemaps: jsonb("sitemaps").$type<string[]>().notNull().default([]),
    referring_urls: jsonb("referring_urls").$type<string[]>().notNull().default([]),
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
