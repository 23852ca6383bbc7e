// Validated, typed configuration: the one shape every other module reads.

/** How a route forwards a connection: raw TLS passthrough, or terminate and reverse-proxy HTTP. */
export type RouteMode = "l4" | "l7";

/**
 * A parsed `host:port` (a listener's bind address, a backend, the admin and metrics
 * addresses), from `parseHostPort` (`src/ip/host-port.ts`).
 */
export interface HostPort {
  /** "" for every interface (`:443`); IPv6 without brackets. */
  host: string;
  port: number;
}

/** How a route with several backends picks one for a new connection. */
export type BalancePolicy = "round_robin" | "least_connections";

/** The balance policies, in the order messages list them. */
export const BALANCE_POLICIES: readonly BalancePolicy[] = ["round_robin", "least_connections"];

/**
 * Active health checking of a route's backends: none; a TCP connect; a TLS handshake (an
 * application that hangs while the kernel accepts is caught); an HTTP GET of a path (l7).
 */
export type HealthCheckKind = "none" | "tcp" | "tls" | "http";

export const HEALTH_CHECK_KINDS: readonly HealthCheckKind[] = ["none", "tcp", "tls", "http"];

/** One backend of a route: `host:port` and its share of new connections. */
export interface BackendSpec {
  /** `host:port`, IPv6 hosts in brackets (`[::1]:443`). */
  addr: string;
  /** 1–1000; a backend of weight 2 gets twice the connections of one of weight 1. */
  weight: number;
}

/**
 * A BackendSpec whose addr was parsed when it was validated or read from the store: the route
 * table and the dial path use `target` and never parse the text again. The parsed value is a
 * private field behind a getter, so the object still compares equal to a plain
 * `{addr, weight}` (toEqual looks at own enumerable fields).
 */
export class ParsedBackend implements BackendSpec {
  readonly #target: HostPort;

  constructor(
    readonly addr: string,
    readonly weight: number,
    target: HostPort,
  ) {
    this.#target = target;
  }

  get target(): HostPort {
    return this.#target;
  }
}

/** One hostname → backend(s) mapping on a listener (SPEC §2, §8 `Route`). */
export interface RouteSpec {
  /** Lower-case, no trailing dot; either an exact name or `*.parent` (one label). */
  hostname: string;
  /** The first backend's addr (`backends[0].addr`): what a single-backend route names. */
  backend: string;
  /** At least one, at most MAX_BACKENDS, addrs distinct; `[{addr: backend, weight: 1}]` for one. */
  backends: BackendSpec[];
  balance: BalancePolicy;
  healthCheck: HealthCheckKind;
  /** health_check = "http" only: the path requested ("" otherwise). */
  healthCheckPath: string;
  mode: RouteMode;
  /** l7 only: PEM certificate chain path ("" for l4). */
  tlsCert: string;
  /** l7 only: PEM private key path ("" for l4). */
  tlsKey: string;
  /** l7 only: speak TLS to the backend. */
  backendTls: boolean;
  /** Prepend a PROXY v2 header to the backend stream. */
  sendProxyProtocol: boolean;
}

export interface ListenerSpec {
  /** Exactly as configured (`":443"`, `"127.0.0.1:8443"`, `"[::1]:443"`): the listener's identity. */
  addr: string;
  proxyProtocol: boolean;
  /** CIDRs (canonical text) allowed to connect at all; empty = anyone. */
  proxyProtocolFrom: string[];
  /** 0 = no limit. */
  maxConnections: number;
  /** 0 = no limit. */
  maxConnectionsPerIp: number;
  /** Seed routes from the TOML (the database wins after the first start). */
  routes: RouteSpec[];
}

import type { FirewallRuleType } from "./firewall-rule-types.ts";

export type { FirewallRuleType };

/** A firewall rule in canonical text form: ip "203.0.113.50", cidr "198.51.100.0/24", country "RU". */
export interface FirewallRule {
  type: FirewallRuleType;
  value: string;
}

export interface GrpcConfig {
  addr: string;
  tlsCert: string;
  tlsKey: string;
  /** "" = TLS without client certificates. */
  clientCa: string;
  /** Used by `status` and `mcproxyctl -c`; the server ignores them. */
  clientCert: string;
  clientKey: string;
}

export interface FirewallConfig {
  /** "" = no GeoIP database. */
  geoipDb: string;
  /** Seed rules, canonical. */
  rules: FirewallRule[];
}

export interface ProxyTimeouts {
  connectTimeoutMs: number;
  helloTimeoutMs: number;
  idleTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** How often each health-checked backend is checked. */
  healthCheckIntervalMs: number;
  /** How long one check may take before it counts as failed. */
  healthCheckTimeoutMs: number;
  /** How long a backend whose dial failed is skipped while other backends are up. */
  backendHoldDownMs: number;
  /** "" = system store only. */
  backendCa: string;
}

export interface Config {
  /** Path of the TOML file this came from (for messages), absolute. */
  sourcePath: string;
  database: { path: string };
  listeners: ListenerSpec[];
  grpc: GrpcConfig | null;
  firewall: FirewallConfig;
  metrics: { addr: string } | null;
  proxy: ProxyTimeouts;
}
