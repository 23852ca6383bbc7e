// [[listeners]] and their [[listeners.routes]] → ListenerSpec[], with per-listener checks.
import type { BackendInput, RouteInput } from "../domain/reports.ts";
import { ROUTE_FIELD_NAMES, ROUTE_FIELDS } from "../domain/route-fields.ts";
import { type Cidr, ParsedListener, type RouteSpec } from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";
import { formatCidr, parseCidr, parseIp } from "../ip/ip.ts";
import { ConfigError } from "./config-error.ts";
import { validateRoute } from "./route.ts";
import { CONFIG_KEYS, DEFAULTS } from "./schema.ts";
import {
  describeValue,
  isTable,
  keyPath,
  quote,
  TableFields,
  type TomlTable,
} from "./toml-fields.ts";

/** Turns a path from the config into an absolute one ("" stays ""). */
export type PathResolver = (path: string) => string;

/** Reads every listener. Overlap between listeners is checked by the caller, with the other binds. */
export function readListeners(tables: TomlTable[], resolvePath: PathResolver): ParsedListener[] {
  // A proxy without a listener would start, accept nothing and look healthy.
  if (tables.length === 0) {
    throw new ConfigError("listeners: at least one [[listeners]] is required");
  }
  return tables.map((table, index) =>
    readListener(
      new TableFields(table, keyPath("listeners", index), CONFIG_KEYS.listener),
      resolvePath,
    ),
  );
}

function readListener(fields: TableFields, resolvePath: PathResolver): ParsedListener {
  const defaults = DEFAULTS.listener;
  const addr = fields.requiredString("addr");
  // The one parse of a listener's address: the bind checks and Bun.listen use this value.
  // Port 0 lets the kernel pick (tests); an empty host is every interface (SPEC §2).
  const bind = parseHostPort(addr, { allowEmptyHost: true, allowPortZero: true });
  if ("error" in bind) throw new ConfigError(`${fields.at("addr")} ${quote(addr)}: ${bind.error}`);

  const proxyProtocol = fields.boolean("proxy_protocol", defaults.proxy_protocol);
  // The one parse of proxy_protocol_from: the networks go to ListenerState as they are; the
  // canonical text is for show (Config, logs), never parsed again.
  const trustedFrom = fields
    .stringArray("proxy_protocol_from", defaults.proxy_protocol_from)
    .map((text, index) => {
      const result = parseTrustedSource(text);
      if ("error" in result) {
        throw new ConfigError(
          `${keyPath(fields.at("proxy_protocol_from"), index)} ${quote(text)}: ${result.error}`,
        );
      }
      return result.cidr;
    });
  const proxyProtocolFrom = trustedFrom.map(formatCidr);
  // The allow-list is enforced as part of PROXY protocol handling (SPEC §6); without it the
  // operator would believe the port is restricted while anyone can connect.
  if (proxyProtocolFrom.length > 0 && !proxyProtocol) {
    throw new ConfigError(
      `${fields.at("proxy_protocol_from")}: set but proxy_protocol is false (it would do nothing; set proxy_protocol = true or remove it)`,
    );
  }

  const maxConnections = fields.count("max_connections", defaults.max_connections);
  const maxConnectionsPerIp = fields.count(
    "max_connections_per_ip",
    defaults.max_connections_per_ip,
  );
  if (maxConnections > 0 && maxConnectionsPerIp > maxConnections) {
    throw new ConfigError(
      `${fields.at("max_connections_per_ip")} ${maxConnectionsPerIp}: must not exceed max_connections (${maxConnections})`,
    );
  }

  const routes = readRoutes(fields, resolvePath);
  return new ParsedListener(
    { addr, proxyProtocol, proxyProtocolFrom, maxConnections, maxConnectionsPerIp, routes },
    bind.value,
    trustedFrom,
  );
}

/** A network; a bare address is its own /32 or /128. */
function parseTrustedSource(text: string): { cidr: Cidr } | { error: string } {
  if (!text.includes("/")) {
    const ip = parseIp(text);
    if (ip === null) return { error: "expected a CIDR or an IP address" };
    const prefixLength = ip.family === 4 ? 32 : 128;
    return { cidr: { family: ip.family, bytes: ip.bytes, prefixLength } };
  }
  return parseCidr(text);
}

