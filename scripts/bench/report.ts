// Medians over rounds, mc-proxy/peer ratios, the markdown table and the issue's done-when checks.
import { SYSTEM_LABELS, type SystemId } from "./systems.ts";

export type Metric =
  | "rate"
  | "p50"
  | "p99"
  | "cpu"
  | "bulk1Up"
  | "bulk1Down"
  | "bulk32Up"
  | "bulk32Down"
  | "bulkRss"
  | "idleKib"
  | "bigRate"
  | "bigCpu"
  | "minRate"
  | "minCpu"
  | "poolOneRate"
  | "poolOneCpu"
  | "poolThreeRate"
  | "poolThreeCpu"
  | "lgCpu";

/** Per system, per metric, the value of each round by round index (a hole: the run failed). */
export type Results = Map<SystemId, Map<Metric, number[]>>;

export function record(
  results: Results,
  round: number,
  system: SystemId,
  metric: Metric,
  value: number,
): void {
  let bySystem = results.get(system);
  if (!bySystem) {
    bySystem = new Map();
    results.set(system, bySystem);
  }
  const values = bySystem.get(metric) ?? [];
  values[round] = value;
  bySystem.set(metric, values);
}

export function median(values: readonly number[] | undefined): number {
  const finite = (values ?? []).filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const middle = finite.length >> 1;
  return finite.length % 2 ? finite[middle]! : (finite[middle - 1]! + finite[middle]!) / 2;
}

export function medianOf(results: Results, system: SystemId, metric: Metric): number {
  return median(results.get(system)?.get(metric));
}

/**
 * a/b as the median of per-round ratios: the two were measured minutes apart in the same
 * round, so a load that drifts over the whole run (other work on the machine) cancels out.
 */
export function pairedRatio(
  results: Results,
  a: [SystemId, Metric],
  b: [SystemId, Metric],
): number {
  const as = results.get(a[0])?.get(a[1]) ?? [];
  const bs = results.get(b[0])?.get(b[1]) ?? [];
  const ratios: number[] = [];
  for (let i = 0; i < Math.max(as.length, bs.length); i++) ratios.push(as[i]! / bs[i]!);
  return median(ratios);
}

interface Row {
  metric: Metric;
  label: string;
  digits: number;
  /** No mc-proxy/peer ratio (the figure is not the system's). */
  noRatio?: boolean;
}

const ROWS: Row[] = [
  { metric: "rate", label: "connection rate, c=64 (conn/s)", digits: 0 },
  { metric: "p50", label: "latency p50 (µs)", digits: 0 },
  { metric: "p99", label: "latency p99 (µs)", digits: 0 },
  { metric: "cpu", label: "CPU per connection (µs)", digits: 1 },
  { metric: "bulk1Up", label: "bulk ×1 up (MiB/s)", digits: 0 },
  { metric: "bulk1Down", label: "bulk ×1 down (MiB/s)", digits: 0 },
  { metric: "bulk32Up", label: "bulk ×32 up (MiB/s)", digits: 0 },
  { metric: "bulk32Down", label: "bulk ×32 down (MiB/s)", digits: 0 },
  { metric: "bulkRss", label: "peak RSS in bulk / RSS at rest", digits: 2 },
  { metric: "idleKib", label: "idle memory per connection (KiB)", digits: 2 },
  { metric: "bigRate", label: "conn rate, 10,000 routes + 50,000 CIDRs (conn/s)", digits: 0 },
  { metric: "bigCpu", label: "CPU per connection, 10,000 routes + 50,000 CIDRs (µs)", digits: 1 },
  { metric: "minRate", label: "conn rate, 1 route, no rules (conn/s)", digits: 0 },
  { metric: "minCpu", label: "CPU per connection, 1 route, no rules (µs)", digits: 1 },
  {
    metric: "poolOneRate",
    label: "pool: conn rate, rate route with 1 backend (conn/s)",
    digits: 0,
  },
  { metric: "poolOneCpu", label: "pool: CPU per connection, 1 backend (µs)", digits: 1 },
  { metric: "poolThreeRate", label: "pool: conn rate, 3 backends (conn/s)", digits: 0 },
  { metric: "poolThreeCpu", label: "pool: CPU per connection, 3 backends (µs)", digits: 1 },
  { metric: "lgCpu", label: "load generator CPU per connection (µs)", digits: 1, noRatio: true },
];

const PEERS: SystemId[] = ["haproxy", "haproxy-128k", "nginx"];
/** The mc-proxy/x ratio columns: the peers, then the Bun floor (not a peer in the checks). */
const RATIO_COLUMNS: SystemId[] = [...PEERS, "bun-relay"];

