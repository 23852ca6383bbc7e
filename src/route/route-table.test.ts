import { describe, expect, test } from "bun:test";
import { normalizeHostname, validateRoute } from "../config/route.ts";
import type { RouteSpec } from "../domain/types.ts";
import { RouteTable } from "./route-table.ts";

function route(hostname: string, backend = "127.0.0.1:1"): RouteSpec {
  const result = validateRoute({ hostname, backend });
  if ("error" in result) throw new Error(result.error);
  return result.route;
}

describe("RouteTable.lookup", () => {
  const table = new RouteTable([
    route("example.com", "10.0.0.1:443"),
    route("*.example.com", "10.0.0.2:443"),
    route("api.example.com", "10.0.0.3:443"),
    route("*.b.example.com", "10.0.0.4:443"),
  ]);

  test.each([
    ["example.com", "10.0.0.1:443", "exact"],
    ["api.example.com", "10.0.0.3:443", "exact"],
    ["www.example.com", "10.0.0.2:443", "wildcard"],
    ["x.b.example.com", "10.0.0.4:443", "wildcard"],
    ["b.example.com", "10.0.0.2:443", "wildcard"],
  ])("%s → %s (%s)", (name, backend, match) => {
    const found = table.lookup(name);
    expect(found?.route.spec.backend).toBe(backend);
    expect(found?.match).toBe(match as "exact" | "wildcard");
  });

  test.each(["a.www.example.com", "example.org", "com", "", ".example.com"])(
    "%p has no route",
    (name) => {
      expect(table.lookup(name)).toBeNull();
    },
  );
});

describe("normalizeHostname", () => {
  test.each([
    ["Example.COM.", "example.com"],
    ["*.Example.com", "*.example.com"],
    ["a-b.c_d.example", "a-b.c_d.example"],
  ])("%s → %s", (input, expected) => {
    expect(normalizeHostname(input)).toBe(expected);
  });

  test.each(["", ".", "*.com", "*", "a.*.com", "-a.com", "a..com", "exa mple.com", "a".repeat(64)])(
    "%p is refused",
    (input) => {
      expect(normalizeHostname(input)).toBeNull();
    },
  );
});
