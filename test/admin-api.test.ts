// The admin API in-process: real Store (temp file), real Runtime, real gRPC over mTLS.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.ts";
import { FirewallRuleType, ProxyAdminServiceClient } from "../gen/mc_proxy/v1/admin.ts";
import { ADMIN_SERVICE_NAME, AdminServerError, startAdminServer } from "../src/admin/index.ts";
import { AdminCallError, AdminClient, connectOptionsFromGrpcConfig } from "../src/client/index.ts";
import type { RouteSpec } from "../src/domain/types.ts";
import { createMemoryLogger } from "../src/log/logger.ts";
import {
  type AdminCerts,
  type AdminFixture,
  makeAdminCerts,
  makeSelfSigned,
  reflectionStream,
  snapshotState,
  sortedRoutes,
  sortedRules,
  startAdminFixture,
} from "./admin-support.ts";

let certs: AdminCerts;
let fx: AdminFixture;
/** The generated client, for requests the typed AdminClient cannot express (UNSPECIFIED…). */
let raw: ProxyAdminServiceClient;

/** The backend fields of a route with one backend and no balance or check set. */
function ONE_BACKEND(
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

function channelCredentials(withClientCert = true): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    readFileSync(certs.ca),
    withClientCert ? readFileSync(certs.client.key) : null,
    withClientCert ? readFileSync(certs.client.cert) : null,
  );
}

/** Calls a unary method of the generated client; resolves with the status code and details. */
function rawCall(
  method: string,
  request: unknown,
): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    // biome-ignore lint/suspicious/noExplicitAny: the table names methods by string.
    (raw as any)[method](request, (error: grpc.ServiceError | null) => {
      resolve(
        error
          ? { code: error.code, details: error.details }
          : { code: grpc.status.OK, details: "" },
      );
    });
  });
}

beforeAll(async () => {
  certs = makeAdminCerts();
  fx = await startAdminFixture(certs);
  raw = new ProxyAdminServiceClient(`localhost:${fx.server.port}`, channelCredentials());
});

afterAll(async () => {
  raw.close();
  await fx.close();
});

