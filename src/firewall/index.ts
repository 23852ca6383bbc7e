// The firewall: compiled rule sets, GeoIP lookups and hit counters (rules are validated in src/config).

export { Firewall, FirewallCompileError, type GeoIpLookup, type Verdict } from "./firewall.ts";
export { GeoIpDatabase, GeoIpError } from "./geoip.ts";
export { FirewallHits } from "./hits.ts";
