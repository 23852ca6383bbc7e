// FirewallHits: per-rule counters by rule text, surviving a recompile that brings new rule objects.
import { describe, expect, test } from "bun:test";
import type { FirewallRule } from "../domain/types.ts";
import { Firewall } from "./firewall.ts";
import { FirewallHits } from "./hits.ts";

const rule = (type: FirewallRule["type"], value: string): FirewallRule => ({ type, value });

describe("FirewallHits", () => {
  test.each([
    ["never hit", [], rule("ip", "10.0.0.1"), 0],
    ["hit once", [rule("ip", "10.0.0.1")], rule("ip", "10.0.0.1"), 1],
    [
      "hit by equal objects",
      [rule("cidr", "10.0.0.0/8"), rule("cidr", "10.0.0.0/8"), rule("cidr", "10.0.0.0/8")],
      rule("cidr", "10.0.0.0/8"),
      3,
    ],
    [
      "other rules do not count",
      [rule("ip", "10.0.0.2"), rule("cidr", "10.0.0.1/32")],
      rule("ip", "10.0.0.1"),
      0,
    ],
    ["same value, other type", [rule("country", "RU")], rule("ip", "RU"), 0],
  ])("%s → %d", (_label, recorded, asked, expected) => {
    const hits = new FirewallHits();
    for (const r of recorded) hits.record(r);
    expect(hits.count(asked)).toBe(expected);
  });

  test("counts survive a recompile: the new firewall's rule objects continue the same counters", () => {
    const hits = new FirewallHits();
    const first = Firewall.compile([rule("cidr", "10.0.0.0/8"), rule("ip", "192.0.2.1")], null);
    const second = Firewall.compile([rule("ip", "192.0.2.1"), rule("cidr", "10.0.0.0/8")], null);
    const block = (firewall: Firewall, text: string) => {
      const verdict = firewall.check({
        family: 4,
        bytes: Uint8Array.from(text.split(".").map(Number)),
      });
      if (!verdict.blocked) throw new Error(`${text} was not blocked`);
      hits.record(verdict.rule);
    };
    block(first, "10.1.1.1");
    block(first, "10.2.2.2");
    block(second, "10.3.3.3");
    block(second, "192.0.2.1");
    expect(hits.snapshot()).toEqual([
      { rule: rule("cidr", "10.0.0.0/8"), hits: 3 },
      { rule: rule("ip", "192.0.2.1"), hits: 1 },
    ]);
  });

  test("snapshot is ordered by rule key and is a copy", () => {
    const hits = new FirewallHits();
    hits.record(rule("ip", "10.0.0.1"));
    hits.record(rule("country", "RU"));
    hits.record(rule("cidr", "10.0.0.0/8"));
    const snapshot = hits.snapshot();
    expect(snapshot.map((entry) => `${entry.rule.type}:${entry.rule.value}`)).toEqual([
      "cidr:10.0.0.0/8",
      "country:RU",
      "ip:10.0.0.1",
    ]);
    snapshot[0]!.hits = 99;
    snapshot[0]!.rule.value = "changed";
    expect(hits.count(rule("cidr", "10.0.0.0/8"))).toBe(1);
  });
});
