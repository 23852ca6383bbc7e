// Properties (fast-check) of the admin API's input handling: the wire → domain mapping and the
// validators never throw and only accept canonical values, and through the real handlers every
// request gets the status a simple model predicts (never INTERNAL), with runtime == store after.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { ServerUnaryCall, ServiceError, sendUnaryData } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import {
  AddFirewallRuleRequest,
  AddRouteRequest,
  type Backend as ProtoBackend,
  type Route as ProtoRoute,
  FirewallRuleType as ProtoRuleType,
  type ProxyAdminServiceServer,
  RemoveFirewallRuleRequest,
  RemoveRouteRequest,
} from "../../gen/mc_proxy/v1/admin.ts";
import { makeSelfSigned } from "../../test/helpers/certs.ts";
import { validateFirewallRule } from "../config/firewall-rule.ts";
import { parseConfig } from "../config/parse-config.ts";
import { normalizeHostname, validateRoute } from "../config/route.ts";
import type { Config } from "../domain/types.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { parseHostPort } from "../ip/host-port.ts";
import { formatIp, normalizeIp, parseCidr, parseIp } from "../ip/ip.ts";
import { createMemoryLogger } from "../log/logger.ts";
import { Runtime } from "../runtime/runtime.ts";
import { Store } from "../store/index.ts";
import { makeTempDir } from "../store/testing.ts";
import { routeInputFromProto, routeToProto, ruleTypeFromProto } from "../wire/convert.ts";
import { createAdminService } from "./admin-service.ts";

/** FC_NUM_RUNS=100000 bun test … (or scripts/property-long.sh) runs the properties longer. */
const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? "1000");
if (!Number.isInteger(NUM_RUNS) || NUM_RUNS < 1) {
  throw new Error(`FC_NUM_RUNS "${process.env.FC_NUM_RUNS}": must be a positive integer`);
}
/** Each service run is a sequence of calls that commit (fsync) to a real database. */
const SERVICE_RUNS = Math.max(10, Math.ceil(NUM_RUNS / 20));
const TIMEOUT_MS = 30_000 + NUM_RUNS * 20;

const GEOIP_FIXTURE = join(import.meta.dir, "../../test/fixtures/geoip/country-a.mmdb");
const LISTENERS = [":443", "127.0.0.1:8443"];

/** A usable certificate and key for l7 routes; every other path an l7 route names is not. */
const certDir = makeTempDir();
const CERT = makeSelfSigned(certDir.dir, "l7.example");
afterAll(() => certDir.cleanup());

function certificateLoads(route: ProtoRoute): boolean {
  return route.tlsCert === CERT.cert && route.tlsKey === CERT.key;
}

// ── Generators: what a client can put in the fields, valid-looking and not ──────────────────

