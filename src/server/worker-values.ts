// Values a worker receives by structured clone, rebuilt into what the supervisor holds.
import { validateRoute } from "../config/route.ts";
import type { Config, RouteSpec } from "../domain/types.ts";

/**
 * A structured clone keeps own enumerable data only: class identity, getters and private
 * fields are lost. Routes are validated again (the same function the config loader and the
 * admin API use), so a worker holds exactly the values the supervisor does, typed twins
 * included. worker-values.test.ts checks every value that crosses still has its prototype.
 */
export function rebuildRoutes(routes: readonly RouteSpec[]): RouteSpec[] {
  return routes.map((spec) => {
    const result = validateRoute(spec);
    if ("error" in result) throw new Error(`route from the supervisor: ${result.error}`);
    return result.route;
  });
}

export function rebuildConfig(config: Config): Config {
  return {
    ...config,
    listeners: config.listeners.map((listener) => ({
      ...listener,
      routes: rebuildRoutes(listener.routes),
    })),
  };
}
