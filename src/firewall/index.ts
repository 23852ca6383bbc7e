// The firewall: rule validation, compiled rule sets, GeoIP lookups and hit counters.
export { Firewall, FirewallCompileError, type GeoIpLookup, type Verdict } from "./firewall.ts";
export { GeoIpDatabase, GeoIpError } from "./geoip.ts";
export { FirewallHits } from "./hits.ts";
export { firewallRuleKey, validateFirewallRule } from "./rule.ts";
