// reassembleHandshake: record walking, early rejection and reassembly across records.
import { describe, expect, test } from "bun:test";
import {
  MAX_RECORD_FRAGMENT_BYTES,
  RECORD_TYPE_HANDSHAKE,
  type ReassemblyLimits,
  reassembleHandshake,
} from "./record.ts";
import { concatBytes, evenSizes, toRecords } from "./testing/records.ts";

const LIMITS: ReassemblyLimits = {
  expectedType: 1,
  expectedName: "ClientHello",
  maxMessageBytes: 1000,
  maxRecords: 8,
};

/** A handshake message of type 1 with a body of `bodyLength` bytes counting up. */
function message(bodyLength: number, type = 1): Uint8Array {
  const body = Uint8Array.from({ length: bodyLength }, (_, i) => i & 0xff);
  return concatBytes([
    Uint8Array.of(type, bodyLength >> 16, (bodyLength >> 8) & 0xff, bodyLength & 0xff),
    body,
  ]);
}

const header = (type: number, major: number, minor: number, length: number): Uint8Array =>
  Uint8Array.of(type, major, minor, length >> 8, length & 0xff);

describe("reassembleHandshake", () => {
  test.each([
    ["one record", [104]],
    ["two records", [52, 52]],
    ["handshake header split over four records", [1, 1, 1, 1, 100]],
    ["eight records (the limit)", evenSizes(104, 8)],
  ])("reassembles the body from %s", (_name, sizes) => {
    const whole = message(100);
    const result = reassembleHandshake(toRecords(whole, sizes), LIMITS);
    expect(result).toEqual({ kind: "complete", body: whole.subarray(4) });
  });

  test("every strict prefix needs more, the full input completes", () => {
    const whole = message(100);
    const stream = toRecords(whole, [30, 1, 73]);
    for (let end = 0; end < stream.length; end++) {
      expect(reassembleHandshake(stream.subarray(0, end), LIMITS)).toEqual({ kind: "need-more" });
    }
    expect(reassembleHandshake(stream, LIMITS).kind).toBe("complete");
  });

  test("ignores what follows the message: the rest of its record and later records", () => {
    const whole = message(20);
    const sameRecord = concatBytes([
      header(RECORD_TYPE_HANDSHAKE, 3, 1, 30),
      whole,
      new Uint8Array(6).fill(0xee),
    ]);
    const laterRecord = concatBytes([toRecords(whole, [24]), Uint8Array.of(0x17, 3, 3, 0, 1, 0)]);
    for (const stream of [sameRecord, laterRecord]) {
      expect(reassembleHandshake(stream, LIMITS)).toEqual({
        kind: "complete",
        body: whole.subarray(4),
      });
    }
  });

  test("one record: the body is a view into the buffer, not a copy", () => {
    const stream = toRecords(message(10), [14]);
    const result = reassembleHandshake(stream, LIMITS);
    if (result.kind !== "complete") throw new Error(`expected complete, got ${result.kind}`);
    expect(result.body.buffer).toBe(stream.buffer);
    expect(result.body).toEqual(message(10).subarray(4));
  });

  test("several records: the body is a copy that joins the fragments", () => {
    const stream = toRecords(message(10), [5, 9]);
    const result = reassembleHandshake(stream, LIMITS);
    stream.fill(0);
    expect(result).toEqual({ kind: "complete", body: message(10).subarray(4) });
  });

  test.each([
    ["an alert record first", Uint8Array.of(0x15), "not a TLS handshake record (content type 0x15"],
    ["HTTP", Uint8Array.of(0x47), "not a TLS handshake record (content type 0x47"],
    ["an SSLv2 ClientHello", Uint8Array.of(0x80), "not a TLS handshake record (content type 0x80"],
    [
      "record version major 2",
      Uint8Array.of(0x16, 0x02),
      "record version major byte 0x02 is not 0x03",
    ],
    ["record length 0", header(0x16, 3, 1, 0), "record 1 length 0 is outside the allowed 1-16384"],
    [
      "record length 2^14 + 1",
      header(0x16, 3, 1, MAX_RECORD_FRAGMENT_BYTES + 1),
      "record 1 length 16385 is outside the allowed 1-16384",
    ],
    [
      "handshake type server_hello",
      concatBytes([header(0x16, 3, 3, 10), Uint8Array.of(2)]),
      "handshake type 2 is not ClientHello (1)",
    ],
    [
      "a declared length over the limit (seen from 9 bytes)",
      concatBytes([header(0x16, 3, 1, 200), Uint8Array.of(1, 0, 0x03, 0xe5)]),
      "ClientHello of 1001 bytes exceeds the 1000-byte limit",
    ],
    [
      "an application_data record inside the message",
      concatBytes([toRecords(message(100).subarray(0, 50), [50]), Uint8Array.of(0x17)]),
      "record 2 has content type 0x17 before the ClientHello was complete",
    ],
    [
      "a second record with length 0",
      concatBytes([toRecords(message(100).subarray(0, 50), [50]), header(0x16, 3, 1, 0)]),
      "record 2 length 0",
    ],
    [
      "more records than allowed",
      concatBytes([toRecords(message(100).subarray(0, 8), evenSizes(8, 8)), Uint8Array.of(0x16)]),
      "ClientHello spread over more than 8 records",
    ],
  ])("rejects %s on the byte that shows it", (_name, stream, reason) => {
    for (let end = 0; end < stream.length; end++) {
      expect(reassembleHandshake(stream.subarray(0, end), LIMITS)).toEqual({ kind: "need-more" });
    }
    const result = reassembleHandshake(stream, LIMITS);
    expect(result.kind).toBe("malformed");
    expect(result.kind === "malformed" && result.reason).toContain(reason);
  });

  test("accepts any record minor version, including SSL 3.0's 0x0300", () => {
    const whole = message(10);
    for (const version of [0x0300, 0x0301, 0x0303, 0x03ff]) {
      expect(reassembleHandshake(toRecords(whole, [14], version), LIMITS).kind).toBe("complete");
    }
  });
});
