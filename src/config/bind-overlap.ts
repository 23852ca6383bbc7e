// Whether two configured bind addresses would take the same port on overlapping interfaces.
import type { HostPort } from "../ip/host-port.ts";
import { normalizeIp } from "../ip/ip.ts";

type HostClass =
  | { kind: "any" } // every interface, IPv4 and IPv6
  | { kind: "any-v4" }
  | { kind: "ip"; family: 4 | 6; text: string }
  | { kind: "name"; text: string };

function classify(host: string): HostClass {
  if (host === "") return { kind: "any" };
  const ip = normalizeIp(host);
  // Linux binds `::` dual-stack by default (net.ipv6.bindv6only = 0), like ":port".
  if (ip === "::") return { kind: "any" };
  if (ip === "0.0.0.0") return { kind: "any-v4" };
  if (ip !== null) return { kind: "ip", family: ip.includes(":") ? 6 : 4, text: ip };
  return { kind: "name", text: host.toLowerCase() };
}

/**
 * True when both addresses would bind one port on a shared interface. This matters beyond a
 * bind error: listeners may bind with SO_REUSEPORT, and then the kernel would quietly split
 * connections between the two route tables. Port 0 never overlaps (the kernel picks a free
 * port each time). A host name and an IP literal are not compared: that would need DNS.
 */
export function bindsOverlap(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  const x = classify(a.host);
  const y = classify(b.host);
  if (x.kind === "any" || y.kind === "any") return true;
  const isV4 = (c: HostClass) => c.kind === "any-v4" || (c.kind === "ip" && c.family === 4);
  if (x.kind === "any-v4" || y.kind === "any-v4") return isV4(x) && isV4(y);
  if (x.kind !== y.kind) return false;
  return x.text === y.text;
}
