// The firewall: rules compiled once into lookup tables, checked against every accepted client.
import { firewallRuleKey, validateFirewallRule } from "../config/firewall-rule.ts";
import type { FirewallRule } from "../domain/types.ts";
import { type IpAddress, parseCidr, parseIp } from "../ip/ip.ts";
import { isV4Mapped, readWord } from "./address-words.ts";
import {
  flattenRanges,
  Ipv4RangeTable,
  Ipv6RangeTable,
  NO_MATCH,
  nextIpv4,
  nextIpv6,
  type RangeInput,
} from "./range-table.ts";

/** What the firewall decided for one client; a block carries the rule, for the log and the hit counter. */
export type Verdict =
  | { readonly blocked: false }
  | { readonly blocked: true; readonly rule: FirewallRule };

/** The country lookup the firewall needs. GeoIpDatabase is the real one; tests may pass a stub. */
export interface GeoIpLookup {
  /** ISO 3166-1 alpha-2 code (upper case) of the address's country, or null when unknown. */
  country(address: IpAddress): string | null;
}

/** A rule the firewall cannot compile; the message names the rule. */
export class FirewallCompileError extends Error {
  override readonly name = "FirewallCompileError";
}

const MAX_IPV4 = 0xffffffff;
const MAX_IPV6 = (1n << 128n) - 1n;
// An exact address outranks a cidr covering the same single address (`ip` is checked first).
const RANK_IP = 0;
const RANK_CIDR = 1;

const COUNTRY_CODE = /^[A-Z]{2}$/;

/** What one rule matches: a network (an ip is a full-length one) or a country. */
type RuleTarget =
  | { kind: "network"; bytes: Uint8Array; prefixLength: number }
  | { kind: "country"; code: string };

/**
 * Parses one rule into what it matches. Rules from the config and the admin API are
 * canonical already, but the firewall does not rely on it: anything that does not parse
 * throws, with validateFirewallRule's message (the one the config loader gives).
 * It is called for every rule on every recompile, so it parses each rule only once.
 */
function parseRule(rule: FirewallRule): RuleTarget {
  if (rule.type === "ip") {
    const address = parseIp(rule.value);
    if (address) {
      return { kind: "network", bytes: address.bytes, prefixLength: address.bytes.length * 8 };
    }
  } else if (rule.type === "cidr") {
    const parsed = parseCidr(rule.value);
    if ("cidr" in parsed) return { kind: "network", ...parsed.cidr };
  } else if (rule.type === "country") {
    const code = rule.value.toUpperCase(); // As validateFirewallRule does.
    if (COUNTRY_CODE.test(code)) return { kind: "country", code };
  }
  const checked = validateFirewallRule(rule.type, rule.value);
  const why = "error" in checked ? checked.error : `${firewallRuleKey(rule)}: invalid rule`;
  throw new FirewallCompileError(`firewall: ${why}`);
}

/** Sixteen address bytes as one bigint, for IPv6 range arithmetic at compile time. */
function wordsToBigInt(bytes: Uint8Array): bigint {
  return (
    (BigInt(readWord(bytes, 0)) << 96n) |
    (BigInt(readWord(bytes, 4)) << 64n) |
    (BigInt(readWord(bytes, 8)) << 32n) |
    BigInt(readWord(bytes, 12))
  );
}

// One frozen verdict, returned for every allowed client: the common case allocates nothing.
const ALLOWED: Verdict = Object.freeze({ blocked: false });

/**
 * An immutable, compiled rule set. The runtime builds a new one when the rules (or the GeoIP
 * database) change and swaps it whole; a check in flight keeps the one it started with.
 *
 * Order of evaluation (and so which rule a block reports): `ip`, then `cidr` (the most
 * specific network wins when several contain the client), then `country`, which costs a
 * GeoIP lookup and is skipped entirely when there are no country rules. Among identical
 * rules the first in `rules` is reported.
 */