describe("happy paths", () => {
  test("GetStatus reports version, start time and every listener", async () => {
    const status = await fx.client.status();
    expect(status.version).toBe("0.1.0");
    expect(status.startedAt.getTime()).toBe(fx.runtime.startedAt.getTime());
    expect(status.listeners).toEqual([
      { addr: ":443", routeCount: 1, activeConnections: 0, proxyProtocol: false },
      { addr: "127.0.0.1:8443", routeCount: 0, activeConnections: 0, proxyProtocol: true },
    ]);
    expect(status.totalConnections).toBe(0);
  });

  test("ListRoutes of one listener, and of all listeners", async () => {
    const seed: RouteSpec = {
      hostname: "metacircular.net",
      ...ONE_BACKEND("127.0.0.1:28443"),
      mode: "l4",
      tlsCert: "",
      tlsKey: "",
      backendTls: false,
      sendProxyProtocol: false,
    };
    expect(await fx.client.listRoutes(":443")).toEqual([{ listenerAddr: ":443", routes: [seed] }]);
    expect(await fx.client.listRoutes()).toEqual([
      { listenerAddr: ":443", routes: [seed] },
      { listenerAddr: "127.0.0.1:8443", routes: [] },
    ]);
  });

  test("AddRoute commits, applies to the runtime, and logs; RemoveRoute undoes it", async () => {
    await fx.client.addRoute(":443", {
      hostname: "App.Example.COM.",
      backend: "[::1]:8443",
      mode: "",
      sendProxyProtocol: true,
    });
    const expected: RouteSpec = {
      hostname: "app.example.com",
      ...ONE_BACKEND("[::1]:8443"),
      mode: "l4",
      tlsCert: "",
      tlsKey: "",
      backendTls: false,
      sendProxyProtocol: true,
    };
    expect(fx.store.routes(":443")).toContainEqual(expected);
    expect(fx.runtime.routeTable(":443")?.lookup("app.example.com")?.route.spec).toEqual(expected);
    expect(
      fx.logLines.some((line) =>
        /msg="route added" listener=:443 hostname=app\.example\.com backend=\[::1\]:8443 mode=l4/.test(
          line,
        ),
      ),
    ).toBe(true);

    await fx.client.removeRoute(":443", "APP.example.com");
    expect(fx.store.routes(":443").map((route) => route.hostname)).toEqual(["metacircular.net"]);
    expect(fx.runtime.routeTable(":443")?.lookup("app.example.com")).toBeNull();
    expect(
      fx.logLines.some((line) =>
        /msg="route removed" listener=:443 hostname=app\.example\.com/.test(line),
      ),
    ).toBe(true);
  });

  test("an l7 route with certificate, key and backend TLS round-trips", async () => {
    const route: RouteSpec = {
      hostname: "*.l7.example.com",
      ...ONE_BACKEND("backend.internal:443"),
      mode: "l7",
      tlsCert: certs.server.cert,
      tlsKey: certs.server.key,
      backendTls: true,
      sendProxyProtocol: false,
    };
    await fx.client.addRoute("127.0.0.1:8443", route);
    expect(await fx.client.listRoutes("127.0.0.1:8443")).toEqual([
      { listenerAddr: "127.0.0.1:8443", routes: [route] },
    ]);
    expect(fx.runtime.routeTable("127.0.0.1:8443")?.lookup("a.l7.example.com")?.route.spec).toEqual(
      route,
    );
    await fx.client.removeRoute("127.0.0.1:8443", "*.l7.example.com");
    expect(fx.store.routes("127.0.0.1:8443")).toEqual([]);
  });

  test.each([
    ["ip", "2001:DB8::0:1", "2001:db8::1"],
    ["cidr", "2001:DB8::/32", "2001:db8::/32"],
    ["country", "de", "DE"],
  ] as const)(
    "firewall %s rule %s is added in canonical form %s, then removed",
    async (type, value, canonical) => {
      await fx.client.addFirewallRule({ type, value });
      const rule = { type, value: canonical };
      expect(await fx.client.firewallRules()).toContainEqual(rule);
      expect(fx.store.firewallRules()).toContainEqual(rule);
      expect(fx.runtime.firewallRules()).toContainEqual(rule);
      expect(
        fx.logLines.some((line) =>
          line.includes(`msg="firewall rule added" type=${type} value=${canonical}`),
        ),
      ).toBe(true);

      await fx.client.removeFirewallRule({ type, value });
      expect(fx.store.firewallRules()).not.toContainEqual(rule);
      expect(fx.runtime.firewallRules()).not.toContainEqual(rule);
    },
  );

  test("GetFirewallRules lists the seeded rules", async () => {
    expect(await fx.client.firewallRules()).toEqual([
      { type: "cidr", value: "198.51.100.0/24" },
      { type: "ip", value: "203.0.113.50" },
    ]);
  });
});

const VALID_ROUTE = {
  hostname: "new.example.com",
  backend: "127.0.0.1:9000",
  // The generated encoder needs every field; on the wire these are what an old client sends.
  backends: [],
  balance: "",
  healthCheck: "",
  healthCheckPath: "",
  mode: "",
  tlsCert: "",
  tlsKey: "",
  backendTls: false,
  sendProxyProtocol: false,
};

