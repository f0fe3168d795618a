// What bench/grow-analytics.ts (SQLite) and grow-analytics-pg.ts (PostgreSQL) copy to grow a seeded history.

/** Days each older copy of the seed is shifted by (the copies step back from the seed's own days). */
export const STEP_DAYS = 105;

/**
 * The per-day fact tables copied, each keyed by its `day` column; gsc_query_last_days is each query's newest day
 * (unchanged by older copies) and the staged / quota tables are empty between syncs.
 */
export const DAY_TABLES = [
  "gsc_query_detail",
  "gsc_page_totals",
  "gsc_property_totals",
  "gsc_appearance_totals",
  "gsc_day_query_totals",
  "gsc_day_query_counts",
  "gsc_day_query_sums",
  "gsc_day_completeness",
];
