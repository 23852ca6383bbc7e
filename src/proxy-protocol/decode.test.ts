// decodeProxyHeader on tables of valid and malformed v1/v2 headers, whole and byte by byte.
import { describe, expect, test } from "bun:test";
import { decodeProxyHeader } from "./decode.ts";
import type { ProxyHeader, ProxyHeaderResult } from "./header.ts";
import { MAX_PROXY_V1_BYTES } from "./v1.ts";
import { MAX_PROXY_V2_LENGTH } from "./v2.ts";

const text = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const concat = (...parts: (Uint8Array | number[])[]): Uint8Array => {
  const out: number[] = [];
  for (const part of parts) out.push(...part);
  return Uint8Array.from(out);
};

/** The v2 signature spelled out from proxy-protocol.txt §2.2, independently of the decoder's copy. */
const SIGNATURE = text("\r\n\r\n\0\r\nQUIT\n");
/** A v2 header written by hand: signature, ver_cmd, fam, len (big-endian), then the block. */
const v2 = (
  verCmd: number,
  fam: number,
  block: number[] | Uint8Array,
  declaredLength = block.length,
): Uint8Array =>
  concat(SIGNATURE, [verCmd, fam, declaredLength >> 8, declaredLength & 0xff], block);
const ipv4Block = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb]; // 56324 → 443
/** 2001:db8::1 → 2001:db8::2, ports 56324 → 443. */
const ipv6Block = concat(
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
  [0xdc, 0x04, 0x01, 0xbb],
);
const mappedBlock = concat(
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7],
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
  [0x00, 0x50, 0x20, 0xfb],
);
const tlv = (type: number, value: number[] | Uint8Array): number[] => [
  type,
  value.length >> 8,
  value.length & 0xff,
  ...value,
];
/** The first bytes of a TLS ClientHello, which follow the header on a real connection. */
const TLS_START = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01];

const proxied = (
  version: 1 | 2,
  family: "tcp4" | "tcp6",
  source: [string, number],
  destination: [string, number],
): ProxyHeader => ({
  version,
  command: "proxy",
  family,
  source: { address: source[0], port: source[1] },
  destination: { address: destination[0], port: destination[1] },
});
const unknown = (version: 1 | 2, command: "proxy" | "local" = "proxy"): ProxyHeader => ({
  version,
  command,
  family: "unknown",
  source: null,
  destination: null,
});

const FULL_V6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