const BAD_REQUESTS: [string, string, unknown, grpc.status, string][] = [
  [
    "bad hostname",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, hostname: "bad..example" } },
    grpc.status.INVALID_ARGUMENT,
    'hostname "bad..example"',
  ],
  [
    "bad backend",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, backend: "127.0.0.1" } },
    grpc.status.INVALID_ARGUMENT,
    'backend "127.0.0.1": missing :port',
  ],
  [
    "backend port 0",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, backend: "127.0.0.1:0" } },
    grpc.status.INVALID_ARGUMENT,
    'backend "127.0.0.1:0": port out of range',
  ],
  [
    "l7 without cert",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, mode: "l7", tlsKey: "/k.pem" } },
    grpc.status.INVALID_ARGUMENT,
    "l7 route needs tls_cert",
  ],
  [
    "l7 without key",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, mode: "l7", tlsCert: "/c.pem" } },
    grpc.status.INVALID_ARGUMENT,
    "l7 route needs tls_key",
  ],
  [
    "unknown mode",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, mode: "l5" } },
    grpc.status.INVALID_ARGUMENT,
    'mode "l5"',
  ],
  [
    "l4 with a certificate",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, tlsCert: "/c.pem" } },
    grpc.status.INVALID_ARGUMENT,
    "tls_cert/tls_key are for l7 routes only",
  ],
  [
    "no route",
    "addRoute",
    { listenerAddr: ":443" },
    grpc.status.INVALID_ARGUMENT,
    "route is required",
  ],
  [
    "empty listener",
    "addRoute",
    { listenerAddr: "", route: VALID_ROUTE },
    grpc.status.INVALID_ARGUMENT,
    "listener_addr is required",
  ],
  [
    "unknown listener on add",
    "addRoute",
    { listenerAddr: ":9999", route: VALID_ROUTE },
    grpc.status.NOT_FOUND,
    'listener_addr ":9999": no such listener',
  ],
  [
    "unknown listener on remove",
    "removeRoute",
    { listenerAddr: ":9999", hostname: "metacircular.net" },
    grpc.status.NOT_FOUND,
    'listener_addr ":9999"',
  ],
  [
    "unknown listener on list",
    "listRoutes",
    { listenerAddr: "0.0.0.0:443" },
    grpc.status.NOT_FOUND,
    'listener_addr "0.0.0.0:443"',
  ],
  [
    "duplicate route",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, hostname: "metacircular.net" } },
    grpc.status.ALREADY_EXISTS,
    '"metacircular.net" already exists',
  ],
  [
    "duplicate route in another spelling",
    "addRoute",
    { listenerAddr: ":443", route: { ...VALID_ROUTE, hostname: "MetaCircular.NET." } },
    grpc.status.ALREADY_EXISTS,
    '"metacircular.net" already exists',
  ],
  [
    "remove missing route",
    "removeRoute",
    { listenerAddr: ":443", hostname: "missing.example.com" },
    grpc.status.NOT_FOUND,
    '"missing.example.com" not found',
  ],
  [
    "remove with a bad hostname",
    "removeRoute",
    { listenerAddr: ":443", hostname: "-x-" },
    grpc.status.INVALID_ARGUMENT,
    'hostname "-x-"',
  ],
  [
    "bad CIDR",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_CIDR, value: "10.0.0.0/33" } },
    grpc.status.INVALID_ARGUMENT,
    'cidr "10.0.0.0/33"',
  ],
  [
    "bad IP",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: "300.1.1.1" } },
    grpc.status.INVALID_ARGUMENT,
    'ip "300.1.1.1"',
  ],
  [
    "bad country code",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_COUNTRY, value: "RUS" } },
    grpc.status.INVALID_ARGUMENT,
    'country "RUS"',
  ],
  [
    "unspecified rule type",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_UNSPECIFIED, value: "10.0.0.1" } },
    grpc.status.INVALID_ARGUMENT,
    "rule.type FIREWALL_RULE_TYPE_UNSPECIFIED",
  ],
  [
    "unspecified rule type on remove",
    "removeFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_UNSPECIFIED, value: "203.0.113.50" } },
    grpc.status.INVALID_ARGUMENT,
    "rule.type FIREWALL_RULE_TYPE_UNSPECIFIED",
  ],
  [
    "rule type this version does not know",
    "addFirewallRule",
    { rule: { type: 7, value: "10.0.0.1" } },
    grpc.status.INVALID_ARGUMENT,
    "rule.type 7: expected FIREWALL_RULE_TYPE_IP",
  ],
  ["no rule", "addFirewallRule", {}, grpc.status.INVALID_ARGUMENT, "rule is required"],
  [
    "duplicate rule",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: "203.0.113.50" } },
    grpc.status.ALREADY_EXISTS,
    "ip:203.0.113.50 already exists",
  ],
  [
    "duplicate rule in another spelling",
    "addFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_CIDR, value: "198.51.100.0/24" } },
    grpc.status.ALREADY_EXISTS,
    "cidr:198.51.100.0/24 already exists",
  ],
  [
    "remove missing rule",
    "removeFirewallRule",
    { rule: { type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: "192.0.2.1" } },
    grpc.status.NOT_FOUND,
    "ip:192.0.2.1 not found",
  ],
];

