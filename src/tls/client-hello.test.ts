// readClientHello on real ClientHellos (fixtures, live node:tls), re-fragmented, and malformed.
import { describe, expect, test } from "bun:test";
import {
  type ClientHelloInfo,
  type HelloResult,
  MAX_CLIENT_HELLO_BUFFERED_BYTES,
  MAX_CLIENT_HELLO_BYTES,
  MAX_CLIENT_HELLO_RECORDS,
  readClientHello,
} from "./client-hello.ts";
import {
  alpnExtension,
  ascii,
  buildClientHelloBody,
  type ClientHelloParts,
  handshakeMessage,
  type RawExtension,
  serverNameExtension,
  supportedVersionsExtension,
  vector,
} from "./testing/build-client-hello.ts";
import {
  captureNodeTlsClientHello,
  type NodeTlsClientOptions,
} from "./testing/capture-client-hello.ts";
import {
  expectedServerName,
  type FixtureRequest,
  loadClientHelloFixtures,
} from "./testing/fixtures.ts";
import { concatBytes, evenSizes, handshakeBytesOf, toRecords } from "./testing/records.ts";

const TLS_1_2 = 0x0303;
const TLS_1_3 = 0x0304;

const fixtures = await loadClientHelloFixtures();

/** Feeds `stream` one byte more at a time, as a caller appending TCP reads would. */
function feedByteByByte(stream: Uint8Array): { result: HelloResult; verdictAt: number } {
  for (let end = 1; end <= stream.length; end++) {
    const result = readClientHello(stream.subarray(0, end));
    if (result.kind !== "need-more") return { result, verdictAt: end };
  }
  return { result: { kind: "need-more" }, verdictAt: -1 };
}

function doneHello(result: HelloResult): ClientHelloInfo {
  if (result.kind !== "done") throw new Error(`expected done, got ${JSON.stringify(result)}`);
  return result.hello;
}

function checkRequested(hello: ClientHelloInfo, request: FixtureRequest): void {
  expect(hello.serverName).toBe(expectedServerName(request.servername));
  expect(hello.alpn).toEqual(request.alpn);
  expect(hello.legacyVersion).toBe(TLS_1_2); // RFC 8446 §4.1.2: legacy_version is 0x0303 in TLS 1.3 too
  if (request.maxVersion === "1.3") expect(hello.supportedVersions).toContain(TLS_1_3);
  else expect(hello.supportedVersions).not.toContain(TLS_1_3);
}

/** A ClientHello stream of synthetic parts in one record. */
const synthetic = (parts: ClientHelloParts): Uint8Array => {
  const message = handshakeMessage(buildClientHelloBody(parts));
  return toRecords(message, [message.length]);
};
const withExtensions = (...extensions: RawExtension[]): Uint8Array => synthetic({ extensions });

