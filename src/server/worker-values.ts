// Values a worker receives by structured clone, rebuilt into what the supervisor holds.
import { readListeners } from "../config/listeners.ts";
import { validateRoute } from "../config/route.ts";
import { routeToRecord } from "../domain/route-fields.ts";
import type { Config, ListenerSpec, RouteSpec } from "../domain/types.ts";

/**
 * A structured clone keeps own enumerable data only: class identity, getters and private
 * fields (typed twins) are lost. So a worker runs what crosses through the same validators the
 * supervisor's values came from: routes through validateRoute (the config loader's and the
 * admin API's), listeners through the config loader's own [[listeners]] reader, fed the
 * listener as the TOML table it was read from (paths are absolute already). worker-values.test.ts
 * checks that every value comes out equal, with the same prototypes.
 */
export function rebuildRoutes(routes: readonly RouteSpec[]): RouteSpec[] {
  return routes.map((spec) => {
    const result = validateRoute(spec);
    if ("error" in result) throw new Error(`route from the supervisor: ${result.error}`);
    return result.route;
  });
}

function listenerTable(listener: ListenerSpec): Record<string, unknown> {
  return {
    addr: listener.addr,
    proxy_protocol: listener.proxyProtocol,
    proxy_protocol_from: listener.proxyProtocolFrom,
    max_connections: listener.maxConnections,
    max_connections_per_ip: listener.maxConnectionsPerIp,
    routes: listener.routes.map(routeTable),
  };
}

/** A route as its TOML table: `backends` only (the reader refuses `backend` beside it). */
function routeTable(route: RouteSpec): Record<string, unknown> {
  const { backend: _first, ...table } = routeToRecord(route, (flag) => flag);
  return table;
}

export function rebuildConfig(config: Config): Config {
  return {
    ...config,
    listeners: readListeners(
      config.listeners.map((listener) => listenerTable(listener) as never),
      (path) => path,
    ),
  };
}
