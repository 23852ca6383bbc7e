// The Prometheus text exposition (format 0.0.4) of the runtime's counters.
import { END_REASONS } from "../net/end-reason.ts";
import type { TrafficStats } from "../net/traffic-stats.ts";
import type { Runtime } from "../server/runtime.ts";

/** Metric names and help strings; RUNBOOK.md lists the same table. */
export const METRICS = {
  info: ["mc_proxy_build_info", "gauge", "Always 1; the version label names the running build."],
  startTime: ["mc_proxy_start_time_seconds", "gauge", "Unix time the process started."],
  connections: ["mc_proxy_connections_total", "counter", "Connections accepted by a listener."],
  active: ["mc_proxy_connections_active", "gauge", "Connections open on a listener now."],
  ends: [
    "mc_proxy_connection_ends_total",
    "counter",
    "Ended connections by listener and end reason.",
  ],
  bytes: [
    "mc_proxy_bytes_total",
    "counter",
    "Bytes of ended connections by listener and direction (up: client to backend).",
  ],
  routeConnections: [
    "mc_proxy_route_connections_total",
    "counter",
    "Connections routed to a route.",
  ],
  routeActive: ["mc_proxy_route_connections_active", "gauge", "Connections open on a route now."],
  routeEnds: [
    "mc_proxy_route_connection_ends_total",
    "counter",
    "Ended connections by route and end reason.",
  ],
  routeBytes: [
    "mc_proxy_route_bytes_total",
    "counter",
    "Bytes of ended connections by route and direction.",
  ],
  firewallHits: [
    "mc_proxy_firewall_hits_total",
    "counter",
    "Connections blocked by each firewall rule.",
  ],
} as const;

/** Label values escaped as the text format requires: backslash, double quote, newline. */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

class Exposition {
  private readonly lines: string[] = [];

  family(metric: readonly [string, string, string]): void {
    this.lines.push(`# HELP ${metric[0]} ${metric[2]}`, `# TYPE ${metric[0]} ${metric[1]}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const pairs = Object.entries(labels).map(([key, v]) => `${key}="${label(v)}"`);
    this.lines.push(`${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${value}`);
  }

  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

function trafficSamples(
  out: Exposition,
  names: { total: string; active: string; ends: string; bytes: string },
  entries: Array<[Record<string, string>, TrafficStats]>,
): void {
  for (const [metric, pick] of [
    [names.total, (s: TrafficStats) => s.total],
    [names.active, (s: TrafficStats) => s.active],
  ] as const) {
    const family = Object.values(METRICS).find((m) => m[0] === metric)!;
    out.family(family);
    for (const [labels, stats] of entries) out.sample(metric, labels, pick(stats));
  }
  out.family(Object.values(METRICS).find((m) => m[0] === names.ends)!);
  for (const [labels, stats] of entries) {
    for (const reason of END_REASONS)
      out.sample(names.ends, { ...labels, reason }, stats.ends[reason]);
  }
  out.family(Object.values(METRICS).find((m) => m[0] === names.bytes)!);
  for (const [labels, stats] of entries) {
    out.sample(names.bytes, { ...labels, direction: "up" }, stats.bytesUp);
    out.sample(names.bytes, { ...labels, direction: "down" }, stats.bytesDown);
  }
}

/** Renders every counter; built on each scrape from the live runtime (no caching). */
export function renderMetrics(runtime: Runtime): string {
  const out = new Exposition();
  out.family(METRICS.info);
  out.sample(METRICS.info[0], { version: runtime.version }, 1);
  out.family(METRICS.startTime);
  out.sample(METRICS.startTime[0], {}, Math.floor(runtime.startedAt.getTime() / 1000));

  const listeners = runtime.listenerStates();
  trafficSamples(
    out,
    {
      total: METRICS.connections[0],
      active: METRICS.active[0],
      ends: METRICS.ends[0],
      bytes: METRICS.bytes[0],
    },
    listeners.map((state) => [{ listener: state.addr }, state.stats]),
  );
  const routes: Array<[Record<string, string>, TrafficStats]> = [];
  for (const state of listeners) {
    for (const [hostname, stats] of state.routeStatsEntries()) {
      routes.push([{ listener: state.addr, route: hostname }, stats]);
    }
  }
  trafficSamples(
    out,
    {
      total: METRICS.routeConnections[0],
      active: METRICS.routeActive[0],
      ends: METRICS.routeEnds[0],
      bytes: METRICS.routeBytes[0],
    },
    routes,
  );
  out.family(METRICS.firewallHits);
  for (const { rule, hits } of runtime.env.hits.snapshot()) {
    out.sample(METRICS.firewallHits[0], { type: rule.type, rule: rule.value }, hits);
  }
  return out.text();
}
