// Test helpers for the store: temporary database directories and Config values built in code.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config, FirewallRule, ListenerSpec, RouteSpec } from "../domain/types.ts";

/** A fresh directory under the system temp dir; `cleanup` removes it and everything in it. */
export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * An l4 route with every option off, unless overridden. `backends` defaults to `backend`
 * alone; when `extra.backends` is given, `backend` follows its first entry.
 */
export function route(
  hostname: string,
  backend: string,
  extra: Partial<RouteSpec> = {},
): RouteSpec {
  const backends = extra.backends ?? [{ addr: backend, weight: 1 }];
  return {
    hostname,
    backends,
    balance: "least_connections",
    healthCheck: "none",
    healthCheckPath: "",
    mode: "l4",
    tlsCert: "",
    tlsKey: "",
    backendTls: false,
    sendProxyProtocol: false,
    ...extra,
    backend: backends[0]?.addr ?? backend,
  };
}

export function listener(addr: string, routes: RouteSpec[]): ListenerSpec {
  return {
    addr,
    proxyProtocol: false,
    proxyProtocolFrom: [],
    maxConnections: 0,
    maxConnectionsPerIp: 0,
    routes,
  };
}

/** A Config as load-config would return it, with only what the store reads filled in. */
export function makeConfig(
  databasePath: string,
  listeners: ListenerSpec[],
  rules: FirewallRule[] = [],
): Config {
  return {
    sourcePath: "/etc/mc-proxy/mc-proxy.toml",
    database: { path: databasePath },
    listeners,
    grpc: null,
    firewall: { geoipDb: "", rules },
    metrics: null,
    proxy: {
      connectTimeoutMs: 5000,
      helloTimeoutMs: 10000,
      headerTimeoutMs: 30000,
      bodyIdleTimeoutMs: 60000,
      idleTimeoutMs: 300000,
      shutdownTimeoutMs: 30000,
      healthCheckIntervalMs: 5000,
      healthCheckTimeoutMs: 2000,
      backendHoldDownMs: 10000,
      backendCa: "",
      workers: 1,
    },
  };
}