export class Firewall {
  private constructor(
    /** The rules as given, in order (frozen copies). */
    readonly rules: readonly FirewallRule[],
    /** True when a GeoIP lookup can block anyone; the runtime needs a database then. */
    readonly hasCountryRules: boolean,
    private readonly v4: Ipv4RangeTable,
    private readonly v6: Ipv6RangeTable,
    /** Index of a rule in `rules` → its (preallocated) blocked verdict. */
    private readonly verdicts: readonly Verdict[],
    /** Country code → blocked verdict of the first rule naming it. */
    private readonly countries: ReadonlyMap<string, Verdict>,
    private readonly geoip: GeoIpLookup | null,
  ) {}

  /**
   * Compiles rules into lookup tables. Throws FirewallCompileError naming the first rule
   * that does not validate, or a country rule when there is no GeoIP database to look in.
   */
  static compile(rules: readonly FirewallRule[], geoip: GeoIpLookup | null): Firewall {
    // Own copies, so that a caller changing its rule objects later cannot change what a
    // verdict reports (FirewallHits also caches counters by rule object). Not frozen one by
    // one: Object.freeze on 50,000 objects cost more than parsing them; the types say readonly.
    const own: readonly FirewallRule[] = Object.freeze(
      rules.map((rule): FirewallRule => ({ type: rule.type, value: rule.value })),
    );
    const v4: RangeInput<number>[] = [];
    const v6: RangeInput<bigint>[] = [];
    const countries = new Map<string, Verdict>();
    const verdicts = own.map((rule): Verdict => ({ blocked: true, rule }));

    own.forEach((rule, index) => {
      const target = parseRule(rule);
      if (target.kind === "country") {
        if (geoip === null) {
          throw new FirewallCompileError(
            `firewall: country rule ${JSON.stringify(target.code)} needs a GeoIP database (geoip_db)`,
          );
        }
        if (!countries.has(target.code)) countries.set(target.code, verdicts[index]!);
        return;
      }
      const rank = rule.type === "ip" ? RANK_IP : RANK_CIDR;
      const { bytes, prefixLength } = target;
      if (bytes.length === 4) {
        const start = readWord(bytes, 0);
        // 2 ** hostBits, not 1 << hostBits: a /0 has 32 host bits, past what << can shift.
        const end = start + 2 ** (32 - prefixLength) - 1;
        v4.push({ start, end, value: index, rank });
      } else {
        const start = wordsToBigInt(bytes);
        const end = start | ((1n << BigInt(128 - prefixLength)) - 1n);
        v6.push({ start, end, value: index, rank });
      }
    });

    return new Firewall(
      own,
      countries.size > 0,
      new Ipv4RangeTable(flattenRanges(v4, 0, MAX_IPV4, nextIpv4)),
      new Ipv6RangeTable(flattenRanges(v6, 0n, MAX_IPV6, nextIpv6)),
      verdicts,
      countries,
      countries.size > 0 ? geoip : null,
    );
  }

  /**
   * The verdict for one client address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is checked as the
   * IPv4 address it carries. Allocates nothing unless a country lookup is needed.
   */
  check(address: IpAddress): Verdict {
    const bytes = address.bytes;
    let index: number;
    if (address.family === 4) {
      index = this.v4.lookup(readWord(bytes, 0));
    } else if (isV4Mapped(bytes)) {
      index = this.v4.lookup(readWord(bytes, 12));
    } else {
      index = this.v6.lookup(
        readWord(bytes, 0),
        readWord(bytes, 4),
        readWord(bytes, 8),
        readWord(bytes, 12),
      );
    }
    if (index !== NO_MATCH) return this.verdicts[index]!;
    if (this.geoip === null) return ALLOWED;
    const code = this.geoip.country(address);
    if (code === null) return ALLOWED;
    return this.countries.get(code) ?? ALLOWED;
  }
}
