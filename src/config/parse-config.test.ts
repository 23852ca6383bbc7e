import { describe, expect, test } from "bun:test";
import type { Config, RouteSpec } from "../domain/types.ts";
import { ConfigError } from "./config-error.ts";
import { parseConfig } from "./parse-config.ts";

const SOURCE = "/etc/mc-proxy/mc-proxy.toml";

// SPEC §2 as written, every key present.
const SPEC_EXAMPLE = `
[database]
path = "/srv/mc-proxy/mc-proxy.db"        # required

[[listeners]]
addr = ":443"
proxy_protocol = false
proxy_protocol_from = []
max_connections = 0
max_connections_per_ip = 0

  [[listeners.routes]]
  hostname = "metacircular.net"
  backend = "127.0.0.1:28443"
  mode = "l4"
  tls_cert = ""
  tls_key = ""
  backend_tls = false
  send_proxy_protocol = false

[grpc]
addr = "127.0.0.1:9090"
tls_cert = "/srv/mc-proxy/certs/cert.pem"
tls_key = "/srv/mc-proxy/certs/key.pem"
client_ca = "/srv/mc-proxy/certs/ca.pem"
client_cert = "/srv/mc-proxy/certs/admin.pem"
client_key = "/srv/mc-proxy/certs/admin-key.pem"

[firewall]
geoip_db = "/srv/mc-proxy/GeoLite2-Country.mmdb"
blocked_ips = ["203.0.113.50"]
blocked_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
blocked_countries = ["RU"]

[metrics]
addr = "127.0.0.1:9102"

[proxy]
connect_timeout = "5s"
hello_timeout = "10s"
idle_timeout = "300s"
shutdown_timeout = "30s"
backend_ca = ""
`;

/** The [proxy] health-check keys' defaults. */
const HEALTH_DEFAULTS = {
  healthCheckIntervalMs: 5_000,
  healthCheckTimeoutMs: 2_000,
  backendHoldDownMs: 10_000,
} as const;

/** A route's backend fields for one backend named by `backend`. */
function one(
  backend: string,
): Pick<RouteSpec, "backend" | "backends" | "balance" | "healthCheck" | "healthCheckPath"> {
  return {
    backend,
    backends: [{ addr: backend, weight: 1 }],
    balance: "least_connections",
    healthCheck: "none",
    healthCheckPath: "",
  };
}

const L4_DEFAULTS = {
  mode: "l4",
  tlsCert: "",
  tlsKey: "",
  backendTls: false,
  sendProxyProtocol: false,
} as const;

test("the SPEC §2 example parses into the exact Config", () => {
  const expected: Config = {
    sourcePath: SOURCE,
    database: { path: "/srv/mc-proxy/mc-proxy.db" },
    listeners: [
      {
        addr: ":443",
        proxyProtocol: false,
        proxyProtocolFrom: [],
        maxConnections: 0,
        maxConnectionsPerIp: 0,
        routes: [{ hostname: "metacircular.net", ...one("127.0.0.1:28443"), ...L4_DEFAULTS }],
      },
    ],
    grpc: {
      addr: "127.0.0.1:9090",
      tlsCert: "/srv/mc-proxy/certs/cert.pem",
      tlsKey: "/srv/mc-proxy/certs/key.pem",
      clientCa: "/srv/mc-proxy/certs/ca.pem",
      clientCert: "/srv/mc-proxy/certs/admin.pem",
      clientKey: "/srv/mc-proxy/certs/admin-key.pem",
      insecure: false,
      serverCa: "",
    },
    firewall: {
      geoipDb: "/srv/mc-proxy/GeoLite2-Country.mmdb",
      rules: [
        { type: "ip", value: "203.0.113.50" },
        { type: "cidr", value: "198.51.100.0/24" },
        { type: "cidr", value: "2001:db8::/32" },
        { type: "country", value: "RU" },
      ],
    },
    metrics: { addr: "127.0.0.1:9102" },
    proxy: {
      connectTimeoutMs: 5_000,
      helloTimeoutMs: 10_000,
      headerTimeoutMs: 30_000,
      bodyIdleTimeoutMs: 60_000,
      idleTimeoutMs: 300_000,
      shutdownTimeoutMs: 30_000,
      ...HEALTH_DEFAULTS,
      backendCa: "",
      workers: 1,
    },
  };
  expect(parseConfig(SPEC_EXAMPLE, SOURCE)).toEqual(expected);
});

