import { describe, expect, test } from "bun:test";
import { cidrContains, formatCidr, formatIp, normalizeIp, parseCidr, parseIp } from "./ip.ts";

describe("normalizeIp", () => {
  test.each([
    ["1.2.3.4", "1.2.3.4"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["::1", "::1"],
    ["::", "::"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::ffff:0102:0304", "1.2.3.4"],
    ["64:ff9b::1.2.3.4", "64:ff9b::102:304"],
  ])("%s → %s", (input, expected) => {
    expect(normalizeIp(input)).toBe(expected);
  });

  test.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.256",
    "1..2.3",
    "1.2.3.4 ",
    "a.b.c.d",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    "12345::",
    "::ffff:1.2.3",
    "[::1]",
  ])("%p is not an address", (input) => {
    expect(parseIp(input)).toBeNull();
  });

  test("every IPv4 address text round-trips through the hand parser", () => {
    for (let i = 0; i < 5000; i++) {
      const parts = [0, 0, 0, 0].map(() => Math.floor(Math.random() * 256));
      const text = parts.join(".");
      const parsed = parseIp(text);
      expect(parsed && formatIp(parsed)).toBe(text);
    }
  });
});

describe("parseCidr", () => {
  test.each([
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["2001:db8::/32", "2001:db8::/32"],
    ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
  ])("%s → %s", (input, expected) => {
    const parsed = parseCidr(input);
    expect("cidr" in parsed && formatCidr(parsed.cidr)).toBe(expected);
  });

  test.each([
    ["10.0.0.1/8", "host bits set"],
    ["10.0.0.0", "missing /prefix length"],
    ["10.0.0.0/33", "prefix length must be 0-32"],
    ["2001:db8::/129", "prefix length must be 0-128"],
    ["::ffff:10.0.0.0/95", "at least /96"],
    ["x/8", "not an IPv4 or IPv6 network address"],
  ])("%s is refused: %s", (input, reason) => {
    const parsed = parseCidr(input);
    expect("error" in parsed && parsed.error).toContain(reason);
  });

  test("containment", () => {
    const parsed = parseCidr("198.51.100.0/23");
    if (!("cidr" in parsed)) throw new Error("bad fixture");
    expect(cidrContains(parsed.cidr, parseIp("198.51.101.255")!)).toBe(true);
    expect(cidrContains(parsed.cidr, parseIp("198.51.102.0")!)).toBe(false);
    expect(cidrContains(parsed.cidr, parseIp("::1")!)).toBe(false);
  });
});

test.each([
  ["::ffff:127.0.0.1", "127.0.0.1"],
  ["::FFFF:127.0.0.1", "127.0.0.1"],
  ["::ffff:1.2.3", null],
  ["::ffff:01.2.3.4", null],
])("IPv4-mapped fast path: %s → %s", (input, expected) => {
  expect(normalizeIp(input)).toBe(expected);
});
