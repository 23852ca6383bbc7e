// TOML text → validated, typed Config (SPEC §2): the one place config text is interpreted.
import { dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import {
  FIREWALL_RULE_TYPE_NAMES,
  FIREWALL_RULE_TYPES,
  type FirewallRuleConfigKey,
} from "../domain/firewall-rule-types.ts";
import {
  type Config,
  type FirewallConfig,
  type FirewallRule,
  type FirewallRuleType,
  type GrpcConfig,
  type HostPort,
  ParsedAddress,
  type ProxyTimeouts,
  type WorkerCount,
} from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";
import { bindsOverlap } from "./bind-overlap.ts";
import { ConfigError } from "./config-error.ts";
import { parseDuration } from "./duration.ts";
import { firewallRuleKey, validateFirewallRule } from "./firewall-rule.ts";
import { type PathResolver, readListeners } from "./listeners.ts";
import { isLoopbackHost } from "./loopback.ts";
import { CONFIG_KEYS, DEFAULTS } from "./schema.ts";
import { describeValue, keyPath, quote, TableFields, type TomlTable } from "./toml-fields.ts";

/**
 * Parses and validates a whole config. Throws ConfigError (exit code 2) with one line naming
 * the key path and the value on the first problem found; does no I/O.
 *
 * Relative paths in the file (database.path, certificates, keys, CAs, geoip_db, backend_ca)
 * are resolved against the directory of `sourcePath`, not the working directory: operators
 * run `mc-proxy server -c /etc/mc-proxy/mc-proxy.toml` from anywhere (and systemd from `/`),
 * and a path must mean the same file every time. The result holds absolute paths only.
 */
export function parseConfig(text: string, sourcePath: string): Config {
  const absoluteSource = resolve(sourcePath);
  const baseDir = dirname(absoluteSource);
  const resolvePath: PathResolver = (path) => (path === "" ? "" : resolve(baseDir, path));

  const root = new TableFields(parseToml(text), "", CONFIG_KEYS.root);
  const database = readDatabase(root, resolvePath);
  const listeners = readListeners(root.tableArray("listeners"), resolvePath);
  const grpc = readGrpc(root, resolvePath);
  const firewall = readFirewall(root, resolvePath);
  const metrics = readMetrics(root);
  const proxy = readProxy(root, resolvePath);

  checkBinds([
    ...listeners.map((listener, index) => ({
      owner: keyPath("listeners", index),
      addr: listener.addr,
      bind: listener.bind,
      isListener: true,
    })),
    ...(grpc
      ? [{ owner: "grpc", addr: grpc.addr.addr, bind: grpc.addr.bind, isListener: false }]
      : []),
    ...(metrics
      ? [{ owner: "metrics", addr: metrics.addr, bind: metrics.bind, isListener: false }]
      : []),
  ]);

  return {
    sourcePath: absoluteSource,
    database,
    listeners,
    grpc: grpc?.config ?? null,
    firewall,
    metrics,
    proxy,
  };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0] ?? "";
}

function parseToml(text: string): TomlTable {
  try {
    return parse(text);
  } catch (error) {
    if (error instanceof TomlError) {
      // smol-toml's message is several lines (a code excerpt); keep the reason and position.
      const reason = firstLine(error.message).replace(/^Invalid TOML document: /, "");
      throw new ConfigError(
        `invalid TOML at line ${error.line}, column ${error.column}: ${reason}`,
        { cause: error },
      );
    }
    throw new ConfigError(`invalid TOML: ${firstLine(String(error))}`, { cause: error });
  }
}

/** A section's fields, or an empty table's when the section is absent (defaults apply). */
function sectionFields(root: TableFields, key: keyof typeof CONFIG_KEYS): TableFields {
  return new TableFields(root.section(key) ?? {}, key, CONFIG_KEYS[key]);
}

function readDatabase(root: TableFields, resolvePath: PathResolver): { path: string } {
  // The message is fixed: the runbook names it.
  return { path: resolvePath(sectionFields(root, "database").requiredString("path")) };
}

