// The admin API against the real `mc-proxy server`, driven by `mc-proxy status` and the real
// `mcproxyctl` entry point (or the compiled executables named by MC_PROXY_BIN / MCPROXYCTL_BIN).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.ts";
import pkg from "../package.json" with { type: "json" };
import { reflectionStream } from "./admin-support.ts";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort, tlsAttempt } from "./helpers/clients.ts";
import {
  mcProxyCommand,
  mcproxyctlCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";

const LISTENER = "127.0.0.1:0";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(command: string[], args: string[]): Promise<Run> {
  const proc = Bun.spawn([...command, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

const mcproxyctl = (args: string[]) => run(mcproxyctlCommand(), args);
const mcProxy = (args: string[]) => run(mcProxyCommand(), args);

let ca: TestCa;
let admin: CertPair;
let dir: string;
let config: string;
let grpcAddr: string;
let backendA: OpensslServer;
let backendB: OpensslServer;
let proxy: RunningProxy;
/** The explicit connection flags, as an operator without a config file would type them. */
let flags: string[];

/** The admin API by name, as the server certificate names it. */
function grpcTarget(): string {
  return `localhost:${grpcAddr.slice(grpcAddr.lastIndexOf(":") + 1)}`;
}

async function servedBy(servername: string): Promise<string> {
  const result = await tlsAttempt(proxy.port(LISTENER), { servername });
  return result.peerCommonName ?? result.outcome;
}

beforeAll(async () => {
  ca = makeCa("e2e-ca");
  const server = ca.issue("localhost", ["localhost"]);
  admin = ca.issue("admin", ["admin"]);
  backendA = await startOpensslServer(ca.issue("backend-a"));
  backendB = await startOpensslServer(ca.issue("backend-b"));
  dir = tempDir("mc-proxy-admin-e2e-");
  grpcAddr = `127.0.0.1:${await freePort()}`;
  config = writeFile(
    dir,
    "mc-proxy.toml",
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
  [[listeners.routes]]
  hostname = "a.example.com"
  backend = "127.0.0.1:${backendA.port}"

[grpc]
addr = "${grpcAddr}"
tls_cert = "${server.cert}"
tls_key = "${server.key}"
client_ca = "${ca.cert}"
client_cert = "${admin.cert}"
client_key = "${admin.key}"
`,
  );
  flags = ["--addr", grpcAddr, "--ca", ca.cert, "--cert", admin.cert, "--key", admin.key];
  proxy = await startProxy(config);
}, 30_000);

afterAll(async () => {
  await proxy?.stop();
  backendA?.stop();
  backendB?.stop();
});

describe("status", () => {
  test("`mc-proxy status -c` prints the SPEC §1 report", async () => {
    await servedBy("a.example.com");
    const result = await mcProxy(["status", "-c", config]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^mc-proxy v${pkg.version.replaceAll(".", "\\.")}\\n` +
          "uptime:      (\\d+h)?(\\d+m)?\\d+s\\n" +
          "connections: [1-9]\\d*\\n" +
          "\\n" +
          "  127\\.0\\.0\\.1:0  routes=1  active=0\\n$",
      ),
    );
  });

  test("`mcproxyctl status --json` gives the same figures as JSON", async () => {
    const result = await mcproxyctl(["status", "--json", "-c", config]);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.version).toBe(pkg.version);
    expect(status.listeners).toEqual([
      { addr: LISTENER, route_count: 1, active_connections: 0, proxy_protocol: false },
    ]);
    expect(Date.parse(status.started_at)).toBeLessThanOrEqual(Date.now());
  });
});

