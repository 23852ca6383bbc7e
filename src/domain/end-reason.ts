// Why a connection ended: one value per connection, logged and counted.

/**
 * - blocked: the firewall matched the client (TCP RST)
 * - limit: over max_connections or max_connections_per_ip (TCP RST)
 * - not_trusted: proxy_protocol_from does not list the peer (TCP RST)
 * - bad_proxy_header: missing or malformed PROXY header, or the peer left before finishing it
 * - no_sni / no_route: unrecognized_name alert sent
 * - bad_hello: not TLS, malformed, too large, or the client gave up before finishing it
 * - hello_timeout: no complete PROXY header and ClientHello within hello_timeout
 * - dial_failed: backend refused, unreachable or slower than connect_timeout (TCP RST)
 * - idle_timeout: no bytes either way for idle_timeout
 * - header_timeout: l7, the TLS handshake and request head (or a later head) took longer than
 *   header_timeout
 * - body_timeout: l7, a request body went body_idle_timeout without a byte from the client
 * - shutdown: still open when shutdown_timeout ran out
 * - closed: a normal end after piping
 * - worker_exited: open on a worker thread that died (counted by the supervisor, not logged
 *   per connection)
 */
export const END_REASONS = [
  "blocked",
  "limit",
  "not_trusted",
  "bad_proxy_header",
  "no_sni",
  "no_route",
  "bad_hello",
  "hello_timeout",
  "dial_failed",
  "idle_timeout",
  "header_timeout",
  "body_timeout",
  "shutdown",
  "closed",
  "worker_exited",
] as const;

export type EndReason = (typeof END_REASONS)[number];

/** Plain integer counters, one per reason: no allocation on the connection path. */
export type EndCounters = Record<EndReason, number>;

export function newEndCounters(): EndCounters {
  const counters = {} as EndCounters;
  for (const reason of END_REASONS) counters[reason] = 0;
  return counters;
}
