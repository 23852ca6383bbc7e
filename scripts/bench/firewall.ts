// Micro-benchmark of the per-connection firewall cost: check() with no rules vs 50,000 CIDRs.
//
//   bun scripts/bench/firewall.ts
//
// "parse+check" adds parseIp of the address text, which is what the accept path pays
// (Bun hands the remote address over as text). Figures are the best of several rounds, so
// they show the code's cost rather than the machine's noise; compare ratios, not absolutes.
import { join } from "node:path";
import type { FirewallRule } from "../../src/domain/types.ts";
import { Firewall, type GeoIpLookup } from "../../src/firewall/firewall.ts";
import { GeoIpDatabase } from "../../src/firewall/geoip.ts";
import { formatCidr, formatIp, type IpAddress, parseIp } from "../../src/ip/ip.ts";

const CIDR_RULES = 50_000;
const IP_RULES = 1_000;
const CLIENTS = 1 << 16;
const CALLS_PER_ROUND = 500_000;
const ROUNDS = 5;

/** mulberry32: the same rules and clients on every run. */
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
const random = seeded(7);
const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));

function network(family: 4 | 6, minLength: number, maxLength: number): string {
  const bytes = randomBytes(family === 4 ? 4 : 16);
  if (family === 6) bytes.set([0x20, 0x01, 0x0d, 0xb8], 0);
  const prefixLength = minLength + Math.floor(random() * (maxLength - minLength + 1));
  for (let bit = prefixLength; bit < bytes.length * 8; bit++)
    bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return formatCidr({ family, bytes, prefixLength });
}

// A blocklist-like mix: 80% IPv4 networks (a few /8–/15, the rest /16–/32), 20% IPv6 /32–/64.
const bigRules: FirewallRule[] = [];
for (let i = 0; i < CIDR_RULES; i++) {
  const value =
    i % 5 === 4 ? network(6, 32, 64) : i % 500 === 0 ? network(4, 8, 15) : network(4, 16, 32);
  bigRules.push({ type: "cidr", value });
}
for (let i = 0; i < IP_RULES; i++) {
  bigRules.push({ type: "ip", value: formatIp({ family: 4, bytes: randomBytes(4) }) });
}

// Clients: 70% IPv4 (half of those as ::ffff:a.b.c.d, as a dual-stack listener sees them), 30% IPv6.
const clientTexts: string[] = [];
for (let i = 0; i < CLIENTS; i++) {
  const roll = random();
  if (roll < 0.35) clientTexts.push(formatIp({ family: 4, bytes: randomBytes(4) }));
  else if (roll < 0.7) clientTexts.push(`::ffff:${formatIp({ family: 4, bytes: randomBytes(4) })}`);
  else {
    const bytes = randomBytes(16);
    if (random() < 0.5) bytes.set([0x20, 0x01, 0x0d, 0xb8], 0);
    clientTexts.push(formatIp({ family: 6, bytes }));
  }
}
const clients: IpAddress[] = clientTexts.map((text) => parseIp(text)!);

let sink = 0; // Consumed at the end, so the calls cannot be optimised away.

/** Best-of-rounds nanoseconds per call of `body(client)`, cycling through the clients in `pool`. */
function measure(pool: readonly number[], body: (client: number) => boolean): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const start = Bun.nanoseconds();
    for (let i = 0; i < CALLS_PER_ROUND; i++) if (body(pool[i % pool.length]!)) sink++;
    best = Math.min(best, (Bun.nanoseconds() - start) / CALLS_PER_ROUND);
  }
  return best;
}

function time<T>(make: () => T): { value: T; ms: number } {
  const start = Bun.nanoseconds();
  const value = make();
  return { value, ms: (Bun.nanoseconds() - start) / 1e6 };
}

const empty = Firewall.compile([], null);
const big = time(() => Firewall.compile(bigRules, null));
const geoip: GeoIpLookup = GeoIpDatabase.open(
  join(import.meta.dir, "../../test/fixtures/geoip/country-a.mmdb"),
);
const withCountry = Firewall.compile([...bigRules, { type: "country", value: "RU" }], geoip);

const all = clients.map((_, i) => i);
const v4 = all.filter((i) => clients[i]!.family === 4);
const v6 = all.filter((i) => clients[i]!.family === 6);
const n = bigRules.length;
const check = (firewall: Firewall) => (i: number) => firewall.check(clients[i]!).blocked;
const parseAndCheck = (firewall: Firewall) => (i: number) =>
  firewall.check(parseIp(clientTexts[i]!)!).blocked;

const rows: Array<[string, number]> = [
  ["0 rules: check", measure(all, check(empty))],
  ["0 rules: parseIp+check", measure(all, parseAndCheck(empty))],
  [`${n} rules: check`, measure(all, check(big.value))],
  [`${n} rules: parseIp+check`, measure(all, parseAndCheck(big.value))],
  [`${n} rules: check, IPv4 clients only`, measure(v4, check(big.value))],
  [`${n} rules: check, IPv6 clients only`, measure(v6, check(big.value))],
  [`${n} rules + 1 country: check`, measure(all, check(withCountry))],
  ["parseIp alone", measure(all, (i) => parseIp(clientTexts[i]!) !== null)],
];

const blocked = clients.filter((client) => big.value.check(client).blocked).length;
console.log(
  `firewall benchmark (bun ${Bun.version}, best of ${ROUNDS} x ${CALLS_PER_ROUND} calls)`,
);
console.log(
  `compile ${n} rules: ${big.ms.toFixed(0)} ms; ` +
    `${((100 * blocked) / CLIENTS).toFixed(1)}% of the random clients blocked`,
);
for (const [label, ns] of rows) {
  console.log(`${label.padEnd(40)} ${ns.toFixed(1).padStart(7)} ns/call`);
}
const ratio = (a: number, b: number) => (rows[a]![1] / rows[b]![1]).toFixed(2);
console.log(`ratio ${n} rules / 0 rules, check:         ${ratio(2, 0)}x`);
console.log(`ratio ${n} rules / 0 rules, parseIp+check: ${ratio(3, 1)}x`);
if (sink < 0) console.log(sink);
