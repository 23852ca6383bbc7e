// PROXY protocol version 1: the human-readable line `PROXY TCP4 src dst sport dport\r\n`
// (proxy-protocol.txt §2.1), decoded strictly and incrementally, and encoded for tests.
import { formatIp, parseIp } from "../ip/ip.ts";
import { checkedEndpoint } from "./endpoint.ts";
import type { ProxyEndpoint, ProxyHeaderResult } from "./header.ts";

/** "PROXY " — the 6 bytes every v1 header starts with. */
export const PROXY_V1_PREFIX = Uint8Array.from("PROXY ", (c) => c.charCodeAt(0));

/** §2.1: "a receiver must not need to read more than 107 bytes", CRLF included. */
export const MAX_PROXY_V1_BYTES = 107;

const CR = 0x0d;
const LF = 0x0a;
/** §2.1: ports are decimal 0-65535; a leading zero is not a valid port text. */
const PORT = /^(0|[1-9][0-9]{0,4})$/;

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, "0")}`;

/**
 * Decodes a v1 header from a buffer that starts with {@link PROXY_V1_PREFIX} (the dispatcher has
 * checked it). Waits for CRLF within {@link MAX_PROXY_V1_BYTES}; any other control byte, a lone
 * CR or LF, or a missing CRLF by then is malformed.
 */
export function decodeProxyV1(buffered: Uint8Array): ProxyHeaderResult {
  const end = Math.min(buffered.length, MAX_PROXY_V1_BYTES);
  let lineEnd = -1;
  for (let i = PROXY_V1_PREFIX.length; i < end; i++) {
    const byte = buffered[i]!;
    if (byte === CR) {
      // The LF must fit within the 107 bytes too.
      if (i + 2 > MAX_PROXY_V1_BYTES) break;
      if (i + 1 >= buffered.length) return { kind: "need-more" };
      if (buffered[i + 1] !== LF) {
        return { kind: "malformed", reason: `PROXY v1 CR at byte ${i} is not followed by LF` };
      }
      lineEnd = i;
      break;
    }
    if (byte < 0x20 || byte > 0x7e) {
      return {
        kind: "malformed",
        reason: `PROXY v1 byte ${i} is ${hex(byte)} (only printable ASCII before CRLF)`,
      };
    }
  }
  if (lineEnd === -1) {
    if (buffered.length < MAX_PROXY_V1_BYTES) return { kind: "need-more" };
    return {
      kind: "malformed",
      reason: `PROXY v1 line has no CRLF within ${MAX_PROXY_V1_BYTES} bytes`,
    };
  }
  const line = String.fromCharCode(...buffered.subarray(PROXY_V1_PREFIX.length, lineEnd));
  const length = lineEnd + 2;
  // §2.1: with UNKNOWN "the receiver must ignore anything presented before the CRLF".
  if (line === "UNKNOWN" || line.startsWith("UNKNOWN ")) {
    return {
      kind: "done",
      header: { version: 1, command: "proxy", family: "unknown", source: null, destination: null },
      length,
    };
  }
  const fields = line.split(" ");
  const protocol = fields[0]!;
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    return {
      kind: "malformed",
      reason: `PROXY v1 protocol "${protocol}": must be TCP4, TCP6 or UNKNOWN`,
    };
  }
  if (fields.length !== 5) {
    return {
      kind: "malformed",
      reason: `PROXY v1 line "${line}" has ${fields.length} fields: must be protocol, two addresses and two ports separated by single spaces`,
    };
  }
  const source = endpoint(protocol, "source", fields[1]!, fields[3]!);
  if (typeof source === "string") return { kind: "malformed", reason: source };
  const destination = endpoint(protocol, "destination", fields[2]!, fields[4]!);
  if (typeof destination === "string") return { kind: "malformed", reason: destination };
  return {
    kind: "done",
    header: {
      version: 1,
      command: "proxy",
      family: protocol === "TCP4" ? "tcp4" : "tcp6",
      source,
      destination,
    },
    length,
  };
}

/** The endpoint, or an error message naming the bad field. */
function endpoint(
  protocol: "TCP4" | "TCP6",
  which: string,
  addressText: string,
  portText: string,
): ProxyEndpoint | string {
  // The family decides the notation: TCP4 takes dotted quads only, TCP6 takes IPv6 text only.
  const wantV6 = protocol === "TCP6";
  const address = addressText.includes(":") === wantV6 ? parseIp(addressText) : null;
  if (!address) {
    return `PROXY v1 ${which} address "${addressText}": not an ${wantV6 ? "IPv6" : "IPv4"} address (${protocol})`;
  }
  if (!PORT.test(portText) || Number(portText) > 65535) {
    return `PROXY v1 ${which} port "${portText}": must be 0-65535 without leading zeros`;
  }
  return { address: formatIp(address), port: Number(portText) };
}

/**
 * Encodes a `PROXY TCP4|TCP6` line. Both IPv4: TCP4; otherwise TCP6, an IPv4 end written as
 * `::ffff:a.b.c.d`. Throws ProxyProtocolError on a bad address or port.
 */
export function encodeProxyV1(source: ProxyEndpoint, destination: ProxyEndpoint): Uint8Array {
  const src = checkedEndpoint("source", source);
  const dst = checkedEndpoint("destination", destination);
  const v4 = src.family === 4 && dst.family === 4;
  const text = (family: 4 | 6, bytes: Uint8Array): string =>
    family === 4 && !v4 ? `::ffff:${formatIp({ family, bytes })}` : formatIp({ family, bytes });
  const line = `PROXY ${v4 ? "TCP4" : "TCP6"} ${text(src.family, src.bytes)} ${text(dst.family, dst.bytes)} ${source.port} ${destination.port}\r\n`;
  return Uint8Array.from(line, (c) => c.charCodeAt(0));
}