describe("readClientHello on captured ClientHellos (test/fixtures/client-hellos)", () => {
  test("the fixtures include a multi-record and a post-quantum-sized capture", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(10);
    expect(fixtures.some((f) => f.records > 1)).toBe(true);
    expect(fixtures.some((f) => f.bytes.length > 1400)).toBe(true);
  });

  test.each(fixtures.map((f) => [f.file, f] as const))("%s whole", (_file, fixture) => {
    checkRequested(doneHello(readClientHello(fixture.bytes)), fixture.request);
  });

  test.each(fixtures.map((f) => [f.file, f] as const))(
    "%s one byte at a time",
    (_file, fixture) => {
      const { result, verdictAt } = feedByteByByte(fixture.bytes);
      // The verdict comes exactly when the last byte of the handshake message arrives.
      expect(verdictAt).toBe(fixture.bytes.length);
      expect(result).toEqual(readClientHello(fixture.bytes));
    },
  );

  test.each(fixtures.map((f) => [f.file, f] as const))(
    "%s re-fragmented into other records",
    (_file, fixture) => {
      const whole = readClientHello(fixture.bytes);
      const handshake = handshakeBytesOf(fixture.bytes);
      const splits = [
        [handshake.length],
        evenSizes(handshake.length, 2),
        evenSizes(handshake.length, 3),
        evenSizes(handshake.length, 17),
        [1, 1, 1, 1, handshake.length - 4], // the 4-byte handshake header over four records
        [3, handshake.length - 3],
        evenSizes(handshake.length, Math.min(handshake.length, MAX_CLIENT_HELLO_RECORDS)),
      ];
      for (const sizes of splits) {
        for (const version of [0x0301, 0x0303]) {
          expect(readClientHello(toRecords(handshake, sizes, version))).toEqual(whole);
        }
      }
      const threeRecords = toRecords(handshake, evenSizes(handshake.length, 3));
      expect(feedByteByByte(threeRecords)).toEqual({
        result: whole,
        verdictAt: threeRecords.length,
      });
    },
  );

  test.each(fixtures.map((f) => [f.file, f] as const))(
    "%s followed by more records",
    (_file, fixture) => {
      // A TLS 1.3 client may send change_cipher_spec and 0-RTT data right after its ClientHello.
      const trailing = concatBytes([
        fixture.bytes,
        Uint8Array.of(0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 2, 9, 9),
      ]);
      expect(readClientHello(trailing)).toEqual(readClientHello(fixture.bytes));
    },
  );

  // Only captures longer than the record limit can be spread over more records than it allows.
  const longFixtures = fixtures.filter(
    (f) => handshakeBytesOf(f.bytes).length > MAX_CLIENT_HELLO_RECORDS,
  );
  test("the large captures are long enough to exceed the record limit", () => {
    expect(longFixtures.length).toBeGreaterThanOrEqual(3);
  });

  test.each(longFixtures.map((f) => [f.file, f] as const))(
    "%s in more than the record limit",
    (_file, fixture) => {
      const handshake = handshakeBytesOf(fixture.bytes);
      const result = readClientHello(
        toRecords(handshake, evenSizes(handshake.length, MAX_CLIENT_HELLO_RECORDS + 1)),
      );
      expect(result).toEqual({
        kind: "malformed",
        reason: `ClientHello spread over more than ${MAX_CLIENT_HELLO_RECORDS} records`,
      });
    },
  );
});

describe("readClientHello on live node:tls ClientHellos", () => {
  const cases: [string, NodeTlsClientOptions, FixtureRequest][] = [
    [
      "TLS 1.3 with SNI and ALPN",
      { servername: "Live.Example.COM", alpn: ["h2", "http/1.1"] },
      { servername: "Live.Example.COM", alpn: ["h2", "http/1.1"], maxVersion: "1.3" },
    ],
    ["TLS 1.3 without SNI", { servername: "" }, { servername: null, alpn: [], maxVersion: "1.3" }],
    [
      "TLS 1.2 only with SNI",
      { servername: "old.example.net", maxVersion: "TLSv1.2", alpn: ["http/1.1"] },
      { servername: "old.example.net", alpn: ["http/1.1"], maxVersion: "1.2" },
    ],
  ];
  test.each(cases)(
    "%s: whole, as the TCP reads arrived, and one byte at a time",
    async (_name, options, request) => {
      const capture = await captureNodeTlsClientHello(options, { quietMs: 100, timeoutMs: 4000 });
      const whole = readClientHello(capture.bytes);
      checkRequested(doneHello(whole), request);
      let received: Uint8Array = new Uint8Array(0);
      let result: HelloResult = { kind: "need-more" };
      for (const chunk of capture.chunks) {
        expect(result.kind).toBe("need-more");
        received = concatBytes([received, chunk]);
        result = readClientHello(received);
      }
      expect(result).toEqual(whole);
      expect(feedByteByByte(capture.bytes).result).toEqual(whole);
    },
    10_000,
  );
});

