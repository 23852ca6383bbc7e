// Whether an address binds loopback only: the admin API and /metrics are safe there without more.

import { parseHostPort } from "../ip/host-port.ts";
import { normalizeIp } from "../ip/ip.ts";

/**
 * True for `127.0.0.0/8`, `::1` and `localhost` hosts. Anything else (a wildcard, a public or
 * private address, another name) can be reached from outside the machine.
 */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === "localhost") return true;
  const ip = normalizeIp(lower);
  if (ip === null) return false;
  return ip === "::1" || /^127\./.test(ip);
}

/** isLoopbackHost of a `host:port` text (false when it does not parse or names no host). */
export function isLoopbackAddr(addr: string): boolean {
  const parsed = parseHostPort(addr, { allowEmptyHost: true, allowPortZero: true });
  return "value" in parsed && isLoopbackHost(parsed.value.host);
}