test("every key with a non-default value lands in its field", () => {
  const text = `
[database]
path = "data/mc-proxy.db"

[[listeners]]
addr = "[::1]:8443"
proxy_protocol = true
proxy_protocol_from = ["10.0.0.0/8", "192.0.2.7", "2001:DB8::1", "2001:db8:1::/48"]
max_connections = 1000
max_connections_per_ip = 20

  [[listeners.routes]]
  hostname = "App.Example.COM."
  backend = "[::1]:8080"
  mode = "l7"
  tls_cert = "certs/app.pem"
  tls_key = "/abs/app-key.pem"
  backend_tls = true
  send_proxy_protocol = true

  [[listeners.routes]]
  hostname = "*.example.com"
  backend = "backend.internal:443"
  send_proxy_protocol = true

[[listeners]]
addr = "127.0.0.1:0"

[grpc]
addr = "localhost:0"
tls_cert = "certs/grpc.pem"
tls_key = "certs/grpc-key.pem"

[firewall]
geoip_db = "../geo/Country.mmdb"
blocked_ips = ["::ffff:203.0.113.9", "2001:DB8::50"]
blocked_cidrs = ["2001:DB8::/32", "2001:db8::/32"]
blocked_countries = ["ru", "CN", "RU"]

[metrics]
addr = ":9102"

[proxy]
connect_timeout = "1500ms"
hello_timeout = "1m30s"
idle_timeout = "1h"
shutdown_timeout = "2m"
backend_ca = "ca/backends.pem"
`;
  const expected: Config = {
    sourcePath: SOURCE,
    database: { path: "/etc/mc-proxy/data/mc-proxy.db" },
    listeners: [
      {
        addr: "[::1]:8443",
        proxyProtocol: true,
        proxyProtocolFrom: ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128", "2001:db8:1::/48"],
        maxConnections: 1000,
        maxConnectionsPerIp: 20,
        routes: [
          {
            hostname: "app.example.com",
            ...one("[::1]:8080"),
            mode: "l7",
            tlsCert: "/etc/mc-proxy/certs/app.pem",
            tlsKey: "/abs/app-key.pem",
            backendTls: true,
            sendProxyProtocol: true,
          },
          {
            hostname: "*.example.com",
            ...one("backend.internal:443"),
            ...L4_DEFAULTS,
            sendProxyProtocol: true,
          },
        ],
      },
      {
        addr: "127.0.0.1:0",
        proxyProtocol: false,
        proxyProtocolFrom: [],
        maxConnections: 0,
        maxConnectionsPerIp: 0,
        routes: [],
      },
    ],
    grpc: {
      addr: "localhost:0",
      tlsCert: "/etc/mc-proxy/certs/grpc.pem",
      tlsKey: "/etc/mc-proxy/certs/grpc-key.pem",
      clientCa: "",
      clientCert: "",
      clientKey: "",
      insecure: false,
      serverCa: "",
    },
    firewall: {
      geoipDb: "/etc/geo/Country.mmdb",
      rules: [
        { type: "ip", value: "203.0.113.9" },
        { type: "ip", value: "2001:db8::50" },
        { type: "cidr", value: "2001:db8::/32" },
        { type: "country", value: "RU" },
        { type: "country", value: "CN" },
      ],
    },
    metrics: { addr: ":9102" },
    proxy: {
      connectTimeoutMs: 1_500,
      helloTimeoutMs: 90_000,
      headerTimeoutMs: 30_000,
      bodyIdleTimeoutMs: 60_000,
      idleTimeoutMs: 3_600_000,
      shutdownTimeoutMs: 120_000,
      ...HEALTH_DEFAULTS,
      backendCa: "/etc/mc-proxy/ca/backends.pem",
      workers: 1,
    },
  };
  expect(parseConfig(text, SOURCE)).toEqual(expected);
});

const MINIMAL = `[database]\npath = "/srv/mc-proxy/mc-proxy.db"\n[[listeners]]\naddr = ":443"\n`;