describe("readClientHello on synthetic ClientHellos", () => {
  test.each([
    [
      "no extensions block at all (TLS 1.2)",
      synthetic({ extensions: null }),
      { serverName: null, alpn: [] },
    ],
    ["an empty extensions block", withExtensions(), { serverName: null, alpn: [] }],
    [
      "an upper-case SNI with a trailing dot",
      withExtensions(serverNameExtension(ascii("WWW.Example.ORG."))),
      { serverName: "www.example.org", alpn: [] },
    ],
    [
      "an unknown name_type beside host_name",
      withExtensions({
        type: 0,
        data: vector(
          2,
          concatBytes([
            Uint8Array.of(7),
            vector(2, ascii("x")),
            Uint8Array.of(0),
            vector(2, ascii("a.b")),
          ]),
        ),
      }),
      { serverName: "a.b", alpn: [] },
    ],
    [
      "only an unknown name_type",
      withExtensions({
        type: 0,
        data: vector(2, concatBytes([Uint8Array.of(9), vector(2, ascii("x"))])),
      }),
      { serverName: null, alpn: [] },
    ],
    [
      "unknown extensions around SNI and ALPN",
      withExtensions(
        { type: 0x0a0a, data: new Uint8Array(0) }, // GREASE (RFC 8701)
        serverNameExtension(ascii("example.com")),
        { type: 21, data: new Uint8Array(300) }, // padding (RFC 7685)
        alpnExtension("h2"),
        { type: 0xfe0d, data: new Uint8Array(40).fill(7) }, // encrypted_client_hello
      ),
      { serverName: "example.com", alpn: ["h2"] },
    ],
    [
      "ALPN bytes above 0x7f, kept one character per byte",
      withExtensions({ type: 16, data: vector(2, vector(1, Uint8Array.of(0x68, 0xff, 0x80))) }),
      { serverName: null, alpn: ["h\u00ff\u0080"] },
    ],
  ])("accepts %s", (_name, stream, expected) => {
    const hello = doneHello(readClientHello(stream));
    expect({ serverName: hello.serverName, alpn: hello.alpn }).toEqual(expected);
  });

  test("reports supported_versions as sent, GREASE included", () => {
    const stream = withExtensions(supportedVersionsExtension(0x3a3a, TLS_1_3, TLS_1_2));
    expect(doneHello(readClientHello(stream)).supportedVersions).toEqual([
      0x3a3a,
      TLS_1_3,
      TLS_1_2,
    ]);
  });

  /** A handshake message of exactly `messageBytes` bytes, SNI "max.example", padded (RFC 7685). */
  const paddedMessage = (messageBytes: number): Uint8Array => {
    const sni = serverNameExtension(ascii("max.example"));
    const base = buildClientHelloBody({ extensions: [sni] }).length;
    // 4 for the padding extension's type and length fields, 4 for the handshake header.
    const padding = { type: 21, data: new Uint8Array(messageBytes - base - 4 - 4) };
    const message = handshakeMessage(buildClientHelloBody({ extensions: [sni, padding] }));
    expect(message.length).toBe(messageBytes);
    return message;
  };

  test("accepts a ClientHello of exactly MAX_CLIENT_HELLO_BYTES and refuses one byte more", () => {
    const largest = paddedMessage(MAX_CLIENT_HELLO_BYTES);
    const inOneRecord = toRecords(largest, [largest.length]);
    expect(doneHello(readClientHello(inOneRecord)).serverName).toBe("max.example");
    const tooBig = paddedMessage(MAX_CLIENT_HELLO_BYTES + 1);
    const stream = toRecords(tooBig, evenSizes(tooBig.length, 2));
    const expected: HelloResult = {
      kind: "malformed",
      reason: `ClientHello of ${MAX_CLIENT_HELLO_BYTES + 1} bytes exceeds the ${MAX_CLIENT_HELLO_BYTES}-byte limit`,
    };
    expect(readClientHello(stream.subarray(0, 8)).kind).toBe("need-more");
    expect(readClientHello(stream.subarray(0, 9))).toEqual(expected); // from its headers alone
    expect(readClientHello(stream)).toEqual(expected);
  });

  test("MAX_CLIENT_HELLO_BUFFERED_BYTES is tight: the worst case needs all of it", () => {
    // The largest ClientHello over the most records allowed fills the bound exactly.
    const largest = paddedMessage(MAX_CLIENT_HELLO_BYTES);
    const worst = toRecords(largest, evenSizes(largest.length, MAX_CLIENT_HELLO_RECORDS));
    expect(worst.length).toBe(MAX_CLIENT_HELLO_BUFFERED_BYTES);
    expect(readClientHello(worst).kind).toBe("done");
    expect(readClientHello(worst.subarray(0, worst.length - 1)).kind).toBe("need-more");
    const tooMany = toRecords(largest, evenSizes(largest.length, MAX_CLIENT_HELLO_RECORDS + 1));
    expect(readClientHello(tooMany).kind).toBe("malformed");
  });

  test("does not parse the body before it is complete: a corrupt body is only seen at the end", () => {
    const message = handshakeMessage(buildClientHelloBody({ cipherSuites: [0x1301] }));
    message[4 + 2 + 32 + 1 + 32 + 1] = 3; // cipher_suites length 2 → 3
    const stream = toRecords(message, evenSizes(message.length, 4));
    const { result, verdictAt } = feedByteByByte(stream);
    expect(verdictAt).toBe(stream.length);
    expect(result.kind).toBe("malformed");
  });

  test("byte-at-a-time worst case stays cheap: 16 KiB over 256 records, one call per byte", () => {
    const message = paddedMessage(MAX_CLIENT_HELLO_BYTES);
    const stream = toRecords(message, evenSizes(message.length, MAX_CLIENT_HELLO_RECORDS));
    const started = performance.now();
    const { verdictAt } = feedByteByByte(stream);
    const elapsedMs = performance.now() - started;
    expect(verdictAt).toBe(stream.length);
    // ~17,700 calls × ≤256 header reads take ~10 ms here; the bound is loose for a busy machine.
    expect(elapsedMs).toBeLessThan(2000);
  }, 5000);

  const nameBytes = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);
  test.each([
    [
      "a duplicate extension",
      withExtensions(
        alpnExtension("h2"),
        serverNameExtension(ascii("a.example")),
        alpnExtension("h2"),
      ),
      "reading ClientHello: extension 16 appears more than once",
    ],
    [
      "two server_name extensions",
      withExtensions(
        serverNameExtension(ascii("a.example")),
        serverNameExtension(ascii("b.example")),
      ),
      "extension 0 appears more than once",
    ],
    [
      "two host_names in one list",
      withExtensions(serverNameExtension(ascii("a.example"), ascii("b.example"))),
      "reading ClientHello extension server_name: more than one host_name in server_name_list",
    ],
    [
      "an empty server_name extension (allowed only in a ServerHello)",
      withExtensions({ type: 0, data: new Uint8Array(0) }),
      "reading ClientHello extension server_name server_name_list: length needs 2 bytes but only 0 are left",
    ],
    [
      "an empty server_name_list",
      withExtensions({ type: 0, data: vector(2, new Uint8Array(0)) }),
      "server_name_list: length 0 is outside the allowed 1-65535",
    ],
    [
      "an empty HostName",
      withExtensions(serverNameExtension(new Uint8Array(0))),
      "reading ClientHello extension server_name HostName: length 0 is outside the allowed 1-65535",
    ],
    [
      "a HostName that is only a dot",
      withExtensions(serverNameExtension(ascii("."))),
      'HostName "." is empty',
    ],
    [
      "a non-ASCII HostName",
      withExtensions(serverNameExtension(nameBytes(0x61, 0xc3, 0xa9, 0x2e, 0x63, 0x6f))),
      "HostName byte 1 is 0xc3 (only printable ASCII 0x21-0x7e is allowed)",
    ],
    [
      "a HostName with a NUL byte",
      withExtensions(serverNameExtension(nameBytes(0x61, 0x00, 0x62))),
      "HostName byte 1 is 0x00",
    ],
    [
      "a HostName with a space",
      withExtensions(serverNameExtension(ascii("a b.example"))),
      "HostName byte 1 is 0x20",
    ],
    [
      "a server_name list that overruns its extension",
      withExtensions({
        type: 0,
        data: concatBytes([Uint8Array.of(0, 9), Uint8Array.of(0, 0, 1, 0x61)]),
      }),
      "server_name_list: contents needs 9 bytes but only 4 are left",
    ],
    [
      "bytes after the server_name list",
      withExtensions({
        type: 0,
        data: concatBytes([serverNameExtension(ascii("a.b")).data, Uint8Array.of(0)]),
      }),
      "1 unexpected trailing bytes after server_name_list",
    ],
    [
      "an odd cipher_suites length",
      synthetic({ cipherSuites: [] }),
      "cipher_suites: length 0 is outside the allowed 2-65534",
    ],
    [
      "a 33-byte session id",
      synthetic({ sessionId: new Uint8Array(33) }),
      "legacy_session_id: length 33 is outside the allowed 0-32",
    ],
    [
      "no compression methods",
      synthetic({ compressionMethods: [] }),
      "legacy_compression_methods: length 0 is outside the allowed 1-255",
    ],
    [
      "an empty ProtocolName",
      withExtensions({
        type: 16,
        data: vector(2, concatBytes([vector(1, new Uint8Array(0)), vector(1, ascii("h2"))])),
      }),
      "reading ClientHello extension application_layer_protocol_negotiation ProtocolName: length 0",
    ],
    [
      "an odd supported_versions length",
      withExtensions({ type: 43, data: vector(1, Uint8Array.of(3, 4, 3)) }),
      "versions length 3 is odd",
    ],
  ])("rejects %s", (_name, stream, reason) => {
    const result = readClientHello(stream);
    expect(result.kind).toBe("malformed");
    expect(result.kind === "malformed" && result.reason).toContain(reason);
  });

  test.each([
    [
      "an extension that overruns the block",
      Uint8Array.of(0, 6, 0, 16, 0, 9, 0, 0),
      "reading ClientHello extension 16: contents needs 9 bytes",
    ],
    [
      "a cut extension header",
      Uint8Array.of(0, 3, 0, 16, 0),
      "reading ClientHello extension 16: length needs 2 bytes but only 1 are left",
    ],
    [
      "bytes after the extensions block",
      Uint8Array.of(0, 0, 0xff),
      "reading ClientHello: 1 unexpected trailing bytes after extensions",
    ],
    [
      "a cut extensions length",
      Uint8Array.of(0),
      "reading ClientHello extensions: length needs 2 bytes but only 1 are left",
    ],
  ])("rejects %s", (_name, tail, reason) => {
    const body = concatBytes([buildClientHelloBody({ extensions: null }), tail]);
    const result = readClientHello(toRecords(handshakeMessage(body), [body.length + 4]));
    expect(result).toEqual({ kind: "malformed", reason: expect.stringContaining(reason) });
  });

  test.each([
    [
      "an empty body",
      new Uint8Array(0),
      "reading ClientHello: legacy_version needs 2 bytes but only 0 are left",
    ],
    [
      "a short random",
      Uint8Array.of(3, 3, 1, 2),
      "reading ClientHello: random needs 32 bytes but only 2 are left",
    ],
  ])("rejects %s", (_name, body, reason) => {
    const result = readClientHello(toRecords(handshakeMessage(body), [body.length + 4]));
    expect(result).toEqual({ kind: "malformed", reason });
  });
});
