// The one mapping between generated protobuf types (gen/) and the domain types, both ways.

import {
  type BackendStats as ProtoBackendStats,
  type ExplainResponse as ProtoExplanation,
  type FirewallRule as ProtoFirewallRule,
  type Route as ProtoRoute,
  type RouteStats as ProtoRouteStats,
  FirewallRuleType as ProtoRuleType,
  type GetStatsResponse as ProtoStats,
  type GetStatusResponse as ProtoStatus,
} from "../../gen/mc_proxy/v1/admin.ts";
import {
  FIREWALL_RULE_TYPE_NAMES,
  FIREWALL_RULE_TYPES,
  orList,
} from "../domain/firewall-rule-types.ts";
import {
  type BackendInput,
  type BackendSnapshot,
  EXPLAIN_DECISIONS,
  type ExplainDecision,
  type Explanation,
  type ListenerStatus,
  ROUTE_MATCHES,
  type RouteInput,
  type RouteMatchKind,
  type RuntimeStatus,
  type StatsSnapshot,
  type TrafficCounts,
  type WorkerStatus,
} from "../domain/reports.ts";
import { ROUTE_FIELD_NAMES, ROUTE_FIELDS, type RouteField } from "../domain/route-fields.ts";
import {
  BALANCE_POLICIES,
  type BalancePolicy,
  type FirewallRule,
  type FirewallRuleType,
  HEALTH_CHECK_KINDS,
  type HealthCheckKind,
  type RouteMode,
  type RouteSpec,
} from "../domain/types.ts";

const RULE_TYPE_TO_PROTO = Object.fromEntries(
  FIREWALL_RULE_TYPE_NAMES.map((type) => [
    type,
    ProtoRuleType[FIREWALL_RULE_TYPES[type].protoName],
  ]),
) as Record<FirewallRuleType, ProtoRuleType>;

const RULE_TYPE_FROM_PROTO = new Map<ProtoRuleType, FirewallRuleType>(
  FIREWALL_RULE_TYPE_NAMES.map((type) => [RULE_TYPE_TO_PROTO[type], type]),
);

/** `FIREWALL_RULE_TYPE_IP, FIREWALL_RULE_TYPE_CIDR or FIREWALL_RULE_TYPE_COUNTRY`, for messages. */
export const PROTO_RULE_TYPE_LIST = orList(
  FIREWALL_RULE_TYPE_NAMES.map((type) => FIREWALL_RULE_TYPES[type].protoName),
);

/**
 * The domain name of a wire rule type, or null for FIREWALL_RULE_TYPE_UNSPECIFIED and numbers
 * this version does not know (ts-proto decodes those as UNRECOGNIZED).
 */
export function ruleTypeFromProto(type: ProtoRuleType): FirewallRuleType | null {
  return RULE_TYPE_FROM_PROTO.get(type) ?? null;
}

export function ruleTypeToProto(type: FirewallRuleType): ProtoRuleType {
  return RULE_TYPE_TO_PROTO[type];
}

/** `FIREWALL_RULE_TYPE_UNSPECIFIED`, or the number when it has no name, for messages. */
export function ruleTypeName(type: ProtoRuleType): string {
  return ProtoRuleType[type] === undefined || type === ProtoRuleType.UNRECOGNIZED
    ? String(type)
    : ProtoRuleType[type];
}

/** A rule as the server sent it; the server only sends the types FIREWALL_RULE_TYPES lists. */
export function ruleFromProtoStrict(rule: ProtoFirewallRule): FirewallRule {
  const type = ruleTypeFromProto(rule.type);
  if (type === null) throw new Error(`server sent firewall rule type ${ruleTypeName(rule.type)}`);
  return { type, value: rule.value };
}

export function ruleToProto(rule: FirewallRule): ProtoFirewallRule {
  return { type: ruleTypeToProto(rule.type), value: rule.value };
}

