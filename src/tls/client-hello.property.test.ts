// Properties (fast-check) and a seeded mutation loop: readClientHello never throws or hangs.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  type HelloResult,
  MAX_CLIENT_HELLO_BUFFERED_BYTES,
  readClientHello,
} from "./client-hello.ts";
import {
  alpnExtension,
  ascii,
  buildClientHelloBody,
  handshakeMessage,
  type RawExtension,
  serverNameExtension,
} from "./testing/build-client-hello.ts";
import { expectedServerName, loadClientHelloFixtures } from "./testing/fixtures.ts";
import { MUTATION_KINDS, type MutationKind, mutate, seededRandom } from "./testing/mutate.ts";
import { concatBytes, toRecords } from "./testing/records.ts";

/** FC_NUM_RUNS=100000 bun test … runs the properties longer on demand. */
const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? "1000");
if (!Number.isInteger(NUM_RUNS) || NUM_RUNS < 1) {
  throw new Error(`FC_NUM_RUNS "${process.env.FC_NUM_RUNS}": must be a positive integer`);
}
/** Scale test timeouts with the requested runs. */
const TIMEOUT_MS = 20_000 + NUM_RUNS * 20;

const fixtures = await loadClientHelloFixtures();

/** The reader's whole contract for one input: a well-formed answer, final once given. */
function checkContract(input: Uint8Array): HelloResult {
  const result = readClientHello(input);
  expect(["need-more", "done", "malformed"]).toContain(result.kind);
  if (result.kind === "malformed") {
    expect(result.reason.length).toBeGreaterThan(0);
    // The catch-all in readClientHello is a safety net; reaching it is a bug.
    expect(result.reason).not.toStartWith("internal error");
  }
  if (result.kind === "need-more") {
    expect(input.length).toBeLessThan(MAX_CLIENT_HELLO_BUFFERED_BYTES);
  }
  return result;
}

/** A verdict reached on a prefix is the verdict on any longer buffer: bytes are never re-judged. */
function checkStable(input: Uint8Array, prefixEnd: number): void {
  const early = readClientHello(input.subarray(0, prefixEnd));
  if (early.kind !== "need-more") expect(readClientHello(input)).toEqual(early);
}

/** Random bytes, often behind a plausible record and handshake header so parsing goes deeper. */
const plausibleStream = fc
  .tuple(
    fc.boolean(),
    fc.integer({ min: 0, max: 0x4001 }),
    fc.integer({ min: 0, max: 0x4001 }),
    fc.uint8Array({ maxLength: 2048 }),
  )
  .map(([framed, recordLength, helloLength, rest]) =>
    framed
      ? concatBytes([
          Uint8Array.of(
            0x16,
            3,
            1,
            recordLength >> 8,
            recordLength & 0xff,
            1,
            0,
            helloLength >> 8,
            helloLength & 0xff,
          ),
          rest,
        ])
      : rest,
  );

const protocolName = fc.string({
  minLength: 1,
  maxLength: 20,
  unit: fc.constantFrom(..."abcdefghijklmnop/.0123456789-"),
});
const unknownExtension = fc.record({
  type: fc.integer({ min: 0, max: 0xffff }).filter((t) => t !== 0 && t !== 16 && t !== 43),
  data: fc.uint8Array({ maxLength: 200 }),
});

/** A valid ClientHello with a chosen SNI and ALPN, plus unknown extensions, split at random. */
const validHello = fc
  .record({
    name: fc.option(fc.domain(), { nil: null }),
    upperCase: fc.boolean(),
    trailingDot: fc.boolean(),
    alpn: fc.array(protocolName, { maxLength: 5 }),
    others: fc.uniqueArray(unknownExtension, { maxLength: 6, selector: (e) => e.type }),
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 4000 }), { maxLength: 12 }),
  })
  .map(({ name, upperCase, trailingDot, alpn, others, cuts }) => {
    const sent =
      name === null ? null : `${upperCase ? name.toUpperCase() : name}${trailingDot ? "." : ""}`;
    const extensions: RawExtension[] = [...others];
    if (sent !== null) extensions.push(serverNameExtension(ascii(sent)));
    if (alpn.length > 0) extensions.push(alpnExtension(...alpn));
    const message = handshakeMessage(buildClientHelloBody({ extensions }));
    const points = [
      ...cuts.filter((c) => c < message.length).sort((a, b) => a - b),
      message.length,
    ];
    const sizes = points.map((point, i) => point - (i === 0 ? 0 : points[i - 1]!));
    return { stream: toRecords(message, sizes), serverName: expectedServerName(sent), alpn };
  });

describe("readClientHello properties (fast-check)", () => {
  test(
    "arbitrary bytes: never throws, answers within the buffer bound, verdicts are final",
    () => {
      fc.assert(
        fc.property(plausibleStream, fc.nat(), (input, cut) => {
          checkContract(input);
          checkStable(input, input.length === 0 ? 0 : cut % input.length);
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  test(
    "valid ClientHellos in any fragmentation give back their SNI and ALPN",
    () => {
      fc.assert(
        fc.property(validHello, fc.nat(), ({ stream, serverName, alpn }, cut) => {
          const result = checkContract(stream);
          expect(result).toMatchObject({ kind: "done", hello: { serverName, alpn } });
          expect(readClientHello(stream.subarray(0, cut % stream.length)).kind).toBe("need-more");
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  test(
    "captured ClientHellos with bytes overwritten never throw and stay final",
    () => {
      const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      });
      fc.assert(
        fc.property(fc.constantFrom(...fixtures), edits, fc.nat(), (fixture, changes, cut) => {
          const input = new Uint8Array(fixture.bytes);
          for (const [at, value] of changes) input[at % input.length] = value;
          checkContract(input);
          checkStable(input, cut % input.length);
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );
});

describe("readClientHello seeded mutation loop", () => {
  const ITERATIONS = Math.max(12_000, NUM_RUNS);
  test(`${ITERATIONS} mutated ClientHellos never throw, never hang, and reach every verdict`, () => {
    const random = seededRandom(0x5eed_c1e0);
    // Record length (offset 3) and handshake length (offsets 6-7, low bytes of the uint24).
    const lengthOffsets = [3, 6, 7];
    const verdicts = { "need-more": 0, done: 0, malformed: 0 };
    const kinds = new Map<MutationKind, number>();
    let slowestMs = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const seedInput = fixtures[i % fixtures.length]!.bytes;
      // Mutations pile up now and then, to get far from valid input as well as near it.
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
