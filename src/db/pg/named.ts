import type { Db } from "../index.ts";

// Hand-written SQL texts that both engines share use SQLite's named parameters (`$site_id`); node-postgres
// takes positional ones ($1, $2...). The texts hold no `$` inside string literals.

/** `text` with each `$name` replaced by its position, and the values in that order (a name used twice binds once). */
export function toPositional(text: string, params: Record<string, unknown>): { text: string; values: unknown[] } {
  const names: string[] = [];
  const out = text.replace(/\$([A-Za-z_]\w*)/g, (_, name: string) => {
    if (!(name in params)) throw new Error(`SQL parameter $${name} has no value`);
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  return { text: out, values: names.map((n) => params[n]) };
}

/** Runs a SELECT with named parameters on the PostgreSQL pool and returns its rows. */
export async function pgAll<R>(db: Db, text: string, params: Record<string, unknown>): Promise<R[]> {
  const q = toPositional(text, params);
  return (await db.pg!.pool.query(q.text, q.values)).rows as R[];
}
