// The firewall rule types, declared once: the domain type, the TOML keys, the wire enum names,
// the CLI's --type choices and the messages listing them are all derived from this table.

/**
 * One entry per rule type, in the order messages list them. `configKey` is the `[firewall]`
 * key holding that type's rules; `protoName` is its `FirewallRuleType` value in
 * proto/mc_proxy/v1/admin.proto. A new type also needs its check in
 * `src/config/firewall-rule.ts`, its matching in `src/firewall/firewall.ts` and a store
 * migration widening the `firewall_rules.type` CHECK.
 */
export const FIREWALL_RULE_TYPES = {
  ip: { configKey: "blocked_ips", protoName: "FIREWALL_RULE_TYPE_IP" },
  cidr: { configKey: "blocked_cidrs", protoName: "FIREWALL_RULE_TYPE_CIDR" },
  country: { configKey: "blocked_countries", protoName: "FIREWALL_RULE_TYPE_COUNTRY" },
} as const;

export type FirewallRuleType = keyof typeof FIREWALL_RULE_TYPES;

/** The `[firewall]` keys that list rules. */
export type FirewallRuleConfigKey = (typeof FIREWALL_RULE_TYPES)[FirewallRuleType]["configKey"];

/** `["ip", "cidr", "country"]`. */
export const FIREWALL_RULE_TYPE_NAMES = Object.keys(FIREWALL_RULE_TYPES) as FirewallRuleType[];

/** `"a, b or c"`, for messages that list the allowed values. */
export function orList(words: readonly string[]): string {
  return words.length <= 1 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

export function isFirewallRuleType(text: string): text is FirewallRuleType {
  return Object.hasOwn(FIREWALL_RULE_TYPES, text);
}
