// VectorReader bounds checks and the error paths within() builds.
import { describe, expect, test } from "bun:test";
import { TlsParseError, VectorReader, within } from "./vector-reader.ts";

const failure = (read: () => unknown): string => {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(TlsParseError);
    return (error as Error).message;
  }
  throw new Error("expected a TlsParseError");
};

describe("VectorReader", () => {
  test.each([
    [1, [0xab], 0xab],
    [2, [0x03, 0x03], 0x0303],
    [3, [0x01, 0x00, 0x00], 0x010000],
    [3, [0xff, 0xff, 0xff], 0xffffff],
  ] as const)("uint(%i) reads big-endian %p", (size, bytes, value) => {
    const reader = new VectorReader(Uint8Array.from(bytes));
    expect(reader.uint(size, "x")).toBe(value);
    expect(reader.remaining).toBe(0);
  });

  test("a vector reader is confined to its contents", () => {
    const reader = new VectorReader(Uint8Array.of(2, 0xaa, 0xbb, 0xcc));
    const inner = reader.vector(1, "v");
    expect(inner.remaining).toBe(2);
    expect(Array.from(inner.fixed(2, "all"))).toEqual([0xaa, 0xbb]);
    expect(failure(() => inner.uint(1, "next byte"))).toBe(
      "next byte needs 1 bytes but only 0 are left",
    );
    expect(reader.uint(1, "after")).toBe(0xcc);
  });

  test.each([
    [
      "a length past the end",
      [5, 1, 2],
      1,
      0,
      255,
      "reading v: contents needs 5 bytes but only 2 are left",
    ],
    ["a missing length", [0], 2, 0, 65535, "reading v: length needs 2 bytes but only 1 are left"],
    [
      "a length under the minimum",
      [0],
      1,
      1,
      255,
      "reading v: length 0 is outside the allowed 1-255",
    ],
    [
      "a length over the maximum",
      [33, ...new Array(33).fill(0)],
      1,
      0,
      32,
      "reading v: length 33 is outside the allowed 0-32",
    ],
  ])("rejects %s", (_name, bytes, prefix, min, max, message) => {
    const reader = new VectorReader(Uint8Array.from(bytes));
    expect(failure(() => reader.vector(prefix as 1 | 2, "v", min, max))).toBe(message);
  });

  test("expectEnd names the trailing byte count", () => {
    const reader = new VectorReader(Uint8Array.of(1, 2, 3));
    reader.uint(1, "x");
    expect(failure(() => reader.expectEnd("x"))).toBe("2 unexpected trailing bytes after x");
  });

  test("within() builds the path outermost first and keeps the detail", () => {
    const reader = new VectorReader(Uint8Array.of(0, 4, 1));
    try {
      within("ClientHello", () =>
        within("extension server_name", () => reader.vector(2, "server_name_list")),
      );
      throw new Error("expected a TlsParseError");
    } catch (error) {
      expect(error).toBeInstanceOf(TlsParseError);
      const parseError = error as TlsParseError;
      expect(parseError.path).toEqual(["ClientHello", "extension server_name", "server_name_list"]);
      expect(parseError.detail).toBe("contents needs 4 bytes but only 1 are left");
      expect(parseError.message).toBe(
        "reading ClientHello extension server_name server_name_list: contents needs 4 bytes but only 1 are left",
      );
    }
  });

  test("within() lets other errors through unchanged", () => {
    const bug = new TypeError("bug");
    expect(() =>
      within("x", () => {
        throw bug;
      }),
    ).toThrow(bug);
  });
});
