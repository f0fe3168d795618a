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

/** One line saying why the service could not start on the database at `path`. */
export function describeStartError(err: unknown, path: string): string {
  const e = err as { code?: unknown; message?: unknown; path?: unknown; syscall?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = String(e?.message ?? err).split("\n")[0];
  for (const [re, why] of sqliteReasons) if (re.test(code)) return `the database file ${path} ${why} (${code}: ${message})`;
  const fsWhy = fsReasons[code];
  if (fsWhy) {
    const where = typeof e?.path === "string" ? e.path : path;
    return `cannot ${typeof e?.syscall === "string" ? e.syscall : "use"} ${where} for the database ${path}: ${fsWhy} (${code})`;
  }
  return message ?? "unknown error";
}
