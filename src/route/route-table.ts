// A listener's hostname → route map: exact names first, then `*.parent` (one label), immutable.
import type { SecureContext } from "node:tls";
import { type BackendSpec, type HostPort, ParsedBackend, type RouteSpec } from "../domain/types.ts";
import { BackendPool, BackendState } from "./backend-pool.ts";

/**
 * The TLS context of an l7 route, from the certificate compile step
 * (`src/runtime/certificates.ts`); the table itself does no I/O.
 */
export type SecureContextSource = (spec: RouteSpec) => SecureContext;

const NO_CERTIFICATES: SecureContextSource = (spec) => {
  throw new Error(`route ${spec.hostname}: an l7 route needs a certificate source`);
};

/** A route with its backend addresses parsed once, at table build time, not per connection. */
export interface Route {
  spec: RouteSpec;
  /** Its backends (with their health and counters) and the balance policy. */
  pool: BackendPool;
  /** l7: the route's certificate and key, from the compile step; null for l4. */
  secureContext: SecureContext | null;
}

export type RouteMatch = { route: Route; match: "exact" | "wildcard" };

/**
 * Built once from a listener's routes and replaced whole when they change, so a connection
 * that looked up a route keeps a consistent view while the admin API swaps in a new table.
 * Hostnames are already normalised (lower case, no trailing dot) by validateRoute.
 */
export class RouteTable {
  private readonly exact = new Map<string, Route>();
  /** Keyed by the parent domain: `*.example.com` is stored under `example.com`. */
  private readonly wildcard = new Map<string, Route>();
  readonly routes: readonly RouteSpec[];

  /**
   * Routes must come from validateRoute or the store (ParsedBackend): each backend is taken
   * as they parsed it, not parsed again; any other object throws here, naming the route. l7
   * contexts come from `secureContexts` (the certificate compile step, which throws a
   * CertificateError naming route and path), so a connection never touches the disk.
   */
  constructor(
    routes: readonly RouteSpec[],
    secureContexts: SecureContextSource = NO_CERTIFICATES,
    backendState: BackendStateSource = freshBackendState,
  ) {
    this.routes = routes;
    for (const spec of routes) {
      const members = spec.backends.map((backend) => {
        const target = backendTarget(backend);
        return backendState(spec.hostname, backend.addr, target.host, target.port);
      });
      const weights = spec.backends.map((backend) => backend.weight);
      const route: Route = {
        spec,
        pool: new BackendPool(members, weights, spec.balance),
        secureContext: spec.mode === "l7" ? secureContexts(spec) : null,
      };
      if (spec.hostname.startsWith("*.")) this.wildcard.set(spec.hostname.slice(2), route);
      else this.exact.set(spec.hostname, route);
    }
  }

  get size(): number {
    return this.routes.length;
  }

  /** The route with exactly this hostname (`*.example.com` for a wildcard), for stats. */
  route(hostname: string): Route | undefined {
    return hostname.startsWith("*.")
      ? this.wildcard.get(hostname.slice(2))
      : this.exact.get(hostname);
  }

  /** Every route, in table order. */
  entries(): Route[] {
    return [...this.exact.values(), ...this.wildcard.values()];
  }

  /**
   * The route for an SNI name (already lower-cased by the ClientHello reader). A wildcard
   * matches exactly one label: `*.example.com` takes `a.example.com`, not `a.b.example.com`
   * and not `example.com` (as in RFC 6125 §6.4.3 certificate matching).
   */
  lookup(serverName: string): RouteMatch | null {
    const exact = this.exact.get(serverName);
    if (exact) return { route: exact, match: "exact" };
    const dot = serverName.indexOf(".");
    if (dot <= 0) return null;
    const wildcard = this.wildcard.get(serverName.slice(dot + 1));
    return wildcard ? { route: wildcard, match: "wildcard" } : null;
  }
}

/**
 * The state object of a route's backend: the listener's, kept across table swaps, or a fresh
 * one (a table built only to check a route).
 */
export type BackendStateSource = (
  hostname: string,
  addr: string,
  host: string,
  port: number,
) => BackendState;

function freshBackendState(hostname: string, addr: string, host: string, port: number) {
  return new BackendState("", hostname, addr, host, port);
}

/** The parsed addr of a backend, as validation or the store built it (never parsed here). */
function backendTarget(backend: BackendSpec): HostPort {
  return ParsedBackend.from(backend).target;
}
