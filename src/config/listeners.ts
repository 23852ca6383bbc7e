// [[listeners]] and their [[listeners.routes]] → ListenerSpec[], with per-listener checks.
import type { RouteInput } from "../domain/reports.ts";
import { ROUTE_FIELD_NAMES, ROUTE_FIELDS } from "../domain/route-fields.ts";
import type { ListenerSpec, RouteSpec } from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";
import { formatCidr, parseCidr, parseIp } from "../ip/ip.ts";
import { ConfigError } from "./config-error.ts";
import { validateRoute } from "./route.ts";
import { CONFIG_KEYS, DEFAULTS } from "./schema.ts";
import { keyPath, quote, TableFields, type TomlTable } from "./toml-fields.ts";

/** Turns a path from the config into an absolute one ("" stays ""). */
export type PathResolver = (path: string) => string;

/** Reads every listener. Overlap between listeners is checked by the caller, with the other binds. */
export function readListeners(tables: TomlTable[], resolvePath: PathResolver): ListenerSpec[] {
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

function readListener(fields: TableFields, resolvePath: PathResolver): ListenerSpec {
  const defaults = DEFAULTS.listener;
  const addr = fields.requiredString("addr");
  // Port 0 lets the kernel pick (tests); an empty host is every interface (SPEC §2).
  const parsed = parseHostPort(addr, { allowEmptyHost: true, allowPortZero: true });
  if ("error" in parsed)
    throw new ConfigError(`${fields.at("addr")} ${quote(addr)}: ${parsed.error}`);

  const proxyProtocol = fields.boolean("proxy_protocol", defaults.proxy_protocol);
  const proxyProtocolFrom = fields
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
  return { addr, proxyProtocol, proxyProtocolFrom, maxConnections, maxConnectionsPerIp, routes };
}

/** A CIDR in canonical form; a bare address is its own /32 or /128. */
function parseTrustedSource(text: string): { cidr: string } | { error: string } {
  if (!text.includes("/")) {
    const ip = parseIp(text);
    if (ip === null) return { error: "expected a CIDR or an IP address" };
    const prefixLength = ip.family === 4 ? 32 : 128;
    return { cidr: formatCidr({ family: ip.family, bytes: ip.bytes, prefixLength }) };
  }
  const parsed = parseCidr(text);
  if ("error" in parsed) return { error: parsed.error };
  return { cidr: formatCidr(parsed.cidr) };
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
const FIELD_ERROR = /^(hostname|backend|mode) "/;

function readRoute(fields: TableFields, resolvePath: PathResolver): RouteSpec {
  const defaults: Record<string, string | boolean> = DEFAULTS.route;
  // Every field of ROUTE_FIELDS, in its order: required text, else its kind with its default.
  const input: Record<string, string | boolean> = {};
  for (const name of ROUTE_FIELD_NAMES) {
    const { key, kind, required } = ROUTE_FIELDS[name];
    if (required) input[name] = fields.requiredString(key);
    else if (kind === "flag") input[name] = fields.boolean(key, defaults[key] as boolean);
    else {
      const text = fields.string(key, defaults[key] as string);
      input[name] = kind === "path" ? resolvePath(text) : text;
    }
  }
  const hostname = input.hostname as string;
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
