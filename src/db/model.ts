// The engine-neutral model the features import: value lists and row types. Both engines' schemas have the
// same columns (test/schema-drift.test.ts), so the row types inferred from the SQLite schema hold for both.
export { keyScopes, type KeyScope, taskStatuses, type TaskStatus } from "./enums.ts";
export type {
  AlertChannel,
  AlertDelivery,
  AlertRule,
  ApiKey,
  AuditRow,
  GscRow,
  GoogleAccount,
  GscSyncedDay,
  HourlyRow,
  NewSyncTask,
  Site,
  SyncTask,
} from "./sqlite/schema.ts";
export type { SitemapHistoryRow, SitemapRow, UrlInspectionRow } from "./sqlite/schema.ts";
