// The decoded PROXY protocol header and the three outcomes of reading one (haproxy's
// proxy-protocol.txt, versions 1 and 2).

/** One end of the proxied connection: canonical address text (see src/ip/ip.ts) and TCP port. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

/**
 * What an upstream balancer said about the connection. `source`/`destination` are null for
 * LOCAL (a health check from the balancer itself) and for UNKNOWN/AF_UNSPEC: the caller then
 * uses the socket's own addresses, as the spec asks. Addresses are canonical text and an
 * IPv4-mapped IPv6 address is written as IPv4, so `family: "tcp6"` may carry IPv4 text.
 */
export interface ProxyHeader {
  version: 1 | 2;
  command: "proxy" | "local";
  family: "tcp4" | "tcp6" | "unknown";
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
}

/**
 * Reading is a value, not an exception: call again with more bytes on `need-more`. On `done`,
 * `length` is how many bytes the header took; the bytes after it belong to the client's stream.
 */
export type ProxyHeaderResult =
  | { kind: "need-more" }
  | { kind: "done"; header: ProxyHeader; length: number }
  | { kind: "malformed"; reason: string };

/** A bad argument to an encoder: a programming or configuration error, never caused by a peer. */
export class ProxyProtocolError extends Error {
  override readonly name = "ProxyProtocolError";
}
