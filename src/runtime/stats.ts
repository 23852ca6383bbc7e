// A point-in-time copy of every counter: what GetStats returns and /metrics renders.

import { firewallRuleKey } from "../config/firewall-rule.ts";
import { END_REASONS } from "../domain/end-reason.ts";
import type {
  FirewallRuleHitCount,
  ListenerStatsSnapshot,
  StatsSnapshot,
  TrafficCounts,
} from "../domain/reports.ts";
import { snapshotBackends } from "../route/backend-pool.ts";
import type { Runtime } from "./runtime.ts";
import type { TrafficStats } from "./traffic-stats.ts";

/** What collectStats reads; the real Runtime, or a stand-in in tests. */
export type StatsSource = Pick<Runtime, "listenerStates" | "firewallRules" | "env">;

/** A copy of `stats`; all zeros for null (a route no connection has reached yet). */
function copyCounts(stats: TrafficStats | null): TrafficCounts {
  const ends: Record<string, number> = {};
  for (const reason of END_REASONS) ends[reason] = stats === null ? 0 : stats.ends[reason];
  return {
    connectionsTotal: stats?.total ?? 0,
    connectionsActive: stats?.active ?? 0,
    bytesUp: stats?.bytesUp ?? 0,
    bytesDown: stats?.bytesDown ?? 0,
    ends,
  };
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Copies the counters. Runs off the connection path (admin call, scrape) and costs
 * O(listeners + routes + rules); it never creates counters, so it changes nothing it reads.
 */
export function collectStats(source: StatsSource): StatsSnapshot {
  const listeners = source.listenerStates().map((state): ListenerStatsSnapshot => {
    const counted = new Map(state.routeStatsEntries());
    const hostnames = new Set(counted.keys());
    for (const route of state.routes.routes) hostnames.add(route.hostname);
    const routes = [...hostnames].sort(byText).map((hostname) => {
      const route = state.routes.route(hostname);
      return {
        hostname,
        ...copyCounts(counted.get(hostname) ?? null),
        backends: route === undefined ? [] : snapshotBackends(route.pool),
      };
    });
    return { addr: state.addr, ...copyCounts(state.stats), routes };
  });

  const hits = new Map<string, FirewallRuleHitCount>();
  for (const rule of source.firewallRules()) {
    hits.set(firewallRuleKey(rule), { rule: { type: rule.type, value: rule.value }, hits: 0 });
  }
  for (const counted of source.env.hits.snapshot())
    hits.set(firewallRuleKey(counted.rule), counted);
  const firewallHits = [...hits.entries()]
    .sort(([a], [b]) => byText(a, b))
    .map(([, counted]) => counted);
  return { listeners, firewallHits };
}