test("absent sections and keys take the SPEC §2 defaults", () => {
  expect(parseConfig(MINIMAL, SOURCE)).toEqual({
    sourcePath: SOURCE,
    database: { path: "/srv/mc-proxy/mc-proxy.db" },
    listeners: [
      {
        addr: ":443",
        proxyProtocol: false,
        proxyProtocolFrom: [],
        maxConnections: 0,
        maxConnectionsPerIp: 0,
        routes: [],
      },
    ],
    grpc: null,
    firewall: { geoipDb: "", rules: [] },
    metrics: null,
    proxy: {
      connectTimeoutMs: 5_000,
      helloTimeoutMs: 10_000,
      headerTimeoutMs: 30_000,
      bodyIdleTimeoutMs: 60_000,
      idleTimeoutMs: 300_000,
      shutdownTimeoutMs: 30_000,
      ...HEALTH_DEFAULTS,
      backendCa: "",
      workers: 1,
    },
  });
});

test("an absent route mode, cert and flags default to a plain l4 route", () => {
  const text = `${MINIMAL}[[listeners.routes]]\nhostname = "a.example.com"\nbackend = "127.0.0.1:1"\n`;
  const route: RouteSpec = { hostname: "a.example.com", ...one("127.0.0.1:1"), ...L4_DEFAULTS };
  expect(parseConfig(text, SOURCE).listeners[0]!.routes).toEqual([route]);
});

test.each([
  ["/etc/mc-proxy/mc-proxy.toml", "mc.db", "/etc/mc-proxy/mc.db"],
  ["/etc/mc-proxy/mc-proxy.toml", "./data/mc.db", "/etc/mc-proxy/data/mc.db"],
  ["/etc/mc-proxy/mc-proxy.toml", "../var/mc.db", "/etc/var/mc.db"],
  ["/etc/mc-proxy/mc-proxy.toml", "/srv/mc-proxy/mc.db", "/srv/mc-proxy/mc.db"],
  ["/etc/mc-proxy/../mc.toml", "mc.db", "/etc/mc.db"],
])("with the config at %p, path %p resolves to %p", (source, path, expected) => {
  const text = `[database]\npath = "${path}"\n[[listeners]]\naddr = ":443"\n`;
  expect(parseConfig(text, source).database.path).toBe(expected);
});

test("a relative config path is made absolute from the working directory", () => {
  const config = parseConfig(MINIMAL.replace("/srv/mc-proxy/mc-proxy.db", "mc.db"), "conf/mc.toml");
  expect(config.sourcePath).toBe(`${process.cwd()}/conf/mc.toml`);
  expect(config.database.path).toBe(`${process.cwd()}/conf/mc.db`);
});

test("every path key is resolved against the config's directory", () => {
  const text = `
[database]
path = "db"
[[listeners]]
addr = ":443"
  [[listeners.routes]]
  hostname = "a.example.com"
  backend = "127.0.0.1:1"
  mode = "l7"
  tls_cert = "c"
  tls_key = "k"
[grpc]
addr = "127.0.0.1:9090"
tls_cert = "gc"
tls_key = "gk"
client_ca = "ca"
client_cert = "cc"
client_key = "ck"
[firewall]
geoip_db = "geo"
[proxy]
backend_ca = "bca"
`;
  const config = parseConfig(text, "/x/y/mc.toml");
  const route = config.listeners[0]!.routes[0]!;
  expect([
    config.database.path,
    route.tlsCert,
    route.tlsKey,
    config.grpc?.tlsCert,
    config.grpc?.tlsKey,
    config.grpc?.clientCa,
    config.grpc?.clientCert,
    config.grpc?.clientKey,
    config.firewall.geoipDb,
    config.proxy.backendCa,
  ]).toEqual(["db", "c", "k", "gc", "gk", "ca", "cc", "ck", "geo", "bca"].map((p) => `/x/y/${p}`));
});

