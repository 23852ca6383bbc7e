// Firewall.compile and check(): tables, GeoIP fixtures, a property test against a naive reference, 50,000 rules.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import fc from "fast-check";
import { validateFirewallRule } from "../config/firewall-rule.ts";
import type { FirewallRule } from "../domain/types.ts";
import {
  type Cidr,
  cidrContains,
  formatCidr,
  formatIp,
  type IpAddress,
  parseCidr,
  parseIp,
} from "../ip/ip.ts";
import { isV4Mapped } from "./address-words.ts";
import { Firewall, FirewallCompileError, type GeoIpLookup, type Verdict } from "./firewall.ts";
import { GeoIpDatabase } from "./geoip.ts";

const FIXTURES = join(import.meta.dir, "../../test/fixtures/geoip");
const NUM_RUNS = Number(process.env.FC_NUM_RUNS) || 200;

function ip(text: string): IpAddress {
  const address = parseIp(text);
  if (!address) throw new Error(`test address ${text}`);
  return address;
}

/** ::ffff:a.b.c.d as a 16-byte address, the way a caller that skipped parseIp might pass it. */
function unfoldedMapped(v4: string): IpAddress {
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ip(v4).bytes, 12);
  return { family: 6, bytes };
}

function network(text: string): Cidr {
  const parsed = parseCidr(text);
  if ("error" in parsed) throw new Error(`test network ${text}: ${parsed.error}`);
  return parsed.cidr;
}

const rule = (type: FirewallRule["type"], value: string): FirewallRule => ({ type, value });

/** The rule a verdict blames, as "type:value", or null when the client is let through. */
function blamed(verdict: Verdict): string | null {
  return verdict.blocked ? `${verdict.rule.type}:${verdict.rule.value}` : null;
}

/** A GeoIpLookup from a table, counting its calls. */
function stubGeoIp(table: Record<string, string>): GeoIpLookup & { calls: number } {
  return {
    calls: 0,
    country(address: IpAddress): string | null {
      this.calls++;
      const v4 = address.family === 4 ? address.bytes : address.bytes.subarray(12);
      const key = address.family === 4 || isV4Mapped(address.bytes) ? v4.join(".") : "v6";
      return table[key] ?? null;
    },
  };
}

describe("check: ip and cidr rules", () => {
  const firewall = Firewall.compile(
    [
      rule("cidr", "10.0.0.0/8"),
      rule("cidr", "10.1.0.0/16"),
      rule("cidr", "10.1.2.0/24"),
      rule("ip", "10.1.2.3"),
      rule("ip", "203.0.113.50"),
      rule("cidr", "198.51.100.0/24"),
      // Listed before the ip rule for the same address: the ip rule is still the one reported.
      rule("cidr", "192.0.2.255/32"),
      rule("ip", "192.0.2.255"),
      rule("cidr", "2001:db8::/32"),
      rule("cidr", "2001:db8:5::/48"),
      rule("ip", "2001:db8:5::1"),
      rule("ip", "::1"),
      rule("cidr", "fe80::/10"),
    ],
    null,
  );

  test.each([
    ["10.1.2.3", "ip:10.1.2.3"],
    ["10.1.2.4", "cidr:10.1.2.0/24"],
    ["10.1.3.4", "cidr:10.1.0.0/16"],
    ["10.2.0.0", "cidr:10.0.0.0/8"],
    ["10.0.0.0", "cidr:10.0.0.0/8"],
    ["10.255.255.255", "cidr:10.0.0.0/8"],
    ["9.255.255.255", null],
    ["11.0.0.0", null],
    ["203.0.113.50", "ip:203.0.113.50"],
    ["203.0.113.51", null],
    ["198.51.100.0", "cidr:198.51.100.0/24"],
    ["198.51.100.255", "cidr:198.51.100.0/24"],
    ["198.51.101.0", null],
    ["192.0.2.255", "ip:192.0.2.255"],
    ["192.0.2.254", null],
    ["0.0.0.0", null],
    ["255.255.255.255", null],
    // IPv4-mapped IPv6 text: parseIp folds it, the IPv4 rules apply.
    ["::ffff:10.1.2.3", "ip:10.1.2.3"],
    ["::ffff:10.9.9.9", "cidr:10.0.0.0/8"],
    ["::ffff:203.0.113.51", null],
    // IPv4-compatible (::/96, deprecated) is IPv6, not IPv4.
    ["::a01:203", null],
    ["2001:db8:5::1", "ip:2001:db8:5::1"],
    ["2001:db8:5::2", "cidr:2001:db8:5::/48"],
    ["2001:db8:5:ffff:ffff:ffff:ffff:ffff", "cidr:2001:db8:5::/48"],
    ["2001:db8:6::", "cidr:2001:db8::/32"],
    ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "cidr:2001:db8::/32"],
    ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", null],
    ["2001:db9::", null],
    ["::1", "ip:::1"],
    ["::", null],
    ["::2", null],
    ["fe80::1", "cidr:fe80::/10"],
    ["febf:ffff::", "cidr:fe80::/10"],
    ["fec0::", null],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", null],
  ])("%s → %p", (address, expected) => {
    expect(blamed(firewall.check(ip(address)))).toBe(expected);
  });

  test.each([
    ["10.1.2.3", "ip:10.1.2.3"],
    ["10.200.0.1", "cidr:10.0.0.0/8"],
    ["198.51.100.7", "cidr:198.51.100.0/24"],
    ["8.8.8.8", null],
  ])("unfolded ::ffff:%s is checked as IPv4 → %p", (v4, expected) => {
    expect(blamed(firewall.check(unfoldedMapped(v4)))).toBe(expected);
  });

  test("the verdict carries the rule object from the rule list", () => {
    const verdict = firewall.check(ip("10.1.2.3"));
    expect(verdict.blocked && verdict.rule).toBe(firewall.rules[3]!);
  });

  test("allowed clients share one verdict object (nothing allocated per check)", () => {
    expect(firewall.check(ip("8.8.8.8"))).toBe(firewall.check(ip("2001:4860::1")));
  });
});

