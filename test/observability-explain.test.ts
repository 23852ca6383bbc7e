// Explain and the counter snapshot in-process, over a real Runtime: every decision and its order,
// input errors through the admin API, and the `shutdown` end reason counted during a real drain.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { AdminCallError } from "../src/client/index.ts";
import { parseConfig } from "../src/config/parse-config.ts";
import type { FirewallRule } from "../src/domain/types.ts";
import { GeoIpDatabase } from "../src/firewall/geoip.ts";
import { createMemoryLogger } from "../src/log/logger.ts";
import { renderMetrics } from "../src/metrics/prometheus.ts";
import { ExplainError, explain, parseClientAddr } from "../src/runtime/explain.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { collectStats } from "../src/runtime/stats.ts";
import { startServer } from "../src/server/server.ts";
import {
  type AdminCerts,
  type AdminFixture,
  makeAdminCerts,
  startAdminFixture,
} from "./admin-support.ts";
import { makeCa } from "./helpers/certs.ts";
import { proxyConfigText, tempDir } from "./helpers/proxy.ts";
import { clientHelloFor, type HoldBackend, startHoldBackend } from "./helpers/tcp.ts";
import { eventually } from "./helpers/wait.ts";

const GEOIP = resolve(import.meta.dir, "fixtures/geoip/country-a.mmdb"); // .2 RU, .3 CN, .4 DE
const L = ":443";
const LIMITED = "127.0.0.1:8443";

const RULES: FirewallRule[] = [
  { type: "ip", value: "127.0.0.2" },
  { type: "cidr", value: "127.0.1.0/24" },
  { type: "cidr", value: "2001:db8::/32" },
  { type: "country", value: "CN" },
];

let runtime: Runtime;

beforeAll(() => {
  const dir = tempDir("mc-proxy-explain-unit-");
  const l7 = makeCa("explain-unit-ca", dir).issue("l7.test");
  const config = parseConfig(
    proxyConfigText(
      dir,
      `[[listeners]]
addr = "${L}"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "10.0.0.5:443"
  [[listeners.routes]]
  hostname = "*.wild.test"
  backend = "10.0.0.6:443"
  send_proxy_protocol = true
  [[listeners.routes]]
  hostname = "l7.test"
  backend = "10.0.0.7:8080"
  mode = "l7"
  tls_cert = "${l7.cert}"
  tls_key = "${l7.key}"
  backend_tls = true

[[listeners]]
addr = "${LIMITED}"
max_connections = 3
max_connections_per_ip = 2
  [[listeners.routes]]
  hostname = "app.test"
  backend = "10.0.0.5:443"
`,
    ),
    join(dir, "mc-proxy.toml"),
  );
  runtime = new Runtime({
    config,
    routes: new Map(),
    rules: RULES,
    geoip: GeoIpDatabase.open(GEOIP),
    logger: createMemoryLogger("info").logger,
    version: "0.1.0",
  });
});