test.each([
  ["port 0 twice (the kernel picks two ports)", `[[listeners]]\naddr = ":0"\n`],
  ["one port on two specific IPv4 hosts", `[[listeners]]\naddr = "127.0.0.2:443"\n`],
  [
    "an inline array of route tables",
    `routes = [{ hostname = "a.example.com", backend = "b:1" }]\n`,
  ],
  [
    "the same hostname on two listeners",
    `[[listeners.routes]]\nhostname = "a.b.c"\nbackend = "b:1"\n[[listeners]]\naddr = ":8443"\n[[listeners.routes]]\nhostname = "A.B.C"\nbackend = "b:2"\n`,
  ],
  ["geoip_db without country rules", `[firewall]\ngeoip_db = "geo.mmdb"\n`],
  ["limits equal", `max_connections = 5\nmax_connections_per_ip = 5\n`],
  ["a per-IP limit without a total limit", `max_connections_per_ip = 5\n`],
  ["an empty proxy_protocol_from without proxy_protocol", `proxy_protocol_from = []\n`],
  [
    "an empty mode (means l4, as in the admin API)",
    `[[listeners.routes]]\nhostname = "a.b.c"\nbackend = "b:1"\nmode = ""\n`,
  ],
  [
    "several backends with weights, a policy and a check",
    `[[listeners.routes]]\nhostname = "a.b.c"\nbackends = ["b:1", { addr = "[::1]:2", weight = 3 }]\nbalance = "round_robin"\nhealth_check = "tls"\n`,
  ],
])("accepted: %s", (_name, rest) => {
  const base = `[database]\npath = "/db"\n[[listeners]]\naddr = "127.0.0.1:${rest.includes(":0") ? 0 : 443}"\n`;
  expect(parseConfig(base + rest, SOURCE)).toBeDefined();
});

// A listener with routes[0..2] valid, so that a fourth route is routes[3] as in STYLE.md.
const DB = `[database]\npath = "/srv/mc-proxy/mc-proxy.db"\n`;
const LISTENER = `${DB}[[listeners]]\naddr = ":443"\n`;
const route = (hostname: string, backend: string, extra = "") =>
  `[[listeners.routes]]\nhostname = "${hostname}"\nbackend = "${backend}"\n${extra}`;
const THREE_ROUTES = [1, 2, 3].map((n) => route(`h${n}.example.com`, `127.0.0.1:${n}`)).join("");
const GRPC = `[grpc]\naddr = "127.0.0.1:9090"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n`;

