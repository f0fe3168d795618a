import { DrizzleQueryError } from "drizzle-orm/errors";

// Why a start failed, as one line an operator can act on (never a stack).

const sqliteReasons: [RegExp, string][] = [
  [/^SQLITE_CANTOPEN/, "cannot be opened: is it a directory, or is its folder missing or not writable?"],
  [/^SQLITE_READONLY/, "is read-only (file or folder permissions, an immutable file, or a read-only mount)"],
  [/^SQLITE_FULL/, "cannot grow: the disk is full"],
  [/^SQLITE_IOERR/, "gives an I/O error (disk full, failing disk, or a vanished mount)"],
  [/^SQLITE_(NOTADB|CORRUPT)/, "is not an SQLite database, or is damaged"],
  [/^SQLITE_PERM|^SQLITE_AUTH/, "may not be accessed (permissions)"],
];

const fsReasons: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "the disk is full",
  ENOTDIR: "a part of the path is a file, not a folder",
  EEXIST: "a file is in the way of a folder",
  EISDIR: "it is a directory",
};

const pgReasons: [RegExp, string][] = [
  [/^(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH)$/, "does not answer (is it running, and listening on that host and port?)"],
  [/^(ENOTFOUND|EAI_AGAIN)$/, "has a host name that does not resolve"],
  [/^28/, "refused the credentials (user or password)"],
  [/^3D000$/, "has no such database (create it first: createdb)"],
  [/^42501$/, "refused a permission the migrations need (the user must own the database)"],
  [/^(57P03|53300)$/, "cannot accept connections now (starting up, or out of connections)"],
];

/** One line saying why the service could not start on the database at `path` (a file, or a PostgreSQL URL without password). */
export function describeStartError(err: unknown, path: string): string {
  let e = err as { code?: unknown; message?: unknown; path?: unknown; syscall?: unknown; cause?: unknown } | null;
  // Drizzle wraps driver errors; the driver's is the one that says why. (Our own errors with a cause,
  // e.g. WalUnavailableError, already say it in their message.)
  while (e && (e as unknown) instanceof DrizzleQueryError && e.cause) e = e.cause as typeof e;
  const code = typeof e?.code === "string" ? e.code : "";
  if (/^postgres(ql)?:/i.test(path)) {
    const message = String(e?.message ?? err).split("\n")[0];
    for (const [re, why] of pgReasons) if (re.test(code)) return `the PostgreSQL server at ${path} ${why} (${code}: ${message})`;
    return `PostgreSQL at ${path}: ${message}${code ? ` (${code})` : ""}`;
  }
  const message = String(e?.message ?? err).split("\n")[0];
  for (const [re, why] of sqliteReasons) if (re.test(code)) return `the database file ${path} ${why} (${code}: ${message})`;
  const fsWhy = fsReasons[code];
  if (fsWhy) {
    const where = typeof e?.path === "string" ? e.path : path;
    return `cannot ${typeof e?.syscall === "string" ? e.syscall : "use"} ${where} for the database ${path}: ${fsWhy} (${code})`;
  }
  return message ?? "unknown error";
}