describe("the running server's health and reflection", () => {
  // With MC_PROXY_BIN set this is the compiled executable: reflection must work from the
  // embedded descriptor set, with no .proto file on disk.
  function credentials(): grpc.ChannelCredentials {
    return grpc.credentials.createSsl(
      readFileSync(ca.cert),
      readFileSync(admin.key),
      readFileSync(admin.cert),
    );
  }

  test("reflection lists the services and serves the admin file with its import", async () => {
    const reflection = reflectionStream(grpcTarget(), credentials());
    try {
      const listed = await reflection.ask({ list_services: "" });
      expect(
        listed.list_services_response.service.map((service: { name: string }) => service.name),
      ).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "mc_proxy.v1.ProxyAdminService",
      ]);
      const found = await reflection.ask({
        file_containing_symbol: "mc_proxy.v1.GetStatusResponse",
      });
      expect(found.file_descriptor_response.file_descriptor_proto).toHaveLength(2);
    } finally {
      reflection.close();
    }
  });

  test("health Check is SERVING", async () => {
    const health = new HealthClient(grpcTarget(), credentials());
    const response = await new Promise<{ status: number }>((resolve, reject) =>
      health.check({ service: "mc_proxy.v1.ProxyAdminService" }, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
    health.close();
    expect(response.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe("changes through mcproxyctl reach the running proxy and survive a restart", () => {
  test("routes add: the next connection reaches the new backend", async () => {
    expect(await servedBy("b.example.com")).not.toBe("backend-b");
    const added = await mcproxyctl([
      "routes",
      "add",
      ...flags,
      "--listener",
      LISTENER,
      "--hostname",
      "b.example.com",
      "--backend",
      `127.0.0.1:${backendB.port}`,
      "--send-proxy-protocol",
    ]);
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    expect(added.stdout).toBe(
      `added route b.example.com -> 127.0.0.1:${backendB.port} on ${LISTENER}\n`,
    );
    // The backend does not speak PROXY v2; turn it off again so the handshake completes.
    await mcproxyctl([
      "routes",
      "remove",
      ...flags,
      "--listener",
      LISTENER,
      "--hostname",
      "b.example.com",
    ]);
    const plain = await mcproxyctl([
      "routes",
      "add",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--hostname",
      "b.example.com",
      "--backend",
      `127.0.0.1:${backendB.port}`,
    ]);
    expect(plain.code).toBe(0);
    expect(await servedBy("b.example.com")).toBe("backend-b");
    expect(await servedBy("a.example.com")).toBe("backend-a");
    expect(
      proxy.logs.some(
        (line) => line.includes('msg="route added"') && line.includes("hostname=b.example.com"),
      ),
    ).toBe(true);
  });

  test("routes list shows every listener's routes with mode and option tags", async () => {
    // l7 certificates are loaded when the route is added, so they must be real files.
    const l7 = makeCa("l7-ca").issue("l7.example.com", ["*.l7.example.com"]);
    const added = await mcproxyctl([
      "routes",
      "add",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--hostname",
      "*.l7.example.com",
      "--backend",
      "127.0.0.1:1",
      "--mode",
      "l7",
      "--tls-cert",
      l7.cert,
      "--tls-key",
      l7.key,
      "--backend-tls",
      "--send-proxy-protocol",
    ]);
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    const table = await mcproxyctl(["routes", "list", "-c", config]);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")).toEqual([
      expect.stringMatching(/^LISTENER +HOSTNAME +BACKEND +MODE +OPTIONS$/),
      expect.stringMatching(
        /^127\.0\.0\.1:0 +\*\.l7\.example\.com +127\.0\.0\.1:1 +l7 +backend-tls,proxy-v2$/,
      ),
      expect.stringMatching(
        new RegExp(
          `^127\\.0\\.0\\.1:0 +a\\.example\\.com +127\\.0\\.0\\.1:${backendA.port} +l4 +-$`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^127\\.0\\.0\\.1:0 +b\\.example\\.com +127\\.0\\.0\\.1:${backendB.port} +l4 +-$`,
        ),
      ),
      "",
    ]);
    const json = await mcproxyctl(["routes", "list", "--json", "--listener", LISTENER, ...flags]);
    expect(JSON.parse(json.stdout)).toContainEqual({
      listener_addr: LISTENER,
      hostname: "*.l7.example.com",
      backend: "127.0.0.1:1",
      backends: [{ addr: "127.0.0.1:1", weight: 1 }],
      balance: "least_connections",
      health_check: "none",
      health_check_path: "",
      mode: "l7",
      tls_cert: l7.cert,
      tls_key: l7.key,
      backend_tls: true,
      send_proxy_protocol: true,
    });
    const removed = await mcproxyctl([
      "routes",
      "remove",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--hostname",
      "*.l7.example.com",
    ]);
    expect(removed.code).toBe(0);
  });

  test("firewall add blocks the next connection; remove lets it through again", async () => {
    const added = await mcproxyctl([
      "firewall",
      "add",
      "-c",
      config,
      "--type",
      "ip",
      "--value",
      "127.0.0.1",
    ]);
    expect(added.code).toBe(0);
    expect(await servedBy("a.example.com")).not.toBe("backend-a");
    const list = await mcproxyctl(["firewall", "list", "--json", "-c", config]);
    expect(JSON.parse(list.stdout)).toEqual([{ type: "ip", value: "127.0.0.1" }]);
    const table = await mcproxyctl(["firewall", "list", "-c", config]);
    expect(table.stdout).toBe("TYPE  VALUE\nip    127.0.0.1\n");
    const removed = await mcproxyctl([
      "firewall",
      "remove",
      "-c",
      config,
      "--type",
      "ip",
      "--value",
      "127.0.0.1",
    ]);
    expect(removed.code).toBe(0);
    expect(await servedBy("a.example.com")).toBe("backend-a");
  });

  test("a restart keeps the route added through the API", async () => {
    expect(await proxy.stop()).toBe(0);
    proxy = await startProxy(config);
    expect(await servedBy("b.example.com")).toBe("backend-b");
    const list = await mcproxyctl(["routes", "list", "--json", "-c", config]);
    expect(JSON.parse(list.stdout).map((route: { hostname: string }) => route.hostname)).toEqual([
      "a.example.com",
      "b.example.com",
    ]);
  });
});

describe("exit codes and messages", () => {
  const cases: [string, () => string[], number, RegExp][] = [
    ["version", () => ["version"], 0, /^mcproxyctl v\d+\.\d+\.\d+\n$/],
    ["--version", () => ["--version"], 0, /^mcproxyctl v\d+\.\d+\.\d+\n$/],
    ["no subcommand", () => [], 2, /Usage|USAGE/],
    ["no address", () => ["status"], 2, /--addr <host:port> \(or -c <config>\) is required/],
    [
      "unknown flag",
      () => ["routes", "list", "--listner", ":443", "-c", config],
      2,
      /unknown flag "--listner"/,
    ],
    [
      "bad --type",
      () => ["firewall", "add", "-c", config, "--type", "asn", "--value", "1"],
      2,
      /--type.*asn/,
    ],
    [
      "missing --hostname",
      () => ["routes", "add", "-c", config, "--listener", LISTENER, "--backend", "127.0.0.1:1"],
      2,
      /--hostname is required/,
    ],
    [
      "bad hostname (INVALID_ARGUMENT)",
      () => [
        "routes",
        "add",
        "-c",
        config,
        "--listener",
        LISTENER,
        "--hostname",
        "bad..name",
        "--backend",
        "127.0.0.1:1",
      ],
      2,
      /AddRoute: INVALID_ARGUMENT: hostname "bad\.\.name"/,
    ],
    [
      "unknown listener (NOT_FOUND)",
      () => ["routes", "list", "-c", config, "--listener", ":9"],
      1,
      /ListRoutes: NOT_FOUND: listener_addr ":9"/,
    ],
    [
      "missing route (NOT_FOUND)",
      () => [
        "routes",
        "remove",
        "-c",
        config,
        "--listener",
        LISTENER,
        "--hostname",
        "zzz.example.com",
      ],
      1,
      /RemoveRoute: NOT_FOUND: route "zzz\.example\.com" not found/,
    ],
    [
      "unreadable CA",
      () => ["status", "--addr", grpcAddr, "--ca", "/nonexistent/ca.pem"],
      2,
      /CA "\/nonexistent\/ca\.pem": cannot read/,
    ],
    [
      "server not trusted",
      () => ["status", "--addr", grpcAddr, "--ca", join(ca.dir, "backend-a.pem")],
      1,
      /GetStatus: UNAVAILABLE/,
    ],
  ];

  const table = cases.map(([name, args, code, message]) => [name, code, args, message] as const);
  test.each(table)("mcproxyctl %s → exit %d", async (_name, code, args, message) => {
    const result = await mcproxyctl(args());
    expect(result.code).toBe(code);
    // Usage goes to stdout with the one-line error on stderr; everything else is one stream.
    expect(result.stdout + result.stderr).toMatch(message);
    if (code !== 0) expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  test("`mc-proxy status` with no [grpc] section exits 2 and says so", async () => {
    const bare = writeFile(
      dir,
      "bare.toml",
      `[database]\npath = "${join(dir, "bare.db")}"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n`,
    );
    const result = await mcProxy(["status", "-c", bare]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("status: the config has no [grpc] section");
  });

  test("`mc-proxy status` and `mcproxyctl status` exit 1 naming the address when the server is down", async () => {
    expect(await proxy.stop()).toBe(0);
    const status = await mcProxy(["status", "-c", config]);
    expect(status.code).toBe(1);
    expect(status.stdout).toBe("");
    expect(status.stderr).toContain(`admin API at ${grpcAddr}`);
    expect(status.stderr).toMatch(/UNAVAILABLE: .*(ECONNREFUSED|No connection established)/);
    const ctl = await mcproxyctl(["status", ...flags]);
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toContain("GetStatus: UNAVAILABLE");
  });
});
