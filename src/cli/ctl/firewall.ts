// `mcproxyctl firewall list|add|remove`: the global firewall rules through the admin API.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import { FIREWALL_RULE_TYPE_NAMES } from "../../domain/firewall-rule-types.ts";
import type { FirewallRule, FirewallRuleType } from "../../domain/types.ts";
import { UsageError } from "../errors.ts";
import { alignColumns } from "../status.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags } from "./flags.ts";

export function formatRulesTable(rules: FirewallRule[]): string {
  const rows = [["TYPE", "VALUE"], ...rules.map((rule) => [rule.type, rule.value])];
  return `${alignColumns(rows).join("\n")}\n`;
}

const listArgs = { ...connectionArgs } satisfies ArgsDef;

const listCommand = defineCommand({
  meta: { name: "list", description: "List the firewall rules" },
  args: listArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("firewall list", rawArgs, listArgs);
    const rules = await withClient(args, (client) => client.firewallRules());
    if (args.json) {
      printJson(rules);
      return;
    }
    process.stdout.write(formatRulesTable(rules));
  },
});

const ruleArgs = {
  ...connectionArgs,
  type: { type: "enum", options: FIREWALL_RULE_TYPE_NAMES, description: "rule type (required)" },
  value: {
    type: "string",
    description: "an IP address, a CIDR or an ISO 3166-1 alpha-2 country code (required)",
    valueHint: "value",
  },
} satisfies ArgsDef;

function ruleFromArgs(command: string, args: { type?: string; value?: string }): FirewallRule {
  if (!args.type) {
    throw new UsageError(`${command}: --type ${FIREWALL_RULE_TYPE_NAMES.join("|")} is required`);
  }
  if (!args.value) throw new UsageError(`${command}: --value is required`);
  // citty has already checked the type against the enum's options.
  return { type: args.type as FirewallRuleType, value: args.value };
}

const addCommand = defineCommand({
  meta: { name: "add", description: "Add a firewall rule (new connections are checked at once)" },
  args: ruleArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("firewall add", rawArgs, ruleArgs);
    const rule = ruleFromArgs("firewall add", args);
    await withClient(args, (client) => client.addFirewallRule(rule));
    if (args.json) {
      printJson({ added: rule });
      return;
    }
    process.stdout.write(`added firewall rule ${rule.type} ${rule.value}\n`);
  },
});

const removeCommand = defineCommand({
  meta: { name: "remove", description: "Remove a firewall rule" },
  args: ruleArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("firewall remove", rawArgs, ruleArgs);
    const rule = ruleFromArgs("firewall remove", args);
    await withClient(args, (client) => client.removeFirewallRule(rule));
    if (args.json) {
      printJson({ removed: rule });
      return;
    }
    process.stdout.write(`removed firewall rule ${rule.type} ${rule.value}\n`);
  },
});

export const firewallCommand = defineCommand({
  meta: { name: "firewall", description: "List, add or remove firewall rules" },
  subCommands: { list: listCommand, add: addCommand, remove: removeCommand },
});
