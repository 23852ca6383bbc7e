import { expect, test } from "bun:test";
import { descriptorBudget, openFileLimit } from "./descriptor-cap.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
`;

test("reads the soft open-file limit", () => {
  expect(openFileLimit(LIMITS)).toBe(20000);
  expect(
    openFileLimit(LIMITS.replace("20000                20000", "unlimited            unlimited")),
  ).toBeNull();
  expect(openFileLimit("nothing here")).toBeNull();
});

test.each([
  [20000, 19900],
  [1024, 924],
  [50, 1],
])("limit %d → budget %d", (limit, cap) => {
  expect(descriptorBudget(limit)).toBe(cap);
});

test("no known limit, no budget", () => {
  expect(descriptorBudget(null)).toBe(Number.POSITIVE_INFINITY);
});

test("this process has a readable limit on Linux", () => {
  expect(openFileLimit()).toBeGreaterThan(0);
});
