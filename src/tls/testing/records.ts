// Test support: moves a handshake message between TLS records, to replay real ClientHellos
// fragmented in ways their clients did not choose (RFC 8446 §5.1 allows any split).
import { RECORD_HEADER_BYTES, RECORD_TYPE_HANDSHAKE } from "../record.ts";

/**
 * Concatenates the fragments of the leading handshake records of a captured stream: the
 * handshake message(s) they carry, without record headers. Stops at the first other record.
 */
export function handshakeBytesOf(stream: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (
    offset + RECORD_HEADER_BYTES <= stream.length &&
    stream[offset] === RECORD_TYPE_HANDSHAKE
  ) {
    const length = (stream[offset + 3]! << 8) | stream[offset + 4]!;
    const start = offset + RECORD_HEADER_BYTES;
    if (start + length > stream.length) {
      throw new RangeError(`record at ${offset} runs past the capture`);
    }
    parts.push(stream.subarray(start, start + length));
    offset = start + length;
  }
  return concatBytes(parts);
}

/**
 * Wraps `handshake` into handshake records whose fragments have the given sizes (they must add
 * up to its length), with `recordVersion` in every header (0x0301 as in a first ClientHello).
 */
export function toRecords(
  handshake: Uint8Array,
  fragmentSizes: number[],
  recordVersion = 0x0301,
): Uint8Array {
  const total = fragmentSizes.reduce((sum, size) => sum + size, 0);
  if (total !== handshake.length || fragmentSizes.some((size) => size < 1)) {
    throw new RangeError(
      `fragment sizes ${fragmentSizes.join(",")} must be positive and add up to ${handshake.length}`,
    );
  }
  const out = new Uint8Array(total + fragmentSizes.length * RECORD_HEADER_BYTES);
  let read = 0;
  let written = 0;
  for (const size of fragmentSizes) {
    out.set(
      [RECORD_TYPE_HANDSHAKE, recordVersion >> 8, recordVersion & 0xff, size >> 8, size & 0xff],
      written,
    );
    out.set(handshake.subarray(read, read + size), written + RECORD_HEADER_BYTES);
    read += size;
    written += RECORD_HEADER_BYTES + size;
  }
  return out;
}

/** `length` split into `count` near-equal positive sizes, larger ones first. */
export function evenSizes(length: number, count: number): number[] {
  if (count < 1 || count > length) {
    throw new RangeError(`cannot split ${length} bytes into ${count} fragments`);
  }
  const base = Math.floor(length / count);
  const extra = length % count;
  return Array.from({ length: count }, (_, i) => base + (i < extra ? 1 : 0));
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
