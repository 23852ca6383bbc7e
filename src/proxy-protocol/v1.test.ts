// encodeProxyV1 output and its round trip through decodeProxyHeader.
import { describe, expect, test } from "bun:test";
import { decodeProxyHeader } from "./decode.ts";
import { ProxyProtocolError } from "./header.ts";
import { encodeProxyV1 } from "./v1.ts";

const asText = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

describe("encodeProxyV1", () => {
  test.each([
    [
      "both IPv4",
      ["192.0.2.1", 56324],
      ["198.51.100.2", 443],
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
    ],
    ["both IPv6", ["2001:DB8:0::1", 0], ["::1", 65535], "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n"],
    [
      "IPv4 to IPv6",
      ["10.1.2.3", 40000],
      ["2001:db8::443", 443],
      "PROXY TCP6 ::ffff:10.1.2.3 2001:db8::443 40000 443\r\n",
    ],
    [
      "IPv4-mapped on both ends",
      ["::ffff:10.0.0.1", 1],
      ["10.0.0.2", 2],
      "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n",
    ],
  ] as const)("writes %s", (_name, source, destination, line) => {
    const encoded = encodeProxyV1(
      { address: source[0], port: source[1] },
      { address: destination[0], port: destination[1] },
    );
    expect(asText(encoded)).toBe(line);
  });

  test.each([
    ["192.0.2.1", "198.51.100.2", "tcp4"],
    ["2001:db8::1", "2001:db8::2", "tcp6"],
    ["203.0.113.9", "2001:db8::2", "tcp6"],
  ] as const)("round-trips %s → %s", (source, destination, family) => {
    const encoded = encodeProxyV1(
      { address: source, port: 1234 },
      { address: destination, port: 443 },
    );
    expect(decodeProxyHeader(new Uint8Array([...encoded, 0x16]))).toEqual({
      kind: "done",
      header: {
        version: 1,
        command: "proxy",
        family,
        source: { address: source, port: 1234 },
        destination: { address: destination, port: 443 },
      },
      length: encoded.length,
    });
  });

  test("refuses a bad endpoint, naming it", () => {
    const build = () =>
      encodeProxyV1({ address: "1.2.3.4", port: 1 }, { address: "nope", port: 2 });
    expect(build).toThrow(ProxyProtocolError);
    expect(build).toThrow('proxy header destination address "nope": not an IPv4 or IPv6 address');
  });
});
