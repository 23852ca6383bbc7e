// PROXY protocol version 2: the binary header (proxy-protocol.txt §2.2), decoded strictly and
// incrementally, and encoded for backends that asked for it (SPEC §6 send_proxy_protocol).
import { formatIp } from "../ip/ip.ts";
import { addressFromBytes, asIpv6Bytes, checkedEndpoint } from "./endpoint.ts";
import type { ProxyEndpoint, ProxyHeader, ProxyHeaderResult } from "./header.ts";

/** §2.2: the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, chosen so no v1 or HTTP text can match. */
export const PROXY_V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/** signature(12) + ver_cmd(1) + fam(1) + len(2). */
export const PROXY_V2_HEADER_BYTES = 16;

/**
 * Largest accepted value of the v2 length field (bytes after the 16-byte header). The field
 * allows 65535, and the whole header must be buffered before the connection goes on; an
 * unauthenticated peer could otherwise make every connection hold 64 KiB. Addresses take at
 * most 36 bytes here (216 for unix sockets, which are refused), and the TLVs real balancers
 * add (ALPN, authority, unique ID ≤ 128, SSL details, cloud endpoint IDs) stay far below 4 KiB.
 */
export const MAX_PROXY_V2_LENGTH = 4096;

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
/** §2.2 byte 14: high nibble address family, low nibble transport. */
const FAMILY_UNSPEC = 0x00;
const FAMILY_TCP4 = 0x11;
const FAMILY_TCP6 = 0x21;
/** Address block sizes for TCP over IPv4 and IPv6 (§2.2: 12 and 36 bytes). */
const TCP4_ADDRESS_BYTES = 12;
const TCP6_ADDRESS_BYTES = 36;
/** TLV header: type(1) + length(2) (§2.2.1). */
const TLV_HEADER_BYTES = 3;

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, "0")}`;

/** Why a PROXY-command family byte is refused, or null when it is TCP4, TCP6 or UNSPEC. */
function familyProblem(fam: number): string | null {
  if (fam === FAMILY_UNSPEC || fam === FAMILY_TCP4 || fam === FAMILY_TCP6) return null;
  if (fam === 0x12 || fam === 0x22) {
    return `PROXY v2 family ${hex(fam)} is UDP: only TCP (0x11, 0x21) or UNSPEC (0x00) is supported`;
  }
  if (fam === 0x31 || fam === 0x32) {
    return `PROXY v2 family ${hex(fam)} is a unix socket: only TCP (0x11, 0x21) or UNSPEC (0x00) is supported`;
  }
  // §2.2: "Other values are unspecified and must not be emitted … must be rejected as invalid".
  return `PROXY v2 family ${hex(fam)} is not defined: must be 0x00 (UNSPEC), 0x11 (TCP4) or 0x21 (TCP6)`;
}

/**
 * Decodes a v2 header from a buffer that starts with {@link PROXY_V2_SIGNATURE} (the dispatcher
 * has checked it). The fixed 16 bytes are judged as soon as they arrive, before the address
 * block, so a bad or oversized header is refused without waiting for its body.
 */
export function decodeProxyV2(buffered: Uint8Array): ProxyHeaderResult {
  // Byte 12 (§2.2 ver_cmd): high nibble version, low nibble command.
  if (buffered.length <= 12) return { kind: "need-more" };
  const verCmd = buffered[12]!;
  if (verCmd >> 4 !== 2) {
    return { kind: "malformed", reason: `PROXY v2 version ${verCmd >> 4}: must be 2` };
  }
  const command = verCmd & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) {
    return {
      kind: "malformed",
      reason: `PROXY v2 command ${command}: must be 0 (LOCAL) or 1 (PROXY)`,
    };
  }
  // Byte 13 (§2.2 fam): high nibble address family, low nibble transport protocol.
  if (buffered.length <= 13) return { kind: "need-more" };
  const fam = buffered[13]!;
  // §2.2: with LOCAL the receiver "must discard the protocol block including the family".
  if (command === COMMAND_PROXY) {
    const problem = familyProblem(fam);
    if (problem) return { kind: "malformed", reason: problem };
  }
  // Bytes 14-15 (§2.2 len): what follows the 16-byte header, network byte order.
  if (buffered.length < PROXY_V2_HEADER_BYTES) return { kind: "need-more" };
  const blockLength = (buffered[14]! << 8) | buffered[15]!;
  if (blockLength > MAX_PROXY_V2_LENGTH) {
    return {
      kind: "malformed",
      reason: `PROXY v2 length ${blockLength} exceeds the ${MAX_PROXY_V2_LENGTH}-byte limit`,
    };
  }
  // LOCAL and UNSPEC carry no addresses the receiver may use (§2.2), so need none.
  const addressBytes =
    command === COMMAND_PROXY && fam === FAMILY_TCP4
      ? TCP4_ADDRESS_BYTES
      : command === COMMAND_PROXY && fam === FAMILY_TCP6
        ? TCP6_ADDRESS_BYTES
        : 0;
  if (blockLength < addressBytes) {
    return {
      kind: "malformed",
      reason: `PROXY v2 length ${blockLength} is shorter than the ${addressBytes}-byte address block of family ${hex(fam)}`,
    };
  }
  const length = PROXY_V2_HEADER_BYTES + blockLength;
  if (buffered.length < length) return { kind: "need-more" };
  if (command === COMMAND_LOCAL || fam === FAMILY_UNSPEC) {
    // LOCAL: the balancer's own connection (health check). UNSPEC: unknown origin. Either way
    // §2.2 asks the receiver to ignore the block and use the socket's real endpoints.
    const header: ProxyHeader = {
      version: 2,
      command: command === COMMAND_LOCAL ? "local" : "proxy",
      family: "unknown",
      source: null,
      destination: null,
    };
    return { kind: "done", header, length };
  }
  const tlvProblem = checkTlvs(buffered, PROXY_V2_HEADER_BYTES + addressBytes, length);
  if (tlvProblem) return { kind: "malformed", reason: tlvProblem };
  const v4 = fam === FAMILY_TCP4;
  const addressSize = v4 ? 4 : 16;
  const at = PROXY_V2_HEADER_BYTES;
  // §2.2 address block: src_addr, dst_addr, src_port, dst_port, all in network byte order.
  const endpointAt = (addressOffset: number, portOffset: number): ProxyEndpoint => ({
    address: formatIp(addressFromBytes(buffered.slice(addressOffset, addressOffset + addressSize))),
    port: (buffered[portOffset]! << 8) | buffered[portOffset + 1]!,
  });
  const header: ProxyHeader = {
    version: 2,
    command: "proxy",
    family: v4 ? "tcp4" : "tcp6",
    source: endpointAt(at, at + 2 * addressSize),
    destination: endpointAt(at + addressSize, at + 2 * addressSize + 2),
  };
  return { kind: "done", header, length };
}

/**
 * Checks that the TLVs (§2.2.1) in `[start, end)` tile the rest of the header exactly. They are
 * not interpreted (CRC32C and SSL details included): the router needs only the addresses.
 */
function checkTlvs(buffered: Uint8Array, start: number, end: number): string | null {
  let offset = start;
  while (offset < end) {
    if (offset + TLV_HEADER_BYTES > end) {
      return `PROXY v2 TLV at byte ${offset} is cut: ${end - offset} bytes left for a 3-byte TLV header`;
    }
    const valueLength = (buffered[offset + 1]! << 8) | buffered[offset + 2]!;
    if (offset + TLV_HEADER_BYTES + valueLength > end) {
      return `PROXY v2 TLV type ${hex(buffered[offset]!)} at byte ${offset} has length ${valueLength}, past the header end at byte ${end}`;
    }
    offset += TLV_HEADER_BYTES + valueLength;
  }
  return null;
}

/**
 * Encodes a v2 PROXY header for TCP (§2.2): AF_INET when both ends are IPv4, else AF_INET6 with
 * an IPv4 end mapped into `::ffff:a.b.c.d`. No TLVs. Throws ProxyProtocolError on a bad
 * address or port.
 */
export function encodeProxyV2(source: ProxyEndpoint, destination: ProxyEndpoint): Uint8Array {
  const src = checkedEndpoint("source", source);
  const dst = checkedEndpoint("destination", destination);
  const v4 = src.family === 4 && dst.family === 4;
  const addressSize = v4 ? 4 : 16;
  const blockLength = v4 ? TCP4_ADDRESS_BYTES : TCP6_ADDRESS_BYTES;
  const out = new Uint8Array(PROXY_V2_HEADER_BYTES + blockLength);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20 | COMMAND_PROXY; // version 2, PROXY
  out[13] = v4 ? FAMILY_TCP4 : FAMILY_TCP6;
  out[14] = blockLength >> 8;
  out[15] = blockLength & 0xff;
  const at = PROXY_V2_HEADER_BYTES;
  out.set(v4 ? src.bytes : asIpv6Bytes(src), at);
  out.set(v4 ? dst.bytes : asIpv6Bytes(dst), at + addressSize);
  out[at + 2 * addressSize] = source.port >> 8;
  out[at + 2 * addressSize + 1] = source.port & 0xff;
  out[at + 2 * addressSize + 2] = destination.port >> 8;
  out[at + 2 * addressSize + 3] = destination.port & 0xff;
  return out;
}

/**
 * A v2 LOCAL header (no addresses): the sender speaks for itself, as a health check does
 * (PROXY protocol spec §2.2, command 0x0, family UNSPEC, length 0).
 */
export function encodeProxyV2Local(): Uint8Array {
  const out = new Uint8Array(PROXY_V2_HEADER_BYTES);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20 | COMMAND_LOCAL; // version 2, LOCAL; bytes 13-15 stay 0 (UNSPEC, length 0)
  return out;
}
