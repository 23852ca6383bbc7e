// IP address and CIDR text ⇄ bytes, shared by config validation, the firewall and PROXY protocol.
import type { Cidr, IpAddress } from "../domain/types.ts";

export type { Cidr, IpAddress };

const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

/**
 * Dotted quad → 4 bytes, by hand: every accepted connection parses its peer address, and a
 * split/regex version cost about ten times a firewall check. Leading zeros are refused
 * (`010.0.0.1` is octal to some parsers, decimal to others).
 */
function parseIpv4(text: string): Uint8Array | null {
  const length = text.length;
  if (length < 7 || length > 15) return null;
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= length; i++) {
    const code = i < length ? text.charCodeAt(i) : 46; // a virtual "." ends the last part
    if (code === 46) {
      if (digits === 0 || part > 3) return null;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && value === 0) return null; // leading zero
      value = value * 10 + (code - 48);
      if (value > 255) return null;
      digits++;
    } else {
      return null;
    }
  }
  return part === 4 ? bytes : null;
}

function parseIpv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const bytes = new Uint8Array(16);
  let tail = text;
  let v4: Uint8Array | null = null;
  // RFC 4291 §2.2 form 3: the last 32 bits may be written as dotted IPv4.
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    v4 = parseIpv4(text.slice(lastColon + 1));
    if (!v4) return null;
    tail = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = tail.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const rest = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const groups = head.length + rest.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return null;
  const write = (list: string[], start: number): boolean => {
    for (let i = 0; i < list.length; i++) {
      const group = list[i]!;
      if (!HEX_GROUP.test(group)) return false;
      const value = Number.parseInt(group, 16);
      bytes[(start + i) * 2] = value >> 8;
      bytes[(start + i) * 2 + 1] = value & 0xff;
    }
    return true;
  };
  if (!write(head, 0) || !write(rest, 8 - rest.length)) return null;
  if (v4) bytes.set(v4, 12);
  return bytes;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Parses an IPv4 or IPv6 address (no brackets, no zone). IPv4-mapped IPv6 (`::ffff:1.2.3.4`)
 * comes back as IPv4, because the firewall and the logs must treat it as the IPv4 client it is.
 */
export function parseIp(text: string): IpAddress | null {
  // Fast path: on a dual-stack listener every IPv4 client arrives as `::ffff:a.b.c.d`.
  if (text.startsWith("::ffff:") && text.indexOf(":", 7) === -1) {
    const bytes = parseIpv4(text.slice(7));
    if (bytes) return { family: 4, bytes };
    // Not a dotted quad: `::ffff:a00` is the plain IPv6 address 0:0:0:0:0:0:ffff:a00.
  }
  if (text.includes(":")) {
    const bytes = parseIpv6(text);
    if (!bytes) return null;
    if (isV4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
    return { family: 6, bytes };
  }
  const bytes = parseIpv4(text);
  return bytes ? { family: 4, bytes } : null;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(address: IpAddress): string {
  const b = address.bytes;
  if (address.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // RFC 5952 §4.2.2: a single zero group is not shortened.
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLength).join(":");
  return `${left}::${right}`;
}

/** Canonical form of an address text, or null when it is not an address. */
export function normalizeIp(text: string): string | null {
  const address = parseIp(text);
  return address ? formatIp(address) : null;
}

/**
 * Parses `addr/len`. Host bits must be zero (`10.0.0.1/8` is refused): a rule that looks
 * narrower than it is would block more than the operator meant.
 */
export function parseCidr(text: string): { cidr: Cidr } | { error: string } {
  const slash = text.indexOf("/");
  if (slash === -1) return { error: "missing /prefix length" };
  const address = parseIp(text.slice(0, slash));
  if (!address) return { error: "not an IPv4 or IPv6 network address" };
  const lengthText = text.slice(slash + 1);
  const writtenAsV6 = text.slice(0, slash).includes(":");
  const max = writtenAsV6 ? 128 : 32;
  if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > max) {
    return { error: `prefix length must be 0-${max}` };
  }
  let prefixLength = Number(lengthText);
  // `::ffff:10.0.0.0/104` folds to IPv4: keep the same network.
  if (address.family === 4 && writtenAsV6) {
    if (prefixLength < 96) return { error: "IPv4-mapped prefix must be at least /96" };
    prefixLength -= 96;
  }
  const bytes = address.bytes;
  for (let bit = prefixLength; bit < bytes.length * 8; bit++) {
    if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) {
      return { error: "host bits set (did you mean the network address?)" };
    }
  }
  return { cidr: { family: address.family, bytes, prefixLength } };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr)}/${cidr.prefixLength}`;
}

/** True when `address` lies inside `cidr` (same family only). */
export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (cidr.family !== address.family) return false;
  const full = cidr.prefixLength >> 3;
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== address.bytes[i]) return false;
  const rest = cidr.prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (cidr.bytes[full]! & mask) === (address.bytes[full]! & mask);
}
