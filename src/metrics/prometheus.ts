// The Prometheus text exposition (format 0.0.4) of the runtime's counters.
import type { TrafficCounts } from "../domain/reports.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { collectStats, type StatsSource } from "../runtime/stats.ts";

type Metric = readonly [name: string, type: string, help: string];

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
  backendUp: [
    "mc_proxy_backend_up",
    "gauge",
    "1 while a route's backend is up, 0 after a failed dial or health check.",
  ],
  backendConnections: [
    "mc_proxy_backend_connections_total",
    "counter",
    "Connections forwarded to a route's backend.",
  ],
  backendFailures: [
    "mc_proxy_backend_failures_total",
    "counter",
    "Failed dials and health checks of a route's backend.",
  ],
  backendActive: [
    "mc_proxy_backend_connections_active",
    "gauge",
    "Connections open (or dialing) to a route's backend now.",
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

  family(metric: Metric): void {
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

/** The four families of a set of TrafficCounts (listeners, or routes), one sample per entry. */
function trafficSamples(
  out: Exposition,
  families: { total: Metric; active: Metric; ends: Metric; bytes: Metric },
  entries: ReadonlyArray<readonly [Record<string, string>, TrafficCounts]>,
): void {
  out.family(families.total);
  for (const [labels, counts] of entries)
    out.sample(families.total[0], labels, counts.connectionsTotal);
  out.family(families.active);
  for (const [labels, counts] of entries)
    out.sample(families.active[0], labels, counts.connectionsActive);
  out.family(families.ends);
  for (const [labels, counts] of entries) {
    for (const [reason, count] of Object.entries(counts.ends))
      out.sample(families.ends[0], { ...labels, reason }, count);
  }
  out.family(families.bytes);
  for (const [labels, counts] of entries) {
    out.sample(families.bytes[0], { ...labels, direction: "up" }, counts.bytesUp);
    out.sample(families.bytes[0], { ...labels, direction: "down" }, counts.bytesDown);
  }
}

/** What renderMetrics reads. */
export type MetricsSource = StatsSource & Pick<Runtime, "version" | "startedAt">;

/**
 * Renders every counter; built on each scrape from the live runtime (no caching), from the
 * same snapshot GetStats returns, so the two always agree on names and values.
 */
export function renderMetrics(runtime: MetricsSource): string {
  const stats = collectStats(runtime);
  const out = new Exposition();
  out.family(METRICS.info);
  out.sample(METRICS.info[0], { version: runtime.version }, 1);
  out.family(METRICS.startTime);
  out.sample(METRICS.startTime[0], {}, Math.floor(runtime.startedAt.getTime() / 1000));

  trafficSamples(
    out,
    {
      total: METRICS.connections,
      active: METRICS.active,
      ends: METRICS.ends,
      bytes: METRICS.bytes,
    },
    stats.listeners.map((listener) => [{ listener: listener.addr }, listener] as const),
  );
  trafficSamples(
    out,
    {
      total: METRICS.routeConnections,
      active: METRICS.routeActive,
      ends: METRICS.routeEnds,
      bytes: METRICS.routeBytes,
    },
    stats.listeners.flatMap((listener) =>
      listener.routes.map(
        (route) => [{ listener: listener.addr, route: route.hostname }, route] as const,
      ),
    ),
  );
  const backends = stats.listeners.flatMap((listener) =>
    listener.routes.flatMap((route) =>
      route.backends.map(
        (backend) =>
          [
            { listener: listener.addr, route: route.hostname, backend: backend.addr },
            backend,
          ] as const,
      ),
    ),
  );
  out.family(METRICS.backendUp);
  for (const [labels, backend] of backends)
    out.sample(METRICS.backendUp[0], labels, backend.up ? 1 : 0);
  out.family(METRICS.backendConnections);
  for (const [labels, backend] of backends)
    out.sample(METRICS.backendConnections[0], labels, backend.connectionsTotal);
  out.family(METRICS.backendFailures);
  for (const [labels, backend] of backends)
    out.sample(METRICS.backendFailures[0], labels, backend.failuresTotal);
  out.family(METRICS.backendActive);
  for (const [labels, backend] of backends)
    out.sample(METRICS.backendActive[0], labels, backend.connectionsActive);
  out.family(METRICS.firewallHits);
  for (const { rule, hits } of stats.firewallHits) {
    out.sample(METRICS.firewallHits[0], { type: rule.type, rule: rule.value }, hits);
  }
  return out.text();
}
