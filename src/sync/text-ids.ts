// The dictionary ids (gsc_pages, gsc_queries) of one site's texts that a sync worker has already seen
// committed (kept from one task of the site to the next while the worker is busy: src/sync/handlers/daily-sync.ts knownIdsOf): a backfill's
// days share most of their pages and queries, so after the first day only the new texts are looked up in the
// database (issue 18: the look-ups were a fifth of the ingest's CPU).
//
// Only ids known to be committed are kept: a write hands the ids it resolved to `resolved` (pending), and the
// caller calls `committed` once that write's transaction has committed (an id the write added is rolled back
// with it otherwise). Dictionary rows are never deleted except with their site (ON DELETE CASCADE), which
// ends the task anyway: its detail writes then fail on the site's foreign key.

/** Texts to dictionary ids (a Map, or a known set with the texts just resolved). */
export type TextIds = { get(text: string): number | undefined };

/** Texts kept per dictionary at most (~100 bytes each); past it the cache starts again from the last write's. */
const MAX_TEXTS = 250_000;

/** The committed dictionary ids a task has seen for one site (pages and queries). */
export class KnownTextIds {
  readonly pages = new Map<string, number>();
  readonly queries = new Map<string, number>();
  #pending: { pages: Map<string, number>; queries: Map<string, number> } | null = null;

  constructor(
    readonly siteId: number,
    private readonly max = MAX_TEXTS,
  ) {}

  /** Inside a write: the ids it looked up or added; kept only once `committed` is called. */
  resolved(pages: Map<string, number>, queries: Map<string, number>): void {
    this.#pending = { pages, queries };
  }

  /** After the write that called `resolved` has committed: its ids are kept. */
  committed(): void {
    const p = this.#pending;
    this.#pending = null;
    if (!p) return;
    keep(this.pages, p.pages, this.max);
    keep(this.queries, p.queries, this.max);
  }

  /** Before a write: drops ids left pending by a write that did not commit. */
  discard(): void {
    this.#pending = null;
  }
}

function keep(known: Map<string, number>, fresh: Map<string, number>, max: number): void {
  if (known.size + fresh.size > max) known.clear();
  for (const [text, id] of fresh) known.set(text, id);
}

/** The ids of texts in `known` or `fresh` (the known ones first: one Map look-up for most rows). */
export function eitherIds(known: Map<string, number> | undefined, fresh: Map<string, number>): TextIds {
  if (!known || known.size === 0) return fresh;
  return { get: (text) => known.get(text) ?? fresh.get(text) };
}

/** The distinct pages or queries of `rows` not in `known`. */
export function unknownTexts(
  rows: readonly { page: string; query: string }[],
  key: "page" | "query",
  known?: Map<string, number>,
): string[] {
  const out = new Set<string>();
  for (const r of rows) {
    const t = r[key];
    if (!known?.has(t)) out.add(t);
  }
  return [...out];
}
