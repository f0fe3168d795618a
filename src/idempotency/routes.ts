import { createRoute, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { createRouter, errorResponses } from "../openapi.ts";
import { pendingWriteAnswer } from "./middleware.ts";

/** The /api/v1/pending-writes routes: the final answers of writes answered 202 pending without an Idempotency-Key. */
export function pendingWritesRoutes(db: Db) {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "get",
      path: "/{token}",
      tags: ["idempotency"],
      summary: "The final answer of a write answered 202 pending",
      description:
        "A write sent without an `Idempotency-Key` whose COMMIT lost the database (PostgreSQL) is answered 202 at the end of the ride-through with a `Location` here. Once the database told the outcome, this answers the write's own final answer (its status and body, `Idempotent-Replayed: true`); before that 202 with `Retry-After`; 410 `outcome_lost` if the process holding it stopped first.",
      request: { params: z.object({ token: z.string().max(512) }) },
      responses: {
        200: { description: 'The write\'s final answer (its own status: 201, 200, 204, 4xx, or 503 with `details.outcome: "unknown"`)' },
        202: { description: "Not known yet" },
        ...errorResponses(404, 410),
      },
    }),
    (c) => pendingWriteAnswer(db, c, c.req.valid("param").token) as never,
  );

  return app;
}
