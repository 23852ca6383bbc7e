// `mcproxyctl stats`: connection counters per listener and per route, and firewall hits per rule.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import { END_REASONS } from "../../domain/end-reason.ts";
import type { StatsSnapshot, TrafficCounts } from "../../domain/reports.ts";
import { alignColumns } from "../status.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags } from "./flags.ts";

const COUNT_HEADER = ["TOTAL", "ACTIVE", "BYTES_UP", "BYTES_DOWN", "ENDS"];

/** Position of a reason in END_REASONS; reasons this client does not know sort last, by name. */
function reasonOrder(reason: string): number {
  const index = (END_REASONS as readonly string[]).indexOf(reason);
  return index === -1 ? END_REASONS.length : index;
}

/** `closed=3 blocked=1`: the non-zero end reasons in END_REASONS order, or `-`. */
export function formatEnds(ends: Record<string, number>): string {
  const parts = Object.entries(ends)
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => reasonOrder(a) - reasonOrder(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([reason, count]) => `${reason}=${count}`);
  return parts.length === 0 ? "-" : parts.join(" ");
}

function countCells(counts: TrafficCounts): string[] {
  return [
    String(counts.connectionsTotal),
    String(counts.connectionsActive),
    String(counts.bytesUp),
    String(counts.bytesDown),
    formatEnds(counts.ends),
  ];
}

/**
 * Four tables, a blank line apart: listeners, routes (by listener), backends (by route),
 * firewall rules with hits.
 */
export function formatStatsTables(stats: StatsSnapshot): string {
  const listeners = alignColumns([
    ["LISTENER", ...COUNT_HEADER],
    ...stats.listeners.map((listener) => [listener.addr, ...countCells(listener)]),
  ]);
  const routes = alignColumns([
    ["LISTENER", "ROUTE", ...COUNT_HEADER],
    ...stats.listeners.flatMap((listener) =>
      listener.routes.map((route) => [listener.addr, route.hostname, ...countCells(route)]),
    ),
  ]);
  const backends = alignColumns([
    ["LISTENER", "ROUTE", "BACKEND", "STATE", "TOTAL", "ACTIVE", "FAILURES"],
    ...stats.listeners.flatMap((listener) =>
      listener.routes.flatMap((route) =>
        route.backends.map((backend) => [
          listener.addr,
          route.hostname,
          backend.addr,
          backend.up ? "up" : "down",
          String(backend.connectionsTotal),
          String(backend.connectionsActive),
          String(backend.failuresTotal),
        ]),
      ),
    ),
  ]);
  const rules = alignColumns([
    ["RULE_TYPE", "RULE", "HITS"],
    ...stats.firewallHits.map(({ rule, hits }) => [rule.type, rule.value, String(hits)]),
  ]);
  return `${[listeners, routes, backends, rules].map((lines) => lines.join("\n")).join("\n\n")}\n`;
}

function countsJson(counts: TrafficCounts) {
  return {
    connections_total: counts.connectionsTotal,
    connections_active: counts.connectionsActive,
    bytes_up: counts.bytesUp,
    bytes_down: counts.bytesDown,
    ends: counts.ends,
  };
}

/** The GetStats answer in the admin API's JSON names (snake_case, as grpcurl shows them). */
export function statsJson(stats: StatsSnapshot) {
  return {
    listeners: stats.listeners.map((listener) => ({
      addr: listener.addr,
      ...countsJson(listener),
      routes: listener.routes.map((route) => ({
        hostname: route.hostname,
        ...countsJson(route),
        backends: route.backends.map((backend) => ({
          addr: backend.addr,
          weight: backend.weight,
          up: backend.up,
          connections_total: backend.connectionsTotal,
          failures_total: backend.failuresTotal,
          connections_active: backend.connectionsActive,
        })),
      })),
    })),
    firewall_hits: stats.firewallHits.map(({ rule, hits }) => ({ rule, hits })),
  };
}

const statsArgs = { ...connectionArgs } satisfies ArgsDef;

export const statsCommand = defineCommand({
  meta: {
    name: "stats",
    description: "Connection counters per listener and per route, and firewall hits per rule",
  },
  args: statsArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("stats", rawArgs, statsArgs);
    const stats = await withClient(args, (client) => client.stats());
    if (args.json) {
      printJson(statsJson(stats));
      return;
    }
    process.stdout.write(formatStatsTables(stats));
  },
});
