// The one path every runtime change takes to the event loops that serve connections.
import type { FirewallRule, RouteSpec } from "../domain/types.ts";
import type { Runtime } from "./runtime.ts";

/**
 * A change to what the connection path reads, always as the full new state (a listener's whole
 * route list, the whole rule list), so applying it twice or late is harmless. The admin API
 * sends one after each commit, SIGHUP sends "geoip"; a cluster watch would send the same.
 */
export type RuntimeChange =
  | { kind: "routes"; listener: string; routes: RouteSpec[] }
  | { kind: "firewall"; rules: FirewallRule[] }
  /** Reopen the GeoIP file; a file that fails to load keeps the previous one everywhere. */
  | { kind: "geoip"; path: string };

/**
 * Applies a change to every event loop. The supervisor's own runtime takes it synchronously,
 * before apply() returns (so a failure throws and reaches no worker, and admin reads that
 * follow see it); the promise resolves once every event loop applied it, so the next connection
 * on any of them sees it.
 */
export interface RuntimeUpdates {
  apply(change: RuntimeChange): Promise<void>;
}

/** One event loop (`workers = 1`): the runtime the listeners read is the one changed. */
export class InProcessUpdates implements RuntimeUpdates {
  constructor(private readonly runtime: Runtime) {}

  apply(change: RuntimeChange): Promise<void> {
    switch (change.kind) {
      case "routes":
        this.runtime.replaceRoutes(change.listener, change.routes);
        break;
      case "firewall":
        this.runtime.replaceFirewallRules(change.rules);
        break;
      case "geoip":
        this.runtime.reloadGeoIp(change.path);
        break;
    }
    return Promise.resolve();
  }
}
