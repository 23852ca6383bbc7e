import { expect, test } from "bun:test";
import { authorityServedBy } from "./authority.ts";

test.each([
  ["app.test", "app.test", true],
  ["app.test", "APP.test:8443", true],
  ["app.test", "app.test.", true],
  ["app.test", "internal.admin", false],
  ["app.test", "x.app.test", false],
  ["*.wild.test", "a.wild.test", true],
  ["*.wild.test", "b.wild.test:443", true],
  ["*.wild.test", "wild.test", false],
  ["*.wild.test", "a.b.wild.test", false],
  ["*.wild.test", ".wild.test", false],
  ["app.test", "[::1]:443", false],
])("route %s, authority %j → %p", (route, authority, served) => {
  expect(authorityServedBy(route, authority)).toBe(served);
});
