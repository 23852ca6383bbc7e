// `mc-proxy server`: config → store → runtime → listeners and admin API, plus signals.
import { loadConfig } from "../config/load-config.ts";
import { type Config, ParsedAddress } from "../domain/types.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import type { Logger } from "../log/logger.ts";
import { startMetricsServer } from "../metrics/server.ts";
import { descriptorBudget, openFileLimit } from "../net/descriptor-cap.ts";
import { type RunningListener, startListener } from "../net/listener.ts";
import { startDeadlineSweep, sweepTickMs } from "../net/sweeper.ts";
import { Runtime } from "../runtime/runtime.ts";
import { Store } from "../store/store.ts";
import { VERSION } from "../version.ts";
import { warnExposure } from "./exposure-warnings.ts";
import { startHealthChecks } from "./health-checks.ts";

export interface RunningServer {
  runtime: Runtime;
  listeners: RunningListener[];
  /** Stops accepting, drains for up to shutdown_timeout, closes the rest. */
  shutdown(reason: string): Promise<void>;
}

/**
 * Starts everything from a config file. Throws (ConfigError, StoreError, ListenError,
 * GeoIpError…) before anything listens when the config or its files are unusable, so a bad
 * start never half-serves.
 */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const store = Store.open(config.database.path);
  let running: RunningListener[] = [];
  let stopAdmin: (() => Promise<void>) | null = null;
  let stopMetrics: (() => void) | null = null;
  try {
    const reconciled = store.reconcileWithConfig(config);
    if (reconciled.seeded)
      logger.info("database seeded from config", { path: config.database.path });
    for (const addr of reconciled.addedListeners) {
      if (!reconciled.seeded) logger.info("listener added from config", { listener: addr });
    }
    warnDormantListeners(config, store.listenerAddrs(), logger);
    warnExposure(config, logger);
    const geoip = config.firewall.geoipDb ? GeoIpDatabase.open(config.firewall.geoipDb) : null;
    // Read [proxy] backend_ca now, so a bad file stops the start rather than the first dial.
    backendTrust(config.proxy.backendCa);
    const fileLimit = openFileLimit();
    const budget = descriptorBudget(fileLimit);
    logger.info("descriptor budget", { open_file_limit: fileLimit ?? "unknown", budget });
    const runtime = new Runtime({
      config,
      routes: store.allRoutes(),
      rules: store.firewallRules(),
      geoip,
      logger,
      version: VERSION,
      descriptorBudget: budget,
    });
    for (const state of runtime.listenerStates()) {
      const listener = startListener(state, runtime.env);
      running.push(listener);
      logger.info("listening", {
        listener: state.addr,
        addr: formatBound(listener.hostname, listener.port),
        routes: state.routes.size,
        proxy_protocol: state.spec.proxyProtocol,
      });
    }
    if (config.grpc) {
      const { startAdminServer } = await import("../admin/server.ts");
      const admin = await startAdminServer({
        grpc: config.grpc,
        store,
        runtime,
        logger,
        version: VERSION,
      });
      stopAdmin = admin.stop;
      logger.info("admin API listening", {
        addr: formatBound(hostOf(config.grpc.addr), admin.port),
        mtls: config.grpc.clientCa !== "",
      });
    }
    if (config.metrics) {
      const address = ParsedAddress.from(config.metrics);
      const metrics = startMetricsServer(address, runtime);
      stopMetrics = metrics.stop;
      logger.info("metrics listening", {
        addr: formatBound(address.bind.host || "::", metrics.port),
      });
    }
    const stopSweep = startDeadlineSweep(
      runtime.env,
      sweepTickMs([
        config.proxy.helloTimeoutMs,
        config.proxy.connectTimeoutMs,
        config.proxy.idleTimeoutMs,
        config.proxy.headerTimeoutMs,
        config.proxy.bodyIdleTimeoutMs,
      ]),
    );
    const stopHealthChecks = startHealthChecks(runtime, config.proxy, logger);
    logger.info("mc-proxy started", { version: VERSION, listeners: running.length });

    let stopping: Promise<void> | null = null;
    const shutdown = (reason: string): Promise<void> => {
      stopping ??= drainAndStop({
        reason,
        config,
        runtime,
        running,
        stopAdmin,
        stopMetrics,
        stopSweep,
        stopHealthChecks,
        store,
        logger,
      });
      return stopping;
    };
    return { runtime, listeners: running, shutdown };
  } catch (error) {
    for (const listener of running) listener.stopAccepting();
    running = [];
    stopMetrics?.();
    await stopAdmin?.();
    store.close();
    throw error;
  }
}

