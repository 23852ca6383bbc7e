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

/** One hostname → backend mapping on a listener (SPEC §2, §8 `Route`). */
export interface RouteSpec {
  /** Lower-case, no trailing dot; either an exact name or `*.parent` (one label). */
  hostname: string;
  /** `host:port`, IPv6 hosts in brackets (`[::1]:443`). */
  backend: string;
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
  /** "" = system store only. */
  backendCa: string;
  /** [proxy] workers: event loops serving the listeners; "auto" = the CPUs the process may use. */
  workers: WorkerCount;
}

/** An integer 1-64, or "auto" (resolved at start: affinity mask and cgroup CPU quota). */
export type WorkerCount = number | "auto";

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