describe("bad requests change nothing", () => {
  test.each(BAD_REQUESTS)("%s: %s is refused", async (_name, method, request, code, message) => {
    const before = snapshotState(fx.store, fx.runtime);
    const result = await rawCall(method, request);
    expect(grpc.status[result.code]).toBe(grpc.status[code]);
    expect(result.details).toContain(message);
    expect(snapshotState(fx.store, fx.runtime)).toEqual(before);
  });

  test("the typed client reports the code name and the server's message", async () => {
    const error = await fx.client
      .addRoute(":9999", { hostname: "x.example.com", backend: "127.0.0.1:1" })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AdminCallError);
    expect((error as AdminCallError).codeName).toBe("NOT_FOUND");
    expect((error as AdminCallError).message).toStartWith(
      'AddRoute: NOT_FOUND: listener_addr ":9999": no such listener',
    );
    expect((error as AdminCallError).exitCode).toBe(1);
  });

  test("a country rule without a GeoIP database is FAILED_PRECONDITION and commits nothing", async () => {
    const noGeoip = await startAdminFixture(certs, { geoip: false });
    try {
      const before = snapshotState(noGeoip.store, noGeoip.runtime);
      const error = await noGeoip.client
        .addFirewallRule({ type: "country", value: "RU" })
        .catch((caught: unknown) => caught as AdminCallError);
      expect(error).toBeInstanceOf(AdminCallError);
      expect((error as AdminCallError).codeName).toBe("FAILED_PRECONDITION");
      expect((error as AdminCallError).details).toMatch(/country rule "RU" needs a GeoIP database/);
      expect(snapshotState(noGeoip.store, noGeoip.runtime)).toEqual(before);
    } finally {
      await noGeoip.close();
    }
  });
});

