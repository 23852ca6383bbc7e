// encodeProxyV2 byte layout, round trips and argument checks.
import { describe, expect, test } from "bun:test";
import { decodeProxyHeader } from "./decode.ts";
import { ProxyProtocolError } from "./header.ts";
import { encodeProxyV2 } from "./v2.ts";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

describe("encodeProxyV2", () => {
  test("lays out a TCP4 header as proxy-protocol.txt §2.2 does", () => {
    const header = encodeProxyV2(
      { address: "192.0.2.1", port: 56324 },
      { address: "198.51.100.2", port: 443 },
    );
    expect(hex(header)).toBe(
      [
        "0d0a0d0a000d0a515549540a", // signature
        "21", // version 2, command PROXY
        "11", // AF_INET, STREAM
        "000c", // 12 bytes follow
        "c0000201", // 192.0.2.1
        "c6336402", // 198.51.100.2
        "dc04", // 56324
        "01bb", // 443
      ].join(""),
    );
  });

  test("lays out a TCP6 header with an IPv4 end mapped into ::ffff:0:0/96", () => {
    const header = encodeProxyV2(
      { address: "203.0.113.7", port: 1 },
      { address: "2001:db8::2", port: 65535 },
    );
    expect(hex(header)).toBe(
      [
        "0d0a0d0a000d0a515549540a",
        "21",
        "21", // AF_INET6, STREAM
        "0024", // 36 bytes follow
        "00000000000000000000ffffcb007107", // ::ffff:203.0.113.7
        "20010db8000000000000000000000002",
        "0001",
        "ffff",
      ].join(""),
    );
  });

  test.each([
    [
      "both IPv4",
      ["192.0.2.1", 56324],
      ["198.51.100.2", 443],
      "tcp4",
      ["192.0.2.1", "198.51.100.2"],
      28,
    ],
    ["both IPv6", ["2001:DB8::1", 0], ["::1", 65535], "tcp6", ["2001:db8::1", "::1"], 52],
    [
      "IPv4 to IPv6",
      ["10.1.2.3", 40000],
      ["2001:db8::443", 443],
      "tcp6",
      ["10.1.2.3", "2001:db8::443"],
      52,
    ],
    ["IPv6 to IPv4", ["fe80::1", 40000], ["127.0.0.1", 8443], "tcp6", ["fe80::1", "127.0.0.1"], 52],
    [
      "IPv4-mapped on both ends (folds to TCP4)",
      ["::ffff:10.0.0.1", 1],
      ["::FFFF:10.0.0.2", 2],
      "tcp4",
      ["10.0.0.1", "10.0.0.2"],
      28,
    ],
  ] as const)("round-trips %s", (_name, source, destination, family, addresses, length) => {
    const encoded = encodeProxyV2(
      { address: source[0], port: source[1] },
      { address: destination[0], port: destination[1] },
    );
    expect(encoded.length).toBe(length);
    const stream = new Uint8Array([...encoded, 0x16, 0x03, 0x01]);
    expect(decodeProxyHeader(stream)).toEqual({
      kind: "done",
      header: {
        version: 2,
        command: "proxy",
        family,
        source: { address: addresses[0], port: source[1] },
        destination: { address: addresses[1], port: destination[1] },
      },
      length,
    });
  });

  test.each([
    [
      { address: "example.com", port: 1 },
      { address: "1.2.3.4", port: 2 },
      'proxy header source address "example.com": not an IPv4 or IPv6 address',
    ],
    [
      { address: "1.2.3.4", port: 1 },
      { address: "[::1]", port: 2 },
      'proxy header destination address "[::1]": not an IPv4 or IPv6 address',
    ],
    [
      { address: "1.2.3.4", port: 65536 },
      { address: "1.2.3.4", port: 2 },
      "proxy header source port 65536: must be an integer 0-65535",
    ],
    [
      { address: "1.2.3.4", port: 1 },
      { address: "1.2.3.4", port: -1 },
      "proxy header destination port -1: must be an integer 0-65535",
    ],
    [
      { address: "1.2.3.4", port: 1.5 },
      { address: "1.2.3.4", port: 2 },
      "proxy header source port 1.5: must be an integer 0-65535",
    ],
  ])("refuses bad input (%#)", (source, destination, message) => {
    expect(() => encodeProxyV2(source, destination)).toThrow(ProxyProtocolError);
    expect(() => encodeProxyV2(source, destination)).toThrow(message);
  });
});