function readAddress(
  fields: TableFields,
  key: string,
  options: { allowEmptyHost: boolean; allowPortZero: boolean },
): ParsedAddress {
  const addr = fields.requiredString(key);
  const parsed = parseHostPort(addr, options);
  if ("error" in parsed) throw new ConfigError(`${fields.at(key)} ${quote(addr)}: ${parsed.error}`);
  return new ParsedAddress(addr, parsed.value);
}

function readGrpc(
  root: TableFields,
  resolvePath: PathResolver,
): { config: GrpcConfig; addr: ParsedAddress } | null {
  if (root.section("grpc") === undefined) return null;
  const fields = sectionFields(root, "grpc");
  const defaults = DEFAULTS.grpc;
  // A host is required: `status` and `mcproxyctl -c` dial this address, and "" is not dialable.
  const addr = readAddress(fields, "addr", { allowEmptyHost: false, allowPortZero: true });
  const tlsCert = resolvePath(fields.requiredString("tls_cert"));
  const tlsKey = resolvePath(fields.requiredString("tls_key"));
  const clientCa = resolvePath(fields.string("client_ca", defaults.client_ca));
  const clientCert = fields.string("client_cert", defaults.client_cert);
  const clientKey = fields.string("client_key", defaults.client_key);
  const serverCa = resolvePath(fields.string("server_ca", defaults.server_ca));
  if (clientCert !== "" && clientKey === "") {
    throw new ConfigError(
      `grpc.client_key is required when client_cert is set (${quote(clientCert)})`,
    );
  }
  if (clientKey !== "" && clientCert === "") {
    throw new ConfigError(
      `grpc.client_cert is required when client_key is set (${quote(clientKey)})`,
    );
  }
  const insecure = fields.boolean("insecure", defaults.insecure);
  // Without client_ca any TLS client may rewrite routes and the firewall: off loopback that
  // must be asked for in so many words.
  if (clientCa === "" && !insecure && !isLoopbackHost(addr.bind.host)) {
    throw new ConfigError(
      `grpc.addr ${quote(addr.addr)}: the admin API off loopback requires grpc.client_ca (mTLS); set grpc.insecure = true to serve it without client certificates`,
    );
  }
  return {
    config: {
      addr: addr.addr,
      tlsCert,
      tlsKey,
      clientCa,
      clientCert: resolvePath(clientCert),
      clientKey: resolvePath(clientKey),
      insecure,
      serverCa,
    },
    addr,
  };
}

const RULE_LISTS: readonly { key: FirewallRuleConfigKey; type: FirewallRuleType }[] =
  FIREWALL_RULE_TYPE_NAMES.map((type) => ({ key: FIREWALL_RULE_TYPES[type].configKey, type }));

function readFirewall(root: TableFields, resolvePath: PathResolver): FirewallConfig {
  const fields = sectionFields(root, "firewall");
  const defaults = DEFAULTS.firewall;
  const geoipDb = resolvePath(fields.string("geoip_db", defaults.geoip_db));
  const rules: FirewallRule[] = [];
  // Rules are kept once each in canonical form ("2001:DB8::/32" = "2001:db8::/32"): a repeat
  // blocks nothing more, and the store seeds them as a set.
  const seen = new Set<string>();
  for (const { key, type } of RULE_LISTS) {
    fields.stringArray(key, defaults[key]).forEach((value, index) => {
      const result = validateFirewallRule(type, value);
      if ("error" in result) {
        // validateFirewallRule says `cidr "x": reason`; here the key path replaces the type.
        const prefix = `${type} ${JSON.stringify(value)}: `;
        const reason = result.error.startsWith(prefix)
          ? result.error.slice(prefix.length)
          : result.error;
        throw new ConfigError(`${keyPath(fields.at(key), index)} ${quote(value)}: ${reason}`);
      }
      const ruleKey = firewallRuleKey(result.rule);
      if (!seen.has(ruleKey)) {
        seen.add(ruleKey);
        rules.push(result.rule);
      }
    });
  }
  // The message is fixed: the runbook names it.
  if (geoipDb === "" && rules.some((rule) => rule.type === "country")) {
    throw new ConfigError("firewall: geoip_db is required");
  }
  return { geoipDb, rules };
}

