// Explain: the decision the proxy would take now for a client and an SNI name, without a connection.

import type {
  BackendSnapshot,
  ExplainDecision,
  ExplainRequest,
  Explanation,
  RouteMatchKind,
} from "../domain/reports.ts";
import type { FirewallRule, RouteSpec } from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";
import { formatIp, type IpAddress, parseIp } from "../ip/ip.ts";
import { snapshotBackends } from "../route/backend-pool.ts";
import type { Runtime } from "./runtime.ts";

/** A request Explain cannot answer; `code` says whose fault (the admin API maps it to a status). */
export class ExplainError extends Error {
  override readonly name = "ExplainError";

  constructor(
    readonly code: "invalid_argument" | "not_found",
    message: string,
  ) {
    super(message);
  }
}

/** What explain reads from the runtime. */
export type ExplainSource = Pick<Runtime, "listenerState" | "geoIpCountry" | "env" | "status">;

/**
 * The client address as the firewall would see it: an IP, or the `ip:port` / `[ipv6]:port`
 * of a log line (the port does not matter to any decision). IPv4-mapped IPv6 folds to IPv4,
 * as it does for a real peer.
 */
export function parseClientAddr(text: string): IpAddress | null {
  const direct = parseIp(text);
  if (direct !== null) return direct;
  const hostPort = parseHostPort(text, { allowEmptyHost: false, allowPortZero: true });
  if ("error" in hostPort) return null;
  return parseIp(hostPort.value.host);
}

/**
 * The SNI name as the ClientHello reader would hand it to the route lookup (src/tls
 * extensions.ts decodeHostName): printable ASCII only, lower-cased, one trailing dot dropped.
 * Null for a name a real ClientHello could not carry (it would be refused as bad_hello).
 */
export function normalizeSni(text: string): string | null {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) return null;
  }
  let name = text.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  return name.length === 0 ? null : name;
}

function describeRule(rule: FirewallRule): string {
  return `${rule.type} ${rule.value}`;
}

/** `10.0.0.5:443` or `10.0.0.5:443, 10.0.0.6:443 (down) (round_robin)`. */
function describeBackends(route: RouteSpec, backends: readonly BackendSnapshot[]): string {
  if (backends.length <= 1 && (backends[0]?.up ?? true)) return route.backend;
  const list = backends
    .map((backend) => {
      const weight = backend.weight === 1 ? "" : ` weight ${backend.weight}`;
      return `${backend.addr}${weight}${backend.up ? "" : " (down)"}`;
    })
    .join(", ");
  const up = backends.filter((backend) => backend.up).length;
  return `${list} [${route.balance}, ${up} of ${backends.length} up]`;
}

function describeRoute(
  matched: RouteMatchKind,
  route: RouteSpec,
  backends: readonly BackendSnapshot[],
): string {
  const extras: string[] = [];
  if (route.mode === "l7") {
    extras.push("TLS terminated, HTTP proxied");
    if (route.backendTls) extras.push("TLS to the backend");
  } else {
    extras.push("TLS passed through");
  }
  if (route.sendProxyProtocol) extras.push("PROXY v2 header sent");
  if (route.healthCheck !== "none") extras.push(`health check ${route.healthCheck}`);
  return `${matched} route ${route.hostname} -> ${describeBackends(route, backends)} (${extras.join(", ")})`;
}

/**
 * The decision a connection from `clientAddr` naming `sni` on the listener would get if it
 * arrived now, reached the way src/net/connection.ts reaches it and in the same order:
 * firewall (admit), limits (admit), no SNI, route lookup (readHello). Every section is
 * filled in even when an earlier step already decides, so an operator sees, say, the route a
 * blocked client would have had. Pure: it counts nothing (no firewall hit, no connection).
 *
 * Not covered: the proxy_protocol_from check, which is about the peer (the balancer), not the
 * client; on a proxy_protocol listener `clientAddr` is the address in the PROXY header.
 *
 * Throws ExplainError: `invalid_argument` for a bad client address or SNI name, `not_found`
 * for a listener that is not running.
 */
