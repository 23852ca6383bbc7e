// `mcproxyctl routes list|add|remove`: a listener's route table through the admin API.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import type { BackendInput } from "../../domain/reports.ts";
import { routeToRecord } from "../../domain/route-fields.ts";
import type { RouteSpec } from "../../domain/types.ts";
import { UsageError } from "../errors.ts";
import { alignColumns } from "../status.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags, repeatedFlag } from "./flags.ts";

/** Option tags shown by `routes list`: what the route does besides forwarding. */
export function routeTags(route: RouteSpec): string[] {
  const tags: string[] = [];
  if (route.backends.length > 1) tags.push(route.balance.replace("_", "-"));
  if (route.healthCheck === "http") tags.push(`check=http:${route.healthCheckPath}`);
  else if (route.healthCheck !== "none") tags.push(`check=${route.healthCheck}`);
  if (route.backendTls) tags.push("backend-tls");
  if (route.sendProxyProtocol) tags.push("proxy-v2");
  return tags;
}

/** `10.0.0.5:443,10.0.0.6:443=2`: the backends as `--backend` takes them, weight 1 left out. */
export function formatBackends(route: RouteSpec): string {
  return route.backends
    .map((backend) => (backend.weight === 1 ? backend.addr : `${backend.addr}=${backend.weight}`))
    .join(",");
}

/**
 * `--backend` values: `host:port`, or `host:port=weight`. The weight is checked by the server
 * (1-1000) with the rest of the route; here only that it is a number.
 */
export function parseBackendFlag(text: string): BackendInput {
  const equals = text.indexOf("=");
  if (equals === -1) return { addr: text };
  const weightText = text.slice(equals + 1);
  if (!/^\d+$/.test(weightText)) {
    throw new UsageError(
      `routes add: --backend ${JSON.stringify(text)}: expected host:port or host:port=weight (weight 1-1000)`,
    );
  }
  return { addr: text.slice(0, equals), weight: Number(weightText) };
}

/** The routes table: listener, hostname, backend(s), mode, options (`-` for none). */
export function formatRoutesTable(rows: { listenerAddr: string; route: RouteSpec }[]): string {
  const header = ["LISTENER", "HOSTNAME", "BACKEND", "MODE", "OPTIONS"];
  const body = rows.map(({ listenerAddr, route }) => [
    listenerAddr,
    route.hostname,
    formatBackends(route),
    route.mode,
    routeTags(route).join(",") || "-",
  ]);
  return `${alignColumns([header, ...body]).join("\n")}\n`;
}

/** A route in the admin API's JSON names (snake_case, as grpcurl shows them). */
function routeJson(listenerAddr: string, route: RouteSpec) {
  return { listener_addr: listenerAddr, ...routeToRecord(route, (flag) => flag) };
}

const listArgs = {
  ...connectionArgs,
  listener: {
    type: "string",
    description: "only this listener (its addr as configured, e.g. :443)",
    valueHint: "addr",
  },
} satisfies ArgsDef;

const listCommand = defineCommand({
  meta: { name: "list", description: "List every listener's routes, or one listener's" },
  args: listArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("routes list", rawArgs, listArgs);
    const listeners = await withClient(args, (client) =>
      client.listRoutes(args.listener || undefined),
    );
    const rows = listeners.flatMap(({ listenerAddr, routes }) =>
      routes.map((route) => ({ listenerAddr, route })),
    );
    if (args.json) {
      printJson(rows.map(({ listenerAddr, route }) => routeJson(listenerAddr, route)));
      return;
    }
    process.stdout.write(formatRoutesTable(rows));
  },
});