const VALID: [string, Uint8Array, ProxyHeader][] = [
  [
    "v1 TCP4",
    text("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
    proxied(1, "tcp4", ["192.0.2.1", 56324], ["198.51.100.2", 443]),
  ],
  [
    "v1 TCP6, written loosely, canonicalised",
    text("PROXY TCP6 2001:DB8::1 2001:db8:0:0:0:0:0:2 65535 0\r\n"),
    proxied(1, "tcp6", ["2001:db8::1", 65535], ["2001:db8::2", 0]),
  ],
  [
    "v1 TCP6 with IPv4-mapped addresses, folded to IPv4",
    text("PROXY TCP6 ::ffff:203.0.113.7 ::ffff:10.0.0.1 80 8443\r\n"),
    proxied(1, "tcp6", ["203.0.113.7", 80], ["10.0.0.1", 8443]),
  ],
  [
    "v1 TCP6 at full width",
    text(`PROXY TCP6 ${FULL_V6} ${FULL_V6} 65535 65535\r\n`),
    proxied(1, "tcp6", [FULL_V6, 65535], [FULL_V6, 65535]),
  ],
  ["v1 UNKNOWN", text("PROXY UNKNOWN\r\n"), unknown(1)],
  // §2.1: the worst case, exactly 107 bytes; what follows UNKNOWN is ignored.
  [
    "v1 UNKNOWN at the 107-byte maximum",
    text(`PROXY UNKNOWN ${FULL_V6} ${FULL_V6} 65535 65535\r\n`),
    unknown(1),
  ],
  [
    "v2 PROXY TCP4",
    v2(0x21, 0x11, ipv4Block),
    proxied(2, "tcp4", ["192.0.2.1", 56324], ["198.51.100.2", 443]),
  ],
  [
    "v2 PROXY TCP6",
    v2(0x21, 0x21, ipv6Block),
    proxied(2, "tcp6", ["2001:db8::1", 56324], ["2001:db8::2", 443]),
  ],
  [
    "v2 PROXY TCP6 with IPv4-mapped addresses, folded to IPv4",
    v2(0x21, 0x21, mappedBlock),
    proxied(2, "tcp6", ["203.0.113.7", 80], ["10.0.0.1", 8443]),
  ],
  [
    "v2 PROXY TCP4 with TLVs (ALPN, authority, CRC32C, NOOP)",
    v2(0x21, 0x11, [
      ...ipv4Block,
      ...tlv(0x01, text("h2")),
      ...tlv(0x02, text("example.com")),
      ...tlv(0x03, [1, 2, 3, 4]),
      ...tlv(0x04, []),
    ]),
    proxied(2, "tcp4", ["192.0.2.1", 56324], ["198.51.100.2", 443]),
  ],
  [
    "v2 PROXY TCP6 with one TLV filling the length limit",
    v2(0x21, 0x21, [...ipv6Block, ...tlv(0xe0, new Uint8Array(MAX_PROXY_V2_LENGTH - 36 - 3))]),
    proxied(2, "tcp6", ["2001:db8::1", 56324], ["2001:db8::2", 443]),
  ],
  ["v2 LOCAL without addresses", v2(0x20, 0x00, []), unknown(2, "local")],
  // §2.2: for LOCAL the receiver "must discard the protocol block including the family".
  ["v2 LOCAL with an IPv4 block", v2(0x20, 0x11, ipv4Block), unknown(2, "local")],
  ["v2 LOCAL with an undefined family byte", v2(0x20, 0xff, [1, 2, 3]), unknown(2, "local")],
  ["v2 PROXY UNSPEC", v2(0x21, 0x00, []), unknown(2)],
  ["v2 PROXY UNSPEC with a block to ignore", v2(0x21, 0x00, [9, 9, 9, 9, 9]), unknown(2)],
];

function feedByteByByte(stream: Uint8Array): { result: ProxyHeaderResult; verdictAt: number } {
  for (let end = 1; end <= stream.length; end++) {
    const result = decodeProxyHeader(stream.subarray(0, end));
    if (result.kind !== "need-more") return { result, verdictAt: end };
  }
  return { result: { kind: "need-more" }, verdictAt: -1 };
}

describe("decodeProxyHeader accepts", () => {
  test.each(VALID)("%s, followed by TLS bytes", (_name, header, expected) => {
    const stream = concat(header, TLS_START);
    expect(decodeProxyHeader(stream)).toEqual({
      kind: "done",
      header: expected,
      length: header.length,
    });
  });

  test.each(VALID)("%s, one byte at a time", (_name, header, expected) => {
    // The verdict comes with the header's last byte, before any TLS byte is needed.
    expect(feedByteByByte(concat(header, TLS_START))).toEqual({
      result: { kind: "done", header: expected, length: header.length },
      verdictAt: header.length,
    });
  });

  test("the 107-byte v1 example really is 107 bytes", () => {
    expect(VALID.find(([name]) => name.includes("107-byte"))![1].length).toBe(MAX_PROXY_V1_BYTES);
  });
});

const MALFORMED: [string, Uint8Array, string][] = [
  [
    "a TLS ClientHello (no header)",
    Uint8Array.from(TLS_START),
    'no PROXY protocol header (byte 0 is 0x16; expected "PROXY " or the v2 signature)',
  ],
  ["HTTP", text("GET / HTTP/1.1\r\n"), "no PROXY protocol header (byte 0 is 0x47"],
  ["a misspelt v1 prefix", text("PROXX TCP4"), "no PROXY protocol header (byte 4 is 0x58"],
  ["v1 without the space", text("PROXYTCP4"), "no PROXY protocol header (byte 5 is 0x54"],
  [
    "a broken v2 signature",
    text("\r\n\r\n\0\r\nQUIZ\n"),
    "no PROXY protocol header (byte 10 is 0x5a",
  ],
  [
    "v1 protocol TCP5",
    text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    'PROXY v1 protocol "TCP5": must be TCP4, TCP6 or UNKNOWN',
  ],
  [
    "v1 lower-case protocol",
    text("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
    'PROXY v1 protocol "tcp4"',
  ],
  ["v1 empty line", text("PROXY \r\n"), 'PROXY v1 protocol "": must be TCP4, TCP6 or UNKNOWN'],
  ["v1 extra field", text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "has 6 fields"],
  ["v1 trailing space", text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "has 6 fields"],
  ["v1 missing port", text("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "has 4 fields"],
  [
    "v1 double space",
    text("PROXY TCP4  1.2.3.4 5.6.7.8 1\r\n"),
    'PROXY v1 source address "": not an IPv4 address (TCP4)',
  ],
  [
    "v1 TCP4 with IPv6 addresses",
    text("PROXY TCP4 ::1 ::1 1 2\r\n"),
    'PROXY v1 source address "::1": not an IPv4 address (TCP4)',
  ],
  [
    "v1 TCP4 with a mapped address",
    text("PROXY TCP4 ::ffff:1.2.3.4 1.2.3.4 1 2\r\n"),
    "not an IPv4 address (TCP4)",
  ],
  [
    "v1 TCP6 with IPv4 addresses",
    text("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"),
    'PROXY v1 source address "1.2.3.4": not an IPv6 address (TCP6)',
  ],
  [
    "v1 bad IPv4 octet",
    text("PROXY TCP4 1.2.3.4 256.1.1.1 1 2\r\n"),
    'PROXY v1 destination address "256.1.1.1"',
  ],
  [
    "v1 hostname for an address",
    text("PROXY TCP4 example.com 1.1.1.1 1 2\r\n"),
    'source address "example.com"',
  ],
  [
    "v1 port 65536",
    text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    'PROXY v1 source port "65536": must be 0-65535 without leading zeros',
  ],
  [
    "v1 port with a leading zero",
    text("PROXY TCP4 1.2.3.4 5.6.7.8 1 0443\r\n"),
    'PROXY v1 destination port "0443"',
  ],
  ["v1 negative port", text("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), 'PROXY v1 source port "-1"'],
  [
    "v1 port with a plus sign",
    text("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
    'PROXY v1 source port "+1"',
  ],
  ["v1 CR without LF", text("PROXY UNKNOWN\rX"), "PROXY v1 CR at byte 13 is not followed by LF"],
  [
    "v1 LF without CR",
    text("PROXY UNKNOWN\n"),
    "PROXY v1 byte 13 is 0x0a (only printable ASCII before CRLF)",
  ],
  ["v1 tab", text("PROXY TCP4\t1.2.3.4"), "PROXY v1 byte 10 is 0x09"],
  ["v1 NUL", text("PROXY UNKNOWN \0\r\n"), "PROXY v1 byte 14 is 0x00"],
  [
    "v1 non-ASCII",
    Uint8Array.from([...text("PROXY UNKNOWN "), 0xc3, 0xa9, 13, 10]),
    "PROXY v1 byte 14 is 0xc3",
  ],
  [
    "v1 line of 107 bytes without CRLF",
    text(`PROXY UNKNOWN ${"x".repeat(93)}`),
    "PROXY v1 line has no CRLF within 107 bytes",
  ],
  [
    "v1 CRLF ending at byte 108",
    text(`PROXY UNKNOWN ${"x".repeat(92)}\r\n`),
    "PROXY v1 line has no CRLF within 107 bytes",
  ],
  ["v2 version 1", v2(0x11, 0x11, ipv4Block), "PROXY v2 version 1: must be 2"],
  ["v2 version 3", v2(0x31, 0x11, ipv4Block), "PROXY v2 version 3: must be 2"],
  ["v2 command 2", v2(0x22, 0x11, ipv4Block), "PROXY v2 command 2: must be 0 (LOCAL) or 1 (PROXY)"],
  [
    "v2 UDP over IPv4",
    v2(0x21, 0x12, ipv4Block),
    "PROXY v2 family 0x12 is UDP: only TCP (0x11, 0x21) or UNSPEC (0x00) is supported",
  ],
  ["v2 UDP over IPv6", v2(0x21, 0x22, ipv6Block), "PROXY v2 family 0x22 is UDP"],
  ["v2 unix stream", v2(0x21, 0x31, new Uint8Array(216)), "PROXY v2 family 0x31 is a unix socket"],
  [
    "v2 unix datagram",
    v2(0x21, 0x32, new Uint8Array(216)),
    "PROXY v2 family 0x32 is a unix socket",
  ],
  [
    "v2 AF_INET with UNSPEC transport",
    v2(0x21, 0x10, ipv4Block),
    "PROXY v2 family 0x10 is not defined",
  ],
  ["v2 undefined family 0x41", v2(0x21, 0x41, ipv4Block), "PROXY v2 family 0x41 is not defined"],
  [
    "v2 length over the limit",
    v2(0x21, 0x11, new Uint8Array(MAX_PROXY_V2_LENGTH + 1)),
    `PROXY v2 length ${MAX_PROXY_V2_LENGTH + 1} exceeds the ${MAX_PROXY_V2_LENGTH}-byte limit`,
  ],
  ["v2 length 65535", v2(0x21, 0x11, [], 0xffff), "PROXY v2 length 65535 exceeds"],
  [
    "v2 TCP4 block of 11 bytes",
    v2(0x21, 0x11, ipv4Block.slice(0, 11)),
    "PROXY v2 length 11 is shorter than the 12-byte address block of family 0x11",
  ],
  [
    "v2 TCP6 block of 35 bytes",
    v2(0x21, 0x21, ipv6Block.slice(0, 35)),
    "PROXY v2 length 35 is shorter than the 36-byte address block of family 0x21",
  ],
  [
    "v2 TCP6 family with an IPv4 block",
    v2(0x21, 0x21, ipv4Block),
    "PROXY v2 length 12 is shorter than the 36-byte",
  ],
  [
    "v2 TLV header cut",
    v2(0x21, 0x11, [...ipv4Block, 0x01, 0x00]),
    "PROXY v2 TLV at byte 28 is cut: 2 bytes left for a 3-byte TLV header",
  ],
  [
    "v2 TLV past the end",
    v2(0x21, 0x11, [...ipv4Block, ...tlv(0x04, []), 0x02, 0x00, 0x05, 0x61]),
    "PROXY v2 TLV type 0x02 at byte 31 has length 5, past the header end at byte 35",
  ],
];

describe("decodeProxyHeader refuses", () => {
  test.each(MALFORMED)("%s", (_name, bytes, reason) => {
    const result = decodeProxyHeader(concat(bytes, TLS_START));
    expect(result).toEqual({ kind: "malformed", reason: expect.stringContaining(reason) });
    // Fed byte by byte, the verdict is the same and comes no later than the input's end.
    const fed = feedByteByByte(bytes);
    expect(fed.result).toEqual(result);
    expect(fed.verdictAt).toBeGreaterThan(0);
  });

  test.each([
    ["a ClientHello on its first byte", Uint8Array.of(0x16)],
    ["a wrong v2 version on byte 12", concat(SIGNATURE, [0x11])],
    ["a UDP family on byte 13", concat(SIGNATURE, [0x21, 0x12])],
    ["an oversized length on bytes 14-15", concat(SIGNATURE, [0x21, 0x11, 0x10, 0x01])],
    [
      "a too-short address block before the block arrives",
      concat(SIGNATURE, [0x21, 0x21, 0x00, 0x0c]),
    ],
    ["a control byte in a v1 line", text("PROXY TCP4 1.2\x01")],
    ["a v1 line at 107 bytes", text(`PROXY UNKNOWN ${"y".repeat(93)}`)],
    ["a v1 CR at byte 107, leaving no room for LF", text(`PROXY UNKNOWN ${"y".repeat(92)}\r`)],
  ])("%s, without waiting for more", (_name, bytes) => {
    for (let end = 0; end < bytes.length; end++) {
      expect(decodeProxyHeader(bytes.subarray(0, end))).toEqual({ kind: "need-more" });
    }
    expect(decodeProxyHeader(bytes).kind).toBe("malformed");
  });
});

describe("decodeProxyHeader waits", () => {
  test.each([
    ["an empty buffer", new Uint8Array(0)],
    ["a partial v1 prefix", text("PRO")],
    ["a partial v2 signature", SIGNATURE.subarray(0, 7)],
    ["a v1 line without CRLF yet", text("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443")],
    ["a v1 line ending in CR", text("PROXY UNKNOWN\r")],
    ["a v2 header without its block", v2(0x21, 0x21, ipv6Block).subarray(0, 40)],
    [
      "a v2 header at the length limit less one byte",
      v2(0x21, 0x11, new Uint8Array(MAX_PROXY_V2_LENGTH)).subarray(0, 16 + MAX_PROXY_V2_LENGTH - 1),
    ],
  ])("on %s", (_name, bytes) => {
    expect(decodeProxyHeader(bytes)).toEqual({ kind: "need-more" });
  });
});
