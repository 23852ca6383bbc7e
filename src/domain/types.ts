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

/** An address as bytes: 4 for IPv4, 16 for IPv6. IPv4-mapped IPv6 is always folded to IPv4. */
export interface IpAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** A network, from `parseCidr` (`src/ip/ip.ts`). */
export interface Cidr {
  family: 4 | 6;
  /** Network address with host bits cleared. */
  bytes: Uint8Array;
  prefixLength: number;
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

  /** The backend as validation or the store built it; throws for one they did not build. */
  static from(backend: BackendSpec): ParsedBackend {
    if (#target in backend) return backend;
    throw new TypeError(`backend ${backend.addr}: not built by validateRoute or the store`);
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

// Typed twins. Validation parses each value once and keeps the result beside the text, in a
// private field (`#…`) behind a getter: the text stays what the store, the wire and the logs
// show, the parsed value is what the runtime and the sockets use, and nothing downstream
// parses the text again. Private fields and getters are not own enumerable properties, so a
// twin compares (toEqual) and serialises (JSON) exactly like its plain text shape (a spread
// copy keeps only the text), and is typed as that shape (ListenerSpec, RouteSpec, Config)
// where it is passed around.
// The layer that needs the parsed value asks for it with `Parsed….from(value)`, which throws
// for an object validation did not build: a missing twin is a bug, never a reason to parse.

/**
 * A validated listener: ListenerSpec's text plus its parsed bind address and trusted
 * networks. Built by the config loader (`src/config/listeners.ts`).
 */
export class ParsedListener implements ListenerSpec {
  readonly addr: string;
  readonly proxyProtocol: boolean;
  readonly proxyProtocolFrom: string[];
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly routes: RouteSpec[];
  readonly #bind: HostPort;
  readonly #trustedFrom: readonly Cidr[];

  /**
   * `bind` must be `addr` parsed, `trustedFrom` the networks `proxyProtocolFrom` is the
   * canonical text of, in the same order.
   */
  constructor(spec: ListenerSpec, bind: HostPort, trustedFrom: readonly Cidr[]) {
    this.addr = spec.addr;
    this.proxyProtocol = spec.proxyProtocol;
    this.proxyProtocolFrom = spec.proxyProtocolFrom;
    this.maxConnections = spec.maxConnections;
    this.maxConnectionsPerIp = spec.maxConnectionsPerIp;
    this.routes = spec.routes;
    this.#bind = bind;
    this.#trustedFrom = trustedFrom;
  }

  /** The listener as the config loader built it; throws for a spec it did not build. */
  static from(spec: ListenerSpec): ParsedListener {
    if (#bind in spec) return spec;
    throw new TypeError(`listener ${JSON.stringify(spec.addr)}: not built by the config loader`);
  }

  /** `addr` parsed: where the listener binds. */
  get bind(): HostPort {
    return this.#bind;
  }

  /** `proxyProtocolFrom` parsed: the peers allowed to connect; empty = anyone. */
  get trustedFrom(): readonly Cidr[] {
    return this.#trustedFrom;
  }

  /** The same listener serving other routes (the database's, not the TOML's seed). */
  withRoutes(routes: RouteSpec[]): ParsedListener {
    return new ParsedListener({ ...this, routes }, this.#bind, this.#trustedFrom);
  }
}

/** A `host:port` from the config (`metrics.addr`): the text and, as its twin, the parsed value. */
export class ParsedAddress {
  readonly addr: string;
  readonly #bind: HostPort;

  /** `bind` must be `addr` parsed. */
  constructor(addr: string, bind: HostPort) {
    this.addr = addr;
    this.#bind = bind;
  }

  /** The address as the config loader built it; throws for one it did not build. */
  static from(address: { addr: string }): ParsedAddress {
    if (#bind in address) return address;
    throw new TypeError(`address ${JSON.stringify(address.addr)}: not built by the config loader`);
  }

  /** `addr` parsed: where the server binds. */
  get bind(): HostPort {
    return this.#bind;
  }
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
  /** Written `insecure = true`: serve off loopback without client_ca (anyone may administer). */
  insecure: boolean;
  /**
   * Used by `status` and `mcproxyctl -c` only: the PEM CA that signs `tlsCert`. "" = `clientCa`
   * when set, else `tlsCert` itself when self-signed, else the system store.
   */
  serverCa: string;
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
  /** [proxy] workers: event loops serving the listeners; "auto" = the CPUs the process may use. */
  workers: WorkerCount;
  /** l7: a request head (and, for a new connection, the TLS handshake) must be read within this. */
  headerTimeoutMs: number;
  /** l7: a request body may go this long without a byte from the client. */
  bodyIdleTimeoutMs: number;
}

/** An integer 1-64, or "auto" (resolved at start: affinity mask and cgroup CPU quota). */
export type WorkerCount = number | "auto";

export interface Config {
  /** Path of the TOML file this came from (for messages), absolute. */
  sourcePath: string;
  database: { path: string };
  /** From parseConfig: ParsedListener objects (typed twins). */
  listeners: ListenerSpec[];
  grpc: GrpcConfig | null;
  firewall: FirewallConfig;
  /** From parseConfig: a ParsedAddress (typed twin). */
  metrics: { addr: string } | null;
  proxy: ProxyTimeouts;
}
