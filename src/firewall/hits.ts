// Per-rule block counters, kept in memory across firewall recompiles.
import { firewallRuleKey } from "../config/firewall-rule.ts";
import type { FirewallRule } from "../domain/types.ts";

interface HitCounter {
  rule: FirewallRule;
  hits: number;
}

/**
 * Counts blocks per rule. Counters are keyed by the rule's text (firewallRuleKey), not by
 * object, so they survive the runtime swapping in a recompiled Firewall whose rule objects
 * are new. A removed rule keeps its count (counters only go up, as Prometheus expects);
 * re-adding it continues from there.
 */
export class FirewallHits {
  private readonly byKey = new Map<string, HitCounter>();
  // Rule object → counter, so a block by a rule already seen builds no key string.
  private readonly byRule = new WeakMap<FirewallRule, HitCounter>();

  private counterFor(rule: FirewallRule): HitCounter {
    let counter = this.byRule.get(rule);
    if (counter === undefined) {
      const key = firewallRuleKey(rule);
      counter = this.byKey.get(key);
      if (counter === undefined) {
        counter = { rule: { type: rule.type, value: rule.value }, hits: 0 };
        this.byKey.set(key, counter);
      }
      this.byRule.set(rule, counter);
    }
    return counter;
  }

  /** Counts one block by `rule` (the rule a Verdict carried). */
  record(rule: FirewallRule): void {
    this.counterFor(rule).hits++;
  }

  /** Blocks counted for `rule` so far; 0 for a rule never hit. */
  count(rule: FirewallRule): number {
    return this.byKey.get(firewallRuleKey(rule))?.hits ?? 0;
  }

  /** Every rule hit at least once with its count, ordered by rule key (stable for metrics). */
  snapshot(): Array<{ rule: FirewallRule; hits: number }> {
    return [...this.byKey.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, counter]) => ({ rule: { ...counter.rule }, hits: counter.hits }));
  }
}