const addArgs = {
  ...connectionArgs,
  listener: {
    type: "string",
    description: "listener addr, e.g. :443 (required)",
    valueHint: "addr",
  },
  hostname: {
    type: "string",
    description: "exact name or *.parent.domain (required)",
    valueHint: "name",
  },
  backend: {
    type: "string",
    description:
      "host:port, or host:port=weight (required; repeat for several backends: --backend A --backend B)",
    valueHint: "host:port[=weight]",
  },
  balance: {
    type: "enum",
    options: ["least_connections", "round_robin"],
    description: "how several backends share connections (default least_connections)",
  },
  "health-check": {
    type: "enum",
    options: ["none", "tcp", "tls", "http"],
    description: "active health checks of the backends (default none; http for l7 routes)",
  },
  "health-check-path": {
    type: "string",
    description: "health-check http: the path requested (default /)",
    valueHint: "path",
  },
  mode: {
    type: "enum",
    options: ["l4", "l7"],
    description: "l4 passes TLS through (default); l7 terminates it",
  },
  "tls-cert": { type: "string", description: "l7: PEM certificate chain path", valueHint: "path" },
  "tls-key": { type: "string", description: "l7: PEM private key path", valueHint: "path" },
  "backend-tls": { type: "boolean", description: "l7: speak TLS to the backend", default: false },
  "send-proxy-protocol": {
    type: "boolean",
    description: "prepend a PROXY v2 header to the backend stream",
    default: false,
  },
} satisfies ArgsDef;

/** A required string flag, or a UsageError naming it. */
function required(command: string, flag: string, value: string | undefined): string {
  if (!value) throw new UsageError(`${command}: --${flag} is required`);
  return value;
}

const addCommand = defineCommand({
  meta: { name: "add", description: "Add a route to a listener (committed, then applied)" },
  args: addArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("routes add", rawArgs, addArgs);
    const listener = required("routes add", "listener", args.listener);
    const backendFlags = repeatedFlag(rawArgs, "backend");
    if (backendFlags.length === 0) throw new UsageError("routes add: --backend is required");
    const backends = backendFlags.map(parseBackendFlag);
    // One backend without a weight goes as `backend` alone, which every server version takes.
    const single = backends.length === 1 && backends[0]!.weight === undefined;
    const route = {
      hostname: required("routes add", "hostname", args.hostname),
      backend: single ? backends[0]!.addr : "",
      backends: single ? [] : backends,
      balance: args.balance ?? "",
      healthCheck: args["health-check"] ?? "",
      healthCheckPath: args["health-check-path"] ?? "",
      mode: args.mode ?? "l4",
      tlsCert: args["tls-cert"] ?? "",
      tlsKey: args["tls-key"] ?? "",
      backendTls: args["backend-tls"],
      sendProxyProtocol: args["send-proxy-protocol"],
    };
    await withClient(args, (client) => client.addRoute(listener, route));
    if (args.json) {
      printJson({ added: { listener_addr: listener, hostname: route.hostname } });
      return;
    }
    const targets = backends.map((backend) => backend.addr).join(", ");
    process.stdout.write(`added route ${route.hostname} -> ${targets} on ${listener}\n`);
  },
});

const removeArgs = {
  ...connectionArgs,
  listener: { type: "string", description: "listener addr (required)", valueHint: "addr" },
  hostname: { type: "string", description: "the route's hostname (required)", valueHint: "name" },
} satisfies ArgsDef;

const removeCommand = defineCommand({
  meta: { name: "remove", description: "Remove a route from a listener" },
  args: removeArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("routes remove", rawArgs, removeArgs);
    const listener = required("routes remove", "listener", args.listener);
    const hostname = required("routes remove", "hostname", args.hostname);
    await withClient(args, (client) => client.removeRoute(listener, hostname));
    if (args.json) {
      printJson({ removed: { listener_addr: listener, hostname } });
      return;
    }
    process.stdout.write(`removed route ${hostname} from ${listener}\n`);
  },
});

export const routesCommand = defineCommand({
  meta: { name: "routes", description: "List, add or remove routes" },
  subCommands: { list: listCommand, add: addCommand, remove: removeCommand },
});
