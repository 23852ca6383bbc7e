// The firewall: rule validation, compiled rule sets, GeoIP lookups and hit counters.

export { firewallRuleKey, validateFirewallRule } from "../config/firewall-rule.ts";
export { Firewall, FirewallCompileError, type GeoIpLookup, type Verdict } from "./firewall.ts";
export { GeoIpDatabase, GeoIpError } from "./geoip.ts";
export { FirewallHits } from "./hits.ts";
