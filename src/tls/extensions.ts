// Decoders for the three ClientHello extensions the router reads: server_name (RFC 6066 §3),
// ALPN (RFC 7301 §3.1) and supported_versions (RFC 8446 §4.2.1).
import { TlsParseError, type VectorReader } from "./vector-reader.ts";

/** ExtensionType values (IANA "TLS ExtensionType Values"). */
export const EXTENSION_SERVER_NAME = 0;
export const EXTENSION_ALPN = 16;
export const EXTENSION_SUPPORTED_VERSIONS = 43;

/** NameType host_name (RFC 6066 §3). */
const NAME_TYPE_HOST_NAME = 0;

/**
 * Reads `ServerNameList server_name_list<1..2^16-1>` and returns the host_name, lower-cased and
 * without one trailing dot (SPEC §2 compares hostnames that way), or null when the list holds
 * only other name types.
 */
export function readServerName(data: VectorReader): string | null {
  const list = data.vector(2, "server_name_list", 1);
  data.expectEnd("server_name_list");
  let hostName: string | null = null;
  while (list.remaining > 0) {
    const nameType = list.uint(1, "name_type");
    // RFC 6066 §3 defines only host_name; like Go's crypto/tls, other types are assumed to
    // carry a 2-byte length-prefixed name and are skipped.
    const name = list.vector(2, "HostName", 1);
    if (nameType !== NAME_TYPE_HOST_NAME) continue;
    // RFC 6066 §3: "The ServerNameList MUST NOT contain more than one name of the same name_type."
    if (hostName !== null) throw new TlsParseError("more than one host_name in server_name_list");
    hostName = decodeHostName(name.fixed(name.remaining, "HostName"));
  }
  return hostName;
}

/**
 * HostName is ASCII (RFC 6066 §3). Only printable characters 0x21-0x7e are accepted: the name
 * goes into log lines and route lookups, where spaces and control bytes have no business.
 */
function decodeHostName(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte < 0x21 || byte > 0x7e) {
      throw new TlsParseError(
        `HostName byte ${i} is 0x${byte.toString(16).padStart(2, "0")} (only printable ASCII 0x21-0x7e is allowed)`,
      );
    }
    text += String.fromCharCode(byte);
  }
  text = text.toLowerCase();
  if (text.endsWith(".")) text = text.slice(0, -1);
  if (text.length === 0) {
    throw new TlsParseError(`HostName "${text}." is empty without its trailing dot`);
  }
  return text;
}

/**
 * Reads `ProtocolNameList protocol_name_list<2..2^16-1>` of `ProtocolName opaque<1..2^8-1>`
 * (RFC 7301 §3.1). Names are byte strings; each byte becomes one character (latin1), so none is
 * lost or rejected.
 */
export function readAlpn(data: VectorReader): string[] {
  const list = data.vector(2, "protocol_name_list", 2);
  data.expectEnd("protocol_name_list");
  const protocols: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1, "ProtocolName", 1);
    protocols.push(String.fromCharCode(...name.fixed(name.remaining, "ProtocolName")));
  }
  return protocols;
}

/** Reads `ProtocolVersion versions<2..254>` (RFC 8446 §4.2.1), GREASE values included. */
export function readSupportedVersions(data: VectorReader): number[] {
  const list = data.vector(1, "versions", 2, 254);
  data.expectEnd("versions");
  if (list.remaining % 2 !== 0) {
    throw new TlsParseError(`versions length ${list.remaining} is odd (each version is 2 bytes)`);
  }
  const versions: number[] = [];
  while (list.remaining > 0) versions.push(list.uint(2, "ProtocolVersion"));
  return versions;
}