describe("start-up failures name what is wrong", () => {
  test.each([
    [
      "the address is in use",
      "inUse",
      /admin API: cannot listen on grpc\.addr "127\.0\.0\.1:\d+": /,
    ],
    [
      "the certificate is missing",
      "noCert",
      /admin API: grpc\.tls_cert "\/nonexistent\/cert\.pem": cannot read/,
    ],
    [
      "the client CA is missing",
      "noCa",
      /admin API: grpc\.client_ca "\/nonexistent\/ca\.pem": cannot read/,
    ],
    [
      "the key and certificate are swapped",
      "swapped",
      /admin API: grpc\.tls_cert ".*localhost-key\.pem": not a PEM certificate/,
    ],
    [
      "the key belongs to another certificate",
      "otherKey",
      /admin API: grpc\.tls_key ".*admin-client-key\.pem" is not the key of grpc\.tls_cert/,
    ],
  ] as const)("%s", async (_name, kind, message) => {
    const grpcConfig = {
      addr: kind === "inUse" ? `127.0.0.1:${fx.server.port}` : "127.0.0.1:0",
      tlsCert:
        kind === "noCert"
          ? "/nonexistent/cert.pem"
          : kind === "swapped"
            ? certs.server.key
            : certs.server.cert,
      tlsKey: kind === "otherKey" ? certs.client.key : certs.server.key,
      clientCa: kind === "noCa" ? "/nonexistent/ca.pem" : certs.ca,
      clientCert: "",
      clientKey: "",
      insecure: false,
      serverCa: "",
    };
    const error = await startAdminServer({
      grpc: grpcConfig,
      store: fx.store,
      runtime: fx.runtime,
      logger: createMemoryLogger().logger,
      version: "0.1.0",
    }).then(
      async (server) => {
        await server.stop();
        return null;
      },
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(AdminServerError);
    expect((error as Error).message).toMatch(message);
  });
});

describe("mTLS", () => {
  /**
   * Raw TLS to the admin port, as an HTTP/2 client would open it: how the connection ended
   * and how many application bytes arrived first (an accepted client gets the server's HTTP/2
   * SETTINGS frame at once).
   */
  function probe(clientCert?: {
    cert: string;
    key: string;
  }): Promise<{ error: string; bytes: number }> {
    return new Promise((resolve) => {
      let bytes = 0;
      let error = "";
      const socket = tlsConnect({
        host: "127.0.0.1",
        port: fx.server.port,
        servername: "localhost",
        ca: readFileSync(certs.ca),
        cert: clientCert ? readFileSync(clientCert.cert) : undefined,
        key: clientCert ? readFileSync(clientCert.key) : undefined,
        ALPNProtocols: ["h2"],
      });
      socket.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        socket.destroy();
      });
      socket.on("error", (caught: NodeJS.ErrnoException) => {
        error = caught.code ?? caught.message;
      });
      socket.on("close", () => resolve({ error, bytes }));
    });
  }

  test("the admin certificate is accepted: the server speaks HTTP/2 at once", async () => {
    const result = await probe(certs.client);
    expect(result.bytes).toBeGreaterThan(0);
  });

  // Bun's TLS server sends the certificate_required alert (116) for a missing certificate, but
  // closes without an alert for one from an unknown CA (openssl s_client: "unexpected eof"):
  // either way the connection ends in the handshake, before one byte of HTTP/2.
  test.each([
    ["no client certificate", undefined, /CERTIFICATE_REQUIRED/],
    ["a certificate from another CA", "rogue", /^(|.*(UNKNOWN_CA|BAD_CERTIFICATE|ECONNRESET).*)$/],
  ] as const)("%s is refused in the TLS handshake", async (_name, which, alert) => {
    const clientCert = which === "rogue" ? certs.rogueClient : undefined;
    const result = await probe(clientCert);
    expect(result.bytes).toBe(0);
    expect(result.error).toMatch(alert);

    const before = snapshotState(fx.store, fx.runtime);
    const client = AdminClient.connect({
      addr: `localhost:${fx.server.port}`,
      ca: certs.ca,
      cert: clientCert?.cert,
      key: clientCert?.key,
    });
    try {
      const error = await client
        .addRoute(":443", { hostname: "mtls.example.com", backend: "127.0.0.1:1" })
        .catch((caught: unknown) => caught as AdminCallError);
      expect(error).toBeInstanceOf(AdminCallError);
      expect((error as AdminCallError).codeName).toBe("UNAVAILABLE");
    } finally {
      client.close();
    }
    expect(snapshotState(fx.store, fx.runtime)).toEqual(before);
  });

  test("the admin certificate completes the handshake", async () => {
    expect(await fx.client.status()).toMatchObject({ version: "0.1.0" });
  });
});

describe("without client_ca", () => {
  test("TLS only: a client without a certificate is served, verifying a pinned self-signed tls_cert", async () => {
    const selfSigned = makeSelfSigned();
    const tlsOnly = await startAdminFixture(certs, {
      grpc: { tlsCert: selfSigned.cert, tlsKey: selfSigned.key, clientCa: "" },
    });
    // What `mc-proxy status -c` does with this config: CA = tls_cert itself, no client cert.
    const options = connectOptionsFromGrpcConfig({
      addr: `127.0.0.1:${tlsOnly.server.port}`,
      tlsCert: selfSigned.cert,
      tlsKey: selfSigned.key,
      clientCa: "",
      clientCert: "",
      clientKey: "",
      insecure: false,
      serverCa: "",
    });
    expect(options).toMatchObject({ ca: selfSigned.cert, cert: undefined, key: undefined });
    const client = AdminClient.connect(options);
    try {
      expect((await client.status()).listeners).toHaveLength(2);
    } finally {
      client.close();
      await tlsOnly.close();
    }
  });
});

