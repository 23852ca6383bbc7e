// The config module's public surface: load or parse a TOML file into a validated Config.

export type * from "../domain/types.ts";
export { formatHostPort, type HostPort, parseHostPort } from "../ip/host-port.ts";
export { ConfigError } from "./config-error.ts";
export { MAX_DURATION_MS, parseDuration } from "./duration.ts";
export { loadConfig } from "./load-config.ts";
export { parseConfig } from "./parse-config.ts";
export { CONFIG_KEYS, DEFAULTS } from "./schema.ts";
