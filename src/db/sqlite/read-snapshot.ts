import type { Database, Statement } from "bun:sqlite";

// In WAL mode every statement run outside a transaction opens a read transaction of its own, and that
// costs ~5 µs (the read lock in the -shm file: syscalls), 50x the ~0.1 µs of reading one row by key.
// A request that checks "does any key exist" (PRAGMA data_version) and then reads its site paid it twice.
// So the reader connection's statements share one read transaction per event-loop turn: the first read
// of a turn opens it (BEGIN; the lock is taken by that read), and it is closed at the end of the turn
// (setImmediate), or at once after this process's writer commits, so a request always reads its own
// writes. Reads within one turn see one snapshot, as if they had run at the turn's first read; a commit
// by another process is seen from the next turn on (a request arriving after it is served in a later turn).

const PATCHED = Symbol("shared-read-snapshot");
const methods = ["get", "all", "values", "run", "iterate"] as const;
/** Statements that open or close a transaction of their own. */
const TX_CONTROL = /^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;

const shared = new WeakMap<Database, () => number | null>();

/**
 * The number of the shared read transaction open on `reader` right now (it grows with each one opened), or
 * null when none is open (or the reader does not share them). Two reads under the same number see the
 * same snapshot of the file: e.g. `PRAGMA data_version` cannot have changed between them.
 */
export function sharedSnapshotOf(reader: Database): number | null {
  return shared.get(reader)?.() ?? null;
}

export type ReadSnapshots = {
  /** Ends the current shared read transaction (if any): the next read starts a fresh snapshot. */
  end(): void;
  /** Read transactions opened so far (each served every read of one turn). */
  readonly opened: number;
};

/** Makes the reader connection's statements share one read transaction per event-loop turn. */
export function shareReadSnapshots(reader: Database): ReadSnapshots {
  const begin = reader.prepare("BEGIN");
  const commit = reader.prepare("COMMIT");
  let open = false;
  let scheduled = false;
  let opened = 0;

  const end = () => {
    if (!open) return;
    try {
      commit.run();
      open = false;
    } catch {
      // A statement is still stepping (an iterator not yet finished): close it on a later turn.
      schedule();
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      end();
    });
  };
  const ensure = () => {
    if (open || reader.inTransaction) return;
    begin.run();
    open = true;
    opened++;
    schedule();
  };

  const patch = <S extends Statement>(stmt: S, sql: string): S => {
    const s = stmt as S & { [PATCHED]?: true };
    if (s[PATCHED]) return stmt;
    if (TX_CONTROL.test(sql)) {
      // Code that opens its own transaction on the reader gets it: the shared one ends first.
      for (const m of methods) {
        const original = (s[m] as (...a: unknown[]) => unknown).bind(s);
        (s as Record<string, unknown>)[m] = (...args: unknown[]) => {
          if (open) end();
          return original(...args);
        };
      }
      s[PATCHED] = true;
      return stmt;
    }
    for (const m of methods) {
      const original = (s[m] as (...a: unknown[]) => unknown).bind(s);
      (s as Record<string, unknown>)[m] = (...args: unknown[]) => {
        if (!open) ensure();
        return original(...args);
      };
    }
    s[PATCHED] = true;
    return stmt;
  };
  shared.set(reader, () => (open ? opened : null));
  const prepare = reader.prepare.bind(reader);
  const query = reader.query.bind(reader);
  const run = reader.run.bind(reader);
  reader.prepare = ((sql: string, params?: unknown) => patch(prepare(sql, params as never), sql)) as typeof reader.prepare;
  reader.query = ((sql: string) => patch(query(sql), sql)) as typeof reader.query;
  reader.run = ((sql: string, ...params: unknown[]) => {
    if (open && TX_CONTROL.test(sql)) end();
    return run(sql, ...(params as never[]));
  }) as typeof reader.run;

  return {
    end,
    get opened() {
      return opened;
    },
  };
}