describe("reflection, with no generated code", () => {
  test("lists services, serves the admin file with its imports, and drives ListRoutes", async () => {
    const reflection = reflectionStream(`localhost:${fx.server.port}`, channelCredentials());
    try {
      const listed = await reflection.ask({ list_services: "*" });
      const names = listed.list_services_response.service.map(
        (service: { name: string }) => service.name,
      );
      expect(names).toContain(ADMIN_SERVICE_NAME);
      expect(names).toContain("grpc.health.v1.Health");
      expect(names).toContain("grpc.reflection.v1.ServerReflection");

      const found = await reflection.ask({ file_containing_symbol: ADMIN_SERVICE_NAME });
      const files: Buffer[] = found.file_descriptor_response.file_descriptor_proto;
      expect(files.length).toBe(2);

      // grpcurl links the files strictly: every import must be served and declared.
      const writer = new BinaryWriter();
      // The answer lists the file first; a registry is built from its dependencies up.
      for (const file of [...files].reverse()) writer.tag(1, WireType.LengthDelimited).bytes(file);
      const setBytes = writer.finish();
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, setBytes));
      expect(registry.getFile("mc_proxy/v1/admin.proto")?.proto.dependency).toEqual([
        "google/protobuf/timestamp.proto",
      ]);

      const definition = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(setBytes), {
        keepCase: true,
      });
      const fieldNames = (type: string) =>
        (definition[type] as { type: { field: { name: string }[] } }).type.field.map(
          (field) => field.name,
        );
      // The 0.1.0 fields keep their names and numbers; new ones only come after them.
      expect(fieldNames("mc_proxy.v1.Route")).toEqual([
        "hostname",
        "backend",
        "mode",
        "tls_cert",
        "tls_key",
        "backend_tls",
        "send_proxy_protocol",
        "backends",
        "balance",
        "health_check",
        "health_check_path",
      ]);
      expect(fieldNames("mc_proxy.v1.ListRoutesRequest")).toEqual(["listener_addr"]);
      expect(fieldNames("mc_proxy.v1.ListenerStatus")).toEqual([
        "addr",
        "route_count",
        "active_connections",
        "proxy_protocol",
      ]);

      // biome-ignore lint/suspicious/noExplicitAny: a dynamic client has no static type.
      const loaded = grpc.loadPackageDefinition(definition) as any;
      const dynamic = new loaded.mc_proxy.v1.ProxyAdminService(
        `localhost:${fx.server.port}`,
        channelCredentials(),
      );
      // biome-ignore lint/suspicious/noExplicitAny: see above.
      const response = await new Promise<any>((resolve, reject) =>
        dynamic.ListRoutes({ listener_addr: ":443" }, (error: Error | null, value: unknown) =>
          error ? reject(error) : resolve(value),
        ),
      );
      dynamic.close();
      expect(response.routes.map((route: { hostname: string }) => route.hostname)).toEqual([
        "metacircular.net",
      ]);
      expect(response.routes[0].backend).toBe("127.0.0.1:28443");
    } finally {
      reflection.close();
    }
  });

  test.each([
    [{ file_by_filename: "mc_proxy/v1/admin.proto" }, "file_descriptor_response"],
    [{ file_containing_symbol: "mc_proxy.v1.Route.tls_cert" }, "file_descriptor_response"],
    [
      { file_containing_symbol: "mc_proxy.v1.ProxyAdminService.AddRoute" },
      "file_descriptor_response",
    ],
    [{ file_containing_symbol: "mc_proxy.v1.FIREWALL_RULE_TYPE_IP" }, "file_descriptor_response"],
    [{ all_extension_numbers_of_type: "mc_proxy.v1.Route" }, "all_extension_numbers_response"],
    [{ file_by_filename: "nope.proto" }, "error_response"],
    [{ file_containing_symbol: "mc_proxy.v1.Nope" }, "error_response"],
    [{ all_extension_numbers_of_type: "mc_proxy.v1.Nope" }, "error_response"],
  ])("%o is answered with %s", async (request, answer) => {
    const reflection = reflectionStream(`localhost:${fx.server.port}`, channelCredentials());
    try {
      const response = await reflection.ask(request);
      expect(response.message_response).toBe(answer);
      if (answer === "error_response") {
        expect(response.error_response.error_code).toBe(grpc.status.NOT_FOUND);
      }
    } finally {
      reflection.close();
    }
  });
});

