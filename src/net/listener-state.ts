// Per-listener runtime state shared by its connections: route table, trust list, counters.
import type { ListenerSpec, RouteSpec } from "../config/types.ts";
import { type Cidr, cidrContains, type IpAddress, parseCidr } from "../ip/ip.ts";
import { BackendState } from "../route/backend-pool.ts";
import { RouteTable } from "../route/route-table.ts";
import { TrafficStats } from "./traffic-stats.ts";

export class ListenerState {
  /** Replaced whole by the admin API; each connection reads it once, when it routes. */
  routes: RouteTable;
  /** Every accepted socket, admitted or not: total, active, bytes, ends by reason. */
  readonly stats = new TrafficStats();
  /** Past the firewall and the limits: what max_connections counts. */
  admitted = 0;
  /** Admitted connections per client address (canonical text), for max_connections_per_ip. */
  readonly perIp = new Map<string, number>();
  /** Per route hostname; kept across route-table swaps. */
  private readonly routeStats = new Map<string, TrafficStats>();
  /** Per route hostname and backend addr (`hostname addr`); kept across route-table swaps. */
  private readonly backends = new Map<string, BackendState>();
  /** proxy_protocol_from, compiled once. */
  private readonly trusted: Cidr[];

  constructor(readonly spec: ListenerSpec) {
    this.routes = this.buildRoutes(spec.routes);
    this.trusted = spec.proxyProtocolFrom.map((text) => {
      const parsed = parseCidr(text);
      if ("error" in parsed) throw new Error(`proxy_protocol_from ${text}: ${parsed.error}`);
      return parsed.cidr;
    });
  }

  /** A route table whose backends share this listener's health state and counters. */
  buildRoutes(routes: readonly RouteSpec[]): RouteTable {
    return new RouteTable(routes, (hostname, addr, host, port) => {
      const key = `${hostname} ${addr}`;
      let state = this.backends.get(key);
      if (state === undefined) {
        state = new BackendState(this.spec.addr, hostname, addr, host, port);
        this.backends.set(key, state);
      }
      return state;
    });
  }

  /** The counters of a route (created on first use). */
  statsForRoute(hostname: string): TrafficStats {
    let stats = this.routeStats.get(hostname);
    if (stats === undefined) {
      stats = new TrafficStats();
      this.routeStats.set(hostname, stats);
    }
    return stats;
  }

  /** Route counters by hostname, for GetStats and /metrics. */
  routeStatsEntries(): IterableIterator<[string, TrafficStats]> {
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
