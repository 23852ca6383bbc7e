// The store's one error type: what went wrong, in terms the admin API and the runbook can use.
import { readFileSync } from "node:fs";

/**
 * `not_found` and `already_exists` map to gRPC NOT_FOUND / ALREADY_EXISTS; `io` is everything
 * else (cannot open or create the file, disk full, locked too long, schema newer than the code).
 */
export type StoreErrorCode = "not_found" | "already_exists" | "io" | "file_replaced";

export class StoreError extends Error {
  override readonly name = "StoreError";

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The name /etc/passwd gives `uid`, or null (no entry, or no readable /etc/passwd). */
function passwdName(uid: number): string | null {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const fields = line.split(":");
      if (fields[2] === String(uid) && fields[0]) return fields[0];
    }
  } catch {
    // No passwd file (a scratch container): the uid alone still says who we are.
  }
  return null;
}

/**
 * `uid 998 (mc-proxy)`: who we run as, so that "permission denied" in a log says whose
 * permission. Not os.userInfo(): under Bun 1.4 its username is read from $USER, which sudo,
 * setpriv and su -p can leave naming a different user than the one the kernel checks.
 */
export function describeCurrentUser(): string {
  const uid = process.getuid?.() ?? -1;
  const name = passwdName(uid);
  return name === null ? `uid ${uid}` : `uid ${uid} (${name})`;
}

/** Short reason for a Node/SQLite error, e.g. `ENOENT` → "no such file or directory". */
export function describeCause(error: unknown): string {
  if (error && typeof error === "object" && "code" in error) {
    switch ((error as { code: unknown }).code) {
      case "ENOENT":
        return "no such file or directory (does the parent directory exist?)";
      case "EACCES":
      case "EPERM":
        return "permission denied";
      case "ENOTDIR":
        return "a parent is not a directory";
      case "EROFS":
        return "read-only file system";
      case "ENOSPC":
      case "SQLITE_FULL":
        return "no space left on device";
      case "SQLITE_BUSY":
        return "database is locked by another process (busy timeout exceeded)";
    }
  }
  return error instanceof Error ? error.message : String(error);
}

/** SQLite's extended result code of an error (`SQLITE_CONSTRAINT_UNIQUE`), or "". */
export function sqliteCode(error: unknown): string {
  if (error && typeof error === "object" && "code" in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return "";
}
