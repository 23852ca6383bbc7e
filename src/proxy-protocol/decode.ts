// Reads a PROXY protocol header of either version from the start of a connection's bytes.
import type { ProxyHeaderResult } from "./header.ts";
import { decodeProxyV1, PROXY_V1_PREFIX } from "./v1.ts";
import { decodeProxyV2, PROXY_V2_SIGNATURE } from "./v2.ts";

/**
 * Reads the PROXY header at the start of `buffered` (everything received so far). Pure: never
 * throws, never consumes; on `done` the caller drops `length` bytes and keeps the rest as the
 * client's stream. The version is told from the first bytes: the v2 signature or "PROXY ". A
 * byte that fits neither is refused at once, so a client that skipped the header (a TLS
 * ClientHello starts with 0x16) is turned away on its first byte.
 */
export function decodeProxyHeader(buffered: Uint8Array): ProxyHeaderResult {
  const v2 = matchedPrefix(buffered, PROXY_V2_SIGNATURE);
  if (v2 === PROXY_V2_SIGNATURE.length) return decodeProxyV2(buffered);
  const v1 = matchedPrefix(buffered, PROXY_V1_PREFIX);
  if (v1 === PROXY_V1_PREFIX.length) return decodeProxyV1(buffered);
  // Neither prefix is complete: wait while the bytes so far still fit one of them.
  const offset = Math.max(v1, v2);
  if (offset === buffered.length) return { kind: "need-more" };
  const byte = buffered[offset]!;
  return {
    kind: "malformed",
    reason: `no PROXY protocol header (byte ${offset} is 0x${byte.toString(16).padStart(2, "0")}; expected "PROXY " or the v2 signature)`,
  };
}

/** How many leading bytes of `buffered` agree with `prefix` (at most its length). */
function matchedPrefix(buffered: Uint8Array, prefix: Uint8Array): number {
  const n = Math.min(buffered.length, prefix.length);
  for (let i = 0; i < n; i++) if (buffered[i] !== prefix[i]) return i;
  return n;
}