export function explain(runtime: ExplainSource, request: ExplainRequest): Explanation {
  const client = parseClientAddr(request.clientAddr);
  if (client === null) {
    throw new ExplainError(
      "invalid_argument",
      `client_addr ${JSON.stringify(request.clientAddr)}: expected an IP address, optionally with a port (203.0.113.7, 203.0.113.7:51000, [2001:db8::1]:51000)`,
    );
  }
  const sni = request.sni === "" ? null : normalizeSni(request.sni);
  if (request.sni !== "" && sni === null) {
    throw new ExplainError(
      "invalid_argument",
      `sni ${JSON.stringify(request.sni)}: expected a host name in printable ASCII (empty for a ClientHello without SNI)`,
    );
  }
  if (request.listenerAddr === "") {
    throw new ExplainError(
      "invalid_argument",
      `listener_addr is required (${listenerList(runtime)})`,
    );
  }
  const listener = runtime.listenerState(request.listenerAddr);
  if (listener === null) {
    throw new ExplainError(
      "not_found",
      `listener_addr ${JSON.stringify(request.listenerAddr)}: no such running listener (${listenerList(runtime)})`,
    );
  }
  const clientText = formatIp(client);

  // admit(), step 1: the firewall, on the client address.
  const verdict = runtime.env.firewall.check(client);
  const country = runtime.geoIpCountry(client);

  // admit(), step 2: the limits, asked of the same ListenerState code a connection's tryAdmit runs.
  const { maxConnections, maxConnectionsPerIp } = listener.spec;
  const { admitted, fromClient, overListener, overClient } = listener.wouldAdmit(clientText);

  // readHello(): no SNI, then the route table the listener serves now.
  const match = sni === null ? null : listener.routes.lookup(sni);
  const route = match === null ? null : match.route.spec;
  const backends = match === null ? [] : snapshotBackends(match.route.pool);
  const matched: RouteMatchKind = match === null ? "none" : match.match;

  let decision: ExplainDecision;
  let explanation: string;
  if (verdict.blocked) {
    decision = "blocked";
    const where = verdict.rule.type === "country" ? ` (country ${country ?? "?"})` : "";
    explanation = `blocked: firewall rule ${describeRule(verdict.rule)} matches ${clientText}${where}; the connection is reset`;
  } else if (overListener) {
    decision = "limit";
    explanation = `limit: ${admitted} connections admitted on ${listener.addr}, max_connections is ${maxConnections}; the connection is reset`;
  } else if (overClient) {
    decision = "limit";
    explanation = `limit: ${fromClient} connections open from ${clientText}, max_connections_per_ip is ${maxConnectionsPerIp}; the connection is reset`;
  } else if (sni === null) {
    decision = "no_sni";
    explanation =
      "no_sni: a ClientHello without SNI gets a TLS unrecognized_name alert and is closed";
  } else if (route === null) {
    decision = "no_route";
    explanation = `no_route: no exact or wildcard route for ${sni} on ${listener.addr}; a TLS unrecognized_name alert, then close`;
  } else {
    decision = route.mode === "l7" ? "terminate_l7" : "forward_l4";
    explanation = `${decision}: ${describeRoute(matched, route, backends)}`;
  }

  return {
    firewall: {
      blocked: verdict.blocked,
      rule: verdict.blocked ? { type: verdict.rule.type, value: verdict.rule.value } : null,
      country,
    },
    limits: {
      maxConnections,
      admitted,
      maxConnectionsPerIp,
      fromClient,
      wouldExceed: overListener || overClient,
    },
    route: { matched, route: route === null ? null : { ...route }, backends },
    decision,
    explanation,
  };
}

function listenerList(runtime: ExplainSource): string {
  const addrs = runtime.status().listeners.map((listener) => JSON.stringify(listener.addr));
  return `listeners: ${addrs.length === 0 ? "none" : addrs.join(", ")}`;
}