const label = fc.stringMatching(/^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,8}[a-zA-Z0-9_])?$/);
const hostnameText = fc.oneof(
  fc.domain(),
  fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join(".")),
  fc
    .tuple(fc.domain(), fc.constantFrom("", ".", ".."))
    .map(([name, end]) => name.toUpperCase() + end),
  fc.domain().map((name) => `*.${name}`),
  fc.constantFrom(
    "",
    ".",
    "*",
    "*.com",
    "*.*.example.com",
    "a..b",
    "-a.example",
    "a-.example",
    "ä.example",
  ),
  fc.constantFrom(`${"a".repeat(63)}.example`, `${"a".repeat(64)}.example`, `${"a.".repeat(127)}a`),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
);
const hostText = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
  fc.ipV6(),
  fc.constantFrom("", "localhost", "[::1", "[1.2.3.4]", "a b"),
  fc.string({ maxLength: 12 }),
);
const portText = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map(String),
  fc.constantFrom("", "-1", "08080", "443 ", "0x1bb", "1e3"),
  fc.string({ maxLength: 6 }),
);
const backendText = fc.oneof(
  fc.tuple(hostText, portText).map(([host, port]) => `${host}:${port}`),
  fc.string({ maxLength: 30 }),
);
const pathText = fc.oneof(
  fc.constantFrom("", "/srv/certs/a.pem", CERT.cert, CERT.key),
  fc.string({ maxLength: 10 }),
);
const weightValue = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1_200 }) },
);
const anyBackends = fc.oneof(
  { weight: 2, arbitrary: fc.constant<ProtoBackend[]>([]) },
  {
    weight: 1,
    arbitrary: fc.array(fc.record({ addr: backendText, weight: weightValue }), { maxLength: 4 }),
  },
);
const balanceText = fc.constantFrom("", "round_robin", "least_connections", "random", "RR");
const healthCheckText = fc.constantFrom("", "none", "tcp", "tls", "http", "icmp");
const healthPathText = fc.constantFrom("", "/", "/healthz", "healthz", "/a b");
/** Proto3 defaults of the fields an old client never sends, as record arbitraries. */
const OLD_RECORD = {
  backends: fc.constant<ProtoBackend[]>([]),
  balance: fc.constant(""),
  healthCheck: fc.constant(""),
  healthCheckPath: fc.constant(""),
};
const anyRoute: fc.Arbitrary<ProtoRoute> = fc.record({
  hostname: hostnameText,
  backend: fc.oneof(backendText, fc.constant("")),
  backends: anyBackends,
  balance: balanceText,
  healthCheck: healthCheckText,
  healthCheckPath: healthPathText,
  mode: fc.oneof(
    fc.constantFrom("", "l4", "l7", "L4", "l5", "tcp", " l4"),
    fc.string({ maxLength: 4 }),
  ),
  tlsCert: pathText,
  tlsKey: pathText,
  backendTls: fc.boolean(),
  sendProxyProtocol: fc.boolean(),
});
const goodBackend = fc
  .tuple(
    fc.oneof(
      fc.domain(),
      fc.ipV4(),
      fc.ipV6().map((ip) => `[${ip}]`),
    ),
    fc.integer({ min: 1, max: 65_535 }),
  )
  .map(([host, port]) => `${host}:${port}`);
/** Mostly routes a careful operator would send (l4, or l7 with files), with one field off now and then. */
const protoRoute: fc.Arbitrary<ProtoRoute> = fc.oneof(
  fc.record({
    hostname: hostnameText,
    backend: fc.oneof({ weight: 4, arbitrary: goodBackend }, { weight: 1, arbitrary: backendText }),
    backends: fc.constant<ProtoBackend[]>([]),
    balance: fc.constant(""),
    healthCheck: fc.constant(""),
    healthCheckPath: fc.constant(""),
    mode: fc.constantFrom("", "l4"),
    tlsCert: fc.constant(""),
    tlsKey: fc.constant(""),
    backendTls: fc.constant(false),
    sendProxyProtocol: fc.boolean(),
  }),
  // A new client: several good backends, a policy, maybe a check.
  fc.record({
    hostname: hostnameText,
    backend: fc.constant(""),
    backends: fc.uniqueArray(fc.record({ addr: goodBackend, weight: weightValue }), {
      minLength: 1,
      maxLength: 4,
      selector: (backend) => backend.addr,
    }),
    balance: balanceText,
    healthCheck: fc.constantFrom("", "none", "tcp", "tls"),
    healthCheckPath: fc.constant(""),
    mode: fc.constantFrom("", "l4"),
    tlsCert: fc.constant(""),
    tlsKey: fc.constant(""),
    backendTls: fc.constant(false),
    sendProxyProtocol: fc.boolean(),
  }),
  fc.record({
    hostname: hostnameText,
    backend: goodBackend,
    backends: fc.constant<ProtoBackend[]>([]),
    balance: fc.constant(""),
    healthCheck: fc.constantFrom("", "http", "tcp"),
    healthCheckPath: fc.constantFrom("", "/healthz"),
    mode: fc.constant("l7"),
    tlsCert: fc.oneof(
      { weight: 3, arbitrary: fc.constant(CERT.cert) },
      { weight: 1, arbitrary: pathText },
    ),
    tlsKey: fc.oneof(
      { weight: 3, arbitrary: fc.constant(CERT.key) },
      { weight: 1, arbitrary: pathText },
    ),
    backendTls: fc.boolean(),
    sendProxyProtocol: fc.boolean(),
  }),
  anyRoute,
);
/** A network with its host bits cleared, IPv4 or IPv6. */
const network = fc.tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat()).map(([text, bits]) => {
  const address = parseIp(text)!;
  const length = bits % (address.bytes.length * 8 + 1);
  const bytes = address.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return `${formatIp({ family: address.family, bytes })}/${length}`;
});
const ruleTypeNumber = fc.oneof(
  fc.constantFrom(
    ProtoRuleType.FIREWALL_RULE_TYPE_UNSPECIFIED,
    ProtoRuleType.FIREWALL_RULE_TYPE_IP,
    ProtoRuleType.FIREWALL_RULE_TYPE_CIDR,
    ProtoRuleType.FIREWALL_RULE_TYPE_COUNTRY,
    ProtoRuleType.UNRECOGNIZED,
  ),
  fc.integer({ min: -3, max: 9 }),
);
const ruleValue = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
  fc.ipV4().map((ip) => `::ffff:${ip}`),
  network,
  fc
    .tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: -1, max: 130 }))
    .map(([ip, n]) => `${ip}/${n}`),
  fc.constantFrom(
    "RU",
    "ru",
    "Ru",
    "XX",
    "R",
    "RUS",
    "",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.1/8",
    "01.2.3.4",
  ),
  fc.stringMatching(/^[A-Za-z]{2}$/),
  fc.string({ maxLength: 20 }),
);

