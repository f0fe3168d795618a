import { z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import { parseDuration } from "../config.ts";
import { apiKeys } from "../db/sqlite/schema.ts";
import { keyScopes } from "../db/model.ts";

export const KeySchema = createSelectSchema(apiKeys)
  .omit({ key_hash: true })
  .openapi("ApiKey", {
    example: {
      id: 1,
      name: "ci",
      prefix: "ssk_0123456789ab",
      scope: "write",
      created_at: "2026-11-25T03:00:00.000Z",
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
    },
  });

export const CreatedKeySchema = KeySchema.extend({
  key: z.string().openapi({ description: "The key itself: shown this once, only its hash is stored" }),
}).openapi("CreatedApiKey");

/** A duration such as `90d`, `12h`, `30m`: turned into milliseconds. */
export const DurationSchema = z.string().transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.issues.push({ code: "custom", message: "expected a duration like 90d, 12h or 30m", input: v });
    return z.NEVER;
  }
  return ms;
});

export const CreateKeySchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    scope: z.enum(keyScopes),
    expires_in: DurationSchema.optional().openapi({ type: "string", example: "90d" }),
  })
  .strict()
  .openapi("CreateApiKey");

export const KeyIdParams = z.object({
  id: z
    .string()
    .regex(/^[1-9]\d{0,15}$/, "expected a positive integer id")
    .transform(Number)
    .openapi({ param: { name: "id", in: "path" }, example: "1" }),
});
