// RuntimeSharing over shared memory: what a worker thread's Runtime counts into, and the
// supervisor's read-only view of the sum.

import { firewallRuleKey } from "../config/firewall-rule.ts";
import type { WorkerStatus } from "../domain/reports.ts";
import type { FirewallRule } from "../domain/types.ts";
import type { FirewallHits } from "../firewall/hits.ts";
import { parseIp } from "../ip/ip.ts";
import type { AdmissionCheck, ListenerSharing } from "./listener-state.ts";
import type { DescriptorCount } from "./proxy-env.ts";
import type { RuntimeSharing } from "./runtime.ts";
import type { SharedAdmission } from "./shared-admission.ts";
import type { SharedCounters, TrafficCounters, WorkerCounters } from "./shared-counters.ts";
import type { TrafficStats } from "./traffic-stats.ts";

type HitCounter = Pick<FirewallHits, "record" | "snapshot" | "count">;

/** A client text the connection path formatted itself; parsing it cannot fail. */
function addressOf(client: string) {
  const address = parseIp(client);
  if (address === null) throw new Error(`not an address: ${JSON.stringify(client)}`);
  return address;
}

/**
 * A worker's side. Route blocks and hit slots come from the supervisor with every change
 * (WorkerSlots), so the worker never decides a slot itself.
 */
export class WorkerSlots {
  /** Per listener index: route hostname → counter block. */
  readonly routeBlocks: Map<string, number>[];
  /** Rule key → hit slot. */
  readonly hitSlots = new Map<string, number>();

  constructor(listeners: number) {
    this.routeBlocks = Array.from({ length: listeners }, () => new Map());
  }
}

export function workerSharing(options: {
  admission: SharedAdmission;
  counters: WorkerCounters;
  slots: WorkerSlots;
  column: number;
  worker: number;
}): RuntimeSharing {
  const { admission, counters, slots, column } = options;
  const descriptors: DescriptorCount = {
    hold: () => admission.holdDescriptors(column, 1),
    release: (count) => admission.releaseDescriptors(column, count),
    inUse: () => admission.descriptorsInUse(),
  };
  // Rule object → slot, so a block by a rule already seen builds no key string.
  const slotOfRule = new WeakMap<FirewallRule, number>();
  const hits: HitCounter = {
    record(rule) {
      let slot = slotOfRule.get(rule);
      if (slot === undefined) {
        slot = slots.hitSlots.get(firewallRuleKey(rule));
        if (slot === undefined) return; // cannot happen: every rule arrives with its slot
        slotOfRule.set(rule, slot);
      }
      counters.recordHit(slot);
    },
    snapshot: () => [],
    count: () => 0,
  };
  return {
    worker: options.worker,
    descriptors,
    hits,
    listener(_addr, index): ListenerSharing {
      const blocks = slots.routeBlocks[index]!;
      const spare = new Map<string, TrafficStats>();
      return {
        stats: counters.block(index),
        statsForRoute(hostname) {
          const block = blocks.get(hostname);
          if (block !== undefined) return counters.block(block);
          // Cannot happen (routes arrive with their blocks); count somewhere rather than throw.
          let stats = spare.get(hostname);
          if (stats === undefined) {
            stats = counters.block(index);
            spare.set(hostname, stats);
          }
          return stats;
        },
        routeStatsEntries: () => new Map<string, TrafficStats>().entries(),
        wouldAdmit: (client) => admission.wouldAdmit(index, addressOf(client)),
        tryAdmit: (client) => admission.tryAdmit(index, addressOf(client), column),
        release: (client) => admission.release(index, addressOf(client), column),
      };
    },
  };
}

/** Read-only: writing a summed counter is a bug (the supervisor runs no connections). */
function readOnly(counters: TrafficCounters): TrafficStats {
  return counters as TrafficStats;
}

/**
 * The supervisor's side: its Runtime (routes and firewall for Explain and the admin API,
 * no listeners of its own) reads every worker's counters summed and the live admission counts.
 */
export function supervisorSharing(options: {
  admission: SharedAdmission;
  counters: SharedCounters;
  /** Rule key → rule, for every key that has a hit slot. */
  rulesByKey: ReadonlyMap<string, FirewallRule>;
  /** The worker threads now (the pool's statuses). */
  workers: () => WorkerStatus[];
}): RuntimeSharing {
  const { admission, counters, rulesByKey } = options;
  const refuse = (): never => {
    throw new Error("the supervisor serves no connections");
  };
  const hits: HitCounter = {
    record: refuse,
    snapshot() {
      return [...counters.hitCounts()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .flatMap(([key, count]) => {
          const rule = rulesByKey.get(key);
          return rule === undefined ? [] : [{ rule: { ...rule }, hits: count }];
        });
    },
    count: (rule) => counters.hitCounts().get(firewallRuleKey(rule)) ?? 0,
  };
  return {
    worker: null,
    workers: options.workers,
    hits,
    descriptors: { hold: refuse, release: refuse, inUse: () => admission.descriptorsInUse() },
    listener(_addr, index): ListenerSharing {
      return {
        stats: readOnly(counters.listenerTraffic(index)),
        statsForRoute: refuse,
        routeStatsEntries: () =>
          (counters.routeTraffic(index) as Map<string, TrafficStats>).entries(),
        wouldAdmit: (client): AdmissionCheck => admission.wouldAdmit(index, addressOf(client)),
        tryAdmit: refuse,
        release: refuse,
      };
    },
  };
}