/** The RouteSpec-named fields of a wire route or a route (the wire names are the same). */
function routeFields(source: object): Record<RouteField, unknown> {
  const fields = {} as Record<RouteField, unknown>;
  for (const name of ROUTE_FIELD_NAMES) fields[name] = (source as Record<string, unknown>)[name];
  return fields;
}

/** A wire route as user input: validateRoute decides what it means (`mode` "" is l4). */
export function routeInputFromProto(route: ProtoRoute): RouteInput {
  return routeFields(route) as unknown as RouteInput;
}

/** Unset optional fields become the wire's zero values ("" and false). */
export function routeInputToProto(route: RouteInput): ProtoRoute {
  const fields = routeFields(route);
  for (const name of ROUTE_FIELD_NAMES) {
    const kind = ROUTE_FIELDS[name].kind;
    if (kind === "backends") {
      fields[name] = ((fields[name] as BackendInput[] | undefined) ?? []).map((backend) => ({
        addr: backend.addr,
        weight: backend.weight ?? 0,
      }));
    } else fields[name] ??= kind === "flag" ? false : "";
  }
  return fields as unknown as ProtoRoute;
}

export function routeToProto(route: RouteSpec): ProtoRoute {
  return routeInputToProto(route);
}

/** A route as the server sent it. The server only sends validated routes, so the mode is known. */
export function routeFromProto(route: ProtoRoute): RouteSpec {
  // An older server sends no backends, balance or health_check.
  const backends =
    route.backends.length === 0
      ? [{ addr: route.backend, weight: 1 }]
      : route.backends.map((backend) => ({ addr: backend.addr, weight: backend.weight || 1 }));
  return {
    ...routeFields(route),
    backend: backends[0]!.addr,
    backends,
    balance: oneOf<BalancePolicy>(
      "route.balance",
      route.balance || "least_connections",
      BALANCE_POLICIES,
    ),
    healthCheck: oneOf<HealthCheckKind>(
      "route.health_check",
      route.healthCheck || "none",
      HEALTH_CHECK_KINDS,
    ),
    mode: routeModeFromProto(route.mode),
  } as unknown as RouteSpec;
}

function routeModeFromProto(mode: string): RouteMode {
  if (mode === "" || mode === "l4") return "l4";
  if (mode === "l7") return "l7";
  throw new Error(`server sent route mode ${JSON.stringify(mode)}: expected "l4" or "l7"`);
}

export function statusToProto(status: RuntimeStatus): ProtoStatus {
  return {
    version: status.version,
    startedAt: status.startedAt,
    totalConnections: status.totalConnections,
    listeners: status.listeners.map((listener) => ({
      addr: listener.addr,
      routeCount: listener.routeCount,
      activeConnections: listener.activeConnections,
      proxyProtocol: listener.proxyProtocol,
    })),
    workers: (status.workers ?? []).map((worker) => ({ ...worker })),
    backendsDown: status.backendsDown.map((down) => ({ ...down })),
  };
}

export function statusFromProto(status: ProtoStatus): RuntimeStatus {
  return {
    version: status.version,
    startedAt: status.startedAt ?? new Date(0),
    totalConnections: status.totalConnections,
    listeners: status.listeners.map(
      (listener): ListenerStatus => ({
        addr: listener.addr,
        routeCount: listener.routeCount,
        activeConnections: listener.activeConnections,
        proxyProtocol: listener.proxyProtocol,
      }),
    ),
    // One event loop reports none: leave the key out, as the server's own status does.
    ...(status.workers.length > 0
      ? {
          workers: status.workers.map(
            (worker): WorkerStatus => ({
              worker: worker.worker,
              activeConnections: worker.activeConnections,
              totalConnections: worker.totalConnections,
              startedAt: worker.startedAt ?? new Date(0),
            }),
          ),
        }
      : {}),
    backendsDown: status.backendsDown.map((down) => ({ ...down })),
  };
}

export function backendToProto(backend: BackendSnapshot): ProtoBackendStats {
  return { ...backend };
}

