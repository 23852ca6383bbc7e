// Properties (fast-check) and a seeded mutation loop: decodeProxyHeader never throws or hangs.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { normalizeIp } from "../ip/ip.ts";
import { MUTATION_KINDS, type MutationKind, mutate, seededRandom } from "../tls/testing/mutate.ts";
import { decodeProxyHeader } from "./decode.ts";
import type { ProxyHeaderResult } from "./header.ts";
import { encodeProxyV1, MAX_PROXY_V1_BYTES, PROXY_V1_PREFIX } from "./v1.ts";
import {
  encodeProxyV2,
  MAX_PROXY_V2_LENGTH,
  PROXY_V2_HEADER_BYTES,
  PROXY_V2_SIGNATURE,
} from "./v2.ts";

/** FC_NUM_RUNS=100000 bun test … runs the properties longer on demand. */
const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? "1000");
if (!Number.isInteger(NUM_RUNS) || NUM_RUNS < 1) {
  throw new Error(`FC_NUM_RUNS "${process.env.FC_NUM_RUNS}": must be a positive integer`);
}
const TIMEOUT_MS = 20_000 + NUM_RUNS * 20;

/** The longest header either version may take, hence the most a caller ever buffers. */
const MAX_HEADER_BYTES = PROXY_V2_HEADER_BYTES + MAX_PROXY_V2_LENGTH;

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

/** The decoder's whole contract for one input. */
function checkContract(input: Uint8Array): ProxyHeaderResult {
  const result = decodeProxyHeader(input);
  if (result.kind === "need-more") expect(input.length).toBeLessThan(MAX_HEADER_BYTES);
  if (result.kind === "malformed") expect(result.reason.length).toBeGreaterThan(0);
  if (result.kind === "done") {
    const { header, length } = result;
    expect(length).toBeGreaterThan(0);
    expect(length).toBeLessThanOrEqual(
      Math.min(input.length, header.version === 1 ? MAX_PROXY_V1_BYTES : MAX_HEADER_BYTES),
    );
    // Addresses are canonical and ports are ports, whatever the bytes were.
    for (const end of [header.source, header.destination]) {
      if (end === null) continue;
      expect(normalizeIp(end.address)).toBe(end.address);
      expect(Number.isInteger(end.port) && end.port >= 0 && end.port <= 65535).toBe(true);
    }
    expect(header.source === null).toBe(header.family === "unknown");
  }
  return result;
}

/** A verdict reached on a prefix holds for any longer buffer. */
function checkStable(input: Uint8Array, prefixEnd: number): void {
  const early = decodeProxyHeader(input.subarray(0, prefixEnd));
  if (early.kind !== "need-more") expect(decodeProxyHeader(input)).toEqual(early);
}

/** Random bytes, often behind one of the two prefixes so the version decoders run. */
const headerish = fc
  .tuple(
    fc.constantFrom("none", "v1", "v2"),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 0xffff }),
    fc.uint8Array({ maxLength: 600 }),
  )
  .map(([prefix, verCmd, fam, length, rest]) => {
    if (prefix === "v1") return concat(PROXY_V1_PREFIX, rest);
    if (prefix === "none") return rest;
    const fixed = Uint8Array.of(verCmd, fam, length >> 8, length & 0xff);
    return concat(PROXY_V2_SIGNATURE, fixed, rest);
  });

const address = fc.oneof(fc.ipV4(), fc.ipV6());
const endpoint = fc.record({ address, port: fc.integer({ min: 0, max: 65535 }) });

describe("decodeProxyHeader properties (fast-check)", () => {
  test(
    "arbitrary bytes: never throws, canonical results, verdicts are final",
    () => {
      fc.assert(
        fc.property(headerish, fc.nat(), (input, cut) => {
          checkContract(input);
          checkStable(input, input.length === 0 ? 0 : cut % input.length);
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  test(
    "encode → decode gives the endpoints back, in both versions, with the stream after intact",
    () => {
      fc.assert(
        fc.property(
          endpoint,
          endpoint,
          fc.constantFrom(1, 2),
          fc.uint8Array({ maxLength: 64 }),
          fc.nat(),
          (source, destination, version, rest, cut) => {
            const header =
              version === 1
                ? encodeProxyV1(source, destination)
                : encodeProxyV2(source, destination);
            const stream = concat(header, rest);
            const result = checkContract(stream);
            expect(result).toMatchObject({
              kind: "done",
              length: header.length,
              header: {
                version,
                command: "proxy",
                source: { address: normalizeIp(source.address), port: source.port },
                destination: { address: normalizeIp(destination.address), port: destination.port },
              },
            });
            expect(decodeProxyHeader(stream.subarray(0, cut % header.length)).kind).toBe(
              "need-more",
            );
          },
        ),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );
});

describe("decodeProxyHeader seeded mutation loop", () => {
  const ITERATIONS = Math.max(12_000, NUM_RUNS);
  test(`${ITERATIONS} mutated headers never throw, never hang, and reach every verdict`, () => {
    const text = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
    const tlv = Uint8Array.of(0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00);
    const withTlvs = encodeProxyV2(
      { address: "192.0.2.1", port: 1 },
      { address: "192.0.2.2", port: 2 },
    );
    withTlvs[15] = withTlvs[15]! + tlv.length; // grow len to cover the TLVs appended below
    const corpus = [
      text("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
      text("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 65535\r\n"),
      text("PROXY UNKNOWN\r\n"),
      encodeProxyV2({ address: "192.0.2.1", port: 56324 }, { address: "198.51.100.2", port: 443 }),
      encodeProxyV2({ address: "2001:db8::1", port: 1 }, { address: "10.0.0.1", port: 2 }),
      concat(withTlvs, tlv),
      concat(PROXY_V2_SIGNATURE, Uint8Array.of(0x20, 0x00, 0x00, 0x00)), // LOCAL
    ];
    const TLS_START = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x05);
    // v2 len field (offset 14) and, in a v1 line, wherever the mutator lands.
    const lengthOffsets = [14];
    const random = seededRandom(0x9e0_c0de);
    const verdicts = { "need-more": 0, done: 0, malformed: 0 };
    const kinds = new Map<MutationKind, number>();
    let slowestMs = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const seedInput = concat(corpus[i % corpus.length]!, TLS_START);
      let { bytes, kind } = mutate(seedInput, random, lengthOffsets);
      if (random() < 0.25) bytes = mutate(bytes, random, lengthOffsets).bytes;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      const started = performance.now();
      const result = checkContract(bytes);
      slowestMs = Math.max(slowestMs, performance.now() - started);
      verdicts[result.kind]++;
      checkStable(bytes, Math.floor(random() * (bytes.length + 1)));
    }
    expect(verdicts["need-more"]).toBeGreaterThan(0);
    expect(verdicts.done).toBeGreaterThan(0);
    expect(verdicts.malformed).toBeGreaterThan(0);
    expect(kinds.size).toBe(MUTATION_KINDS.length);
    expect(slowestMs).toBeLessThan(100);
  }, 60_000);
});
