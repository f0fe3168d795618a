import { z } from "@hono/zod-openapi";
import { memoizedParams, memoizedQuery } from "../openapi.ts";
import { createInsertSchema, createSelectSchema } from "drizzle-zod";
import { sites } from "../db/sqlite/schema.ts";

// Search Console property names: a domain property or a URL-prefix property. Case-insensitive by hand,
// not with the `i` flag: JSON Schema patterns have no flags and the OpenAPI generator would print `/i`.
const label = "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?";
const domainPattern = new RegExp(
  `^([sS][cC]-[dD][oO][mM][aA][iI][nN]:${label}(\\.${label})+|[hH][tT][tT][pP][sS]?:\\/\\/[^\\s/?#]+(:\\d+)?\\/([^\\s?#]*)?)$`,
);

// C0/C1 control characters and the bidirectional formatting marks (U+202E shows "moc.elpmaxe" for
// "example.com"): never part of a property name, and a way to make two sites look like one.
const controlChars = /^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$/;

/**
 * Lower-cases what is case-insensitive in a property name (the `sc-domain:` prefix, the URL scheme and
 * host, never the path), so `SC-DOMAIN:A.COM` and `sc-domain:a.com` are one site, not two.
 */
export function normalizeDomain(domain: string): string {
  // Nothing to lower-case (the usual create): as is, without the pattern (~0.3 us of a create's ~0.35).
  if (domain.toLowerCase() === domain) return domain;
  const m = /^([a-zA-Z-]+:(?:\/\/)?)([^/]*)(.*)$/.exec(domain);
  return m ? m[1]!.toLowerCase() + m[2]!.toLowerCase() + m[3]! : domain;
}

export const SiteSchema = createSelectSchema(sites).openapi("Site", {
  example: {
    id: 1,
    domain: "sc-domain:example.com",
    name: "Example",
    category: "blog",
    is_active: true,
    created_at: "2026-11-25T03:00:00.000Z",
    updated_at: "2026-11-25T03:00:00.000Z",
  },
});
export type SiteJson = z.infer<typeof SiteSchema>;

// A create's limits, shared by CreateSiteSchema and plainCreateSite (lengths after trimming, for name and category).
const DOMAIN_MAX = 2048;
const NAME_MAX = 200;
const CATEGORY_MAX = 100;

export const CreateSiteSchema = createInsertSchema(sites, {
  domain: (s) =>
    s
      .min(1)
      .max(DOMAIN_MAX)
      // The first pattern is the one the OpenAPI document shows.
      .regex(domainPattern, "expected 'sc-domain:example.com' or a URL prefix like 'https://example.com/'")
      .regex(controlChars, "must not contain control characters or bidirectional formatting characters")
      .overwrite(normalizeDomain),
  name: (s) => s.trim().min(1).max(NAME_MAX),
  // A schema, not a refine callback: drizzle-zod's types drop the optional around a refined nullable column.
  category: z.string().trim().min(1).max(CATEGORY_MAX).nullish(),
})
  .pick({ domain: true, name: true, category: true, is_active: true })
  .strict()
  .openapi("CreateSite");
export type CreateSite = z.infer<typeof CreateSiteSchema>;

/**
 * What CreateSiteSchema gives for a parsed JSON body in the plain case (an object of its fields only, each
 * of its type and within its limits), by the schema's own patterns and limits without a zod parse (~9 µs of
 * a create's CPU in process); null for anything else, which the schema then judges (it may still accept it).
 * test/fast-path.test.ts checks that the two agree.
 */
export function plainCreateSite(body: unknown): CreateSite | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const b = body as Record<string, unknown>;
  for (const k in b) if (k !== "domain" && k !== "name" && k !== "category" && k !== "is_active") return null;
  const { domain, name, category, is_active } = b;
  if (typeof domain !== "string" || domain.length < 1 || domain.length > DOMAIN_MAX) return null;
  if (!domainPattern.test(domain) || !controlChars.test(domain)) return null;
  if (typeof name !== "string") return null;
  const trimmed = name.trim();
  if (trimmed.length < 1 || trimmed.length > NAME_MAX) return null;
  const out: CreateSite = { domain: normalizeDomain(domain), name: trimmed };
  if (Object.hasOwn(b, "category")) {
    if (category === null) out.category = null;
    else if (typeof category !== "string") return null;
    else {
      const c = category.trim();
      if (c.length < 1 || c.length > CATEGORY_MAX) return null;
      out.category = c;
    }
  }
  if (Object.hasOwn(b, "is_active")) {
    if (typeof is_active !== "boolean") return null;
    out.is_active = is_active;
  }
  return out;
}

export const UpdateSiteSchema = CreateSiteSchema.partial()
  .strict()
  .refine((v) => Object.keys(v).length > 0, "give at least one field to change")
  .openapi("UpdateSite");
export type UpdateSite = z.infer<typeof UpdateSiteSchema>;

const idMessage = "expected a positive integer id";
const SITE_ID = /^[1-9]\d{0,15}$/;

/**
 * A site id path segment as SiteIdParams reads it (its pattern, then a safe integer: 16 digits can still pass
 * 2^53, where Number() would silently round to another id), or null when it refuses it. The request fast path
 * judges ids with it (src/http/fast-path.ts): the same rule, without a zod parse per new id.
 */
export function siteIdFrom(raw: string): number | null {
  if (!SITE_ID.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

// One check and one transform per field: these run on every read request (bun run bench); the result is
// remembered per path (memoizedParams).
export const SiteIdParams = memoizedParams(
  z.object({
    id: z
      .string()
      .regex(SITE_ID, idMessage)
      .transform((s, ctx) => {
        const n = siteIdFrom(s);
        if (n !== null) return n;
        ctx.issues.push({ code: "custom", message: idMessage, input: s });
        return z.NEVER;
      })
      .openapi({ param: { name: "id", in: "path" }, example: "1" }),
  }),
);

const boolParam = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const ListSitesQuery = memoizedQuery(
  z.object({
    active_only: boolParam.default(true).openapi({ param: { name: "active_only", in: "query" }, example: "true" }),
    limit: z
      .string()
      // 1..500 (leading zeros allowed) as one pattern instead of a regex, a transform and a number range.
      .regex(/^0*([1-9]\d?|[1-4]\d\d|500)$/, "expected an integer from 1 to 500")
      .transform(Number)
      .optional()
      .openapi({
        param: { name: "limit", in: "query" },
        example: "100",
        description: "Page size (1..500). Without it every matching site is returned, as the original API did.",
      }),
    cursor: z
      .string()
      .min(1)
      .max(2048)
      .optional()
      .openapi({ param: { name: "cursor", in: "query" } }),
    include_archived: boolParam.default(false).openapi({ param: { name: "include_archived", in: "query" }, example: "false" }),
  }),
);

export const DeleteSiteQuery = z.object({
  purge: boolParam
    .default(false)
    .openapi({ param: { name: "purge", in: "query" }, description: "Delete for good (admin) instead of archiving" }),
  confirm: z
    .string()
    .optional()
    .openapi({ param: { name: "confirm", in: "query" }, description: "With purge=true: the site's domain, repeated" }),
});