describe("explain: decision, in the connection path's order", () => {
  test.each([
    // client, sni, decision, matched route, explanation
    [
      "127.0.0.4",
      "app.test",
      "forward_l4",
      "app.test",
      "forward_l4: exact route app.test -> 10.0.0.5:443 (TLS passed through)",
    ],
    [
      "127.0.0.4",
      "a.wild.test",
      "forward_l4",
      "*.wild.test",
      "forward_l4: wildcard route *.wild.test -> 10.0.0.6:443 (TLS passed through, PROXY v2 header sent)",
    ],
    [
      "127.0.0.4",
      "APP.test.",
      "forward_l4",
      "app.test",
      "forward_l4: exact route app.test -> 10.0.0.5:443 (TLS passed through)",
    ],
    [
      "127.0.0.4",
      "l7.test",
      "terminate_l7",
      "l7.test",
      "terminate_l7: exact route l7.test -> 10.0.0.7:8080 (TLS terminated, HTTP proxied, TLS to the backend)",
    ],
    [
      "127.0.0.4",
      "wild.test",
      "no_route",
      null,
      `no_route: no exact or wildcard route for wild.test on ${L}; a TLS unrecognized_name alert, then close`,
    ],
    [
      "127.0.0.4",
      "a.b.wild.test",
      "no_route",
      null,
      `no_route: no exact or wildcard route for a.b.wild.test on ${L}; a TLS unrecognized_name alert, then close`,
    ],
    [
      "127.0.0.4",
      "",
      "no_sni",
      null,
      "no_sni: a ClientHello without SNI gets a TLS unrecognized_name alert and is closed",
    ],
    [
      "127.0.0.2",
      "app.test",
      "blocked",
      "app.test",
      "blocked: firewall rule ip 127.0.0.2 matches 127.0.0.2; the connection is reset",
    ],
    // Blocked before the SNI is even read: the firewall comes first.
    [
      "127.0.0.2",
      "",
      "blocked",
      null,
      "blocked: firewall rule ip 127.0.0.2 matches 127.0.0.2; the connection is reset",
    ],
    [
      "127.0.1.77:5000",
      "app.test",
      "blocked",
      "app.test",
      "blocked: firewall rule cidr 127.0.1.0/24 matches 127.0.1.77; the connection is reset",
    ],
    [
      "[2001:db8::9]:443",
      "app.test",
      "blocked",
      "app.test",
      "blocked: firewall rule cidr 2001:db8::/32 matches 2001:db8::9; the connection is reset",
    ],
    [
      "127.0.0.3",
      "app.test",
      "blocked",
      "app.test",
      "blocked: firewall rule country CN matches 127.0.0.3 (country CN); the connection is reset",
    ],
    // An IPv4-mapped peer is the IPv4 client, as on a dual-stack listener.
    [
      "::ffff:127.0.0.2",
      "app.test",
      "blocked",
      "app.test",
      "blocked: firewall rule ip 127.0.0.2 matches 127.0.0.2; the connection is reset",
    ],
  ])("client %s, sni %j: %s", (clientAddr, sni, decision, hostname, explanation) => {
    const answer = explain(runtime, { listenerAddr: L, sni, clientAddr });
    expect(answer.decision).toBe(decision as never);
    expect(answer.route.route?.hostname ?? null).toBe(hostname);
    expect(answer.explanation).toBe(explanation);
  });

  test("the firewall section names the rule and the client's country", () => {
    expect(
      explain(runtime, { listenerAddr: L, sni: "app.test", clientAddr: "127.0.0.3" }).firewall,
    ).toEqual({
      blocked: true,
      rule: { type: "country", value: "CN" },
      country: "CN",
    });
    expect(
      explain(runtime, { listenerAddr: L, sni: "app.test", clientAddr: "127.0.0.2" }).firewall,
    ).toEqual({
      blocked: true,
      rule: { type: "ip", value: "127.0.0.2" },
      country: "RU",
    });
    expect(
      explain(runtime, { listenerAddr: L, sni: "app.test", clientAddr: "10.1.2.3" }).firewall,
    ).toEqual({
      blocked: false,
      rule: null,
      country: null,
    });
  });

  test("limits: per client, then per listener; the firewall still comes first", () => {
    const state = runtime.listenerState(LIMITED)!;
    const ask = (clientAddr: string) =>
      explain(runtime, { listenerAddr: LIMITED, sni: "app.test", clientAddr });
    try {
      // Two admitted from 127.0.0.9: its third is over max_connections_per_ip = 2.
      state.admitted = 2;
      state.perIp.set("127.0.0.9", 2);
      expect(ask("127.0.0.9")).toMatchObject({
        decision: "limit",
        limits: {
          maxConnections: 3,
          admitted: 2,
          maxConnectionsPerIp: 2,
          fromClient: 2,
          wouldExceed: true,
        },
        explanation:
          "limit: 2 connections open from 127.0.0.9, max_connections_per_ip is 2; the connection is reset",
      });
      expect(ask("127.0.0.10")).toMatchObject({
        decision: "forward_l4",
        limits: { admitted: 2, fromClient: 0, wouldExceed: false },
      });
      // A third connection fills max_connections = 3: everyone is over it now.
      state.admitted = 3;
      state.perIp.set("127.0.0.10", 1);
      expect(ask("127.0.0.10")).toMatchObject({
        decision: "limit",
        limits: { admitted: 3, fromClient: 1, wouldExceed: true },
        explanation: `limit: 3 connections admitted on ${LIMITED}, max_connections is 3; the connection is reset`,
      });
      // A blocked client is blocked, not limited: admit() checks the firewall first.
      expect(ask("127.0.0.2")).toMatchObject({
        decision: "blocked",
        limits: { wouldExceed: true },
      });
    } finally {
      state.admitted = 0;
      state.perIp.clear();
    }
  });

  test("explain counts nothing", () => {
    const before = JSON.stringify(collectStats(runtime));
    explain(runtime, { listenerAddr: L, sni: "app.test", clientAddr: "127.0.0.2" });
    explain(runtime, { listenerAddr: L, sni: "app.test", clientAddr: "127.0.0.4" });
    expect(JSON.stringify(collectStats(runtime))).toBe(before);
    expect(runtime.env.hits.count({ type: "ip", value: "127.0.0.2" })).toBe(0);
  });

  test.each([
    [
      { listenerAddr: L, sni: "app.test", clientAddr: "" },
      "invalid_argument",
      'client_addr "": expected an IP address',
    ],
    [
      { listenerAddr: L, sni: "app.test", clientAddr: "app.test:443" },
      "invalid_argument",
      'client_addr "app.test:443"',
    ],
    [
      { listenerAddr: L, sni: "app.test", clientAddr: "127.0.0.256" },
      "invalid_argument",
      'client_addr "127.0.0.256"',
    ],
    [
      { listenerAddr: L, sni: "a\tb", clientAddr: "127.0.0.4" },
      "invalid_argument",
      'sni "a\\tb": expected a host name in printable ASCII',
    ],
    [
      { listenerAddr: L, sni: ".", clientAddr: "127.0.0.4" },
      "invalid_argument",
      'sni ".": expected a host name',
    ],
    [
      { listenerAddr: "", sni: "app.test", clientAddr: "127.0.0.4" },
      "invalid_argument",
      `listener_addr is required (listeners: "${L}", "${LIMITED}")`,
    ],
    [
      { listenerAddr: ":444", sni: "app.test", clientAddr: "127.0.0.4" },
      "not_found",
      `listener_addr ":444": no such running listener (listeners: "${L}", "${LIMITED}")`,
    ],
  ])("%j is refused (%s)", (request, code, message) => {
    let thrown: unknown;
    try {
      explain(runtime, request);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ExplainError);
    expect((thrown as ExplainError).code).toBe(code as never);
    expect((thrown as ExplainError).message).toStartWith(message);
  });

  test.each([
    ["203.0.113.7", "203.0.113.7"],
    ["203.0.113.7:51000", "203.0.113.7"],
    ["2001:db8::1", "2001:db8::1"],
    ["[2001:db8::1]:51000", "2001:db8::1"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
  ])("client address %s is %s", (text, address) => {
    const parsed = parseClientAddr(text);
    expect(parsed).not.toBeNull();
    expect(parseClientAddr(address)).toEqual(parsed);
  });
});

describe("the counter snapshot", () => {
  test("lists every route and rule, zeros included, and creates no counter", () => {
    const stats = collectStats(runtime);
    expect(stats.listeners.map((listener) => listener.addr)).toEqual([L, LIMITED]);
    expect(stats.listeners[0]!.routes.map((route) => route.hostname)).toEqual([
      "*.wild.test",
      "app.test",
      "l7.test",
    ]);
    expect(stats.listeners[0]!.routes[0]!.ends).toEqual({
      blocked: 0,
      limit: 0,
      not_trusted: 0,
      bad_proxy_header: 0,
      no_sni: 0,
      no_route: 0,
      bad_hello: 0,
      hello_timeout: 0,
      dial_failed: 0,
      idle_timeout: 0,
      header_timeout: 0,
      body_timeout: 0,
      shutdown: 0,
      closed: 0,
      worker_exited: 0,
    });
    expect(
      stats.firewallHits.map(({ rule, hits }) => `${rule.type}:${rule.value}=${hits}`),
    ).toEqual(["cidr:127.0.1.0/24=0", "cidr:2001:db8::/32=0", "country:CN=0", "ip:127.0.0.2=0"]);
    expect([...runtime.listenerState(L)!.routeStatsEntries()]).toEqual([]);
  });

  test("a removed route and a removed rule keep their counts", () => {
    const dir = tempDir("mc-proxy-stats-unit-");
    const config = parseConfig(
      proxyConfigText(
        dir,
        `[[listeners]]\naddr = ":443"\n  [[listeners.routes]]\n  hostname = "gone.test"\n  backend = "10.0.0.1:443"\n`,
        join(dir, "db"),
      ),
      join(dir, "mc-proxy.toml"),
    );
    const local = new Runtime({
      config,
      routes: new Map(),
      rules: [{ type: "ip", value: "192.0.2.1" }],
      geoip: null,
      logger: createMemoryLogger("info").logger,
      version: "0.1.0",
    });
    const state = local.listenerState(":443")!;
    const counted = state.statsForRoute("gone.test");
    counted.total = 5;
    counted.ends.closed = 5;
    local.env.hits.record(local.firewallRules()[0]!);
    local.replaceRoutes(":443", []);
    local.replaceFirewallRules([]);
    const stats = collectStats(local);
    expect(stats.listeners[0]!.routes).toMatchObject([
      { hostname: "gone.test", connectionsTotal: 5, ends: { closed: 5 } },
    ]);
    expect(stats.firewallHits).toEqual([{ rule: { type: "ip", value: "192.0.2.1" }, hits: 1 }]);
  });
});

describe("through the admin API", () => {
  let certs: AdminCerts;
  let fx: AdminFixture;

  beforeAll(async () => {
    certs = makeAdminCerts();
    fx = await startAdminFixture(certs);
  });

  afterAll(async () => {
    await fx?.close();
  });

  test.each([
    [
      { listenerAddr: ":9999", sni: "a.test", clientAddr: "127.0.0.1" },
      "NOT_FOUND",
      1,
      'listener_addr ":9999": no such running listener',
    ],
    [
      { listenerAddr: ":443", sni: "a.test", clientAddr: "nope" },
      "INVALID_ARGUMENT",
      2,
      'client_addr "nope": expected an IP address',
    ],
  ])("Explain %j is %s", async (request, codeName, exitCode, message) => {
    let thrown: unknown;
    try {
      await fx.client.explain(request);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AdminCallError);
    const call = thrown as AdminCallError;
    expect([call.rpc, call.codeName, call.exitCode]).toEqual(["Explain", codeName, exitCode]);
    expect(call.details).toStartWith(message);
    expect(fx.logLines.some((line) => line.includes('msg="admin call refused" rpc=Explain'))).toBe(
      true,
    );
  });

  test("Explain and GetStats answer over gRPC with the runtime's view", async () => {
    const answer = await fx.client.explain({
      listenerAddr: ":443",
      sni: "metacircular.net",
      clientAddr: "198.51.100.7",
    });
    expect(answer).toMatchObject({
      decision: "blocked",
      firewall: { blocked: true, rule: { type: "cidr", value: "198.51.100.0/24" } },
      route: {
        matched: "exact",
        route: { hostname: "metacircular.net", backend: "127.0.0.1:28443", mode: "l4" },
      },
    });
    const allowed = await fx.client.explain({
      listenerAddr: ":443",
      sni: "metacircular.net",
      clientAddr: "127.0.0.4",
    });
    expect(allowed.decision).toBe("forward_l4");
    expect(allowed.firewall).toEqual({ blocked: false, rule: null, country: "DE" });
    expect(await fx.client.stats()).toEqual(collectStats(fx.runtime));
  });
});

describe("shutdown is counted", () => {
  let backend: HoldBackend;

  beforeAll(async () => {
    backend = await startHoldBackend();
  });

  afterAll(() => backend?.close());

  test("a connection cut at shutdown_timeout ends with reason shutdown, on its listener and route", async () => {
    const dir = tempDir("mc-proxy-shutdown-stats-");
    const config = parseConfig(
      proxyConfigText(
        dir,
        `[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backend.port}"
[proxy]
shutdown_timeout = "300ms"
`,
      ),
      join(dir, "mc-proxy.toml"),
    );
    const { logger, lines } = createMemoryLogger("info");
    const server = await startServer(config, logger);
    const socket = connect({ host: "127.0.0.1", port: server.listeners[0]!.port });
    socket.on("error", () => {});
    try {
      socket.write(await clientHelloFor("app.test"));
      await eventually(backend.connections, (n) => n > 0);
      expect(collectStats(server.runtime).listeners[0]!.connectionsActive).toBe(1);
      await server.shutdown("SIGTERM");
    } finally {
      socket.destroy();
    }
    const stats = collectStats(server.runtime);
    const listener = stats.listeners[0]!;
    expect(listener).toMatchObject({ connectionsTotal: 1, connectionsActive: 0 });
    expect(Object.entries(listener.ends).filter(([, n]) => n > 0)).toEqual([["shutdown", 1]]);
    expect(listener.routes[0]).toMatchObject({
      hostname: "app.test",
      connectionsActive: 0,
      ends: { shutdown: 1 },
    });
    expect(renderMetrics(server.runtime)).toContain(
      'mc_proxy_route_connection_ends_total{listener="127.0.0.1:0",route="app.test",reason="shutdown"} 1\n',
    );
    expect(lines.filter((line) => line.includes('msg="connection"'))).toEqual([
      expect.stringContaining("route=app.test") as unknown as string,
    ]);
    expect(lines.find((line) => line.includes('msg="connection"'))).toContain("outcome=shutdown");
  });
});