test.each([
  // The two fixed messages the runbook names.
  ["no [database]", `[[listeners]]\naddr = ":443"\n`, "database.path is required"],
  [
    "empty database.path",
    `[database]\npath = ""\n[[listeners]]\naddr = ":443"\n`,
    "database.path is required",
  ],
  [
    "countries without geoip_db",
    `${LISTENER}[firewall]\nblocked_countries = ["RU"]\n`,
    "firewall: geoip_db is required",
  ],
  [
    "countries with an empty geoip_db",
    `${LISTENER}[firewall]\ngeoip_db = ""\nblocked_countries = ["RU"]\n`,
    "firewall: geoip_db is required",
  ],
  // Syntax and structure.
  [
    "TOML syntax",
    `${DB}[[listeners]\n`,
    "invalid TOML at line 3, column 13: expected end of table array declaration",
  ],
  [
    "a redefined key",
    `${DB}[database]\n`,
    "invalid TOML at line 3, column 2: trying to redefine an already defined table or value",
  ],
  [
    "unknown top-level key",
    `${LISTENER}[listners]\n`,
    'unknown key "listners" (allowed: database, listeners, grpc, firewall, metrics, proxy)',
  ],
  [
    "unknown listener key",
    `${LISTENER}max_conns = 5\n`,
    'listeners[0]: unknown key "max_conns" (allowed: addr, proxy_protocol, proxy_protocol_from, max_connections, max_connections_per_ip, routes)',
  ],
  [
    "unknown route key",
    `${LISTENER}${route("a.example.com", "b:1", "tls = true\n")}`,
    'listeners[0].routes[0]: unknown key "tls" (allowed: hostname, backend, backends, balance, health_check, health_check_path, mode, tls_cert, tls_key, backend_tls, send_proxy_protocol)',
  ],
  [
    "unknown database key",
    `[database]\npath = "x"\nfile = "y"\n`,
    'database: unknown key "file" (allowed: path)',
  ],
  [
    "database not a table",
    `database = "x.db"\n`,
    'database: expected a table ([database]), got "x.db"',
  ],
  [
    "wrong type for database.path",
    `[database]\npath = 5\n`,
    "database.path: expected a string, got 5",
  ],
  ["no listeners", DB, "listeners: at least one [[listeners]] is required"],
  ["listeners = []", `listeners = []\n${DB}`, "listeners: at least one [[listeners]] is required"],
  [
    "listeners as a table",
    `${DB}[listeners]\naddr = ":443"\n`,
    "listeners: expected an array of tables, got a table",
  ],
  // Listener fields.
  ["no addr", `${DB}[[listeners]]\nproxy_protocol = true\n`, "listeners[0].addr is required"],
  [
    "addr without port",
    `${DB}[[listeners]]\naddr = "443"\n`,
    'listeners[0].addr "443": missing :port',
  ],
  [
    "addr port too big",
    `${DB}[[listeners]]\naddr = ":70000"\n`,
    'listeners[0].addr ":70000": port out of range (1-65535)',
  ],
  [
    "addr as a number",
    `${DB}[[listeners]]\naddr = 443\n`,
    "listeners[0].addr: expected a string, got 443",
  ],
  [
    "IPv6 without brackets",
    `${DB}[[listeners]]\naddr = "::1:443"\n`,
    'listeners[0].addr "::1:443": IPv6 addresses need brackets: [addr]:port',
  ],
  [
    "max_connections as text",
    `${LISTENER}max_connections = "ten"\n`,
    'listeners[0].max_connections: expected a non-negative integer, got "ten"',
  ],
  [
    "negative max_connections",
    `${LISTENER}max_connections = -1\n`,
    "listeners[0].max_connections: expected a non-negative integer, got -1",
  ],
  [
    "fractional max_connections",
    `${LISTENER}max_connections = 1.5\n`,
    "listeners[0].max_connections: expected a non-negative integer, got 1.5",
  ],
  [
    "nan max_connections",
    `${LISTENER}max_connections = nan\n`,
    "listeners[0].max_connections: expected a non-negative integer, got nan",
  ],
  [
    "a date as max_connections",
    `${LISTENER}max_connections = 1979-05-27T07:32:00Z\n`,
    "listeners[0].max_connections: expected a non-negative integer, got a date (1979-05-27T07:32:00.000Z)",
  ],
  [
    "proxy_protocol as text",
    `${LISTENER}proxy_protocol = "yes"\n`,
    'listeners[0].proxy_protocol: expected true or false, got "yes"',
  ],
  [
    "per-IP limit above the total",
    `${LISTENER}max_connections = 10\nmax_connections_per_ip = 11\n`,
    "listeners[0].max_connections_per_ip 11: must not exceed max_connections (10)",
  ],
  [
    "proxy_protocol_from without proxy_protocol",
    `${LISTENER}proxy_protocol_from = ["10.0.0.0/8"]\n`,
    "listeners[0].proxy_protocol_from: set but proxy_protocol is false (it would do nothing; set proxy_protocol = true or remove it)",
  ],
  [
    "proxy_protocol_from with host bits",
    `${LISTENER}proxy_protocol = true\nproxy_protocol_from = ["10.0.0.0/8", "10.0.0.1/8"]\n`,
    'listeners[0].proxy_protocol_from[1] "10.0.0.1/8": host bits set (did you mean the network address?)',
  ],
  [
    "proxy_protocol_from not an address",
    `${LISTENER}proxy_protocol = true\nproxy_protocol_from = ["balancer"]\n`,
    'listeners[0].proxy_protocol_from[0] "balancer": expected a CIDR or an IP address',
  ],
  [
    "proxy_protocol_from as a string",
    `${LISTENER}proxy_protocol = true\nproxy_protocol_from = "10.0.0.0/8"\n`,
    'listeners[0].proxy_protocol_from: expected an array of strings, got "10.0.0.0/8"',
  ],
  [
    "proxy_protocol_from with a number",
    `${LISTENER}proxy_protocol = true\nproxy_protocol_from = [10]\n`,
    "listeners[0].proxy_protocol_from[0]: expected a string, got 10",
  ],
  // Duplicate and overlapping binds.
  [
    "the same addr twice",
    `${LISTENER}[[listeners]]\naddr = ":443"\n`,
    'listeners[1].addr ":443": duplicate listener (same as listeners[0])',
  ],
  [
    "the same addr twice on port 0 (the addr names the listener)",
    `${DB}[[listeners]]\naddr = ":0"\n[[listeners]]\naddr = ":0"\n`,
    'listeners[1].addr ":0": duplicate listener (same as listeners[0])',
  ],
  [
    "metrics on the admin API's address",
    `${LISTENER}${GRPC}[metrics]\naddr = "127.0.0.1:9090"\n`,
    'metrics.addr "127.0.0.1:9090": same port as grpc.addr "127.0.0.1:9090" on an overlapping host',
  ],
  [
    "every interface and one address on one port",
    `${LISTENER}[[listeners]]\naddr = "127.0.0.1:443"\n`,
    'listeners[1].addr "127.0.0.1:443": same port as listeners[0].addr ":443" on an overlapping host',
  ],
  [
    "one IPv4 address written two ways",
    `${DB}[[listeners]]\naddr = "127.0.0.1:443"\n[[listeners]]\naddr = "[::ffff:127.0.0.1]:443"\n`,
    'listeners[1].addr "[::ffff:127.0.0.1]:443": same port as listeners[0].addr "127.0.0.1:443" on an overlapping host',
  ],
  [
    "the admin API on a listener's port",
    `${DB}[[listeners]]\naddr = ":9090"\n${GRPC}`,
    'grpc.addr "127.0.0.1:9090": same port as listeners[0].addr ":9090" on an overlapping host',
  ],
  // Routes.
  [
    "backend port out of range",
    `${LISTENER}${THREE_ROUTES}${route("x.example.com", "x:99999")}`,
    'listeners[0].routes[3].backend "x:99999": port out of range (1-65535)',
  ],
  [
    "bad hostname",
    `${LISTENER}${route("not a host", "b:1")}`,
    'listeners[0].routes[0].hostname "not a host": expected a DNS name or *.parent.domain',
  ],
  [
    "no hostname",
    `${LISTENER}[[listeners.routes]]\nbackend = "b:1"\n`,
    "listeners[0].routes[0].hostname is required",
  ],
  [
    "no backend",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.b.c"\n`,
    "listeners[0].routes[0].backend is required",
  ],
  [
    "duplicate hostname, case and trailing dot aside",
    `${LISTENER}${THREE_ROUTES}${route("H2.Example.COM.", "127.0.0.1:9")}`,
    'listeners[0].routes[3].hostname "H2.Example.COM.": duplicate hostname (same as listeners[0].routes[1])',
  ],
  [
    "unknown mode",
    `${LISTENER}${route("a.b.c", "b:1", 'mode = "l5"\n')}`,
    'listeners[0].routes[0].mode "l5": expected "l4" or "l7"',
  ],
  [
    "l7 without tls_cert",
    `${LISTENER}${route("a.b.c", "b:1", 'mode = "l7"\ntls_key = "k.pem"\n')}`,
    'listeners[0].routes[0] (hostname "a.b.c"): l7 route needs tls_cert',
  ],
  [
    "l7 without tls_key",
    `${LISTENER}${route("a.b.c", "b:1", 'mode = "l7"\ntls_cert = "c.pem"\n')}`,
    'listeners[0].routes[0] (hostname "a.b.c"): l7 route needs tls_key',
  ],
  [
    "tls_cert on an l4 route",
    `${LISTENER}${route("a.b.c", "b:1", 'tls_cert = "c.pem"\n')}`,
    'listeners[0].routes[0] (hostname "a.b.c"): tls_cert/tls_key are for l7 routes only',
  ],
  [
    "backend_tls on an l4 route",
    `${LISTENER}${route("a.b.c", "b:1", "backend_tls = true\n")}`,
    'listeners[0].routes[0] (hostname "a.b.c"): backend_tls is for l7 routes only',
  ],
  [
    "a route that is not a table",
    `${LISTENER}routes = ["a.b.c"]\n`,
    'listeners[0].routes[0]: expected a table, got "a.b.c"',
  ],
  // [grpc] and [metrics].
  [
    "grpc without addr",
    `${LISTENER}[grpc]\ntls_cert = "c"\ntls_key = "k"\n`,
    "grpc.addr is required",
  ],
  [
    "grpc addr without host",
    `${LISTENER}[grpc]\naddr = ":9090"\n`,
    'grpc.addr ":9090": missing host',
  ],
  // Issue 23, item 3: the admin API off loopback needs mTLS unless insecure is written.
  [
    "grpc on every interface without client_ca",
    `${LISTENER}[grpc]\naddr = "0.0.0.0:9090"\ntls_cert = "c"\ntls_key = "k"\n`,
    'grpc.addr "0.0.0.0:9090": the admin API off loopback requires grpc.client_ca (mTLS); set grpc.insecure = true to serve it without client certificates',
  ],
  [
    "grpc on a LAN address without client_ca",
    `${LISTENER}[grpc]\naddr = "[fd00::1]:9090"\ntls_cert = "c"\ntls_key = "k"\ninsecure = false\n`,
    'grpc.addr "[fd00::1]:9090": the admin API off loopback requires grpc.client_ca (mTLS); set grpc.insecure = true to serve it without client certificates',
  ],
  [
    "grpc.insecure not a boolean",
    `${LISTENER}[grpc]\naddr = "0.0.0.0:9090"\ntls_cert = "c"\ntls_key = "k"\ninsecure = "yes"\n`,
    'grpc.insecure: expected true or false, got "yes"',
  ],
  [
    "grpc without tls_cert",
    `${LISTENER}[grpc]\naddr = "127.0.0.1:9090"\ntls_key = "k"\n`,
    "grpc.tls_cert is required",
  ],
  [
    "grpc without tls_key",
    `${LISTENER}[grpc]\naddr = "127.0.0.1:9090"\ntls_cert = "c"\n`,
    "grpc.tls_key is required",
  ],
  [
    "client_cert without client_key",
    `${LISTENER}${GRPC}client_cert = "admin.pem"\n`,
    'grpc.client_key is required when client_cert is set ("admin.pem")',
  ],
  [
    "client_key without client_cert",
    `${LISTENER}${GRPC}client_key = "admin-key.pem"\n`,
    'grpc.client_cert is required when client_key is set ("admin-key.pem")',
  ],
  [
    "unknown grpc key",
    `${LISTENER}${GRPC}ca = "x"\n`,
    'grpc: unknown key "ca" (allowed: addr, tls_cert, tls_key, client_ca, client_cert, client_key, insecure, server_ca)',
  ],
  ["empty [metrics]", `${LISTENER}[metrics]\n`, "metrics.addr is required"],
  [
    "metrics addr bad",
    `${LISTENER}[metrics]\naddr = "localhost"\n`,
    'metrics.addr "localhost": missing :port',
  ],
  // [firewall].
  [
    "bad blocked ip",
    `${LISTENER}[firewall]\nblocked_ips = ["203.0.113.256"]\n`,
    'firewall.blocked_ips[0] "203.0.113.256": not an IPv4 or IPv6 address',
  ],
  [
    "blocked cidr with host bits",
    `${LISTENER}[firewall]\nblocked_cidrs = ["198.51.100.1/24"]\n`,
    'firewall.blocked_cidrs[0] "198.51.100.1/24": host bits set (did you mean the network address?)',
  ],
  [
    "blocked cidr without length",
    `${LISTENER}[firewall]\nblocked_cidrs = ["198.51.100.0"]\n`,
    'firewall.blocked_cidrs[0] "198.51.100.0": missing /prefix length',
  ],
  [
    "country name instead of code",
    `${LISTENER}[firewall]\ngeoip_db = "g"\nblocked_countries = ["RU", "Russia"]\n`,
    'firewall.blocked_countries[1] "Russia": expected an ISO 3166-1 alpha-2 code such as "RU"',
  ],
  [
    "unknown firewall key",
    `${LISTENER}[firewall]\nblocked_ip = []\n`,
    'firewall: unknown key "blocked_ip" (allowed: geoip_db, blocked_ips, blocked_cidrs, blocked_countries)',
  ],
  // [proxy] durations.
  [
    "duration in words",
    `${LISTENER}[proxy]\nidle_timeout = "5 minutes"\n`,
    'proxy.idle_timeout "5 minutes": expected a duration like "300ms", "5s", "2m", "1h"',
  ],
  [
    "zero duration",
    `${LISTENER}[proxy]\nconnect_timeout = "0s"\n`,
    'proxy.connect_timeout "0s": must be greater than zero',
  ],
  [
    "duration as a number",
    `${LISTENER}[proxy]\nhello_timeout = 10\n`,
    'proxy.hello_timeout: expected a duration string like "300ms", "5s", "2m", "1h", got 10',
  ],
  [
    "duration units out of order",
    `${LISTENER}[proxy]\nshutdown_timeout = "30s1m"\n`,
    'proxy.shutdown_timeout "30s1m": expected a duration like "300ms", "5s", "2m", "1h" (units largest first, once each)',
  ],
  [
    "duration too long",
    `${LISTENER}[proxy]\nidle_timeout = "25h"\n`,
    'proxy.idle_timeout "25h": must be at most 24h',
  ],
  [
    "backend_ca as a bool",
    `${LISTENER}[proxy]\nbackend_ca = true\n`,
    "proxy.backend_ca: expected a string, got true",
  ],
  [
    "backend and backends both",
    `${LISTENER}${route("a.example.com", "b:1", 'backends = ["c:1"]\n')}`,
    'listeners[0].routes[0] (hostname "a.example.com"): backend and backends are both set; use one',
  ],
  [
    "neither backend nor backends",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.example.com"\n`,
    "listeners[0].routes[0].backend is required",
  ],
  [
    "an empty backends",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.example.com"\nbackends = []\n`,
    "listeners[0].routes[0].backends: at least one backend is required",
  ],
  [
    "a bad backend in backends",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.example.com"\nbackends = ["a:1", "b:99999"]\n`,
    'listeners[0].routes[0].backends[1] "b:99999": port out of range (1-65535)',
  ],
  [
    "a weight of 0",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.example.com"\nbackends = [{ addr = "a:1", weight = 0 }]\n`,
    "listeners[0].routes[0].backends[0].weight: expected an integer from 1 to 1000, got 0",
  ],
  [
    "an unknown key in a backend table",
    `${LISTENER}[[listeners.routes]]\nhostname = "a.example.com"\nbackends = [{ addr = "a:1", wieght = 2 }]\n`,
    'listeners[0].routes[0].backends[0]: unknown key "wieght" (allowed: addr, weight)',
  ],
  [
    "an unknown balance",
    `${LISTENER}${route("a.example.com", "b:1", 'balance = "random"\n')}`,
    'listeners[0].routes[0].balance "random": expected "round_robin" or "least_connections"',
  ],
  [
    "an http check on an l4 route",
    `${LISTENER}${route("a.example.com", "b:1", 'health_check = "http"\n')}`,
    'listeners[0].routes[0].health_check "http" is for l7 routes (an l4 backend speaks TLS to the client; use "tls" or "tcp")',
  ],
  [
    "a bad hold-down",
    `${LISTENER}[proxy]\nbackend_hold_down = "0s"\n`,
    'proxy.backend_hold_down "0s": must be greater than zero',
  ],
  [
    "a newline in a value stays escaped",
    `${DB}[[listeners]]\naddr = "a\\nb"\n`,
    'listeners[0].addr "a\\nb": missing :port',
  ],
])("refused: %s", (_name, text, message) => {
  let caught: unknown;
  try {
    parseConfig(text, SOURCE);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.message).toBe(message);
  expect(error.message).not.toMatch(/[\r\n]/);
  expect(error.exitCode).toBe(2);
  expect(error.name).toBe("ConfigError");
});

