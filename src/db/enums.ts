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
