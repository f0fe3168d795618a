// Value lists shared by both engines' schemas and by the features (no imports: the bottom floor).

/** The states of a sync task. */
export const taskStatuses = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof taskStatuses)[number];

/**
 * The scopes an API key can hold: read < write < admin; `query` is read plus the MCP `query` tool (arbitrary
 * read-only SQL, which only `query` and `admin` keys may run).
 */
export const keyScopes = ["read", "write", "admin", "query"] as const;
export type KeyScope = (typeof keyScopes)[number];

/** Search Console search types, stored as their 1-based position in this list (docs/design/grains.md). */
export const searchTypeCodes = ["web", "image", "video", "news", "discover", "googleNews"] as const;
export type SearchTypeCode = (typeof searchTypeCodes)[number];

/** Devices stored as their position here: 0 = no device dimension (discover, or all devices). */
export const deviceCodes = ["", "DESKTOP", "MOBILE", "TABLET"] as const;

/** sum_position is stored as round(position × impressions × this) so re-aggregation stays exact in integers. */
export const sumPositionScale = 100;
