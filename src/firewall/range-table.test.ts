// flattenRanges and the typed-array lookups on small hand-checked inputs.
import { describe, expect, test } from "bun:test";
import {
  flattenRanges,
  Ipv4RangeTable,
  Ipv6RangeTable,
  NO_MATCH,
  nextIpv4,
  nextIpv6,
  type RangeInput,
} from "./range-table.ts";

// A 4-bit address space keeps every expected segment list short enough to read.
const MAX = 15;
const range = (start: number, end: number, value: number, rank = 1): RangeInput<number> => ({
  start,
  end,
  value,
  rank,
});

describe("flattenRanges", () => {
  test.each([
    ["no ranges", [], [[0, NO_MATCH]]],
    ["everything", [range(0, 15, 0)], [[0, 0]]],
    [
      "one in the middle",
      [range(4, 7, 0)],
      [
        [0, NO_MATCH],
        [4, 0],
        [8, NO_MATCH],
      ],
    ],
    [
      "at the end",
      [range(8, 15, 0)],
      [
        [0, NO_MATCH],
        [8, 0],
      ],
    ],
    [
      "nested: the inner range wins inside it",
      [range(0, 15, 0), range(4, 7, 1)],
      [
        [0, 0],
        [4, 1],
        [8, 0],
      ],
    ],
    [
      "nested, given inner first",
      [range(4, 7, 1), range(0, 15, 0)],
      [
        [0, 0],
        [4, 1],
        [8, 0],
      ],
    ],
    [
      "nested, sharing the start",
      [range(4, 7, 0), range(4, 5, 1)],
      [
        [0, NO_MATCH],
        [4, 1],
        [6, 0],
        [8, NO_MATCH],
      ],
    ],
    [
      "nested, sharing the end",
      [range(4, 7, 0), range(6, 7, 1)],
      [
        [0, NO_MATCH],
        [4, 0],
        [6, 1],
        [8, NO_MATCH],
      ],
    ],
    [
      "three deep, all ending together",
      [range(0, 15, 0), range(8, 15, 1), range(12, 15, 2)],
      [
        [0, 0],
        [8, 1],
        [12, 2],
      ],
    ],
    [
      "adjacent ranges with different values",
      [range(4, 5, 0), range(6, 7, 1)],
      [
        [0, NO_MATCH],
        [4, 0],
        [6, 1],
        [8, NO_MATCH],
      ],
    ],
    [
      "adjacent ranges with one value merge",
      [range(4, 5, 3), range(6, 7, 3)],
      [
        [0, NO_MATCH],
        [4, 3],
        [8, NO_MATCH],
      ],
    ],
    [
      "identical: the lower rank wins",
      [range(5, 5, 1, 1), range(5, 5, 0, 0)],
      [
        [0, NO_MATCH],
        [5, 0],
        [6, NO_MATCH],
      ],
    ],
    [
      "identical, same rank: the lower value wins",
      [range(2, 3, 7), range(2, 3, 4)],
      [
        [0, NO_MATCH],
        [2, 4],
        [4, NO_MATCH],
      ],
    ],
    [
      "identical to the outer range with an inner one between",
      [range(0, 15, 0), range(2, 3, 1), range(0, 15, 2)],
      [
        [0, 0],
        [2, 1],
        [4, 0],
      ],
    ],
  ] as const)("%s", (_label, ranges, expected) => {
    const flat = flattenRanges(ranges, 0, MAX, nextIpv4);
    expect(flat.starts.map((start, i) => [Number(start), flat.values[i]])).toEqual(
      expected.map(([start, value]) => [start, value]),
    );
  });
});

describe("Ipv4RangeTable", () => {
  const table = new Ipv4RangeTable(
    flattenRanges(
      [
        { start: 0x0a000000, end: 0x0affffff, value: 0, rank: 1 },
        { start: 0x0a010000, end: 0x0a01ffff, value: 1, rank: 1 },
        { start: 0xffffffff, end: 0xffffffff, value: 2, rank: 0 },
      ],
      0,
      0xffffffff,
      nextIpv4,
    ),
  );
  test.each([
    [0, NO_MATCH],
    [0x09ffffff, NO_MATCH],
    [0x0a000000, 0],
    [0x0a00ffff, 0],
    [0x0a010000, 1],
    [0x0a01ffff, 1],
    [0x0a020000, 0],
    [0x0affffff, 0],
    [0x0b000000, NO_MATCH],
    [0xfffffffe, NO_MATCH],
    [0xffffffff, 2],
  ])("%d → %d", (address, expected) => {
    expect(table.lookup(address)).toBe(expected);
  });
});

describe("Ipv6RangeTable", () => {
  const max = (1n << 128n) - 1n;
  const table = new Ipv6RangeTable(
    flattenRanges(
      [
        // 2001:db8::/32 and the single address 2001:db8::1:0:1 inside it.
        { start: 0x20010db8n << 96n, end: (0x20010db9n << 96n) - 1n, value: 0, rank: 1 },
        {
          start: (0x20010db8n << 96n) | (1n << 32n) | 1n,
          end: (0x20010db8n << 96n) | (1n << 32n) | 1n,
          value: 1,
          rank: 0,
        },
        { start: max, end: max, value: 2, rank: 0 },
      ],
      0n,
      max,
      nextIpv6,
    ),
  );
  test.each([
    ["::", [0, 0, 0, 0], NO_MATCH],
    [
      "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
      [0x20010db7, 0xffffffff, 0xffffffff, 0xffffffff],
      NO_MATCH,
    ],
    ["2001:db8::", [0x20010db8, 0, 0, 0], 0],
    ["2001:db8::1:0:0", [0x20010db8, 0, 1, 0], 0],
    ["2001:db8::1:0:1", [0x20010db8, 0, 1, 1], 1],
    ["2001:db8::1:0:2", [0x20010db8, 0, 1, 2], 0],
    ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", [0x20010db8, 0xffffffff, 0xffffffff, 0xffffffff], 0],
    ["2001:db9::", [0x20010db9, 0, 0, 0], NO_MATCH],
    ["ffff:…:fffe", [0xffffffff, 0xffffffff, 0xffffffff, 0xfffffffe], NO_MATCH],
    ["ffff:…:ffff", [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], 2],
  ] as const)("%s → %p", (_label, [w0, w1, w2, w3], expected) => {
    expect(table.lookup(w0, w1, w2, w3)).toBe(expected);
  });
});
