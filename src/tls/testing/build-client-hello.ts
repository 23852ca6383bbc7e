// Test support: builds synthetic ClientHello handshake messages (RFC 8446 §4.1.2) with chosen
// extensions, for the edge cases no real client produces (duplicates, bad names, bad lengths).
import {
  EXTENSION_ALPN,
  EXTENSION_SERVER_NAME,
  EXTENSION_SUPPORTED_VERSIONS,
} from "../extensions.ts";
import { concatBytes } from "./records.ts";

export interface RawExtension {
  type: number;
  data: Uint8Array;
}

export interface ClientHelloParts {
  legacyVersion?: number;
  sessionId?: Uint8Array;
  cipherSuites?: number[];
  compressionMethods?: number[];
  /** null: no extensions block at all (a TLS 1.2 ClientHello may end after compression). */
  extensions?: RawExtension[] | null;
}

const u16 = (value: number): Uint8Array => Uint8Array.of(value >> 8, value & 0xff);

/** `bytes` preceded by its length in `prefixBytes` bytes (RFC 8446 §3.4 vector). */
export function vector(prefixBytes: 1 | 2 | 3, bytes: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(prefixBytes);
  for (let i = 0; i < prefixBytes; i++)
    prefix[i] = (bytes.length >> (8 * (prefixBytes - 1 - i))) & 0xff;
  return concatBytes([prefix, bytes]);
}

export function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** server_name with one host_name entry per name given (raw bytes, unchecked). */
export function serverNameExtension(...names: Uint8Array[]): RawExtension {
  const entries = names.map((name) => concatBytes([Uint8Array.of(0), vector(2, name)]));
  return { type: EXTENSION_SERVER_NAME, data: vector(2, concatBytes(entries)) };
}

export function alpnExtension(...protocols: string[]): RawExtension {
  return {
    type: EXTENSION_ALPN,
    data: vector(2, concatBytes(protocols.map((p) => vector(1, ascii(p))))),
  };
}

export function supportedVersionsExtension(...versions: number[]): RawExtension {
  return { type: EXTENSION_SUPPORTED_VERSIONS, data: vector(1, concatBytes(versions.map(u16))) };
}

/** The ClientHello body, without the 4-byte handshake header. */
export function buildClientHelloBody(parts: ClientHelloParts = {}): Uint8Array {
  const extensions = parts.extensions === undefined ? [] : parts.extensions;
  const fields = [
    u16(parts.legacyVersion ?? 0x0303),
    new Uint8Array(32).fill(0xab),
    vector(1, parts.sessionId ?? new Uint8Array(32).fill(0xcd)),
    vector(2, concatBytes((parts.cipherSuites ?? [0x1301, 0x1302, 0xc02f]).map(u16))),
    vector(1, Uint8Array.from(parts.compressionMethods ?? [0])),
  ];
  if (extensions !== null) {
    const blocks = extensions.map((e) => concatBytes([u16(e.type), vector(2, e.data)]));
    fields.push(vector(2, concatBytes(blocks)));
  }
  return concatBytes(fields);
}

/** A whole handshake message: msg_type client_hello(1), uint24 length, body. */
export function handshakeMessage(body: Uint8Array, type = 1): Uint8Array {
  return concatBytes([Uint8Array.of(type), vector(3, body)]);
}