// ── Pure: mapping and validation ────────────────────────────────────────────────────────────

describe("admin input mapping and validation (fast-check)", () => {
  test(
    "any wire Route: validateRoute never throws; an accepted route is canonical and stable",
    () => {
      fc.assert(
        fc.property(protoRoute, (wire) => {
          const result = validateRoute(routeInputFromProto(wire));
          if ("error" in result) {
            expect(result.error.length).toBeGreaterThan(0);
            // The message names the field at fault and the value given.
            if (normalizeHostname(wire.hostname) === null) {
              expect(result.error).toContain(`hostname ${JSON.stringify(wire.hostname)}`);
            }
            return;
          }
          const route = result.route;
          // Canonical hostname: lower case, no trailing dot, a DNS name or *.parent.
          expect(normalizeHostname(route.hostname)).toBe(route.hostname);
          expect(route.hostname).toBe(route.hostname.toLowerCase());
          expect(route.hostname.endsWith(".")).toBe(false);
          expect(route.hostname.length).toBeLessThanOrEqual(253);
          expect(normalizeHostname(wire.hostname)).toBe(route.hostname);
          // Every backend is dialable (host and a port in 1-65535), listed once, weighted
          // 1-1000; `backend` is the first.
          expect(route.backends.length).toBeGreaterThan(0);
          expect(route.backend).toBe(route.backends[0]!.addr);
          expect(new Set(route.backends.map((b) => b.addr)).size).toBe(route.backends.length);
          for (const { addr, weight } of route.backends) {
            const backend = parseHostPort(addr, { allowEmptyHost: false, allowPortZero: false });
            expect("value" in backend).toBe(true);
            expect(weight).toBeGreaterThanOrEqual(1);
            expect(weight).toBeLessThanOrEqual(1000);
          }
          expect(["round_robin", "least_connections"]).toContain(route.balance);
          expect(["none", "tcp", "tls", "http"]).toContain(route.healthCheck);
          if (route.healthCheck === "http") expect(route.mode).toBe("l7");
          expect(route.healthCheckPath === "").toBe(route.healthCheck !== "http");
          expect(["l4", "l7"]).toContain(route.mode);
          if (route.mode === "l7") {
            expect(route.tlsCert).not.toBe("");
            expect(route.tlsKey).not.toBe("");
          } else {
            expect([route.tlsCert, route.tlsKey, route.backendTls]).toEqual(["", "", false]);
          }
          // What ListRoutes sends back is accepted again as the very same route.
          expect(validateRoute(routeInputFromProto(routeToProto(route)))).toEqual({ route });
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  test(
    "any wire FirewallRule: never throws; an accepted rule is canonical and stable",
    () => {
      fc.assert(
        fc.property(ruleTypeNumber, ruleValue, (typeNumber, value) => {
          const type = ruleTypeFromProto(typeNumber);
          if (type === null) {
            expect([
              ProtoRuleType.FIREWALL_RULE_TYPE_IP,
              ProtoRuleType.FIREWALL_RULE_TYPE_CIDR,
              ProtoRuleType.FIREWALL_RULE_TYPE_COUNTRY,
            ]).not.toContain(typeNumber);
            return;
          }
          const result = validateFirewallRule(type, value);
          if ("error" in result) {
            expect(result.error).toContain(`${type} ${JSON.stringify(value)}`);
            return;
          }
          const rule = result.rule;
          expect(rule.type).toBe(type);
          expect(validateFirewallRule(rule.type, rule.value)).toEqual({ rule });
          if (type === "ip") {
            expect(normalizeIp(rule.value)).toBe(rule.value);
            expect(normalizeIp(value)).toBe(rule.value);
          }
          if (type === "cidr") expect("cidr" in parseCidr(rule.value)).toBe(true);
          if (type === "country") {
            expect(rule.value).toMatch(/^[A-Z]{2}$/);
            expect(rule.value).toBe(value.toUpperCase());
          }
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );
});

// ── Through the real handlers, against a model ──────────────────────────────────────────────

type Command =
  | { rpc: "AddRoute"; listenerAddr: string; route: ProtoRoute | undefined }
  | { rpc: "RemoveRoute"; listenerAddr: string; hostname: string }
  | {
      rpc: "AddFirewallRule" | "RemoveFirewallRule";
      rule: { type: number; value: string } | undefined;
    };

const listenerAddr = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...LISTENERS) },
  { weight: 1, arbitrary: fc.constantFrom("", ":444", "127.0.0.1:443", " :443") },
);
/** Hostnames from a small pool, so adds collide and removes find what was added. */
const pooledHostname = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("a.example", "A.Example.", "*.example.org", "b.example"),
  },
  { weight: 1, arbitrary: hostnameText },
);
/** Simple l4 routes, l7 routes with the usable certificate, and anything protoRoute makes. */
const pooledRoute = fc
  .oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        hostname: fc.constant(""),
        backend: fc.constant("127.0.0.1:9"),
        ...OLD_RECORD,
        mode: fc.constantFrom("", "l4"),
        tlsCert: fc.constant(""),
        tlsKey: fc.constant(""),
        backendTls: fc.constant(false),
        sendProxyProtocol: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        hostname: fc.constant(""),
        backend: fc.constant("127.0.0.1:9"),
        ...OLD_RECORD,
        mode: fc.constant("l7"),
        tlsCert: fc.constant(CERT.cert),
        tlsKey: fc.constant(CERT.key),
        backendTls: fc.boolean(),
        sendProxyProtocol: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: protoRoute },
  )
  .chain((route) => pooledHostname.map((hostname) => ({ ...route, hostname })));
const pooledRule = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_IP, value: "10.0.0.1" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_IP, value: "2001:DB8::1" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_IP, value: "::ffff:10.0.0.1" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_CIDR, value: "10.0.0.0/8" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_CIDR, value: "10.0.0.1/8" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_CIDR, value: "2001:db8::/32" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_COUNTRY, value: "RU" },
      { type: ProtoRuleType.FIREWALL_RULE_TYPE_COUNTRY, value: "ru" },
    ),
  },
  { weight: 1, arbitrary: fc.record({ type: ruleTypeNumber, value: ruleValue }) },
);
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    rpc: fc.constant("AddRoute" as const),
    listenerAddr,
    route: fc.option(pooledRoute, { nil: undefined, freq: 20 }),
  }),
  fc.record({ rpc: fc.constant("RemoveRoute" as const), listenerAddr, hostname: pooledHostname }),
  fc.record({
    rpc: fc.constantFrom("AddFirewallRule" as const, "RemoveFirewallRule" as const),
    rule: fc.option(pooledRule, { nil: undefined, freq: 20 }),
  }),
);

