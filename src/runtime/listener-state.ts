// Per-listener runtime state shared by its connections: route table, trust list, admission, counters.
import type { Cidr, IpAddress, ParsedListener, RouteSpec } from "../domain/types.ts";
import { cidrContains } from "../ip/ip.ts";
import { BackendState } from "../route/backend-pool.ts";
import { RouteTable, type SecureContextSource } from "../route/route-table.ts";
import { TrafficStats } from "./traffic-stats.ts";

/** Why admission would refuse a client, with the counts it was decided on. */
export interface AdmissionCheck {
  /** Connections on the listener past the firewall and the limits now. */
  admitted: number;
  /** Admitted connections from this client now. */
  fromClient: number;
  overListener: boolean;
  overClient: boolean;
}

/**
 * Where a listener's limits and counters live when several worker threads serve it
 * (shared-listener.ts): shared memory instead of this object's own fields.
 */
export interface ListenerSharing {
  readonly stats: TrafficStats;
  statsForRoute(hostname: string): TrafficStats;
  routeStatsEntries(): IterableIterator<[string, TrafficStats]>;
  wouldAdmit(client: string): AdmissionCheck;
  tryAdmit(client: string): boolean;
  release(client: string): void;
}

export class ListenerState {
  /** Replaced whole by the admin API; each connection reads it once, when it routes. */
  routes: RouteTable;
  /** Every accepted socket, admitted or not: total, active, bytes, ends by reason. */
  readonly stats: TrafficStats;
  /**
   * Past the firewall and the limits: what max_connections counts. Changed only through
   * tryAdmit / release (public for tests that stage a full listener).
   */
  admitted = 0;
  /** Admitted connections per client address (canonical text), for max_connections_per_ip. */
  readonly perIp = new Map<string, number>();
  /** Per route hostname; kept across route-table swaps. */
  private readonly routeStats = new Map<string, TrafficStats>();
  /** Per route hostname and backend addr (`hostname addr`); kept across route-table swaps. */
  private readonly backends = new Map<string, BackendState>();
  /** proxy_protocol_from, as the config loader parsed it. */
  private readonly trusted: readonly Cidr[];

  constructor(
    readonly spec: ParsedListener,
    secureContexts?: SecureContextSource,
    private readonly sharing: ListenerSharing | null = null,
  ) {
    this.stats = sharing?.stats ?? new TrafficStats();
    this.routes = this.buildRoutes(spec.routes, secureContexts);
    this.trusted = spec.trustedFrom;
  }

  /** A route table whose backends share this listener's health state and counters. */
  buildRoutes(routes: readonly RouteSpec[], secureContexts?: SecureContextSource): RouteTable {
    return new RouteTable(routes, secureContexts, (hostname, addr, host, port) => {
      const key = `${hostname} ${addr}`;
      let state = this.backends.get(key);
      if (state === undefined) {
        state = new BackendState(this.spec.addr, hostname, addr, host, port);
        this.backends.set(key, state);
      }
      return state;
    });
  }

  /**
   * The limits (max_connections, then max_connections_per_ip) for one more connection from
   * `client` (canonical address text), without taking a slot: what Explain reports and what
   * tryAdmit decides on.
   */
  wouldAdmit(client: string): AdmissionCheck {
    if (this.sharing !== null) return this.sharing.wouldAdmit(client);
    const { maxConnections, maxConnectionsPerIp } = this.spec;
    const admitted = this.admitted;
    const fromClient = this.perIp.get(client) ?? 0;
    return {
      admitted,
      fromClient,
      overListener: maxConnections > 0 && admitted >= maxConnections,
      overClient: maxConnectionsPerIp > 0 && fromClient >= maxConnectionsPerIp,
    };
  }

  /** Takes a slot for `client` when the limits allow it; false (nothing changed) when not. */
  tryAdmit(client: string): boolean {
    if (this.sharing !== null) return this.sharing.tryAdmit(client);
    const check = this.wouldAdmit(client);
    if (check.overListener || check.overClient) return false;
    this.perIp.set(client, check.fromClient + 1);
    this.admitted++;
    return true;
  }

  /** Gives back the slot tryAdmit took for `client`. */
  release(client: string): void {
    if (this.sharing !== null) {
      this.sharing.release(client);
      return;
    }
    this.admitted--;
    const count = (this.perIp.get(client) ?? 1) - 1;
    if (count <= 0) this.perIp.delete(client);
    else this.perIp.set(client, count);
  }

  /** The counters of a route (created on first use). */
  statsForRoute(hostname: string): TrafficStats {
    if (this.sharing !== null) return this.sharing.statsForRoute(hostname);
    let stats = this.routeStats.get(hostname);
    if (stats === undefined) {
      stats = new TrafficStats();
      this.routeStats.set(hostname, stats);
    }
    return stats;
  }

  /** Route counters by hostname, for GetStats and /metrics. */
  routeStatsEntries(): IterableIterator<[string, TrafficStats]> {
    if (this.sharing !== null) return this.sharing.routeStatsEntries();
    return this.routeStats.entries();
  }

  get addr(): string {
    return this.spec.addr;
  }

  /** True when the peer may connect: always without proxy_protocol_from, else a listed network. */
  isTrustedPeer(address: IpAddress): boolean {
    if (this.trusted.length === 0) return true;
    for (const cidr of this.trusted) if (cidrContains(cidr, address)) return true;
    return false;
  }
}
