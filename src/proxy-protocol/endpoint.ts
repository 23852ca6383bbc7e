// Address conversions shared by the v1 and v2 codecs: endpoint validation, IPv4 ⇄ IPv6 mapping.
import { type IpAddress, parseIp } from "../ip/ip.ts";
import { type ProxyEndpoint, ProxyProtocolError } from "./header.ts";

/**
 * Parses `endpoint.address` (IPv4-mapped IPv6 folds to IPv4) and checks the port. Throws
 * ProxyProtocolError naming `which` end and the bad value.
 */
export function checkedEndpoint(
  which: "source" | "destination",
  endpoint: ProxyEndpoint,
): IpAddress {
  const address = parseIp(endpoint.address);
  if (!address) {
    throw new ProxyProtocolError(
      `proxy header ${which} address "${endpoint.address}": not an IPv4 or IPv6 address`,
    );
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535) {
    throw new ProxyProtocolError(
      `proxy header ${which} port ${endpoint.port}: must be an integer 0-65535`,
    );
  }
  return address;
}

/** The 16 bytes of `address` as IPv6, IPv4 mapped into `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2). */
export function asIpv6Bytes(address: IpAddress): Uint8Array {
  if (address.family === 6) return address.bytes;
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(address.bytes, 12);
  return bytes;
}

/**
 * The address held in 4 or 16 raw bytes, an IPv4-mapped IPv6 address folded to IPv4 as
 * parseIp does, so the firewall and the logs see the IPv4 client it is.
 */
export function addressFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length === 4) return { family: 4, bytes };
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) mapped = bytes[i] === 0;
  return mapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
}