/** What the database holds, as the model sees it. */
interface Model {
  routes: Map<string, Set<string>>;
  rules: Set<string>;
  geoip: boolean;
}

/** The status the service must answer `cmd` with, given the model; updates the model on OK. */
function expectedStatus(model: Model, cmd: Command): status {
  switch (cmd.rpc) {
    case "AddRoute": {
      if (cmd.route === undefined) return status.INVALID_ARGUMENT;
      const result = validateRoute(routeInputFromProto(cmd.route));
      if ("error" in result || cmd.listenerAddr === "") return status.INVALID_ARGUMENT;
      if (result.route.mode === "l7" && !certificateLoads(cmd.route))
        return status.INVALID_ARGUMENT;
      const routes = model.routes.get(cmd.listenerAddr);
      if (routes === undefined) return status.NOT_FOUND;
      if (routes.has(result.route.hostname)) return status.ALREADY_EXISTS;
      routes.add(result.route.hostname);
      return status.OK;
    }
    case "RemoveRoute": {
      const hostname = normalizeHostname(cmd.hostname);
      if (hostname === null || cmd.listenerAddr === "") return status.INVALID_ARGUMENT;
      const routes = model.routes.get(cmd.listenerAddr);
      if (routes === undefined || !routes.delete(hostname)) return status.NOT_FOUND;
      return status.OK;
    }
    default: {
      const type = cmd.rule === undefined ? null : ruleTypeFromProto(cmd.rule.type);
      if (type === null) return status.INVALID_ARGUMENT;
      const result = validateFirewallRule(type, cmd.rule!.value);
      if ("error" in result) return status.INVALID_ARGUMENT;
      const key = `${result.rule.type}:${result.rule.value}`;
      if (cmd.rpc === "RemoveFirewallRule") {
        return model.rules.delete(key) ? status.OK : status.NOT_FOUND;
      }
      if (result.rule.type === "country" && !model.geoip) return status.FAILED_PRECONDITION;
      if (model.rules.has(key)) return status.ALREADY_EXISTS;
      model.rules.add(key);
      return status.OK;
    }
  }
}

