// `workers = N` (N > 1): the supervisor's runtime over shared memory, and N worker threads.

import { firewallRuleKey } from "../config/firewall-rule.ts";
import type { WorkerStatus } from "../domain/reports.ts";
import type { Config, FirewallRule, RouteSpec } from "../domain/types.ts";
import type { GeoIpDatabase } from "../firewall/geoip.ts";
import type { Logger } from "../log/logger.ts";
import type { RunningListener } from "../net/listener.ts";
import { Runtime } from "../runtime/runtime.ts";
import { SharedAdmission } from "../runtime/shared-admission.ts";
import { SharedCounters } from "../runtime/shared-counters.ts";
import { supervisorSharing } from "../runtime/shared-listener.ts";
import { VERSION } from "../version.ts";
import { WorkerPool } from "./worker-pool.ts";

export interface StartedWorkers {
  runtime: Runtime;
  pool: WorkerPool;
  listeners: RunningListener[];
}

/**
 * Builds the supervisor's runtime (routes and firewall for the admin API and Explain; counters
 * and admission read from shared memory) and starts `count` workers that serve the listeners.
 * Throws the first worker's start error after ending every thread.
 */
export async function startWorkers(options: {
  count: number;
  config: Config;
  routes: ReadonlyMap<string, RouteSpec[]>;
  rules: FirewallRule[];
  geoip: GeoIpDatabase | null;
  descriptorBudget: number;
  logger: Logger;
  writeLog: (text: string) => void;
}): Promise<StartedWorkers> {
  const { config, count } = options;
  const admission = SharedAdmission.create({
    listeners: config.listeners.map((spec) => ({
      maxConnections: spec.maxConnections,
      maxConnectionsPerIp: spec.maxConnectionsPerIp,
    })),
    columns: count,
    descriptorBudget: options.descriptorBudget,
  });
  const counters = new SharedCounters(count, config.listeners.length);
  const rulesByKey = new Map<string, FirewallRule>();
  for (const rule of options.rules) rulesByKey.set(firewallRuleKey(rule), rule);
  const runtime: Runtime = new Runtime({
    config,
    routes: options.routes,
    rules: options.rules,
    geoip: options.geoip,
    logger: options.logger,
    version: VERSION,
    descriptorBudget: options.descriptorBudget,
    sharing: supervisorSharing({
      admission,
      counters,
      rulesByKey,
      workers: (): WorkerStatus[] => pool.statuses(),
    }),
  });
  const routes = new Map<string, RouteSpec[]>();
  for (const spec of config.listeners) {
    routes.set(spec.addr, options.routes.get(spec.addr) ?? spec.routes);
  }
  const pool: WorkerPool = new WorkerPool({
    count,
    config,
    runtime,
    admission,
    counters,
    rulesByKey,
    routes,
    rules: options.rules,
    geoip: options.geoip === null ? null : { path: options.geoip.path, bytes: options.geoip.bytes },
    descriptorBudget: options.descriptorBudget,
    logger: options.logger,
    writeLog: options.writeLog,
  });
  let bound: { hostname: string; port: number }[];
  try {
    bound = await pool.start();
  } catch (error) {
    pool.terminateAll();
    throw error;
  }
  const listeners = runtime.listenerStates().map(
    (state, index): RunningListener => ({
      state,
      port: bound[index]!.port,
      hostname: bound[index]!.hostname,
      stopAccepting: () => pool.stopAccepting(),
    }),
  );
  return { runtime, pool, listeners };
}
