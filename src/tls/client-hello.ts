// Incremental ClientHello reader (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): SNI, ALPN and versions
// from the bytes a client sent, without consuming them.
import {
  EXTENSION_ALPN,
  EXTENSION_SERVER_NAME,
  EXTENSION_SUPPORTED_VERSIONS,
  readAlpn,
  readServerName,
  readSupportedVersions,
} from "./extensions.ts";
import { RECORD_HEADER_BYTES, reassembleHandshake } from "./record.ts";
import { TlsParseError, VectorReader, within } from "./vector-reader.ts";

/** What the router needs from a ClientHello. */
export interface ClientHelloInfo {
  /** host_name from server_name (RFC 6066 §3), lower-cased, one trailing dot dropped; null without SNI. */
  serverName: string | null;
  /** ALPN protocol names in the client's order (RFC 7301); empty without the extension. */
  alpn: string[];
  /** ClientHello.legacy_version, e.g. 0x0303 (RFC 8446 §4.1.2). */
  legacyVersion: number;
  /** supported_versions as sent, GREASE included (RFC 8446 §4.2.1); empty without the extension. */
  supportedVersions: number[];
}

/** Reading is a value, not an exception: call again with more bytes on `need-more`. */
export type HelloResult =
  | { kind: "need-more" }
  | { kind: "done"; hello: ClientHelloInfo }
  | { kind: "malformed"; reason: string };

/**
 * Largest ClientHello handshake message accepted, its 4-byte handshake header included
 * (SPEC §4: 16 KiB of ClientHello). Real ones stay under 2 KiB, post-quantum key shares
 * (X25519MLKEM768: 1216 bytes) included; the rest is headroom, not a target.
 */
export const MAX_CLIENT_HELLO_BYTES = 16384;

/**
 * Largest number of records the ClientHello may be spread over. Real stacks fragment at 512 bytes
 * at the least (RFC 6066 §4's smallest max_fragment_length), i.e. 32 records for 16 KiB; evasion
 * tools split finer. The cap bounds both the work of a call and the header overhead below.
 */
export const MAX_CLIENT_HELLO_RECORDS = 256;

/**
 * What exactly is bounded: {@link readClientHello} answers `done` or `malformed`, never
 * `need-more`, once it has this many bytes: the largest ClientHello plus the 5-byte headers of
 * the most records allowed to carry it. A caller never buffers more than this before a verdict.
 */
export const MAX_CLIENT_HELLO_BUFFERED_BYTES =
  MAX_CLIENT_HELLO_BYTES + MAX_CLIENT_HELLO_RECORDS * RECORD_HEADER_BYTES;

/** HandshakeType client_hello (RFC 8446 §4). */
const HANDSHAKE_CLIENT_HELLO = 1;

/**
 * Reads the ClientHello at the start of `buffered` (everything the client sent so far). Pure:
 * it never throws and never consumes; the caller keeps the bytes and forwards them untouched.
 * While the message is incomplete a call costs O(record headers), so calling it on every new
 * chunk stays linear even when the client sends one byte at a time. Rejects as early as the
 * bytes allow: a first byte other than 0x16, a record version major other than 3, an empty or
 * over-long record, a non-handshake record before the end of the message, a handshake type other
 * than client_hello, or a declared length over {@link MAX_CLIENT_HELLO_BYTES}.
 */
export function readClientHello(buffered: Uint8Array): HelloResult {
  const reassembled = reassembleHandshake(buffered, {
    expectedType: HANDSHAKE_CLIENT_HELLO,
    expectedName: "ClientHello",
    maxMessageBytes: MAX_CLIENT_HELLO_BYTES,
    maxRecords: MAX_CLIENT_HELLO_RECORDS,
  });
  if (reassembled.kind !== "complete") return reassembled;
  try {
    return { kind: "done", hello: parseClientHelloBody(reassembled.body) };
  } catch (error) {
    if (error instanceof TlsParseError) return { kind: "malformed", reason: error.message };
    // Not a parse failure but a bug; still never throw onto the connection path.
    return { kind: "malformed", reason: `internal error reading ClientHello: ${String(error)}` };
  }
}

/**
 * Parses the ClientHello body, the bytes after the 4-byte handshake header (RFC 8446 §4.1.2):
 *
 *   uint16 legacy_version; opaque random[32]; opaque legacy_session_id<0..32>;
 *   CipherSuite cipher_suites<2..2^16-2>; opaque legacy_compression_methods<1..2^8-1>;
 *   Extension extensions<8..2^16-1>;
 *
 * Throws TlsParseError. Extensions may be absent altogether in TLS 1.2 (RFC 5246 §7.4.1.2).
 */
export function parseClientHelloBody(body: Uint8Array): ClientHelloInfo {
  return within("ClientHello", () => {
    const hello = new VectorReader(body);
    const legacyVersion = hello.uint(2, "legacy_version");
    hello.fixed(32, "random");
    hello.vector(1, "legacy_session_id", 0, 32);
    const cipherSuites = hello.vector(2, "cipher_suites", 2, 2 ** 16 - 2);
    if (cipherSuites.remaining % 2 !== 0) {
      throw new TlsParseError(
        `cipher_suites length ${cipherSuites.remaining} is odd (each suite is 2 bytes)`,
      );
    }
    hello.vector(1, "legacy_compression_methods", 1);
    const info: ClientHelloInfo = {
      serverName: null,
      alpn: [],
      legacyVersion,
      supportedVersions: [],
    };
    if (hello.remaining === 0) return info;
    // The lower bound 8 of RFC 8446 is not enforced: a TLS 1.2 client may send one short extension.
    const extensions = hello.vector(2, "extensions");
    hello.expectEnd("extensions");
    readExtensions(extensions, info);
    return info;
  });
}

/**
 * Duplicate-extension check without a Set per ClientHello: `seenIn[type] === pass` means the
 * type was seen in this pass. 256 KiB once per process; parsing is synchronous, so one table
 * serves every connection. O(1) per extension even for a hello of thousands of empty ones.
 */
const seenIn = new Uint32Array(0x10000);
let pass = 0;

function readExtensions(extensions: VectorReader, info: ClientHelloInfo): void {
  if (++pass === 0x1_0000_0000) {
    seenIn.fill(0);
    pass = 1;
  }
  while (extensions.remaining > 0) {
    const type = extensions.uint(2, "extension_type");
    const data = extensions.vector(2, "extension", 0, 0xffff, type);
    // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a given
    // extension block." Two server_names could otherwise route differently from the backend.
    if (seenIn[type] === pass) throw new TlsParseError(`extension ${type} appears more than once`);
    seenIn[type] = pass;
    if (type === EXTENSION_SERVER_NAME) {
      info.serverName = within("extension server_name", () => readServerName(data));
    } else if (type === EXTENSION_ALPN) {
      info.alpn = within("extension application_layer_protocol_negotiation", () => readAlpn(data));
    } else if (type === EXTENSION_SUPPORTED_VERSIONS) {
      info.supportedVersions = within("extension supported_versions", () =>
        readSupportedVersions(data),
      );
    }
  }
}
