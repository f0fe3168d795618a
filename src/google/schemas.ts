import { z } from "@hono/zod-openapi";
import { SiteIdParams } from "../sites/schemas.ts";

const PropertySchema = z.object({
  site_url: z.string().openapi({ example: "sc-domain:example.com" }),
  permission_level: z.string().openapi({ example: "siteOwner" }),
});

export const AccountSchema = z
  .object({
    id: z.number().int(),
    email: z.string().openapi({ example: "owner@example.com" }),
    kind: z.enum(["user", "service"]),
    project: z.string().nullable().openapi({ description: "The Google Cloud project whose quota its requests count against" }),
    properties: z.array(PropertySchema).openapi({ description: "What sites.list answered last" }),
    properties_checked_at: z.string().nullable(),
    error: z.string().nullable().openapi({ description: "Why the last property list could not be had (null: it was)" }),
    on_this_machine: z.boolean().openapi({ description: "Whether this server holds the account's sign-in (or service-account key)" }),
    sites: z.array(z.object({ id: z.number().int(), domain: z.string(), chosen: z.enum(["auto", "manual"]) })),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("GoogleAccount");

export const AccountIdParams = SiteIdParams;

export const RemovedAccountSchema = z
  .object({
    removed: AccountSchema.omit({ on_this_machine: true, sites: true }),
    credentials_file_deleted: z.boolean(),
    unbound_sites: z.array(z.object({ id: z.number().int(), domain: z.string(), note: z.string().nullable() })),
    rebound_sites: z.array(z.object({ id: z.number().int(), domain: z.string(), account_id: z.number().int() })),
  })
  .openapi("RemovedGoogleAccount");

export const VisiblePropertySchema = z
  .object({
    site_url: z.string(),
    permission_level: z.string(),
    account_id: z.number().int(),
    account: z.string(),
    accounts: z.array(z.string()),
    site_id: z.number().int().nullable().openapi({ description: "The registered site of this property (null: not added)" }),
  })
  .openapi("VisibleProperty");

export const ImportSchema = z
  .object({
    site_urls: z
      .array(z.string().min(1).max(2048))
      .min(1)
      .max(500)
      .optional()
      .openapi({ description: "The properties to add (default: every property an account can read)" }),
    backfill: z.boolean().default(true).openapi({ description: "Queue each new site's 16-month backfill, newest day first" }),
  })
  .strict()
  .openapi("ImportSites");

export const ImportOutcomeSchema = z
  .object({
    site_url: z.string(),
    status: z.enum(["added", "exists", "not_visible", "invalid"]),
    site_id: z.number().int().nullable(),
    account: z.string().nullable(),
    job_id: z.number().int().nullable(),
    message: z.string(),
  })
  .openapi("ImportOutcome");

export const SiteAccountSchema = z
  .object({
    site_id: z.number().int(),
    domain: z.string(),
    account_id: z.number().int().nullable(),
    account: z.string().nullable(),
    chosen: z.enum(["auto", "manual"]).nullable(),
    note: z.string().nullable().openapi({ description: "Why the site has no account (its account was removed)" }),
  })
  .openapi("SiteGoogleAccount");

export const BindSchema = z
  .object({
    account: z
      .union([z.number().int().positive(), z.string().min(1).max(320)])
      .openapi({ description: "The account's id or e-mail", example: "owner@example.com" }),
  })
  .strict()
  .openapi("BindSiteAccount");

export const BackfillSchema = z
  .object({
    job_id: z.number().int(),
    start_date: z.string(),
    end_date: z.string(),
    status_url: z.string().openapi({ example: "/api/v1/sync/job/1" }),
  })
  .openapi("BackfillQueued");
