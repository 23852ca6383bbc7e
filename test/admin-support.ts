// Shared set-up of the admin API tests: certificates, a real Store and Runtime, a served API.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { AdminServer } from "../src/admin/index.ts";
import { startAdminServer } from "../src/admin/index.ts";
import { AdminClient } from "../src/client/index.ts";
import { parseConfig } from "../src/config/parse-config.ts";
import type { RuntimeStatus } from "../src/domain/reports.ts";
import type { Config, FirewallRule, GrpcConfig, RouteSpec } from "../src/domain/types.ts";
import { GeoIpDatabase } from "../src/firewall/geoip.ts";
import { createMemoryLogger } from "../src/log/logger.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { Store } from "../src/store/index.ts";
import { makeCa } from "./helpers/certs.ts";

export { makeSelfSigned } from "./helpers/certs.ts";

import { tempDir } from "./helpers/proxy.ts";

export const GEOIP_FIXTURE = join(import.meta.dir, "fixtures/geoip/country-a.mmdb");

/** One private CA for the server and the admin client, and a second CA nobody trusts. */
export interface AdminCerts {
  ca: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
  /** A client certificate signed by the other CA. */
  rogueClient: { cert: string; key: string };
}

export function makeAdminCerts(): AdminCerts {
  const ca = makeCa("admin-ca", tempDir("mc-proxy-admin-ca-"));
  const rogue = makeCa("rogue-ca", tempDir("mc-proxy-rogue-ca-"));
  return {
    ca: ca.cert,
    server: ca.issue("localhost", ["localhost"]),
    client: ca.issue("admin-client", ["admin-client"]),
    rogueClient: rogue.issue("rogue-client", ["rogue-client"]),
  };
}

/** A config with two listeners and seed routes/rules; never listened on by these tests. */
export function adminTestConfig(dir: string): Config {
  return parseConfig(
    `
[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = ":443"

  [[listeners.routes]]
  hostname = "metacircular.net"
  backend = "127.0.0.1:28443"

[[listeners]]
addr = "127.0.0.1:8443"
proxy_protocol = true

[firewall]
geoip_db = "${GEOIP_FIXTURE}"
blocked_ips = ["203.0.113.50"]
blocked_cidrs = ["198.51.100.0/24"]
`,
    join(dir, "mc-proxy.toml"),
  );
}

export interface AdminFixture {
  dir: string;
  config: Config;
  store: Store;
  runtime: Runtime;
  server: AdminServer;
  logLines: string[];
  /** A client over mTLS with the admin certificate. */
  client: AdminClient;
  close(): Promise<void>;
}

/**
 * Seeds a fresh database from the config, builds the real Runtime from it (with the GeoIP
 * fixture unless `geoip: false`) and serves the admin API on 127.0.0.1, port 0, over mTLS.
 */
export async function startAdminFixture(
  certs: AdminCerts,
  options: { geoip?: boolean; grpc?: Partial<GrpcConfig> } = {},
): Promise<AdminFixture> {
  const dir = tempDir("mc-proxy-admin-");
  const config = adminTestConfig(dir);
  const { logger, lines } = createMemoryLogger("info");
  const store = Store.open(config.database.path);
  store.reconcileWithConfig(config);
  const runtime = new Runtime({
    config,
    routes: store.allRoutes(),
    rules: store.firewallRules(),
    geoip: options.geoip === false ? null : GeoIpDatabase.open(GEOIP_FIXTURE),
    logger,
    version: "0.1.0",
  });
  const server = await startAdminServer({
    grpc: {
      addr: "127.0.0.1:0",
      tlsCert: certs.server.cert,
      tlsKey: certs.server.key,
      clientCa: certs.ca,
      clientCert: "",
      clientKey: "",
      insecure: false,
      serverCa: "",
      ...options.grpc,
    },
    store,
    runtime,
    logger,
    version: "0.1.0",
  });
  const client = AdminClient.connect({
    addr: `127.0.0.1:${server.port}`,
    ca: certs.ca,
    cert: certs.client.cert,
    key: certs.client.key,
  });
  return {
    dir,
    config,
    store,
    runtime,
    server,
    logLines: lines,
    client,
    async close() {
      client.close();
      await server.stop();
      store.close();
    },
  };
}

/** Everything the admin API can change, as the database and as the running proxy hold it. */
export interface StateSnapshot {
  db: { routes: Record<string, RouteSpec[]>; rules: FirewallRule[] };
  runtime: { routes: Record<string, RouteSpec[]>; rules: FirewallRule[]; status: RuntimeStatus };
}

export function snapshotState(store: Store, runtime: Runtime): StateSnapshot {
  const runtimeRoutes: Record<string, RouteSpec[]> = {};
  for (const { addr } of runtime.status().listeners) {
    runtimeRoutes[addr] = [...(runtime.routeTable(addr)?.routes ?? [])];
  }
  return {
    db: { routes: Object.fromEntries(store.allRoutes()), rules: store.firewallRules() },
    runtime: {
      routes: runtimeRoutes,
      rules: [...runtime.firewallRules()],
      status: runtime.status(),
    },
  };
}

/** Sorted copies, for comparing the runtime's tables with the database's ordered reads. */
export function sortedRoutes(routes: readonly RouteSpec[]): RouteSpec[] {
  return [...routes].sort((a, b) => a.hostname.localeCompare(b.hostname));
}

export function sortedRules(rules: readonly FirewallRule[]): FirewallRule[] {
  return [...rules].sort((a, b) => `${a.type}:${a.value}`.localeCompare(`${b.type}:${b.value}`));
}

/**
 * A reflection v1 stream built by proto-loader from the vendored .proto alone (no generated
 * code): what a generic tool such as grpcurl does. `ask` sends one request, resolves with its
 * answer (plain objects, snake_case fields).
 */
export function reflectionStream(target: string, credentials: grpc.ChannelCredentials) {
  const definition = protoLoader.loadSync(
    join(import.meta.dir, "../proto/grpc/reflection/v1/reflection.proto"),
    { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  // biome-ignore lint/suspicious/noExplicitAny: a dynamic client has no static type.
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const client = new loaded.grpc.reflection.v1.ServerReflection(target, credentials);
  const stream = client.ServerReflectionInfo();
  // biome-ignore lint/suspicious/noExplicitAny: reflection answers are plain objects.
  const pending: ((response: any) => void)[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: see above.
  stream.on("data", (response: any) => pending.shift()?.(response));
  return {
    // biome-ignore lint/suspicious/noExplicitAny: see above.
    ask(request: object): Promise<any> {
      return new Promise((resolve) => {
        pending.push(resolve);
        stream.write(request);
      });
    },
    close() {
      stream.end();
      client.close();
    },
  };
}
