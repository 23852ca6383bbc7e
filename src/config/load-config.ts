// Reads a config file and hands its text to parseConfig: the config module's only I/O.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Config } from "../domain/types.ts";
import { ConfigError } from "./config-error.ts";
import { parseConfig } from "./parse-config.ts";
import { quote } from "./toml-fields.ts";

// The usual reasons in words, so the line reads the same whatever runtime wording is.
const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "a parent is not a directory",
  ELOOP: "too many symbolic links",
};

function readReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && REASONS[code]) return REASONS[code];
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/\r?\n/, 1)[0] ?? "unreadable";
}

/**
 * Reads and validates the config at `path` (relative paths inside it resolve against its
 * directory). Certificate and database files are not opened here: the modules that use them
 * load them and report their own errors.
 */
export function loadConfig(path: string): Config {
  const absolute = resolve(path);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(absolute);
  } catch (error) {
    throw new ConfigError(`cannot read config file ${quote(absolute)}: ${readReason(error)}`, {
      cause: error,
    });
  }
  let text: string;
  try {
    // fatal: a stray Latin-1 byte in a hostname would otherwise become U+FFFD silently.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ConfigError(`config file ${quote(absolute)}: not valid UTF-8`, { cause: error });
  }
  try {
    return parseConfig(text, absolute);
  } catch (error) {
    // The message names the key; the prefix names the file, which an operator with several
    // configs (or a unit file's -c) needs to know too.
    if (error instanceof ConfigError)
      throw new ConfigError(`${absolute}: ${error.message}`, { cause: error });
    throw error;
  }
}
