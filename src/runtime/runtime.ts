// The running proxy's swappable state: route tables per listener and the compiled firewall.
import type {
  DownBackend,
  ListenerStatus,
  RuntimeStatus,
  WorkerStatus,
} from "../domain/reports.ts";
import { type Config, type FirewallRule, ParsedListener, type RouteSpec } from "../domain/types.ts";
import { Firewall } from "../firewall/firewall.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { FirewallHits } from "../firewall/hits.ts";
import type { IpAddress } from "../ip/ip.ts";
import type { Logger } from "../log/logger.ts";
import type { RouteTable } from "../route/route-table.ts";
import { CertificateCache } from "./certificates.ts";
import { type ListenerSharing, ListenerState } from "./listener-state.ts";
import {
  type DescriptorCount,
  localDescriptorCount,
  type OpenConnection,
  type ProxyEnv,
} from "./proxy-env.ts";

/**
 * Where counters and limits live when worker threads serve the listeners: shared memory
 * (src/runtime/shared-listener.ts). Without it, this object's own fields.
 */
export interface RuntimeSharing {
  listener(addr: string, index: number): ListenerSharing;
  hits: ProxyEnv["hits"];
  descriptors: DescriptorCount;
  /** 1-based worker id for the access log; null in the supervisor. */
  worker: number | null;
  /** The supervisor's: every worker thread, for GetStatus. */
  workers?: () => WorkerStatus[];
}

/**
 * Holds what the connection path reads: it never queries the database. The admin API
 * commits to the store first and then calls replaceRoutes / replaceFirewallRules with what
 * the store now holds, so a failed commit leaves this untouched.
 */
export class Runtime {
  readonly env: ProxyEnv;
  readonly startedAt = new Date();
  private readonly listeners = new Map<string, ListenerState>();
  private geoip: GeoIpDatabase | null;
  private rules: FirewallRule[];
  /** l7 certificates by path, so a route change loads only what is new or changed on disk. */
  readonly certificates = new CertificateCache();
  private readonly secureContexts = (spec: RouteSpec) => this.certificates.forRoute(spec);

  constructor(options: {
    /** From parseConfig: its listeners carry their parsed addresses. */
    config: Config;
    routes: ReadonlyMap<string, RouteSpec[]>;
    rules: FirewallRule[];
    geoip: GeoIpDatabase | null;
    logger: Logger;
    version: string;
    /** Descriptors the connection path may hold; Infinity for no limit. */
    descriptorBudget?: number;
    sharing?: RuntimeSharing;
  }) {
    const sharing = options.sharing ?? null;
    this.sharing = sharing;
    this.version = options.version;
    this.geoip = options.geoip;
    this.rules = options.rules;
    this.env = {
      firewall: Firewall.compile(options.rules, options.geoip),
      hits: sharing?.hits ?? new FirewallHits(),
      logger: options.logger,
      timeouts: options.config.proxy,
      descriptorBudget: options.descriptorBudget ?? Number.POSITIVE_INFINITY,
      descriptors: sharing?.descriptors ?? localDescriptorCount(),
      worker: sharing?.worker ?? null,
      open: new Set<OpenConnection>(),
      onConnectionEnd: null,
    };
    options.config.listeners.forEach((spec, index) => {
      const routes = options.routes.get(spec.addr) ?? spec.routes;
      const listener = ParsedListener.from(spec).withRoutes(routes);
      const shared = sharing?.listener(spec.addr, index) ?? null;
      this.listeners.set(spec.addr, new ListenerState(listener, this.secureContexts, shared));
    });
  }

  readonly version: string;
  private readonly sharing: RuntimeSharing | null;

  listenerStates(): ListenerState[] {
    return [...this.listeners.values()];
  }

  hasListener(addr: string): boolean {
    return this.listeners.has(addr);
  }

  /** A running listener's state (route table, limits, counters), or null; for Explain. */
  listenerState(addr: string): ListenerState | null {
    return this.listeners.get(addr) ?? null;
  }

  /**
   * The client's country in the GeoIP database loaded now (the one the firewall checks
   * country rules against), or null without a database or when it does not know the address.
   */
  geoIpCountry(address: IpAddress): string | null {
    return this.geoip?.country(address) ?? null;
  }

