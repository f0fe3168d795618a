import { and, asc, eq, gt, or, sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { compileSelect, perConnection } from "../db/prepared.ts";
import { sites, type Site } from "../db/schema.ts";
import { ApiError, isUniqueViolation } from "../errors.ts";
import type { CreateSite, UpdateSite } from "./schemas.ts";

const p = sql.placeholder;
const byNameThenId = [asc(sites.name), asc(sites.id)];
const after = or(gt(sites.name, p("name")), and(eq(sites.name, p("name")), gt(sites.id, p("id"))));

// Compiled once per connection to bare bun:sqlite statements (rows are already the API shape, see
// compileSelect); the list has one statement per (active filter, cursor) shape.
const readStatements = perConnection((orm) => {
  const bools = { booleans: ["is_active"] } as const;
  const all = () => orm.select().from(sites);
  return {
    byId: compileSelect(orm, all().where(eq(sites.id, p("id"))), bools),
    firstPage: compileSelect(orm, all().orderBy(...byNameThenId).limit(p("limit")), bools),
    firstPageActive: compileSelect(orm, all().where(eq(sites.is_active, true)).orderBy(...byNameThenId).limit(p("limit")), bools),
    nextPage: compileSelect(orm, all().where(after).orderBy(...byNameThenId).limit(p("limit")), bools),
    nextPageActive: compileSelect(orm, all().where(and(eq(sites.is_active, true), after)).orderBy(...byNameThenId).limit(p("limit")), bools),
  };
});

const writeStatements = perConnection((orm) => ({
  insert: orm
    .insert(sites)
    .values({ domain: p("domain"), name: p("name"), category: p("category"), is_active: p("is_active") })
    .returning()
    .prepare(),
  delete: orm.delete(sites).where(eq(sites.id, p("id"))).returning({ id: sites.id }).prepare(),
}));

/** A position in the name-then-id order, handed to clients as an opaque string. */
export type SiteCursor = { name: string; id: number };

/** Encodes a list cursor. */
export function encodeCursor(c: SiteCursor): string {
  return Buffer.from(JSON.stringify([c.name, c.id])).toString("base64url");
}

/** Decodes a list cursor; a malformed one is the client's mistake (400). */
export function decodeCursor(s: string): SiteCursor {
  try {
    const v: unknown = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && Number.isSafeInteger(v[1])) {
      return { name: v[0], id: v[1] as number };
    }
  } catch {
    // fall through
  }
  throw new ApiError("validation_failed", "invalid cursor", [{ path: "cursor", message: "not a cursor this API issued" }]);
}

/** Finds one site by id. */
export async function findSiteById(db: Db, id: number): Promise<Site | undefined> {
  return readStatements(db.read).byId.get({ id });
}

/** Lists sites by name then id after an optional cursor; `next` is set when more remain. */
export async function listSites(
  db: Db,
  opts: { activeOnly: boolean; limit: number; cursor?: SiteCursor },
): Promise<{ items: Site[]; next: SiteCursor | null }> {
  const s = readStatements(db.read);
  const limit = opts.limit + 1;
  const rows = opts.cursor
    ? (opts.activeOnly ? s.nextPageActive : s.nextPage).all({ limit, name: opts.cursor.name, id: opts.cursor.id })
    : (opts.activeOnly ? s.firstPageActive : s.firstPage).all({ limit });
  if (rows.length <= opts.limit) return { items: rows, next: null };
  const items = rows.slice(0, opts.limit);
  const last = items[items.length - 1]!;
  return { items, next: { name: last.name, id: last.id } };
}

/** Creates a site; a duplicate domain is a conflict (409). */
export async function createSite(db: Db, input: CreateSite): Promise<Site> {
  return db.write((tx) => {
    try {
      return writeStatements(tx).insert.get({
        domain: input.domain,
        name: input.name,
        category: input.category ?? null,
        is_active: input.is_active ?? true,
      })!;
    } catch (err) {
      if (isUniqueViolation(err)) throw domainTaken(input.domain);
      throw err;
    }
  });
}

/** Applies a partial update; undefined when the site does not exist. */
export async function updateSite(db: Db, id: number, patch: UpdateSite): Promise<Site | undefined> {
  return db.write((tx) => {
    try {
      return tx
        .update(sites)
        .set({ ...patch, updated_at: new Date().toISOString() })
        .where(eq(sites.id, id))
        .returning()
        .get();
    } catch (err) {
      if (isUniqueViolation(err) && patch.domain !== undefined) throw domainTaken(patch.domain);
      throw err;
    }
  });
}

/** Deletes a site with its sync tasks and synced data (foreign keys cascade); false when absent. */
export async function deleteSite(db: Db, id: number): Promise<boolean> {
  return db.write((tx) => writeStatements(tx).delete.get({ id }) !== undefined);
}

function domainTaken(domain: string) {
  return new ApiError("conflict", `a site with domain '${domain}' already exists`, { domain });
}
