// The routes and firewall rules every system under test gets: deterministic, none match 127.0.0.1.
import { formatCidr } from "../../src/ip/ip.ts";

/** SNI names of the four backend behaviours (same length, so the ClientHellos are too). */
export const NAMES = {
  rate: "rate.bench.test",
  sink: "sink.bench.test",
  source: "srce.bench.test",
  idle: "idle.bench.test",
} as const;
export type Purpose = keyof typeof NAMES;

/** How much configuration a system carries. */
export type Scale = "std" | "min" | "big";

export interface RouteSpec {
  hostname: string;
  purpose: Purpose;
}

export interface RuleSet {
  routes: RouteSpec[];
  /** CIDR texts, IPv4 and IPv6; none contains a loopback client. */
  cidrs: string[];
}

const STD_CIDRS = 300;
const BIG_ROUTES = 10_000;
const BIG_CIDRS = 50_000;

/** mulberry32: the same rules on every run. */
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

/** A blocklist-like mix, as in firewall.ts: 80% IPv4 (/16–/32, a few /8–/15), 20% IPv6. */
function blocklist(count: number, seed: number): string[] {
  const random = seeded(seed);
  const bytesOf = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  const seen = new Set<string>();
  for (let i = 0; seen.size < count; i++) {
    const v6 = i % 5 === 4;
    const bytes = bytesOf(v6 ? 16 : 4);
    if (v6) bytes.set([0x20, 0x01, 0x0d, 0xb8], 0);
    // Keep 127/8 (the bench's clients) and 0/8 out of every IPv4 network.
    else if (bytes[0] === 127 || bytes[0] === 0) continue;
    const [min, max] = v6 ? [32, 64] : i % 500 === 0 ? [8, 15] : [16, 32];
    const prefixLength = min + Math.floor(random() * (max - min + 1));
    for (let bit = prefixLength; bit < bytes.length * 8; bit++)
      bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
    seen.add(formatCidr({ family: v6 ? 6 : 4, bytes, prefixLength }));
  }
  return [...seen];
}

export function ruleSet(scale: Scale): RuleSet {
  if (scale === "min") return { routes: [{ hostname: NAMES.rate, purpose: "rate" }], cidrs: [] };
  const routes: RouteSpec[] = (Object.keys(NAMES) as Purpose[]).map((purpose) => ({
    hostname: NAMES[purpose],
    purpose,
  }));
  if (scale === "std") return { routes, cidrs: blocklist(STD_CIDRS, 11) };
  // 10,000 routes: the four real ones among filler names that share the rate backend.
  for (let i = routes.length; i < BIG_ROUTES; i++) {
    routes.push({ hostname: `host-${String(i).padStart(5, "0")}.bench.test`, purpose: "rate" });
  }
  return { routes, cidrs: blocklist(BIG_CIDRS, 7) };
}
