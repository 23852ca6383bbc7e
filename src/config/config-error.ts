// The error kind for a config that cannot be used: one line, exit code 2 (SPEC §1, §2).
import { UsageError } from "../cli/errors.ts";

/**
 * A bad config file: unreadable, not TOML, or refused by validation. The message is one line
 * that names the key path and the value given, so that it reads well in a journald line.
 */
export class ConfigError extends UsageError {
  override readonly name = "ConfigError";
}