function readMetrics(root: TableFields): ParsedAddress | null {
  if (root.section("metrics") === undefined) return null;
  // ":9102" (every interface) is allowed: a container publishes the port it needs.
  const fields = sectionFields(root, "metrics");
  return readAddress(fields, "addr", { allowEmptyHost: true, allowPortZero: true });
}

function readDuration(
  fields: TableFields,
  key: Exclude<keyof typeof DEFAULTS.proxy, "backend_ca">,
): number {
  const value = fields.table[key] ?? DEFAULTS.proxy[key];
  if (typeof value !== "string") {
    throw new ConfigError(
      `${fields.at(key)}: expected a duration string like "300ms", "5s", "2m", "1h", got ${describeValue(value)}`,
    );
  }
  const result = parseDuration(value);
  if ("error" in result)
    throw new ConfigError(`${fields.at(key)} ${quote(value)}: ${result.error}`);
  return result.ms;
}

function readProxy(root: TableFields, resolvePath: PathResolver): ProxyTimeouts {
  const fields = sectionFields(root, "proxy");
  return {
    connectTimeoutMs: readDuration(fields, "connect_timeout"),
    helloTimeoutMs: readDuration(fields, "hello_timeout"),
    idleTimeoutMs: readDuration(fields, "idle_timeout"),
    shutdownTimeoutMs: readDuration(fields, "shutdown_timeout"),
    healthCheckIntervalMs: readDuration(fields, "health_check_interval"),
    healthCheckTimeoutMs: readDuration(fields, "health_check_timeout"),
    backendHoldDownMs: readDuration(fields, "backend_hold_down"),
    backendCa: resolvePath(fields.string("backend_ca", DEFAULTS.proxy.backend_ca)),
    workers: readWorkers(fields),
    headerTimeoutMs: readDuration(fields, "header_timeout"),
    bodyIdleTimeoutMs: readDuration(fields, "body_idle_timeout"),
  };
}

/** The most workers a process runs (the shared admission table has a column per worker). */
export const MAX_WORKER_COUNT = 64;

function readWorkers(fields: TableFields): WorkerCount {
  const value = fields.table.workers ?? DEFAULTS.proxy.workers;
  if (value === "auto") return "auto";
  if (typeof value === "number" && Number.isInteger(value)) {
    if (value >= 1 && value <= MAX_WORKER_COUNT) return value;
  }
  throw new ConfigError(
    `${fields.at("workers")} ${describeValue(value)}: expected "auto" or an integer 1-${MAX_WORKER_COUNT}`,
  );
}

interface Bind {
  /** `listeners[1]`, `grpc` or `metrics`. */
  owner: string;
  addr: string;
  /** `addr` as the section's reader parsed it. */
  bind: HostPort;
  isListener: boolean;
}

/**
 * Refuses two binds of one port on overlapping hosts (listeners, admin API, metrics), and two
 * listeners with the same addr text even on port 0: the text is a listener's identity in the
 * database and the admin API (`listener_addr`), so two of them could not be told apart.
 */
function checkBinds(binds: Bind[]): void {
  for (let later = 1; later < binds.length; later++) {
    for (let earlier = 0; earlier < later; earlier++) {
      const a = binds[earlier]!;
      const b = binds[later]!;
      const where = `${b.owner}.addr ${quote(b.addr)}`;
      if (a.isListener && b.isListener && a.addr === b.addr) {
        throw new ConfigError(`${where}: duplicate listener (same as ${a.owner})`);
      }
      if (bindsOverlap(a.bind, b.bind)) {
        throw new ConfigError(
          `${where}: same port as ${a.owner}.addr ${quote(a.addr)} on an overlapping host`,
        );
      }
    }
  }
}
