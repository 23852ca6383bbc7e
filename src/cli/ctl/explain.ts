// `mcproxyctl explain`: the decision the proxy would take now for a client and SNI name.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import type { ExplainRequest, Explanation } from "../../domain/reports.ts";
import { UsageError } from "../errors.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags } from "./flags.ts";
import { formatBackends, routeTags } from "./routes.ts";

function limitText(value: number): string {
  return value === 0 ? "unlimited" : String(value);
}

/** One labelled line per step, in the connection path's order, then the decision. */
export function formatExplanation(request: ExplainRequest, explanation: Explanation): string {
  const { firewall, limits, route } = explanation;
  const country = firewall.country === null ? "" : ` (country ${firewall.country})`;
  const routeText =
    route.route === null
      ? "none"
      : `${route.matched} ${route.route.hostname} -> ${formatBackends(route.route)} (${[
          route.route.mode,
          ...routeTags(route.route),
        ].join(", ")})`;
  const rows: Array<[string, string]> = [
    ["listener", request.listenerAddr],
    ["client", `${request.clientAddr}${country}`],
    ["sni", request.sni === "" ? "(none)" : request.sni],
    [
      "firewall",
      firewall.rule === null
        ? "allowed"
        : `blocked by ${firewall.rule.type} ${firewall.rule.value}`,
    ],
    [
      "limits",
      `listener ${limits.admitted}/${limitText(limits.maxConnections)}, this client ${limits.fromClient}/${limitText(limits.maxConnectionsPerIp)}: ${limits.wouldExceed ? "over a limit" : "within limits"}`,
    ],
    ["route", routeText],
    ...(route.backends.length > 1 || route.backends.some((backend) => !backend.up)
      ? [
          [
            "backends",
            route.backends
              .map((backend) => `${backend.addr} ${backend.up ? "up" : "down"}`)
              .join(", "),
          ] as [string, string],
        ]
      : []),
    ["decision", explanation.decision],
    ["explanation", explanation.explanation],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${rows.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`).join("\n")}\n`;
}

/** The Explain answer in the admin API's JSON names, with the request it answers. */
export function explanationJson(request: ExplainRequest, explanation: Explanation) {
  const { firewall, limits, route } = explanation;
  return {
    listener_addr: request.listenerAddr,
    sni: request.sni,
    client_addr: request.clientAddr,
    decision: explanation.decision,
    explanation: explanation.explanation,
    firewall: { blocked: firewall.blocked, rule: firewall.rule, country: firewall.country ?? "" },
    limits: {
      max_connections: limits.maxConnections,
      admitted: limits.admitted,
      max_connections_per_ip: limits.maxConnectionsPerIp,
      from_client: limits.fromClient,
      would_exceed: limits.wouldExceed,
    },
    route: {
      matched: route.matched,
      backends: route.backends.map((backend) => ({
        addr: backend.addr,
        weight: backend.weight,
        up: backend.up,
        connections_active: backend.connectionsActive,
      })),
      route:
        route.route === null
          ? null
          : {
              hostname: route.route.hostname,
              backend: route.route.backend,
              backends: route.route.backends,
              balance: route.route.balance,
              health_check: route.route.healthCheck,
              health_check_path: route.route.healthCheckPath,
              mode: route.route.mode,
              tls_cert: route.route.tlsCert,
              tls_key: route.route.tlsKey,
              backend_tls: route.route.backendTls,
              send_proxy_protocol: route.route.sendProxyProtocol,
            },
    },
  };
}

const explainArgs = {
  ...connectionArgs,
  listener: {
    type: "string",
    description: "listener addr as configured, e.g. :443 (required)",
    valueHint: "addr",
  },
  sni: {
    type: "string",
    description: "the SNI name the client sends (leave out for a ClientHello without SNI)",
    valueHint: "name",
  },
  client: {
    type: "string",
    description: "client IP address, port optional (required)",
    valueHint: "addr",
  },
} satisfies ArgsDef;

export const explainCommand = defineCommand({
  meta: {
    name: "explain",
    description:
      "Show the decision the proxy would take now for a client and SNI name: firewall, limits, route",
  },
  args: explainArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("explain", rawArgs, explainArgs);
    if (!args.listener) throw new UsageError("explain: --listener is required");
    if (!args.client) throw new UsageError("explain: --client is required");
    const request: ExplainRequest = {
      listenerAddr: args.listener,
      sni: args.sni ?? "",
      clientAddr: args.client,
    };
    const explanation = await withClient(args, (client) => client.explain(request));
    if (args.json) {
      printJson(explanationJson(request, explanation));
      return;
    }
    process.stdout.write(formatExplanation(request, explanation));
  },
});