function format(value: number, digits: number): string {
  if (!Number.isFinite(value)) return "—";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The results table: medians per system, then mc-proxy/peer ratios. */
export function markdownTable(results: Results, systems: readonly SystemId[]): string {
  const peers = RATIO_COLUMNS.filter((peer) => systems.includes(peer));
  const header = [
    "workload",
    ...systems.map((id) => SYSTEM_LABELS[id]),
    ...(systems.includes("mc-proxy") ? peers.map((p) => `mc/${SYSTEM_LABELS[p]}`) : []),
  ];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`,
  ];
  for (const row of ROWS) {
    const values = systems.map((id) => medianOf(results, id, row.metric));
    if (values.every((value) => !Number.isFinite(value))) continue;
    const ratios = systems.includes("mc-proxy")
      ? peers.map((peer) =>
          row.noRatio
            ? ""
            : format(pairedRatio(results, ["mc-proxy", row.metric], [peer, row.metric]), 2),
        )
      : [];
    const cells = [row.label, ...values.map((value) => format(value, row.digits)), ...ratios];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The issue's "done when" items that one run can decide, each with the numbers behind it. */
export function doneWhen(results: Results): string[] {
  const mc: SystemId = "mc-proxy";
  const m = (system: SystemId, metric: Metric) => medianOf(results, system, metric);
  const ratio = (a: SystemId, b: SystemId, metric: Metric, metricB: Metric = metric) =>
    pairedRatio(results, [a, metric], [b, metricB]);
  const check = (ok: boolean, text: string) =>
    `- [${ok ? "x" : " "}] ${ok ? "holds" : "FAILS"}: ${text}`;
  const f = (value: number) => format(value, 2);
  const out: string[] = [];
  const rate = ratio(mc, "haproxy", "rate");
  const cpu = ratio(mc, "haproxy", "cpu");
  if (Number.isFinite(rate) && Number.isFinite(cpu)) {
    out.push(
      check(
        rate >= 1 && cpu <= 1,
        `1. connection rate ${f(rate)}× HAProxy's (≥ 1.0), CPU per connection ${f(cpu)}× (≤ 1.0)`,
      ),
    );
  }
  const one = Math.min(
    ratio(mc, "haproxy-128k", "bulk1Up"),
    ratio(mc, "haproxy-128k", "bulk1Down"),
  );
  const many = Math.min(ratio(mc, "haproxy", "bulk32Up"), ratio(mc, "haproxy", "bulk32Down"));
  if (Number.isFinite(one) && Number.isFinite(many)) {
    out.push(
      check(
        one >= 1 && many >= 1.2,
        `2. bulk ×1 ${f(one)}× HAProxy 128k's (≥ 1.0), bulk ×32 ${f(many)}× stock HAProxy's ` +
          "(≥ 1.2); each the worse of up and down",
      ),
    );
  }
  const idle = ratio(mc, "haproxy", "idleKib");
  if (Number.isFinite(idle)) {
    out.push(check(idle <= 0.6, `3. idle memory per connection ${f(idle)}× HAProxy's (≤ 0.6)`));
  }
  const scale = ratio(mc, mc, "bigRate", "minRate");
  if (Number.isFinite(scale)) {
    out.push(
      check(
        scale >= 0.95,
        `4. with 10,000 routes and 50,000 CIDRs, ${f(scale)}× mc-proxy's rate with 1 route ` +
          `and no rules (≥ 0.95); CPU per connection ${f(ratio(mc, mc, "bigCpu", "minCpu"))}×`,
      ),
    );
  }
  const rss = results.get(mc)?.get("bulkRss")?.filter(Number.isFinite) ?? [];
  if (rss.length > 0) {
    const worst = Math.max(...rss);
    out.push(
      check(worst <= 2, `5. peak RSS during bulk ${f(worst)}× the RSS at rest, worst round (≤ 2)`),
    );
  }
  const pool = ratio(mc, mc, "poolThreeRate", "poolOneRate");
  if (Number.isFinite(pool)) {
    out.push(
      check(
        pool >= 0.95,
        `issue 20 #5. a route with 3 backends: ${f(pool)}× the rate of the same route with 1 ` +
          `(≥ 0.95); CPU per connection ${f(ratio(mc, mc, "poolThreeCpu", "poolOneCpu"))}×`,
      ),
    );
  }
  // The load generator: one core at most. Busy share of that core during each proxy's run.
  const busiest = Math.max(
    ...([mc, ...PEERS] as SystemId[])
      .map((id) => (m(id, "rate") * m(id, "lgCpu")) / 1e6)
      .filter(Number.isFinite),
  );
  const direct = m("direct", "rate");
  const fastest = Math.max(...([mc, ...PEERS] as SystemId[]).map((id) => m(id, "rate")));
  if (Number.isFinite(direct) && Number.isFinite(fastest) && Number.isFinite(busiest)) {
    out.push(
      check(
        busiest < 0.9 && direct > fastest,
        `load generator not the bottleneck: busy ${Math.round(busiest * 100)}% of its core at ` +
          `most behind a proxy (< 90%); direct ${f(direct / fastest)}× the fastest proxy's rate`,
      ),
    );
  }
  out.push(...floorLine(results));
  return out;
}

/**
 * Informational, not a check: what a bare Bun relay (bun-relay.ts) costs, against HAProxy,
 * and mc-proxy against it. Per-round paired ratios, like the checks.
 */
function floorLine(results: Results): string[] {
  const floor: SystemId = "bun-relay";
  const cpu = medianOf(results, floor, "cpu");
  const idle = medianOf(results, floor, "idleKib");
  const f = (value: number) => format(value, 2);
  const times = (a: SystemId, b: SystemId, metric: Metric) =>
    pairedRatio(results, [a, metric], [b, metric]);
  const costs: string[] = [];
  const mc: string[] = [];
  for (const [value, metric, text] of [
    [cpu, "cpu", `${format(cpu, 1)} µs CPU per connection`],
    [idle, "idleKib", `${f(idle)} KiB per idle connection`],
  ] as const) {
    if (!Number.isFinite(value)) continue;
    const vsHaproxy = times(floor, "haproxy", metric);
    costs.push(Number.isFinite(vsHaproxy) ? `${text} (${f(vsHaproxy)}× HAProxy's)` : text);
    mc.push(f(times("mc-proxy", floor, metric)));
  }
  if (costs.length === 0) return [];
  const mcText = mc.every((ratio) => ratio !== "—")
    ? `; mc-proxy is ${mc.map((ratio) => `${ratio}×`).join(" and ")} the floor`
    : "";
  return [
    `- floor: a bare Bun relay (scripts/bench/bun-relay.ts) costs ${costs.join(" and ")}${mcText}`,
  ];
}
