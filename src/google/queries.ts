import { and, asc, eq, isNull, or } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import type { GoogleAccount } from "../db/model.ts";
import { ApiError } from "../errors.ts";

// Google accounts and which one each site's syncs use (issue 20). Engine-neutral (db.q / db.t / db.tx).

export type Property = { site_url: string; permission_level: string };

/** Permission levels in the order an account is preferred for a site; an unverified user cannot read data. */
const preference = ["siteOwner", "siteFullUser", "siteRestrictedUser"];

/** Registers an account (or updates its kind and project); returns its row. */
export async function upsertGoogleAccount(
  db: Db,
  input: { email: string; kind: "user" | "service"; project: string | null },
): Promise<GoogleAccount> {
  const { googleAccounts: g } = db.t;
  return db.tx(async (tx) => {
    const now = new Date().toISOString();
    const old = first(await tx.select().from(g).where(eq(g.email, input.email)));
    if (old) {
      if (old.kind === input.kind && old.project === input.project) return old;
      return first(
        await tx.update(g).set({ kind: input.kind, project: input.project, updated_at: now }).where(eq(g.id, old.id)).returning(),
      )!;
    }
    return first(
      await tx
        .insert(g)
        .values({ email: input.email, kind: input.kind, project: input.project })
        .onConflictDoUpdate({ target: g.email, set: { kind: input.kind, project: input.project, updated_at: now } })
        .returning(),
    )!;
  }, "registering a Google account");
}

/** Every registered Google account, in the order they were added. */
export async function listGoogleAccounts(db: Db): Promise<GoogleAccount[]> {
  const { googleAccounts: g } = db.t;
  return db.q.select().from(g).orderBy(asc(g.id));
}

/** One account by id, or a 404. */
export async function findGoogleAccount(db: Db, id: number): Promise<GoogleAccount> {
  const { googleAccounts: g } = db.t;
  const row = first(await db.q.select().from(g).where(eq(g.id, id)));
  if (!row) throw new ApiError("not_found", `Google account ${id} not found (GET /api/v1/google/accounts lists them)`);
  return row;
}

/** Records what sites.list answered for an account (its properties), or why it could not be asked. */
export async function recordAccountProperties(db: Db, id: number, outcome: { properties: Property[] } | { error: string }) {
  const { googleAccounts: g } = db.t;
  const now = new Date().toISOString();
  const set =
    "properties" in outcome
      ? { properties: outcome.properties, properties_checked_at: now, error: null, updated_at: now }
      : { error: outcome.error, updated_at: now };
  await db.tx(async (tx) => {
    await tx.update(g).set(set).where(eq(g.id, id));
  }, "recording a Google account's properties");
}

export type SiteBinding = {
  site_id: number;
  domain: string;
  account_id: number | null;
  chosen: "auto" | "manual" | null;
  note: string | null;
};

/** Every site (archived ones too) with the account its syncs use, if any. */
export async function listSiteBindings(db: Db): Promise<SiteBinding[]> {
  const { sites: s, siteGoogleAccounts: b } = db.t;
  return db.q
    .select({ site_id: s.id, domain: s.domain, account_id: b.account_id, chosen: b.chosen, note: b.note })
    .from(s)
    .leftJoin(b, eq(b.site_id, s.id))
    .orderBy(asc(s.id));
}

/** The binding of the site whose property is `domain`, or undefined when no site has that domain. */
export async function findSiteBindingByDomain(db: Db, domain: string): Promise<SiteBinding | undefined> {
  const { sites: s, siteGoogleAccounts: b } = db.t;
  return first(
    await db.q
      .select({ site_id: s.id, domain: s.domain, account_id: b.account_id, chosen: b.chosen, note: b.note })
      .from(s)
      .leftJoin(b, eq(b.site_id, s.id))
      .where(eq(s.domain, domain)),
  );
}

/** Binds a site to an account (`auto`: chosen from the property lists; `manual`: by a person), clearing any note. */
export async function bindSite(db: Db, siteId: number, accountId: number, chosen: "auto" | "manual"): Promise<void> {
  const { siteGoogleAccounts: b } = db.t;
  const now = new Date().toISOString();
  await db.tx(async (tx) => {
    await tx
      .insert(b)
      .values({ site_id: siteId, account_id: accountId, chosen, note: null, updated_at: now })
      .onConflictDoUpdate({ target: b.site_id, set: { account_id: accountId, chosen, note: null, updated_at: now } });
  }, "binding a site to a Google account");
}

/**
 * The account a site should use, from the accounts' property lists: those listing its property with a
 * permission that can read data, the owner first, then the account added first. Undefined when none does.
 */