describe("[proxy] workers", () => {
  const withWorkers = (value: string) =>
    `[database]\npath = "/tmp/x.db"\n\n[[listeners]]\naddr = ":443"\n\n[proxy]\nworkers = ${value}\n`;

  test.each([
    ["1", 1],
    ["4", 4],
    ["64", 64],
    ['"auto"', "auto"],
  ])("workers = %s", (text, expected) => {
    expect(parseConfig(withWorkers(text), SOURCE).proxy.workers).toBe(expected as number | "auto");
  });

  test.each([
    ["0", "proxy.workers 0"],
    ["65", "proxy.workers 65"],
    ["1.5", "proxy.workers 1.5"],
    ['"many"', 'proxy.workers "many"'],
    ["true", "proxy.workers true"],
  ])("workers = %s is refused", (text, prefix) => {
    expect(() => parseConfig(withWorkers(text), SOURCE)).toThrow(
      `${prefix}: expected "auto" or an integer 1-64`,
    );
  });
});

describe("grpc.insecure (issue 23, item 3)", () => {
  test.each([
    ["127.0.0.1:9090", false, false],
    ["[::1]:9090", false, false],
    ["localhost:9090", false, false],
    ["0.0.0.0:9090", true, true],
  ])("%s without client_ca, insecure = %p: accepted", (addr, insecure, expected) => {
    const text = `${LISTENER}[grpc]\naddr = "${addr}"\ntls_cert = "c"\ntls_key = "k"\n${insecure ? "insecure = true\n" : ""}`;
    expect(parseConfig(text, "/etc/mc-proxy/mc-proxy.toml").grpc?.insecure).toBe(expected);
  });

  test("off loopback with client_ca needs no insecure", () => {
    const text = `${LISTENER}[grpc]\naddr = "0.0.0.0:9090"\ntls_cert = "c"\ntls_key = "k"\nclient_ca = "ca.pem"\n`;
    expect(parseConfig(text, "/etc/mc-proxy/mc-proxy.toml").grpc?.clientCa).toBe(
      "/etc/mc-proxy/ca.pem",
    );
  });
});