describe("check: /0 rules", () => {
  test.each([
    ["0.0.0.0/0", "0.0.0.0", true],
    ["0.0.0.0/0", "255.255.255.255", true],
    ["0.0.0.0/0", "::ffff:1.2.3.4", true],
    ["0.0.0.0/0", "::1", false],
    ["::/0", "::", true],
    ["::/0", "2001:db8::1", true],
    ["::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true],
    // Mapped clients are IPv4 clients: an IPv6 /0 does not cover them.
    ["::/0", "::ffff:1.2.3.4", false],
    ["::/0", "1.2.3.4", false],
  ])("%s, %s → blocked %p", (cidr, address, blocked) => {
    const firewall = Firewall.compile([rule("cidr", cidr)], null);
    expect(firewall.check(ip(address)).blocked).toBe(blocked);
  });

  test.each([
    ["10.1.2.3", "ip:10.1.2.3"],
    ["10.1.2.4", "cidr:10.0.0.0/8"],
    ["11.0.0.1", "cidr:0.0.0.0/0"],
  ])("/0 under narrower rules: %s → %s", (address, expected) => {
    const firewall = Firewall.compile(
      [rule("cidr", "0.0.0.0/0"), rule("cidr", "10.0.0.0/8"), rule("ip", "10.1.2.3")],
      null,
    );
    expect(blamed(firewall.check(ip(address)))).toBe(expected);
  });
});

describe("check: duplicate and equivalent rules", () => {
  test.each([
    ["two equal cidrs: the first", [rule("cidr", "10.0.0.0/8"), rule("cidr", "10.0.0.0/8")], 0],
    ["two equal ips: the first", [rule("ip", "10.0.0.1"), rule("ip", "10.0.0.1")], 0],
    ["a /32 then the same ip: the ip", [rule("cidr", "10.0.0.1/32"), rule("ip", "10.0.0.1")], 1],
    [
      "mapped and plain ip text: the first",
      [rule("ip", "::ffff:10.0.0.1"), rule("ip", "10.0.0.1")],
      0,
    ],
  ])("%s", (_label, rules, expectedIndex) => {
    const firewall = Firewall.compile(rules, null);
    const verdict = firewall.check(ip("10.0.0.1"));
    expect(verdict.blocked && verdict.rule).toBe(firewall.rules[expectedIndex]!);
  });
});

describe("compile", () => {
  test.each([
    [[rule("country", "RU")], 'firewall: country rule "RU" needs a GeoIP database (geoip_db)'],
    [
      [rule("ip", "10.0.0.1"), rule("country", "cn")],
      'firewall: country rule "CN" needs a GeoIP database (geoip_db)',
    ],
    [
      [rule("cidr", "10.0.0.1/8")],
      'firewall: cidr "10.0.0.1/8": host bits set (did you mean the network address?)',
    ],
    [[rule("cidr", "10.0.0.0/33")], 'firewall: cidr "10.0.0.0/33": prefix length must be 0-32'],
    [[rule("ip", "10.0.0.256")], 'firewall: ip "10.0.0.256": not an IPv4 or IPv6 address'],
    [
      [rule("country", "RUS")],
      'firewall: country "RUS": expected an ISO 3166-1 alpha-2 code such as "RU"',
    ],
    [
      [{ type: "asn", value: "64512" } as unknown as FirewallRule],
      'firewall: rule type "asn": expected ip, cidr or country',
    ],
  ])("%j throws %p", (rules, message) => {
    expect(() => Firewall.compile(rules, null)).toThrow(new FirewallCompileError(message));
  });

  test.each([
    [[], null, false],
    [[rule("cidr", "10.0.0.0/8")], stubGeoIp({}), false],
    [[rule("country", "RU")], stubGeoIp({}), true],
  ])("%j: hasCountryRules %#", (rules, geoip, expected) => {
    expect(Firewall.compile(rules, geoip).hasCountryRules).toBe(expected);
  });

  test("keeps its own copy of the rules", () => {
    const rules = [rule("ip", "10.0.0.1")];
    const firewall = Firewall.compile(rules, null);
    rules.push(rule("ip", "10.0.0.2"));
    rules[0]!.value = "10.0.0.3";
    expect(firewall.rules).toEqual([rule("ip", "10.0.0.1")]);
    expect(Object.isFrozen(firewall.rules)).toBe(true);
    expect(firewall.check(ip("10.0.0.2")).blocked).toBe(false);
    expect(firewall.check(ip("10.0.0.1")).blocked).toBe(true);
  });
});

describe("check: country rules with a stub lookup", () => {
  const table = { "127.0.0.2": "RU", "10.0.0.1": "RU", "127.0.0.3": "CN", "127.0.0.4": "DE" };

  test.each([
    // [address, expected rule, GeoIP lookups made]
    ["127.0.0.2", "country:RU", 1],
    // "cn" matches by its canonical form and is reported as given (the caller's own object).
    ["127.0.0.3", "country:cn", 1],
    ["127.0.0.4", null, 1],
    ["127.0.0.9", null, 1],
    ["::ffff:127.0.0.2", "country:RU", 1],
    // ip and cidr rules come first; the GeoIP lookup is not even made.
    ["10.0.0.1", "cidr:10.0.0.0/8", 0],
  ])("%s → %p after %d lookups", (address, expected, lookups) => {
    const geoip = stubGeoIp(table);
    const firewall = Firewall.compile(
      [rule("country", "RU"), rule("cidr", "10.0.0.0/8"), rule("country", "cn")],
      geoip,
    );
    expect(blamed(firewall.check(ip(address)))).toBe(expected);
    expect(geoip.calls).toBe(lookups);
  });

  test("no country rules: a GeoIP database given is never consulted", () => {
    const geoip = stubGeoIp(table);
    const firewall = Firewall.compile([rule("ip", "10.9.9.9")], geoip);
    expect(firewall.check(ip("127.0.0.2")).blocked).toBe(false);
    expect(geoip.calls).toBe(0);
  });
});

describe("check: country rules with the GeoIP fixtures", () => {
  test.each([
    ["country-a.mmdb", "127.0.0.2", "country:RU"],
    ["country-a.mmdb", "127.0.0.3", "country:CN"],
    ["country-a.mmdb", "127.0.0.4", null],
    ["country-b.mmdb", "127.0.0.4", "country:RU"],
    ["country-a.mmdb", "127.0.0.5", "country:KP"],
    ["country-a.mmdb", "::ffff:127.0.0.2", "country:RU"],
    ["country-a.mmdb", "2001:db8:1::9", "country:RU"],
    ["country-a.mmdb", "::1", null],
    ["country-a.mmdb", "127.0.0.1", null],
    ["city.mmdb", "127.0.0.2", "country:RU"],
    ["city.mmdb", "2001:db8:2::9", "country:RU"],
    ["city.mmdb", "127.0.0.3", null],
    ["country-ipv4.mmdb", "127.0.0.2", "country:RU"],
  ])("%s: %s → %p", (name, address, expected) => {
    const firewall = Firewall.compile(
      [rule("country", "RU"), rule("country", "CN"), rule("country", "KP")],
      GeoIpDatabase.open(join(FIXTURES, name)),
    );
    expect(blamed(firewall.check(ip(address)))).toBe(expected);
  });
});

/** What check() must answer, by the definition: first equal ip, else longest containing cidr, else country. */
function reference(rules: readonly FirewallRule[], geoip: GeoIpLookup | null, given: IpAddress) {
  const address: IpAddress = isV4Mapped(given.bytes)
    ? { family: 4, bytes: given.bytes.subarray(12) }
    : given;
  for (const r of rules) {
    if (r.type !== "ip") continue;
    const other = parseIp(r.value)!;
    if (other.family === address.family && other.bytes.every((b, i) => b === address.bytes[i])) {
      return r;
    }
  }
  let best: FirewallRule | null = null;
  let bestLength = -1;
  for (const r of rules) {
    if (r.type !== "cidr") continue;
    const cidr = network(r.value);
    if (cidrContains(cidr, address) && cidr.prefixLength > bestLength) {
      best = r;
      bestLength = cidr.prefixLength;
    }
  }
  if (best) return best;
  const code = geoip?.country(given) ?? null;
  return rules.find((r) => r.type === "country" && r.value === code) ?? null;
}

// Addresses cluster around a few bases, so random rules nest, overlap and actually match.
const V4_BASES = ["0.0.0.0", "10.1.2.3", "192.168.255.0", "255.255.255.255"].map(
  (t) => ip(t).bytes,
);
const V6_BASES = ["::", "2001:db8::1", "fe80::ffff:0:1", "ffff:ffff::"].map((t) => ip(t).bytes);

function clusteredBytes(family: 4 | 6): fc.Arbitrary<Uint8Array> {
  const length = family === 4 ? 4 : 16;
  return fc
    .tuple(
      fc.constantFrom(...(family === 4 ? V4_BASES : V6_BASES)),
      fc.uint8Array({ minLength: length, maxLength: length }),
      fc.integer({ min: 0, max: length * 8 }),
    )
    .map(([base, noise, keptBits]) => {
      const bytes = new Uint8Array(length);
      for (let bit = 0; bit < length * 8; bit++) {
        const source = bit < keptBits ? base : noise;
        bytes[bit >> 3]! |= source[bit >> 3]! & (0x80 >> (bit & 7));
      }
      return bytes;
    });
}

const addressArb: fc.Arbitrary<IpAddress> = fc.oneof(
  clusteredBytes(4).map((bytes): IpAddress => ({ family: 4, bytes })),
  clusteredBytes(6).map((bytes): IpAddress => ({ family: 6, bytes })),
  // An IPv4 client in ::ffff:0:0/96 form, unfolded.
  clusteredBytes(4).map((v4): IpAddress => {
    const bytes = new Uint8Array(16);
    bytes.set([0xff, 0xff], 10);
    bytes.set(v4, 12);
    return { family: 6, bytes };
  }),
);

function canonical(type: string, value: string): FirewallRule {
  const checked = validateFirewallRule(type, value);
  if ("error" in checked) throw new Error(checked.error);
  return checked.rule;
}

const ruleArb: fc.Arbitrary<FirewallRule> = fc.oneof(
  { weight: 2, arbitrary: addressArb.map((a) => canonical("ip", formatIp(a))) },
  {
    weight: 4,
    arbitrary: fc.tuple(addressArb, fc.integer({ min: 0, max: 128 })).map(([a, length]) => {
      const folded = isV4Mapped(a.bytes) ? { family: 4 as const, bytes: a.bytes.slice(12) } : a;
      const prefixLength = Math.min(length, folded.bytes.length * 8);
      const bytes = folded.bytes.slice();
      for (let bit = prefixLength; bit < bytes.length * 8; bit++)
        bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
      return canonical("cidr", formatCidr({ family: folded.family, bytes, prefixLength }));
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("RU", "CN", "DE").map((code) => canonical("country", code)),
  },
);

// A deterministic stand-in for a GeoIP database: the country follows the last byte.
const hashGeoIp: GeoIpLookup = {
  country(address) {
    return ["RU", "CN", "FR", null][address.bytes[address.bytes.length - 1]! % 4] ?? null;
  },
};

describe("check agrees with a naive reference", () => {
  test.each([
    ["with GeoIP", hashGeoIp],
    ["without GeoIP", null],
  ])("random rules and addresses, %s", (_label, geoip) => {
    const rules = geoip
      ? fc.array(ruleArb, { maxLength: 40 })
      : fc.array(ruleArb, { maxLength: 40 }).map((rs) => rs.filter((r) => r.type !== "country"));
    fc.assert(
      fc.property(
        rules,
        fc.array(addressArb, { minLength: 1, maxLength: 30 }),
        (ruleList, addresses) => {
          const firewall = Firewall.compile(ruleList, geoip);
          for (const address of addresses) {
            const verdict = firewall.check(address);
            // Over firewall.rules, so that identity tells apart equal rules at two positions.
            const expected = reference(firewall.rules, geoip, address);
            expect(verdict.blocked ? verdict.rule : null).toBe(expected);
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

/** mulberry32: a seeded generator, so the large test is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("50,000 CIDR rules", () => {
  test("compile, then check against per-prefix-length maps (an independent lookup)", () => {
    const random = seeded(42);
    const byte = () => Math.floor(random() * 256);
    const randomBytes = (n: number) => Uint8Array.from({ length: n }, byte);
    const masked = (bytes: Uint8Array, prefixLength: number) => {
      const out = bytes.slice();
      for (let bit = prefixLength; bit < out.length * 8; bit++)
        out[bit >> 3]! &= ~(0x80 >> (bit & 7));
      return out;
    };
    const rules: FirewallRule[] = [];
    // Few /8s, many /16–/32 inside a handful of them: deep nesting, as real blocklists have.
    const v4Tops = Array.from({ length: 8 }, () => byte());
    while (rules.length < 40_000) {
      const bytes = randomBytes(4);
      bytes[0] = v4Tops[Math.floor(random() * v4Tops.length)]!;
      const prefixLength = 8 + Math.floor(random() * 25);
      rules.push({
        type: "cidr",
        value: formatCidr({ family: 4, bytes: masked(bytes, prefixLength), prefixLength }),
      });
    }
    while (rules.length < 50_000) {
      const bytes = randomBytes(16);
      bytes.set([0x20, 0x01, 0x0d, 0xb8], 0);
      const prefixLength = 32 + Math.floor(random() * 97);
      rules.push({
        type: "cidr",
        value: formatCidr({ family: 6, bytes: masked(bytes, prefixLength), prefixLength }),
      });
    }
    for (let i = 0; i < 1_000; i++) {
      const bytes = randomBytes(4);
      bytes[0] = v4Tops[i % v4Tops.length]!;
      rules.push({ type: "ip", value: `${bytes.join(".")}` });
    }

    const firewall = Firewall.compile(rules, null);
    // The reference, over firewall.rules (verdicts carry those objects): an exact-ip map,
    // then one map per prefix length, longest first.
    const keyOf = (bytes: Uint8Array) => bytes.join(",");
    const ips = new Map<string, FirewallRule>();
    const byLength = new Map<string, Map<string, FirewallRule>>(); // "family/length" → key → rule
    for (const r of firewall.rules) {
      if (r.type === "ip") {
        const key = `${keyOf(ip(r.value).bytes)}`;
        if (!ips.has(key)) ips.set(key, r);
        continue;
      }
      const cidr = network(r.value);
      const slot = `${cidr.family}/${cidr.prefixLength}`;
      const map = byLength.get(slot) ?? new Map<string, FirewallRule>();
      byLength.set(slot, map);
      if (!map.has(keyOf(cidr.bytes))) map.set(keyOf(cidr.bytes), r);
    }
    const expectedFor = (address: IpAddress): FirewallRule | null => {
      const exact = ips.get(keyOf(address.bytes));
      if (exact) return exact;
      for (let length = address.bytes.length * 8; length >= 0; length--) {
        const hit = byLength
          .get(`${address.family}/${length}`)
          ?.get(keyOf(masked(address.bytes, length)));
        if (hit) return hit;
      }
      return null;
    };

    let blocked = 0;
    let allowed = 0;
    for (let i = 0; i < 20_000; i++) {
      let address: IpAddress;
      if (i % 2 === 0) {
        // Inside a random rule's network (host bits random): these mostly hit.
        const r = rules[Math.floor(random() * rules.length)]!;
        const base = r.type === "ip" ? { ...ip(r.value), prefixLength: 32 } : network(r.value);
        const bytes = randomBytes(base.bytes.length);
        for (let bit = 0; bit < base.prefixLength; bit++) {
          const mask = 0x80 >> (bit & 7);
          bytes[bit >> 3] = (bytes[bit >> 3]! & ~mask) | (base.bytes[bit >> 3]! & mask);
        }
        address = { family: base.family, bytes };
      } else {
        address =
          i % 4 === 1
            ? { family: 4, bytes: randomBytes(4) }
            : { family: 6, bytes: randomBytes(16) };
      }
      const verdict = firewall.check(address);
      expect(verdict.blocked ? verdict.rule : null).toBe(expectedFor(address));
      if (verdict.blocked) blocked++;
      else allowed++;
    }
    // Both outcomes must have been exercised, or the comparison proved little.
    expect(blocked).toBeGreaterThan(5_000);
    expect(allowed).toBeGreaterThan(5_000);
  });
});
