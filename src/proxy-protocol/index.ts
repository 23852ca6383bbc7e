// Public surface of the PROXY protocol codec: decode either version, encode v2 for backends.
/**
 * # src/proxy-protocol
 *
 * Pure byte code for haproxy's PROXY protocol (proxy-protocol.txt), versions 1 and 2.
 *
 * - `decodeProxyHeader(buffered)` answers `need-more`, `done` (the header and how many bytes
 *   it took) or `malformed` (a lowercase reason). It never throws and never consumes: call it
 *   with the whole buffer after each chunk; on `done` the bytes after `length` are the client's
 *   TLS stream. Nothing is buffered beyond 107 bytes (v1) or 16 + `MAX_PROXY_V2_LENGTH` (v2).
 * - Strict: v1 needs exact single-space fields, addresses of the declared family, ports
 *   0-65535 without leading zeros; v2 accepts TCP over IPv4/IPv6 and UNSPEC, refuses UDP and
 *   unix sockets, checks that TLVs fit the header but does not interpret them.
 * - LOCAL (v2) and UNKNOWN/UNSPEC give `source: null`: use the socket's own addresses.
 *   Addresses are canonical text; IPv4-mapped IPv6 comes out as IPv4.
 * - Only trust a header from a configured balancer (SPEC §6 `proxy_protocol_from`): the codec
 *   cannot tell a forged one.
 * - `encodeProxyV2(source, destination)` writes the header for `send_proxy_protocol` routes;
 *   `encodeProxyV1` exists for tests and tools.
 */
export { decodeProxyHeader } from "./decode.ts";
export {
  type ProxyEndpoint,
  type ProxyHeader,
  type ProxyHeaderResult,
  ProxyProtocolError,
} from "./header.ts";
export { encodeProxyV1, MAX_PROXY_V1_BYTES } from "./v1.ts";
export { encodeProxyV2, encodeProxyV2Local, MAX_PROXY_V2_LENGTH } from "./v2.ts";
