// TLS record layer (RFC 5246 §6.2, RFC 8446 §5.1): reassembles the first handshake message from
// however many handshake records carry it, looking only at record headers until it is complete.

/** Record content types (RFC 8446 §5.1 `ContentType`). */
export const RECORD_TYPE_ALERT = 21;
export const RECORD_TYPE_HANDSHAKE = 22;

/** type(1) + legacy_record_version(2) + length(2) (RFC 8446 §5.1 `TLSPlaintext`). */
export const RECORD_HEADER_BYTES = 5;
/** A plaintext fragment may not exceed 2^14 bytes (RFC 8446 §5.1, RFC 5246 §6.2.1). */
export const MAX_RECORD_FRAGMENT_BYTES = 2 ** 14;
/** msg_type(1) + length(3) (RFC 8446 §4 `Handshake`). */
export const HANDSHAKE_HEADER_BYTES = 4;

/** Limits and expectations for {@link reassembleHandshake}. */
export interface ReassemblyLimits {
  /** The handshake type the stream must start with (client_hello = 1). */
  expectedType: number;
  /** Name of that type, for messages. */
  expectedName: string;
  /** Largest accepted handshake message, its 4-byte header included. */
  maxMessageBytes: number;
  /** Largest number of records the message may be spread over. */
  maxRecords: number;
}

export type ReassemblyResult =
  | { kind: "need-more" }
  | { kind: "malformed"; reason: string }
  /** `body` is the handshake message without its 4-byte header (a view into `buffered` when one record carries it). */
  | { kind: "complete"; body: Uint8Array };

/** The handshake header as it is collected; one per process (reassembly is synchronous). */
const headerScratch = new Uint8Array(HANDSHAKE_HEADER_BYTES);

const hex = (value: number): string => `0x${value.toString(16).padStart(2, "0")}`;

/**
 * Reassembles the first handshake message of a client's byte stream. Pure and non-consuming: the
 * caller passes everything received so far, every time. Until the message is complete a call
 * reads only the 5-byte record headers and the first 4 handshake bytes, so it costs
 * O(records) whatever the message size; the fragments are copied once, when all have arrived.
 *
 * Bytes after the end of the message (the rest of its record, later records) are not looked at.
 */
export function reassembleHandshake(
  buffered: Uint8Array,
  limits: ReassemblyLimits,
): ReassemblyResult {
  const header = headerScratch; // fully rewritten before it is read: headerBytes starts at 0
  let headerBytes = 0;
  let messageBytes = -1; // unknown until the 4-byte handshake header has arrived
  let fragmentBytes = 0;
  let records = 0;
  let offset = 0;
  while (offset < buffered.length) {
    const type = buffered[offset]!;
    if (type !== RECORD_TYPE_HANDSHAKE) {
      if (records === 0) {
        return {
          kind: "malformed",
          reason: `not a TLS handshake record (content type ${hex(type)}, expected 0x16)`,
        };
      }
      // RFC 8446 §5.1: handshake messages may not be interleaved with other record types.
      return {
        kind: "malformed",
        reason: `record ${records + 1} has content type ${hex(type)} before the ${limits.expectedName} was complete (only handshake records 0x16 may carry it)`,
      };
    }
    if (records === limits.maxRecords) {
      return {
        kind: "malformed",
        reason: `${limits.expectedName} spread over more than ${limits.maxRecords} records`,
      };
    }
    if (offset + 1 >= buffered.length) return { kind: "need-more" };
    const major = buffered[offset + 1]!;
    // legacy_record_version is 0x0301 or 0x0303 in practice (RFC 8446 §5.1); only the major byte
    // is checked, because old clients send 0x0300 and the backend, not the router, judges versions.
    if (major !== 3) {
      return {
        kind: "malformed",
        reason: `record version major byte ${hex(major)} is not 0x03 (TLS)`,
      };
    }
    if (offset + RECORD_HEADER_BYTES > buffered.length) return { kind: "need-more" };
    const length = (buffered[offset + 3]! << 8) | buffered[offset + 4]!;
    // RFC 8446 §5.1: zero-length handshake fragments MUST NOT be sent; 2^14 is the plaintext cap.
    if (length === 0 || length > MAX_RECORD_FRAGMENT_BYTES) {
      return {
        kind: "malformed",
        reason: `record ${records + 1} length ${length} is outside the allowed 1-${MAX_RECORD_FRAGMENT_BYTES}`,
      };
    }
    records++;
    const start = offset + RECORD_HEADER_BYTES;
    const available = Math.min(length, buffered.length - start);
    // The handshake header may itself be split across records: collect its 4 bytes as they come.
    for (let i = 0; headerBytes < HANDSHAKE_HEADER_BYTES && i < available; i++) {
      header[headerBytes++] = buffered[start + i]!;
      if (headerBytes === 1 && header[0] !== limits.expectedType) {
        return {
          kind: "malformed",
          reason: `handshake type ${header[0]} is not ${limits.expectedName} (${limits.expectedType})`,
        };
      }
    }
    if (messageBytes === -1 && headerBytes === HANDSHAKE_HEADER_BYTES) {
      const bodyLength = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
      messageBytes = HANDSHAKE_HEADER_BYTES + bodyLength;
      if (messageBytes > limits.maxMessageBytes) {
        return {
          kind: "malformed",
          reason: `${limits.expectedName} of ${messageBytes} bytes exceeds the ${limits.maxMessageBytes}-byte limit`,
        };
      }
    }
    fragmentBytes += available;
    if (messageBytes !== -1 && fragmentBytes >= messageBytes) {
      return { kind: "complete", body: messageBody(buffered, records, messageBytes) };
    }
    if (available < length) return { kind: "need-more" };
    offset = start + length;
  }
  return { kind: "need-more" };
}

/**
 * The message body from the first `records` records (already validated): a view when one
 * record holds it all (the usual ClientHello), else a copy that joins the fragments.
 */
function messageBody(buffered: Uint8Array, records: number, messageBytes: number): Uint8Array {
  if (records === 1) {
    return buffered.subarray(
      RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES,
      RECORD_HEADER_BYTES + messageBytes,
    );
  }
  const message = new Uint8Array(messageBytes);
  let written = 0;
  let offset = 0;
  for (let r = 0; r < records && written < messageBytes; r++) {
    const length = (buffered[offset + 3]! << 8) | buffered[offset + 4]!;
    const start = offset + RECORD_HEADER_BYTES;
    const take = Math.min(length, messageBytes - written, buffered.length - start);
    message.set(buffered.subarray(start, start + take), written);
    written += take;
    offset = start + length;
  }
  return message.subarray(HANDSHAKE_HEADER_BYTES);
}
