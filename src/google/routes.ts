import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import type { GoogleAccount } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { queueBackfill } from "../sync/queries.ts";
import type { GoogleAccounts } from "./accounts.ts";
import { importProperties, listVisibleProperties } from "./import.ts";
import { bindSite, findGoogleAccount, listGoogleAccounts, listSiteBindings } from "./queries.ts";
import {
  AccountIdParams,
  AccountSchema,
  BackfillSchema,
  BindSchema,
  ImportOutcomeSchema,
  ImportSchema,
  RemovedAccountSchema,
  SiteAccountSchema,
  VisiblePropertySchema,
} from "./schemas.ts";

/** Each account with whether this machine holds its sign-in, and the sites bound to it. */
async function accountViews(db: Db, accounts: GoogleAccounts, rows?: GoogleAccount[]) {
  const local = accounts.localSignIns();
  const sa = accounts.serviceAccountEmail();
  const bindings = await listSiteBindings(db);
  return (rows ?? (await listGoogleAccounts(db))).map((a) => ({
    ...a,
    on_this_machine: a.kind === "user" ? local.has(a.email.toLowerCase()) : sa === a.email,
    sites: bindings
      .filter((b) => b.account_id === a.id)
      .map((b) => ({ id: b.site_id, domain: b.domain, chosen: b.chosen ?? ("auto" as const) })),
  }));
}

/** The account a site's syncs use, as the API shows it. */
async function siteAccount(db: Db, siteId: number) {
  const b = (await listSiteBindings(db)).find((x) => x.site_id === siteId);
  if (!b) throw siteNotFound(siteId);
  const account = b.account_id === null ? null : await findGoogleAccount(db, b.account_id);
  return {
    site_id: b.site_id,
    domain: b.domain,
    account_id: b.account_id,
    account: account?.email ?? null,
    chosen: b.chosen,
    note: b.note,
  };
}

