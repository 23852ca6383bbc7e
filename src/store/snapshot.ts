// Online backup with VACUUM INTO (SPEC §1): a consistent copy, never over an existing file.
import { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
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
 * The default backups directory is created (0700: backups hold the whole routing table; the
 * directory is the operator's to widen), without parents: the database's own directory
 * exists. Any other destination's directory must exist already: a typo in `-o` must not
 * create a directory chain from the root.
 */
function prepareDirectory(destination: string, createDirectory: boolean): void {
  const directory = dirname(destination);
  if (createDirectory) {
    try {
      mkdirSync(directory, { mode: 0o700 });
    } catch (error) {
      if ((error as { code?: unknown }).code !== "EEXIST") {
        throw new StoreError(
          "io",
          `snapshot ${destination}: cannot create directory ${directory}: ${describeCause(error)} (running as ${describeCurrentUser()})`,
          { cause: error },
        );
      }
    }
  }
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    // Reported below.
  }
  if (!isDirectory) {
    throw new StoreError(
      "io",
      `snapshot ${destination}: directory ${directory} does not exist (create it first; only the default backups directory is created)`,
    );
  }
}

/**
 * Claims a temporary name beside `destination` with O_CREAT|O_EXCL at mode 0600 (never
 * readable by others, whatever the umask). VACUUM INTO accepts an existing empty file
 * (checked on SQLite 3.54) and keeps its mode.
 */
function claimTemporary(destination: string): string {
  const temporary = join(
    dirname(destination),
    `.${basename(destination)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  let fd: number;
  try {
    fd = openSync(temporary, "wx", 0o600);
  } catch (error) {
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
  return temporary;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function alreadyExists(destination: string, cause?: unknown): StoreError {
  return new StoreError(
    "already_exists",
    `snapshot ${destination} already exists: refusing to overwrite it (add --force to replace it, or choose another path with -o)`,
    { cause },
  );
}

/**
 * Writes a consistent copy of `db` to `destination` with VACUUM INTO. In WAL mode the copy reads
 * one snapshot of the database while other connections keep writing, so it works on a live
 * server. The copy is written under a temporary name, fsynced, then linked to `destination`
 * (link(2) fails on an existing name, so nothing is ever overwritten) and the directory
 * fsynced: a kill or a power cut at any point leaves either no file under the final name or
 * a complete one, never a partial copy. Refuses (already_exists) when the file exists; on
 * failure removes the temporary file. With `overwrite` (`snapshot --force`) the complete copy
 * is renamed over `destination` instead (rename(2) is atomic within a directory), so the old
 * file stays whole until the new one replaces it.
 */
export function snapshotDatabase(
  db: Database,
  databasePath: string,
  destination: string,
  options: { overwrite?: boolean } = {},
): void {
  const defaultDirectory = dirname(defaultSnapshotPath(databasePath, new Date(0)));
  prepareDirectory(destination, resolve(dirname(destination)) === resolve(defaultDirectory));
  if (!options.overwrite && existsSync(destination)) throw alreadyExists(destination);
  const temporary = claimTemporary(destination);
  try {
    db.run("VACUUM INTO ?", [temporary]);
    // VACUUM INTO does not promise durability of its output; a backup should survive a power cut.
    fsyncPath(temporary);
    try {
      if (options.overwrite) renameSync(temporary, destination);
      else linkSync(temporary, destination);
    } catch (error) {
      if ((error as { code?: unknown }).code === "EEXIST") throw alreadyExists(destination, error);
      throw error;
    }
    fsyncPath(dirname(destination));
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError(
      "io",
      `snapshot of ${databasePath} into ${destination} failed: ${describeCause(error)}`,
      { cause: error },
    );
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // Nothing left to clean up; the original error is the one worth reporting.
    }
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
    snapshotDatabase(db, databasePath, destination, options);
  } finally {
    db.close();
  }
}