export function backendFromProto(backend: ProtoBackendStats): BackendSnapshot {
  return {
    addr: backend.addr,
    weight: backend.weight,
    up: backend.up,
    connectionsTotal: backend.connectionsTotal,
    failuresTotal: backend.failuresTotal,
    connectionsActive: backend.connectionsActive,
  };
}

/** The five counter fields shared by ListenerStats and RouteStats, wire → domain. */
function countsFromProto(counts: Omit<ProtoRouteStats, "hostname" | "backends">): TrafficCounts {
  return {
    connectionsTotal: counts.connectionsTotal,
    connectionsActive: counts.connectionsActive,
    bytesUp: counts.bytesUp,
    bytesDown: counts.bytesDown,
    ends: { ...counts.ends },
  };
}

function countsToProto(counts: TrafficCounts): Omit<ProtoRouteStats, "hostname" | "backends"> {
  return {
    connectionsTotal: counts.connectionsTotal,
    connectionsActive: counts.connectionsActive,
    bytesUp: counts.bytesUp,
    bytesDown: counts.bytesDown,
    ends: { ...counts.ends },
  };
}

export function statsToProto(stats: StatsSnapshot): ProtoStats {
  return {
    listeners: stats.listeners.map((listener) => ({
      addr: listener.addr,
      ...countsToProto(listener),
      routes: listener.routes.map((route) => ({
        hostname: route.hostname,
        ...countsToProto(route),
        backends: route.backends.map(backendToProto),
      })),
    })),
    firewallHits: stats.firewallHits.map(({ rule, hits }) => ({ rule: ruleToProto(rule), hits })),
  };
}

export function statsFromProto(stats: ProtoStats): StatsSnapshot {
  return {
    listeners: stats.listeners.map((listener) => ({
      addr: listener.addr,
      ...countsFromProto(listener),
      routes: listener.routes.map((route) => ({
        hostname: route.hostname,
        ...countsFromProto(route),
        backends: route.backends.map(backendFromProto),
      })),
    })),
    firewallHits: stats.firewallHits.map(({ rule, hits }) => {
      if (rule === undefined) throw new Error("server sent a firewall_hits entry without a rule");
      return { rule: ruleFromProtoStrict(rule), hits };
    }),
  };
}

export function explanationToProto(explanation: Explanation): ProtoExplanation {
  const { firewall, limits, route } = explanation;
  return {
    firewall: {
      blocked: firewall.blocked,
      rule: firewall.rule === null ? undefined : ruleToProto(firewall.rule),
      country: firewall.country ?? "",
    },
    limits: { ...limits },
    route: {
      matched: route.matched,
      route: route.route === null ? undefined : routeToProto(route.route),
      backends: route.backends.map(backendToProto),
    },
    decision: explanation.decision,
    explanation: explanation.explanation,
  };
}

/** An Explain answer as the server sent it; unknown decision or match words are a server bug. */
export function explanationFromProto(response: ProtoExplanation): Explanation {
  const decision = oneOf<ExplainDecision>("decision", response.decision, EXPLAIN_DECISIONS);
  const matched = oneOf<RouteMatchKind>(
    "route.matched",
    response.route?.matched ?? "",
    ROUTE_MATCHES,
  );
  const limits = response.limits;
  return {
    firewall: {
      blocked: response.firewall?.blocked ?? false,
      rule: response.firewall?.rule ? ruleFromProtoStrict(response.firewall.rule) : null,
      country: response.firewall?.country || null,
    },
    limits: {
      maxConnections: limits?.maxConnections ?? 0,
      admitted: limits?.admitted ?? 0,
      maxConnectionsPerIp: limits?.maxConnectionsPerIp ?? 0,
      fromClient: limits?.fromClient ?? 0,
      wouldExceed: limits?.wouldExceed ?? false,
    },
    route: {
      matched,
      route: response.route?.route ? routeFromProto(response.route.route) : null,
      backends: (response.route?.backends ?? []).map(backendFromProto),
    },
    decision,
    explanation: response.explanation,
  };
}

function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(
    `server sent ${field} ${JSON.stringify(value)}: expected one of ${allowed.join(", ")}`,
  );
}