function readRoutes(listener: TableFields, resolvePath: PathResolver): RouteSpec[] {
  const routesPath = listener.at("routes");
  const firstIndexByHostname = new Map<string, number>();
  return listener.tableArray("routes").map((table, index) => {
    const fields = new TableFields(table, keyPath(routesPath, index), CONFIG_KEYS.route);
    const route = readRoute(fields, resolvePath);
    const first = firstIndexByHostname.get(route.hostname);
    // Two routes for one name would make the winner depend on insertion order.
    if (first !== undefined) {
      throw new ConfigError(
        `${fields.at("hostname")} ${quote(fields.string("hostname", ""))}: duplicate hostname (same as ${keyPath(routesPath, first)})`,
      );
    }
    firstIndexByHostname.set(route.hostname, index);
    return route;
  });
}

// validateRoute names the field first (`backend "x": …`) for these; other errors are about
// the route as a whole.
const FIELD_ERROR =
  /^(hostname "|backend "|backends(\[\d+\])?[ :.]|mode "|balance "|health_check "|health_check_path ")/;

/** Keys of one `{ addr = "…", weight = 2 }` entry of `backends`. */
const BACKEND_KEYS = ["addr", "weight"] as const;

function readRoute(fields: TableFields, resolvePath: PathResolver): RouteSpec {
  const defaults: Record<string, string | boolean> = DEFAULTS.route;
  // Every field of ROUTE_FIELDS, in its order: required text, else its kind with its default;
  // backend and backends below (one of the two is required).
  const input: Record<string, unknown> = {};
  for (const name of ROUTE_FIELD_NAMES) {
    const { key, kind, required } = ROUTE_FIELDS[name];
    if (name === "backend" || kind === "backends") continue;
    if (required) input[name] = fields.requiredString(key);
    else if (kind === "flag") input[name] = fields.boolean(key, defaults[key] as boolean);
    else {
      const text = fields.string(key, defaults[key] as string);
      input[name] = kind === "path" ? resolvePath(text) : text;
    }
  }
  const hostname = input.hostname as string;
  const backends = readBackends(fields);
  if (backends !== null && fields.table.backend !== undefined) {
    throw new ConfigError(
      `${fields.path} (hostname ${quote(hostname)}): backend and backends are both set; use one`,
    );
  }
  // The message for neither is the one the runbook has always named.
  input.backend = backends === null ? fields.requiredString("backend") : "";
  if (backends !== null) input.backends = backends;
  // Same validation as the admin API's AddRoute, so both refuse the same things in the same words.
  const result = validateRoute(input as unknown as RouteInput);
  if ("error" in result) {
    throw new ConfigError(
      FIELD_ERROR.test(result.error)
        ? `${fields.path}.${result.error}`
        : `${fields.path} (hostname ${quote(hostname)}): ${result.error}`,
    );
  }
  return result.route;
}

/**
 * `backends = ["10.0.0.5:443", { addr = "10.0.0.6:443", weight = 2 }]`: a plain string is a
 * backend of weight 1. Null when the key is absent.
 */
function readBackends(fields: TableFields): BackendInput[] | null {
  const value = fields.table.backends;
  if (value === undefined) return null;
  const path = fields.at("backends");
  if (!Array.isArray(value)) {
    throw new ConfigError(
      `${path}: expected an array of "host:port" strings or { addr, weight } tables, got ${describeValue(value)}`,
    );
  }
  if (value.length === 0) throw new ConfigError(`${path}: at least one backend is required`);
  return value.map((item, index): BackendInput => {
    const itemPath = keyPath(path, index);
    if (typeof item === "string") return { addr: item };
    if (!isTable(item)) {
      throw new ConfigError(
        `${itemPath}: expected "host:port" or { addr = "host:port", weight = 1 }, got ${describeValue(item)}`,
      );
    }
    const entry = new TableFields(item, itemPath, BACKEND_KEYS);
    const addr = entry.requiredString("addr");
    const weight = entry.table.weight;
    if (
      weight !== undefined &&
      (typeof weight !== "number" || !Number.isSafeInteger(weight) || weight < 1)
    ) {
      throw new ConfigError(
        `${entry.at("weight")}: expected an integer from 1 to 1000, got ${describeValue(weight)}`,
      );
    }
    return weight === undefined ? { addr } : { addr, weight };
  });
}
