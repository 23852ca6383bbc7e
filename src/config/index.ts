// The config module's public surface: load or parse a TOML file into a validated Config, and
// the route and firewall-rule validation the admin API shares.

export { ConfigError } from "./config-error.ts";
export { MAX_DURATION_MS, parseDuration } from "./duration.ts";
export { firewallRuleKey, validateFirewallRule } from "./firewall-rule.ts";
export { loadConfig } from "./load-config.ts";
export { parseConfig } from "./parse-config.ts";
export { normalizeHostname, validateRoute } from "./route.ts";
export { CONFIG_KEYS, DEFAULTS } from "./schema.ts";