export function chooseAccount(accounts: GoogleAccount[], domain: string): GoogleAccount | undefined {
  let best: { a: GoogleAccount; rank: number } | undefined;
  for (const a of accounts) {
    const p = a.properties.find((x) => x.site_url === domain);
    const rank = p ? preference.indexOf(p.permission_level) : -1;
    if (rank < 0) continue;
    if (!best || rank < best.rank) best = { a, rank };
  }
  return best?.a;
}

/**
 * Binds every site that has no account (or an `auto` one whose list no longer shows it) to an account
 * that lists its property; manual bindings are left alone. Returns the sites bound or moved.
 */
export async function autoBindSites(db: Db): Promise<{ site_id: number; domain: string; account_id: number }[]> {
  const accounts = await listGoogleAccounts(db);
  const byId = new Map(accounts.map((a) => [a.id, a]));
  const done: { site_id: number; domain: string; account_id: number }[] = [];
  for (const s of await listSiteBindings(db)) {
    if (s.chosen === "manual" && s.account_id !== null) continue;
    const current = s.account_id === null ? undefined : byId.get(s.account_id);
    // An account whose list could not be read keeps its sites (a network error is no lost access).
    if (current && (current.error !== null || current.properties.some((p) => p.site_url === s.domain))) continue;
    const pick = chooseAccount(accounts, s.domain);
    if (!pick || pick.id === s.account_id) continue;
    await bindSite(db, s.site_id, pick.id, "auto");
    done.push({ site_id: s.site_id, domain: s.domain, account_id: pick.id });
  }
  return done;
}

/**
 * Removes an account: its sites are unbound, each with a note saying which account went and how to
 * bind another (the sync of a site no remaining account can see then fails with that note). Returns
 * the sites unbound.
 */
export async function deleteGoogleAccount(db: Db, id: number): Promise<{ account: GoogleAccount; unbound: number[] }> {
  const { googleAccounts: g, siteGoogleAccounts: b } = db.t;
  return db.tx(async (tx) => {
    const account = first(await tx.select().from(g).where(eq(g.id, id)));
    if (!account) throw new ApiError("not_found", `Google account ${id} not found (GET /api/v1/google/accounts lists them)`);
    const now = new Date().toISOString();
    const note = `its Google account ${account.email} was removed at ${now}; sign in with an account that can see it (bun run cli auth login) or bind one: bun run cli sites account <site> <account>`;
    const unbound = await tx
      .update(b)
      .set({ account_id: null, note, chosen: "auto", updated_at: now })
      .where(eq(b.account_id, id))
      .returning({ site_id: b.site_id });
    // Its stored sign-in goes with it (also by the foreign key's cascade, which SQLite only applies with foreign_keys on).
    await tx.delete(db.t.googleSignIns).where(eq(db.t.googleSignIns.account_id, id));
    await tx.delete(g).where(eq(g.id, id));
    return { account, unbound: unbound.map((r) => r.site_id) };
  }, "removing a Google account");
}

/** Sites with no account: never bound, or unbound with a note. */
export async function listUnboundSites(db: Db): Promise<SiteBinding[]> {
  const { sites: s, siteGoogleAccounts: b } = db.t;
  return db.q
    .select({ site_id: s.id, domain: s.domain, account_id: b.account_id, chosen: b.chosen, note: b.note })
    .from(s)
    .leftJoin(b, eq(b.site_id, s.id))
    .where(and(isNull(s.archived_at), or(isNull(b.site_id), isNull(b.account_id))))
    .orderBy(asc(s.id));
}

/** The stored (sealed) sign-in of an account, or null when none is stored. */
export async function findStoredSignIn(db: Db, accountId: number): Promise<string | null> {
  const k = db.t.googleSignIns;
  return first(await db.q.select({ sealed: k.sealed }).from(k).where(eq(k.account_id, accountId)))?.sealed ?? null;
}

/** Ids of the accounts with a sign-in stored in the database. */
export async function listStoredSignInAccounts(db: Db): Promise<Set<number>> {
  const k = db.t.googleSignIns;
  return new Set((await db.q.select({ id: k.account_id }).from(k)).map((r) => r.id));
}

/** Stores (or replaces) an account's sealed sign-in. */
export async function saveStoredSignIn(db: Db, accountId: number, sealed: string): Promise<void> {
  const k = db.t.googleSignIns;
  const updated_at = new Date().toISOString();
  await db.tx(
    (tx) =>
      tx
        .insert(k)
        .values({ account_id: accountId, sealed, updated_at })
        .onConflictDoUpdate({ target: k.account_id, set: { sealed, updated_at } }),
    "storing a Google sign-in",
  );
}
