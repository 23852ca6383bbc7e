// `host:port` text → parts, for listener, backend and admin addresses (SPEC §2).
import type { HostPort } from "../domain/types.ts";
import { normalizeIp } from "./ip.ts";

export type { HostPort };

const HOSTNAME =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * Parses `host:port`, `[v6]:port` or `:port`. Returns a reason on failure, phrased to follow
 * the value in an error message. `allowPortZero` is for listeners (the kernel picks a port).
 */
export function parseHostPort(
  text: string,
  options: { allowEmptyHost: boolean; allowPortZero: boolean },
): { value: HostPort } | { error: string } {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1 || text[close + 1] !== ":") return { error: "expected [ipv6]:port" };
    host = text.slice(1, close);
    if (!host.includes(":") || normalizeIp(host) === null) return { error: "bad IPv6 address" };
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) return { error: "missing :port" };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return { error: "IPv6 addresses need brackets: [addr]:port" };
    if (host !== "" && !HOSTNAME.test(host) && normalizeIp(host) === null) {
      return { error: "bad host" };
    }
  }
  if (host === "" && !options.allowEmptyHost) return { error: "missing host" };
  if (!/^\d{1,5}$/.test(portText)) return { error: "port must be a number (1-65535)" };
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !options.allowPortZero)) {
    return { error: "port out of range (1-65535)" };
  }
  return { value: { host, port } };
}

/** `host:port` with brackets around IPv6, for logs and Bun.connect. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