  /** The route table a listener serves now (for Explain and tests). */
  routeTable(addr: string): RouteTable | null {
    return this.listeners.get(addr)?.routes ?? null;
  }

  /** Swaps the listener's route table whole; the next connection sees the new one. */
  replaceRoutes(addr: string, routes: RouteSpec[]): void {
    const state = this.listeners.get(addr);
    if (!state) throw new Error(`unknown listener ${JSON.stringify(addr)}`);
    state.routes = state.buildRoutes(routes, this.secureContexts);
    const inUse: RouteSpec[] = [];
    for (const listener of this.listeners.values()) inUse.push(...listener.routes.routes);
    this.certificates.retainOnly(inUse);
  }

  /**
   * Loads an l7 route's certificate into the cache, so a change can be refused before it
   * commits; throws a CertificateError naming the route and the path. The replaceRoutes that
   * follows takes it from the cache.
   */
  checkRouteCertificate(route: RouteSpec): void {
    if (route.mode === "l7") this.certificates.forRoute(route);
  }

  /**
   * Why these rules cannot be applied, or null. Asked before committing: a country rule
   * with no GeoIP database would commit fine and then fail to compile.
   */
  firewallRulesError(rules: readonly FirewallRule[]): string | null {
    try {
      Firewall.compile(rules, this.geoip);
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** Compiles and swaps the firewall; new connections are checked against it at once. */
  replaceFirewallRules(rules: FirewallRule[]): void {
    this.env.firewall = Firewall.compile(rules, this.geoip);
    this.rules = rules;
  }

  firewallRules(): readonly FirewallRule[] {
    return this.rules;
  }

  /**
   * SIGHUP: reopen the GeoIP file and recompile the firewall with it. A file that fails to
   * load keeps the previous database (SPEC §5), and the error is logged.
   */
  reloadGeoIp(path: string): GeoIpDatabase | null {
    const geoip = this.swapGeoIp(path);
    if (geoip !== null) this.logGeoIpReloaded(geoip);
    return geoip;
  }

  /**
   * reloadGeoIp without the success line: with worker threads, the supervisor logs it only
   * once every worker has the new database. A file that fails to load is logged here.
   */
  swapGeoIp(path: string): GeoIpDatabase | null {
    let geoip: GeoIpDatabase;
    try {
      geoip = GeoIpDatabase.open(path);
    } catch (error) {
      this.env.logger.error("GeoIP reload failed, keeping the previous database", {
        path,
        error: error instanceof Error ? error.message : String(error),
      });
      return null;
    }
    this.useGeoIp(geoip);
    return geoip;
  }

  logGeoIpReloaded(geoip: GeoIpDatabase): void {
    this.env.logger.info("GeoIP database reloaded", {
      path: geoip.path,
      build: geoip.buildEpoch?.toISOString() ?? "",
    });
  }

  /** Swaps in a GeoIP database opened elsewhere (a worker gets the supervisor's file). */
  useGeoIp(geoip: GeoIpDatabase): void {
    this.env.firewall = Firewall.compile(this.rules, geoip);
    this.geoip = geoip;
  }

  status(): RuntimeStatus {
    let totalConnections = 0;
    const listeners: ListenerStatus[] = [];
    const backendsDown: DownBackend[] = [];
    for (const state of this.listeners.values()) {
      totalConnections += state.stats.total;
      for (const route of state.routes.entries()) {
        for (const member of route.pool.members) {
          if (!member.up) {
            backendsDown.push({
              listenerAddr: state.addr,
              hostname: route.spec.hostname,
              backend: member.addr,
            });
          }
        }
      }
      listeners.push({
        addr: state.addr,
        routeCount: state.routes.size,
        activeConnections: state.stats.active,
        proxyProtocol: state.spec.proxyProtocol,
      });
    }
    const status: RuntimeStatus = {
      version: this.version,
      startedAt: this.startedAt,
      totalConnections,
      listeners,
      backendsDown,
    };
    const workers = this.sharing?.workers?.();
    if (workers !== undefined) status.workers = workers;
    return status;
  }
}