/**
 * Calls the handler with the request as the wire would carry it (encoded, then decoded, so
 * strings are what UTF-8 can hold). Resolves with the status; a throw escapes as a failure.
 * AddRoute of an l7 route answers after reading its files off the event loop, so this waits.
 */
async function call(service: ProxyAdminServiceServer, cmd: Command): Promise<status> {
  let code: status | undefined;
  const { promise: answered, resolve } = Promise.withResolvers<void>();
  const done = (error: Partial<ServiceError> | null) => {
    code = error === null ? status.OK : (error.code ?? status.UNKNOWN);
    resolve();
  };
  const invoke = <Req>(
    handler: (call: ServerUnaryCall<Req, unknown>, callback: sendUnaryData<unknown>) => void,
    request: Req,
  ) => handler({ request, getPeer: () => "property-test" } as ServerUnaryCall<Req, unknown>, done);
  switch (cmd.rpc) {
    case "AddRoute":
      invoke(
        service.addRoute as never,
        AddRouteRequest.decode(
          AddRouteRequest.encode({ listenerAddr: cmd.listenerAddr, route: cmd.route }).finish(),
        ),
      );
      break;
    case "RemoveRoute":
      invoke(
        service.removeRoute as never,
        RemoveRouteRequest.decode(RemoveRouteRequest.encode(cmd).finish()),
      );
      break;
    case "AddFirewallRule":
      invoke(
        service.addFirewallRule as never,
        AddFirewallRuleRequest.decode(AddFirewallRuleRequest.encode({ rule: cmd.rule }).finish()),
      );
      break;
    case "RemoveFirewallRule":
      invoke(
        service.removeFirewallRule as never,
        RemoveFirewallRuleRequest.decode(
          RemoveFirewallRuleRequest.encode({ rule: cmd.rule }).finish(),
        ),
      );
      break;
  }
  const timer = setTimeout(() => resolve(), 5000);
  await answered;
  clearTimeout(timer);
  if (code === undefined) throw new Error(`${cmd.rpc}: the handler did not answer within 5 s`);
  return code;
}

