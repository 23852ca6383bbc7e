// Online backup with VACUUM INTO (SPEC §1): a consistent copy, never over an existing file.
import { Database } from "bun:sqlite";
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeCause, describeCurrentUser, StoreError } from "./errors.ts";

const BUSY_TIMEOUT_MS = 5000;

/** `2026-03-26T22:09:18.123Z` → `20260326T220918Z` (UTC, ISO 8601 basic format). */
function basicUtcTimestamp(now: Date): string {
  return `${now.toISOString().slice(0, 19).replaceAll("-", "").replaceAll(":", "")}Z`;
}

/** `<dir of database.path>/backups/mc-proxy-<UTC yyyymmddThhmmssZ>.db` (SPEC §1). */
export function defaultSnapshotPath(databasePath: string, now: Date): string {
  return join(dirname(databasePath), "backups", `mc-proxy-${basicUtcTimestamp(now)}.db`);
}

/**
 * Claims `destination` with O_CREAT|O_EXCL at mode 0600: the existence check and the creation are
 * one system call, so two snapshots racing for one name cannot both win, and the copy is never
 * readable by others, whatever the umask. VACUUM INTO accepts an existing empty file (checked on
 * SQLite 3.54) and keeps its mode.
 */
function claimDestination(destination: string): void {
  try {
    // 0700: backups hold the whole routing table; the directory is the operator's to widen.
    mkdirSync(dirname(destination), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new StoreError(
      "io",
      `snapshot ${destination}: cannot create directory ${dirname(destination)}: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  let fd: number;
  try {
    fd = openSync(destination, "wx", 0o600);
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") {
      throw new StoreError(
        "already_exists",
        `snapshot ${destination} already exists: refusing to overwrite it (add --force to replace it, or choose another path with -o)`,
        { cause: error },
      );
    }
    throw new StoreError(
      "io",
      `snapshot ${destination}: cannot create file: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** VACUUM INTO does not promise durability of its output; a backup should survive a power cut. */
function syncToDisk(destination: string): void {
  const fd = openSync(destination, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const dirFd = openSync(dirname(destination), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/**
 * Writes a consistent copy of `db` to `destination` with VACUUM INTO. In WAL mode the copy reads
 * one snapshot of the database while other connections keep writing, so it works on a live
 * server. Refuses (already_exists) when the file exists; on failure removes the file it claimed.
 */
export function snapshotDatabase(db: Database, databasePath: string, destination: string): void {
  claimDestination(destination);
  try {
    db.run("VACUUM INTO ?", [destination]);
    syncToDisk(destination);
  } catch (error) {
    try {
      unlinkSync(destination);
    } catch {
      // Nothing left to clean up; the original error is the one worth reporting.
    }
    throw new StoreError(
      "io",
      `snapshot of ${databasePath} into ${destination} failed: ${describeCause(error)}`,
      { cause: error },
    );
  }
}

/**
 * Snapshot of a database file by path, for `mc-proxy snapshot` while the server may be running.
 * Opens read-only: it never creates a database, never runs migrations (the copy has whatever
 * schema the file has, even one newer than this binary), and cannot change the source.
 */
export function snapshotDatabaseFile(
  databasePath: string,
  destination: string,
  options: { overwrite?: boolean } = {},
): void {
  if (!existsSync(databasePath)) {
    throw new StoreError(
      "not_found",
      `database ${databasePath} does not exist: nothing to snapshot (the server creates it on first start)`,
    );
  }
  let db: Database;
  try {
    db = new Database(databasePath, { readonly: true });
  } catch (error) {
    throw new StoreError(
      "io",
      `database ${databasePath}: cannot open for reading: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  try {
    // A reader can still meet a lock briefly (WAL recovery, a checkpoint that resets the log).
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (options.overwrite) replaceWithSnapshot(db, databasePath, destination);
    else snapshotDatabase(db, databasePath, destination);
  } finally {
    db.close();
  }
}

/**
 * `snapshot --force`: the copy is written beside `destination` under a fresh name and renamed
 * over it once complete and on disk, so the old file stays whole until the new one replaces it
 * (rename(2) is atomic within a directory).
 */
function replaceWithSnapshot(db: Database, databasePath: string, destination: string): void {
  const partial = join(dirname(destination), `.${basename(destination)}.${process.pid}.partial`);
  snapshotDatabase(db, databasePath, partial);
  try {
    renameSync(partial, destination);
    syncToDisk(destination);
  } catch (error) {
    try {
      unlinkSync(partial);
    } catch {
      // Already gone; the rename's error is the one to report.
    }
    throw new StoreError(
      "io",
      `snapshot ${destination}: cannot replace it: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
}
