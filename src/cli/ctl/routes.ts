// `mcproxyctl routes list|add|remove`: a listener's route table through the admin API.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import { routeToRecord } from "../../domain/route-fields.ts";
import type { RouteSpec } from "../../domain/types.ts";
import { UsageError } from "../errors.ts";
import { alignColumns } from "../status.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags } from "./flags.ts";

/** Option tags shown by `routes list`: what the route does besides forwarding. */
export function routeTags(route: RouteSpec): string[] {
  const tags: string[] = [];
  if (route.backendTls) tags.push("backend-tls");
  if (route.sendProxyProtocol) tags.push("proxy-v2");
  return tags;
}

/** The routes table: listener, hostname, backend, mode, options (`-` for none). */
export function formatRoutesTable(rows: { listenerAddr: string; route: RouteSpec }[]): string {
  const header = ["LISTENER", "HOSTNAME", "BACKEND", "MODE", "OPTIONS"];
  const body = rows.map(({ listenerAddr, route }) => [
    listenerAddr,
    route.hostname,
    route.backend,
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
  backend: { type: "string", description: "host:port (required)", valueHint: "host:port" },
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
    const route = {
      hostname: required("routes add", "hostname", args.hostname),
      backend: required("routes add", "backend", args.backend),
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
    process.stdout.write(`added route ${route.hostname} -> ${route.backend} on ${listener}\n`);
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
