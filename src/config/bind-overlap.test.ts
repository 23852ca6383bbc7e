import { expect, test } from "bun:test";
import { parseHostPort } from "../ip/host-port.ts";
import { bindsOverlap } from "./bind-overlap.ts";

function hostPort(text: string) {
  const result = parseHostPort(text, { allowEmptyHost: true, allowPortZero: true });
  if ("error" in result) throw new Error(`bad fixture ${text}: ${result.error}`);
  return result.value;
}

test.each([
  [":443", ":443", true],
  [":443", "[::]:443", true],
  [":443", "0.0.0.0:443", true],
  [":443", "127.0.0.1:443", true],
  [":443", "[::1]:443", true],
  [":443", "localhost:443", true],
  ["0.0.0.0:443", "10.1.2.3:443", true],
  ["0.0.0.0:443", "[::ffff:10.1.2.3]:443", true],
  ["127.0.0.1:443", "[::ffff:127.0.0.1]:443", true],
  ["[2001:DB8::1]:443", "[2001:db8::1]:443", true],
  ["LocalHost:443", "localhost:443", true],
  [":443", ":8443", false],
  [":0", ":0", false],
  ["127.0.0.1:0", "127.0.0.1:0", false],
  ["0.0.0.0:443", "[::1]:443", false],
  ["0.0.0.0:443", "localhost:443", false],
  ["127.0.0.1:443", "127.0.0.2:443", false],
  ["127.0.0.1:443", "[::1]:443", false],
  ["127.0.0.1:443", "localhost:443", false],
])("%p and %p overlap: %p", (a, b, expected) => {
  expect(bindsOverlap(hostPort(a), hostPort(b))).toBe(expected);
  expect(bindsOverlap(hostPort(b), hostPort(a))).toBe(expected);
});
