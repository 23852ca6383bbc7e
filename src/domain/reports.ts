// What the admin API reports and accepts, as plain types: status, stats, Explain, route input.
// The runtime produces them, src/wire maps them to and from gen/, and the client returns them.
import type { FirewallRule, RouteSpec } from "./types.ts";

/** One backend as given by a user; weight 0 or absent is 1 (proto3 sends 0 for "not set"). */
export interface BackendInput {
  addr: string;
  weight?: number;
}

/** The fields of a route as given by a user (TOML or API), before validation. */
export interface RouteInput {
  hostname: string;
  /** One backend (as before several existed); may also be given with `backends`, as its first. */
  backend: string;
  backends?: BackendInput[];
  /** "" or absent: least_connections. */
  balance?: string;
  /** "" or absent: none. */
  healthCheck?: string;
  healthCheckPath?: string;
  mode?: string;
  tlsCert?: string;
  tlsKey?: string;
  backendTls?: boolean;
  sendProxyProtocol?: boolean;
}

export interface ListenerStatus {
  addr: string;
  routeCount: number;
  activeConnections: number;
  proxyProtocol: boolean;
}

/** One worker thread as GetStatus reports it. */
export interface WorkerStatus {
  /** The access log's `worker=` id. */
  worker: number;
  activeConnections: number;
  /** Accepted by this worker since it started. */
  totalConnections: number;
  startedAt: Date;
}

/** A backend marked down now (failed dial or health check). */
export interface DownBackend {
  listenerAddr: string;
  hostname: string;
  backend: string;
}

export interface RuntimeStatus {
  version: string;
  startedAt: Date;
  totalConnections: number;
  listeners: ListenerStatus[];
  backendsDown: DownBackend[];
  /** Present with worker threads (`workers` > 1) only. */
  workers?: WorkerStatus[];
}

/** A copy of one route backend's health and counters, for GetStats, /metrics and Explain. */
export interface BackendSnapshot {
  addr: string;
  weight: number;
  up: boolean;
  connectionsTotal: number;
  failuresTotal: number;
  connectionsActive: number;
}

/** The counters of a listener or a route, copied. */
export interface TrafficCounts {
  connectionsTotal: number;
  /** Open right now. */
  connectionsActive: number;
  /** Client → backend bytes of ended connections. */
  bytesUp: number;
  /** Backend → client bytes of ended connections. */
  bytesDown: number;
  /**
   * Ended connections by end reason: every reason of END_REASONS, zeros included, in that
   * order. A client talking to a newer server may also see reasons it does not know.
   */
  ends: Record<string, number>;
}

export interface RouteStatsSnapshot extends TrafficCounts {
  hostname: string;
  /** The current route's backends in its order; [] for a removed route. */
  backends: BackendSnapshot[];
}

export interface ListenerStatsSnapshot extends TrafficCounts {
  addr: string;
  /** Every route of the current table and every removed route with counters, by hostname. */
  routes: RouteStatsSnapshot[];
}

export interface FirewallRuleHitCount {
  rule: FirewallRule;
  hits: number;
}

export interface StatsSnapshot {
  listeners: ListenerStatsSnapshot[];
  /** Every current rule (0 when it never matched) and every removed rule that blocked something. */
  firewallHits: FirewallRuleHitCount[];
}

/**
 * What a connection would get. The first four are the access log `outcome` it would end with;
 * the last two say how a routed connection is served.
 */
export const EXPLAIN_DECISIONS = [
  "blocked",
  "limit",
  "no_sni",
  "no_route",
  "forward_l4",
  "terminate_l7",
] as const;
export type ExplainDecision = (typeof EXPLAIN_DECISIONS)[number];

export const ROUTE_MATCHES = ["exact", "wildcard", "none"] as const;
export type RouteMatchKind = (typeof ROUTE_MATCHES)[number];

export interface ExplainRequest {
  /** The listener's addr exactly as configured. */
  listenerAddr: string;
  /** The SNI name; "" for a ClientHello without one. */
  sni: string;
  /** An IP address, or `ip:port` / `[ipv6]:port` as the access log writes the client. */
  clientAddr: string;
}

export interface Explanation {
  firewall: {
    blocked: boolean;
    /** The rule that matched, or null. */
    rule: FirewallRule | null;
    /** The client's GeoIP country, or null (no database, or an address it does not know). */
    country: string | null;
  };
  limits: {
    /** 0 = no limit. */
    maxConnections: number;
    /** Connections on the listener past the firewall and the limits now. */
    admitted: number;
    /** 0 = no limit. */
    maxConnectionsPerIp: number;
    /** Admitted connections from this client now. */
    fromClient: number;
    /** One more connection would be over a limit. */
    wouldExceed: boolean;
  };
  route: {
    matched: RouteMatchKind;
    route: RouteSpec | null;
    /** The route's backends with their health now, in its order ([] without a route). */
    backends: BackendSnapshot[];
  };
  decision: ExplainDecision;
  /** One line for a human. */
  explanation: string;
}