/** Round-trips a command through the wire encoding, as `call` does, for the model's eyes. */
function asDecoded(cmd: Command): Command {
  switch (cmd.rpc) {
    case "AddRoute":
      return { rpc: cmd.rpc, ...AddRouteRequest.decode(AddRouteRequest.encode(cmd).finish()) };
    case "RemoveRoute":
      return {
        rpc: cmd.rpc,
        ...RemoveRouteRequest.decode(RemoveRouteRequest.encode(cmd).finish()),
      };
    default:
      return {
        rpc: cmd.rpc,
        ...AddFirewallRuleRequest.decode(AddFirewallRuleRequest.encode(cmd).finish()),
      };
  }
}

function serviceConfig(dir: string): Config {
  return parseConfig(
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENERS[0]}"

[[listeners]]
addr = "${LISTENERS[1]}"
proxy_protocol = true
`,
    join(dir, "mc-proxy.toml"),
  );
}

describe("admin handlers against a model (fast-check)", () => {
  let geoip: GeoIpDatabase;

  beforeAll(() => {
    geoip = GeoIpDatabase.open(GEOIP_FIXTURE);
  });

  test(
    "every request gets the modelled status, never INTERNAL, and the runtime equals the store after each",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.array(command, { minLength: 1, maxLength: 25 }),
          async (withGeoIp, commands) => {
            const { dir, cleanup } = makeTempDir();
            const config = serviceConfig(dir);
            const store = Store.open(config.database.path);
            try {
              store.reconcileWithConfig(config);
              const { logger, lines } = createMemoryLogger("info");
              const runtime = new Runtime({
                config,
                routes: store.allRoutes(),
                rules: store.firewallRules(),
                geoip: withGeoIp ? geoip : null,
                logger,
                version: "0.0.0-test",
              });
              const service = createAdminService({ store, runtime, logger, version: "0.0.0-test" });
              const model: Model = {
                routes: new Map(LISTENERS.map((addr) => [addr, new Set<string>()])),
                rules: new Set(),
                geoip: withGeoIp,
              };
              for (const cmd of commands) {
                const expected = expectedStatus(model, asDecoded(cmd));
                const got = await call(service, cmd);
                if (got !== expected) {
                  throw new Error(
                    `${cmd.rpc} ${JSON.stringify(cmd)}: got ${status[got]}, expected ${status[expected]}\n${lines.slice(-3).join("\n")}`,
                  );
                }
                // The store holds exactly the model, and the runtime exactly the store.
                for (const addr of LISTENERS) {
                  const stored = store.routes(addr);
                  expect(stored.map((route) => route.hostname).sort()).toEqual(
                    [...model.routes.get(addr)!].sort(),
                  );
                  // The runtime is handed the store's own read, order and all.
                  expect([...(runtime.routeTable(addr)?.routes ?? [])]).toEqual(stored);
                }
                const rules = store.firewallRules();
                expect(rules.map((rule) => `${rule.type}:${rule.value}`).sort()).toEqual(
                  [...model.rules].sort(),
                );
                expect([...runtime.firewallRules()]).toEqual(rules);
              }
              expect(lines.filter((line) => line.includes("level=ERROR"))).toEqual([]);
            } finally {
              store.close();
              cleanup();
            }
          },
        ),
        { numRuns: SERVICE_RUNS },
      );
    },
    TIMEOUT_MS,
  );
});
