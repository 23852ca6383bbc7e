// Firewall rule validation and canonical form, shared by the config loader and the admin API.
import { FIREWALL_RULE_TYPE_NAMES, orList } from "../domain/firewall-rule-types.ts";
import type { FirewallRule, FirewallRuleType } from "../domain/types.ts";
import { formatCidr, normalizeIp, parseCidr } from "../ip/ip.ts";

const COUNTRY_CODE = /^[A-Z]{2}$/;

/**
 * Checks a rule and returns it in canonical form (so that "2001:DB8::/32" and "2001:db8::/32"
 * are one rule in the database): ip → RFC 5952 / dotted quad, cidr → network/len,
 * country → upper-case ISO 3166-1 alpha-2.
 */
export function validateFirewallRule(
  type: string,
  value: string,
): { rule: FirewallRule } | { error: string } {
  switch (type as FirewallRuleType) {
    case "ip": {
      const ip = normalizeIp(value);
      if (ip === null) return { error: `ip ${JSON.stringify(value)}: not an IPv4 or IPv6 address` };
      return { rule: { type: "ip", value: ip } };
    }
    case "cidr": {
      const parsed = parseCidr(value);
      if ("error" in parsed) return { error: `cidr ${JSON.stringify(value)}: ${parsed.error}` };
      return { rule: { type: "cidr", value: formatCidr(parsed.cidr) } };
    }
    case "country": {
      const code = value.toUpperCase();
      if (!COUNTRY_CODE.test(code)) {
        return {
          error: `country ${JSON.stringify(value)}: expected an ISO 3166-1 alpha-2 code such as "RU"`,
        };
      }
      return { rule: { type: "country", value: code } };
    }
    default:
      return {
        error: `rule type ${JSON.stringify(type)}: expected ${orList(FIREWALL_RULE_TYPE_NAMES)}`,
      };
  }
}

/** Stable key of a rule, for sets, hit counters and log fields: `cidr:10.0.0.0/8`. */
export function firewallRuleKey(rule: FirewallRule): string {
  return `${rule.type}:${rule.value}`;
}
