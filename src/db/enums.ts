// Value lists shared by both engines' schemas and by the features (no imports: the bottom floor).

/** The states of a sync task. */
export const taskStatuses = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof taskStatuses)[number];

/** The scopes an API key can hold. */
export const keyScopes = ["read", "write", "admin"] as const;
export type KeyScope = (typeof keyScopes)[number];
