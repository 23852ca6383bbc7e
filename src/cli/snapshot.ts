// `mc-proxy snapshot -c <config> [-o <path>]`: online backup of the database (SPEC §1).
import { statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { defineCommand } from "citty";
import { loadConfig } from "../config/load-config.ts";
import { StoreError } from "../store/errors.ts";
import { defaultSnapshotPath, snapshotDatabaseFile } from "../store/snapshot.ts";
import { RuntimeError, UsageError } from "./errors.ts";

export const snapshotCommand = defineCommand({
  meta: {
    name: "snapshot",
    description:
      "Write a consistent copy of the database with VACUUM INTO (safe while the server runs); prints the path written",
  },
  args: {
    config: {
      type: "string",
      alias: "c",
      required: true,
      description: "config file",
      valueHint: "path",
    },
    output: {
      type: "string",
      alias: "o",
      description:
        "where to write; default <dir of database.path>/backups/mc-proxy-<UTC yyyymmddThhmmssZ>.db. An existing file is refused unless --force",
      valueHint: "path",
    },
    force: {
      type: "boolean",
      description:
        "replace an existing file at the -o path (the old one stays whole until the new copy is complete)",
      default: false,
    },
  },
  async run({ args }) {
    // A bad config throws ConfigError (exitCode 2): exit 2.
    const config = await loadConfig(args.config);
    const databasePath = config.database.path;
    const destination = resolve(args.output || defaultSnapshotPath(databasePath, new Date()));
    // Only the default backups directory is created: an -o elsewhere whose directory does not
    // exist is the user's mistake (exit 2), not a chain of directories to make.
    if (args.output && !isDirectory(dirname(destination))) {
      throw new UsageError(
        `snapshot ${destination}: directory ${dirname(destination)} does not exist (create it first; only the default backups directory is created)`,
      );
    }
    try {
      // Read-only and without migrations: a backup must not change what it copies.
      // Only the default backups directory is created; an -o elsewhere needs its directory.
      snapshotDatabaseFile(databasePath, destination, { overwrite: args.force });
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      // An -o that names an existing file is the user's mistake; a clash on the default name
      // (two snapshots within one second) is not.
      if (error.code === "already_exists" && args.output) {
        throw new UsageError(error.message, { cause: error });
      }
      throw new RuntimeError(error.message, { cause: error });
    }
    process.stdout.write(`${destination}\n`);
  },
});

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