describe("health", () => {
  test.each([
    ["", HealthCheckResponse_ServingStatus.SERVING],
    [ADMIN_SERVICE_NAME, HealthCheckResponse_ServingStatus.SERVING],
  ])("Check(%p) is SERVING", async (service, expected) => {
    const health = new HealthClient(`localhost:${fx.server.port}`, channelCredentials());
    const response = await new Promise<{ status: number }>((resolve, reject) =>
      health.check({ service }, (error, value) => (error ? reject(error) : resolve(value))),
    );
    health.close();
    expect(response.status).toBe(expected);
  });

  test("Check of an unknown service is NOT_FOUND", async () => {
    const health = new HealthClient(`localhost:${fx.server.port}`, channelCredentials());
    const code = await new Promise<grpc.status>((resolve) =>
      health.check({ service: "nope.Service" }, (error) =>
        resolve(error ? error.code : grpc.status.OK),
      ),
    );
    health.close();
    expect(code).toBe(grpc.status.NOT_FOUND);
  });

  test("Watch sends SERVING at once", async () => {
    const health = new HealthClient(`localhost:${fx.server.port}`, channelCredentials());
    const stream = health.watch({ service: "" });
    const first = await new Promise<{ status: number }>((resolve) => stream.once("data", resolve));
    expect(first.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    stream.on("error", () => {});
    stream.cancel();
    health.close();
  });
});

describe("concurrency", () => {
  test("200 concurrent AddRoute/RemoveRoute/firewall calls leave the database and the runtime identical", async () => {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const listener = i % 4 < 2 ? ":443" : "127.0.0.1:8443";
      const hostname = `h${i % 50}.example.com`;
      if (i % 10 === 9) {
        const rule = { type: "ip", value: `192.0.2.${i % 20}` } as const;
        calls.push(
          i % 20 < 10 ? fx.client.addFirewallRule(rule) : fx.client.removeFirewallRule(rule),
        );
      } else if (i % 3 === 0) {
        calls.push(fx.client.removeRoute(listener, hostname));
      } else {
        calls.push(fx.client.addRoute(listener, { hostname, backend: `127.0.0.1:${10000 + i}` }));
      }
    }
    const results = await Promise.allSettled(calls);
    const fulfilled = results.filter((result) => result.status === "fulfilled").length;
    expect(fulfilled).toBeGreaterThan(50);
    for (const result of results) {
      if (result.status === "rejected") {
        expect(result.reason).toBeInstanceOf(AdminCallError);
        expect(["NOT_FOUND", "ALREADY_EXISTS"]).toContain(
          (result.reason as AdminCallError).codeName,
        );
      }
    }
    for (const addr of [":443", "127.0.0.1:8443"]) {
      expect(sortedRoutes(fx.runtime.routeTable(addr)!.routes)).toEqual(
        sortedRoutes(fx.store.routes(addr)),
      );
    }
    expect(sortedRules(fx.runtime.firewallRules())).toEqual(sortedRules(fx.store.firewallRules()));
    expect(fx.store.allRoutes().get(":443")!.length).toBeGreaterThan(1);

    // Put the fixture back for any test that runs after this one.
    for (const [addr, routes] of fx.store.allRoutes()) {
      for (const route of routes) {
        if (route.hostname !== "metacircular.net")
          await fx.client.removeRoute(addr, route.hostname);
      }
    }
    for (const rule of fx.store.firewallRules()) {
      if (rule.value.startsWith("192.0.2.")) await fx.client.removeFirewallRule(rule);
    }
  });
});
