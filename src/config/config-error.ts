// The error kind for a config that cannot be used: one line, exit code 2 (SPEC §1, §2).

/**
 * A bad config file: unreadable, not TOML, or refused by validation. The message is one line
 * that names the key path and the value given, so that it reads well in a journald line.
 * `exitCode` is what the CLI's exitCodeFor maps it to; config knows no CLI class.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly exitCode = 2;
}