/** The /api/v1/google routes: accounts (list, refresh, remove) and the properties they can see. */
export function googleRoutes(db: Db, accounts: GoogleAccounts, opts: { maxAttempts: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/accounts",
      tags: ["google"],
      summary: "List the Google accounts syncs use, with the properties each can see and the sites bound to it",
      responses: { 200: jsonResponse(z.array(AccountSchema), "Accounts, in the order they were added"), ...errorResponses(401, 403) },
    }),
    // Read-only, as a GET must be: sign-ins are registered by `auth login` and the dashboard's sign-in (both
    // refresh), POST /accounts/refresh and the sync workers when they need a token.
    async (c) => c.json(await accountViews(db, accounts), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/accounts/refresh",
      tags: ["google"],
      summary: "Register this machine's sign-ins, ask Search Console each account's properties, bind unbound sites",
      responses: { 200: jsonResponse(z.array(AccountSchema), "Accounts after the refresh"), ...errorResponses(401, 403) },
    }),
    async (c) => {
      const r = await accounts.refresh();
      return c.json(await accountViews(db, accounts, r.accounts), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/accounts/{id}",
      tags: ["google"],
      summary:
        "Remove a Google account: its sign-in file on this machine is deleted, its sites unbound (or bound to another account that sees them)",
      request: { params: AccountIdParams },
      responses: { 200: jsonResponse(RemovedAccountSchema, "What was removed and unbound"), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { removed, credentials_file_deleted, unbound, rebound } = await accounts.remove(c.req.valid("param").id);
      const bindings = await listSiteBindings(db);
      return c.json(
        {
          removed,
          credentials_file_deleted,
          unbound_sites: bindings
            .filter((b) => unbound.includes(b.site_id) && b.account_id === null)
            .map((b) => ({ id: b.site_id, domain: b.domain, note: b.note })),
          rebound_sites: rebound.map((r) => ({ id: r.site_id, domain: r.domain, account_id: r.account_id })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/properties",
      tags: ["google"],
      summary: "Every Search Console property the accounts can see, with the account a site for it would use",
      description:
        "From each account's last property list (read-only). To ask Search Console again, POST /api/v1/google/accounts/refresh first; `refresh=true` here is refused (400): a GET changes nothing.",
      request: {
        query: z.object({
          refresh: z
            .enum(["true", "false", "1", "0"])
            .default("false")
            .transform((v) => v === "true" || v === "1")
            .openapi({ param: { name: "refresh", in: "query" } }),
        }),
      },
      responses: { 200: jsonResponse(z.array(VisiblePropertySchema), "Properties by URL"), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      if (c.req.valid("query").refresh)
        throw new ApiError(
          "validation_failed",
          "GET /api/v1/google/properties is read-only: POST /api/v1/google/accounts/refresh asks Search Console again, then GET this",
          [{ path: "refresh", message: "use POST /api/v1/google/accounts/refresh" }],
        );
      return c.json(await listVisibleProperties(db), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/properties/import",
      tags: ["sites"],
      summary: "Add the Search Console properties the Google accounts can see as sites, each backfilled newest first",
      description:
        "Every property an account can read, or those in `site_urls`. Each new site is bound to the account that sees it and gets a daily_sync of the ~16 months Search Console keeps, newest day first (a day already stored is not fetched again, so queueing it again resumes it).",
      request: { body: jsonBody(ImportSchema) },
      responses: {
        200: jsonResponse(z.array(ImportOutcomeSchema), "One outcome per property"),
        ...errorResponses(400, 401, 403, 413, 415),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      return c.json(
        await importProperties(db, accounts, { siteUrls: body.site_urls, backfill: body.backfill, maxAttempts: opts.maxAttempts }),
        200,
      );
    },
  );

  return app;
}

/** /api/v1/sites/{id}/backfill and /api/v1/sites/{id}/google-account (mounted beside the sites routes). */
export function siteAccountRoutes(db: Db, accounts: GoogleAccounts, opts: { maxAttempts: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/backfill",
      tags: ["sites"],
      summary: "Queue (or resume) a site's backfill: the ~16 months Search Console keeps, newest day first, days already stored skipped",
      request: { params: SiteIdParams },
      responses: {
        202: jsonResponse(BackfillSchema, "Queued"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const id = c.req.valid("param").id;
      const job = await queueBackfill(db, { siteId: id, maxAttempts: opts.maxAttempts });
      return c.json({ job_id: job.id, start_date: job.start, end_date: job.end, status_url: `/api/v1/sync/job/${job.id}` }, 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/google-account",
      tags: ["sites"],
      summary: "The Google account a site's syncs use",
      request: { params: SiteIdParams },
      responses: { 200: jsonResponse(SiteAccountSchema, "The binding"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json(await siteAccount(db, c.req.valid("param").id), 200),
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/{id}/google-account",
      tags: ["sites"],
      summary: "Bind a site to a Google account (by id or e-mail); the account must see its property",
      request: { params: SiteIdParams, body: jsonBody(BindSchema) },
      responses: { 200: jsonResponse(SiteAccountSchema, "The new binding"), ...errorResponses(400, 401, 403, 404, 409, 413, 415) },
    }),
    async (c) => {
      const id = c.req.valid("param").id;
      const ref = c.req.valid("json").account;
      const site = await findSiteById(db, id);
      if (!site) throw siteNotFound(id);
      await accounts.register();
      const all = await listGoogleAccounts(db);
      const account =
        typeof ref === "number" ? all.find((a) => a.id === ref) : all.find((a) => a.email.toLowerCase() === ref.toLowerCase());
      if (!account) throw new ApiError("not_found", `no Google account ${ref} (GET /api/v1/google/accounts lists them)`);
      if (account.error === null && account.properties_checked_at !== null && !account.properties.some((p) => p.site_url === site.domain)) {
        throw new ApiError(
          "conflict",
          `${account.email} cannot see ${site.domain} in Search Console (its last property list, ${account.properties_checked_at}); refresh with POST /api/v1/google/accounts/refresh if that changed`,
          { account_id: account.id, properties: account.properties.map((p) => p.site_url) },
        );
      }
      await bindSite(db, id, account.id, "manual");
      return c.json(await siteAccount(db, id), 200);
    },
  );

  return app;
}
