// GeoIpDatabase against the fixtures written by MaxMind's own writer (scripts/make-geoip-fixtures.pl).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IpAddress, parseIp } from "../ip/ip.ts";
import { GeoIpDatabase, GeoIpError } from "./geoip.ts";

const FIXTURES = join(import.meta.dir, "../../test/fixtures/geoip");
const fixture = (name: string): string => join(FIXTURES, name);
const scratch = mkdtempSync(join(tmpdir(), "mc-proxy-geoip-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function ip(text: string): IpAddress {
  const address = parseIp(text);
  if (!address) throw new Error(`test address ${text}`);
  return address;
}

describe("GeoIpDatabase.country", () => {
  test.each([
    // [fixture, address, expected country]
    ["country-a.mmdb", "127.0.0.2", "RU"],
    ["country-a.mmdb", "127.0.0.3", "CN"],
    ["country-a.mmdb", "127.0.0.4", "DE"],
    ["country-b.mmdb", "127.0.0.4", "RU"],
    ["country-a.mmdb", "127.0.0.1", null],
    ["country-a.mmdb", "10.1.2.3", null],
    ["country-a.mmdb", "203.0.113.0", "FR"],
    ["country-a.mmdb", "203.0.113.255", "FR"],
    ["country-a.mmdb", "203.0.114.0", null],
    // No located country, only registered_country: the registry's country counts.
    ["country-a.mmdb", "127.0.0.5", "KP"],
    ["country-a.mmdb", "::1", "JP"],
    ["country-a.mmdb", "::2", null],
    ["country-a.mmdb", "2001:db8:1::", "RU"],
    ["country-a.mmdb", "2001:db8:1:ffff:ffff:ffff:ffff:ffff", "RU"],
    ["country-a.mmdb", "2001:db8:2::1", null],
    // IPv4-mapped text folds to IPv4 in parseIp and finds the IPv4 record.
    ["country-a.mmdb", "::ffff:127.0.0.3", "CN"],
    ["city.mmdb", "127.0.0.2", "RU"],
    ["city.mmdb", "2001:db8:2::42", "RU"],
    ["city.mmdb", "127.0.0.3", null],
    ["country-ipv4.mmdb", "127.0.0.2", "RU"],
    // An IPv6 client in an IPv4-only database: nothing, not the branch its first 32 bits pick.
    ["country-ipv4.mmdb", "7f00:2::", null],
    ["country-ipv4.mmdb", "::1", null],
  ] as const)("%s: %s → %p", (name, address, expected) => {
    expect(GeoIpDatabase.open(fixture(name)).country(ip(address))).toBe(expected);
  });

  test.each([
    ["country-a.mmdb", "127.0.0.4", "DE"],
    ["country-b.mmdb", "127.0.0.4", "RU"],
    ["country-ipv4.mmdb", "127.0.0.2", "RU"],
  ])("%s: unfolded ::ffff:%s built by hand is looked up as IPv4 → %s", (name, v4, expected) => {
    const bytes = new Uint8Array(16);
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    bytes.set(ip(v4).bytes, 12);
    expect(GeoIpDatabase.open(fixture(name)).country({ family: 6, bytes })).toBe(expected);
  });
});

describe("GeoIpDatabase.open", () => {
  test.each([
    ["country-a.mmdb", "GeoIP2-Country"],
    ["city.mmdb", "GeoIP2-City"],
    ["country-ipv4.mmdb", "GeoLite2-Country"],
  ])("%s: metadata type %s, build epoch 2026-01-01", (name, type) => {
    const db = GeoIpDatabase.open(fixture(name));
    expect(db.path).toBe(fixture(name));
    expect(db.databaseType).toBe(type);
    expect(db.buildEpoch?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
  });

  const countryA = readFileSync(fixture("country-a.mmdb"));
  const markerAt = countryA.lastIndexOf(Buffer.from("abcdef4d61784d696e642e636f6d", "hex"));
  // A copy of a fixture damaged by `damage`, written to the scratch directory.
  const damagedCopy = (source: string, name: string, damage: (bytes: Buffer) => Buffer) => {
    const path = join(scratch, name);
    writeFileSync(path, damage(readFileSync(fixture(source))));
    return path;
  };
  const damaged = (name: string, damage: (bytes: Buffer) => Buffer) =>
    damagedCopy("country-a.mmdb", name, damage);
  const treeBytes = 255 * 6; // country-a: 255 nodes of 24-bit records (mmdblookup --verbose).

  test.each([
    ["missing file", () => join(scratch, "absent.mmdb"), "cannot read: ENOENT"],
    ["directory", () => scratch, "cannot read: EISDIR"],
    ["empty file", () => damaged("empty.mmdb", () => Buffer.alloc(0)), "not a MaxMind DB file"],
    ["text file", () => fixture("README.md"), "not a MaxMind DB file"],
    ["committed truncated copy", () => fixture("corrupt.mmdb"), "not a MaxMind DB file"],
    [
      "cut inside the metadata",
      () => damaged("cut-metadata.mmdb", (b) => b.subarray(0, markerAt + 20)),
      "unreadable MaxMind DB metadata",
    ],
    [
      "data section cut out, metadata kept",
      () =>
        damaged("cut-data.mmdb", (b) =>
          Buffer.concat([b.subarray(0, treeBytes + 16 + 8), b.subarray(markerAt)]),
        ),
      "points outside the file",
    ],
    [
      "tree cut short, metadata kept",
      () =>
        damaged("cut-tree.mmdb", (b) => Buffer.concat([b.subarray(0, 100), b.subarray(markerAt)])),
      "does not fit in the file",
    ],
    [
      "tree records overwritten (24-bit records)",
      () => damaged("tree-ff.mmdb", (b) => b.fill(0xff, 0, 60)),
      "points outside the file",
    ],
    [
      "tree records overwritten (28-bit records)",
      () => damagedCopy("city.mmdb", "city-ff.mmdb", (b) => b.fill(0xff, 14, 21)),
      "search tree node 2 points outside the file",
    ],
    [
      "tree records overwritten (32-bit records)",
      () => damagedCopy("country-ipv4.mmdb", "v4-ff.mmdb", (b) => b.fill(0xff, 20, 24)),
      "search tree node 2 points outside the file",
    ],
    [
      "separator overwritten",
      () => damaged("separator.mmdb", (b) => b.fill(0x41, treeBytes, treeBytes + 16)),
      "no data section separator",
    ],
    [
      "data records overwritten",
      () => damaged("data-zero.mmdb", (b) => b.fill(0, treeBytes + 16, markerAt)),
      "probe lookup of 127.0.0.2 failed",
    ],
    ["ASN database", () => fixture("asn.mmdb"), 'database type "GeoLite2-ASN" has no countries'],
  ])("%s: GeoIpError naming the path and the reason", (_label, makePath, reason) => {
    const path = makePath();
    let error: unknown;
    try {
      GeoIpDatabase.open(path);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(GeoIpError);
    const message = (error as GeoIpError).message;
    expect(message).toStartWith(`geoip database ${JSON.stringify(path)}: `);
    expect(message).toContain(reason);
  });
});