async function drainAndStop(options: {
  reason: string;
  config: Config;
  runtime: Runtime;
  running: RunningListener[];
  stopAdmin: (() => Promise<void>) | null;
  stopMetrics: (() => void) | null;
  stopSweep: () => void;
  stopHealthChecks: () => void;
  store: Store;
  logger: Logger;
}): Promise<void> {
  const { runtime, logger } = options;
  const env = runtime.env;
  const timeoutMs = options.config.proxy.shutdownTimeoutMs;
  // Stop first, log second: whoever reads the line may rely on new connections being refused.
  for (const listener of options.running) listener.stopAccepting();
  options.stopHealthChecks();
  logger.info(`received ${options.reason}, shutting down`, {
    active: env.open.size,
    shutdown_timeout_ms: timeoutMs,
  });
  if (env.open.size > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      env.onConnectionEnd = () => {
        if (env.open.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }
  const remaining = env.open.size;
  for (const connection of [...env.open]) connection.abort();
  if (remaining > 0)
    logger.warn("shutdown timeout reached, closed open connections", { closed: remaining });
  options.stopSweep();
  options.stopMetrics?.();
  await options.stopAdmin?.();
  // A checkpoint that fails (disk full) leaves the writes in the -wal file: say so at ERROR,
  // or the operator learns it only when the next start cannot read them.
  const checkpointProblem = options.store.checkpoint();
  if (checkpointProblem !== null) {
    logger.error(
      "database checkpoint failed at shutdown; committed changes are only in the -wal file",
      {
        path: options.config.database.path,
        error: checkpointProblem,
      },
    );
  }
  options.store.close();
  logger.info("stopped");
}

/** Listeners kept in the database whose addr the config no longer names: not served. */
function warnDormantListeners(config: Config, stored: string[], logger: Logger): void {
  const configured = new Set(config.listeners.map((listener) => listener.addr));
  for (const addr of stored) {
    if (!configured.has(addr)) {
      logger.warn("listener in database but not in config, not serving it", { listener: addr });
    }
  }
}

function hostOf(addr: string): string {
  const colon = addr.lastIndexOf(":");
  const host = addr.slice(0, colon);
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

function formatBound(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Runs the server until SIGTERM/SIGINT; SIGHUP reloads GeoIP. Resolves when stopped. The
 * handlers are installed before anything starts: a signal that arrives during start-up
 * must not kill the process with the default action (exit 143 without draining).
 */
export async function runServer(configPath: string, logger: Logger): Promise<void> {
  const config = loadConfig(configPath);
  let server: RunningServer | null = null;
  let stopRequested: string | null = null;
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  const stop = (signal: string) => {
    if (server === null) {
      stopRequested ??= signal; // acted on as soon as the start completes
      return;
    }
    server.shutdown(signal).then(resolve, (error) => {
      logger.error("shutdown failed", { error: String(error) });
      resolve();
    });
  };
  const onTerm = () => stop("SIGTERM");
  const onInt = () => stop("SIGINT");
  const onHup = () => {
    logger.info("received SIGHUP, reloading GeoIP database");
    if (server === null) logger.warn("still starting, SIGHUP ignored");
    else if (config.firewall.geoipDb) server.runtime.reloadGeoIp(config.firewall.geoipDb);
    else logger.warn("no geoip_db configured, nothing to reload");
  };
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  process.on("SIGHUP", onHup);
  try {
    server = await startServer(config, logger);
  } catch (error) {
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
    process.off("SIGHUP", onHup);
    throw error;
  }
  if (stopRequested !== null) stop(stopRequested);
  await stopped;
}
