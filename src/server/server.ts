// `mc-proxy server`: config → store → runtime → listeners and admin API, plus signals.

import { resolve } from "node:path";
import { loadConfig } from "../config/load-config.ts";
import { MAX_WORKER_COUNT } from "../config/parse-config.ts";
import { type Config, ParsedAddress, ParsedListener, type WorkerCount } from "../domain/types.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import type { Logger } from "../log/logger.ts";
import { startMetricsServer } from "../metrics/server.ts";
import { descriptorBudget, openFileLimit } from "../net/descriptor-cap.ts";
import { type RunningListener, startListener } from "../net/listener.ts";
import { startDeadlineSweep, sweepTickMs } from "../net/sweeper.ts";
import { Runtime } from "../runtime/runtime.ts";
import { InProcessUpdates, type RuntimeUpdates } from "../runtime/runtime-updates.ts";
import { Store } from "../store/store.ts";
import { VERSION } from "../version.ts";
import { usableCpus } from "./cpu-count.ts";
import { startHealthChecks } from "./health-checks.ts";
import { InstanceLock } from "./instance-lock.ts";
import { startWorkers } from "./start-workers.ts";
import type { WorkerPool } from "./worker-pool.ts";

export interface RunningServer {
  runtime: Runtime;
  listeners: RunningListener[];
  /** Carries a runtime change to every event loop (what the admin API and SIGHUP use). */
  updates: RuntimeUpdates;
  /** The worker threads, or null with `workers = 1` (one event loop, this thread). */
  pool: WorkerPool | null;
  /** Stops accepting, drains for up to shutdown_timeout, closes the rest. */
  shutdown(reason: string): Promise<void>;
}

/**
 * Starts everything from a config file. Throws (ConfigError, StoreError, ListenError,
 * GeoIpError…) before anything listens when the config or its files are unusable, so a bad
 * start never half-serves.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  options: {
    /** Where worker threads' log lines go (already formatted); the process's stderr by default. */
    writeWorkerLog?: (text: string) => void;
  } = {},
): Promise<RunningServer> {
  const lock = new InstanceLock();
  const store = Store.open(config.database.path);
  let running: RunningListener[] = [];
  let pool: WorkerPool | null = null;
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
    const geoip = config.firewall.geoipDb ? GeoIpDatabase.open(config.firewall.geoipDb) : null;
    // Read [proxy] backend_ca now, so a bad file stops the start rather than the first dial.
    backendTrust(config.proxy.backendCa);
    const fileLimit = openFileLimit();
    const budget = descriptorBudget(fileLimit);
    logger.info("descriptor budget", { open_file_limit: fileLimit ?? "unknown", budget });
    takeInstanceLocks(lock, config);
    const workers = workerCount(config.proxy.workers);
    let runtime: Runtime;
    if (workers === 1) {
      runtime = new Runtime({
        config,
        routes: store.allRoutes(),
        rules: store.firewallRules(),
        geoip,
        logger,
        version: VERSION,
        descriptorBudget: budget,
      });
      for (const state of runtime.listenerStates()) running.push(startListener(state, runtime.env));
    } else {
      const started = await startWorkers({
        count: workers,
        config,
        routes: store.allRoutes(),
        rules: store.firewallRules(),
        geoip,
        descriptorBudget: budget,
        logger,
        writeLog: options.writeWorkerLog ?? ((text) => logger.writeFormatted(text)),
      });
      runtime = started.runtime;
      pool = started.pool;
      running = started.listeners;
    }
    const updates: RuntimeUpdates = pool ?? new InProcessUpdates(runtime);
    for (const listener of running) {
      const state = listener.state;
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
        // One event loop: the admin API changes `runtime` itself and answers at once.
        ...(pool === null ? {} : { updates: pool }),
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
    // Worker threads run their own sweep; the supervisor runs no connections.
    const stopSweep =
      pool === null
        ? startDeadlineSweep(
            runtime.env,
            sweepTickMs([
              config.proxy.helloTimeoutMs,
              config.proxy.connectTimeoutMs,
              config.proxy.idleTimeoutMs,
            ]),
          )
        : () => {};
    // Backend health is per event loop and not shared with worker threads yet (hence the
    // default workers = 1): with one loop the scheduler checks the route tables that serve the
    // connections. With worker threads the supervisor's tables serve none, so checking them
    // would only report a state the workers do not use; each worker then marks a backend down
    // from its own failed dials only.
    const stopHealthChecks =
      pool === null ? startHealthChecks(runtime, config.proxy, logger) : () => {};
    logger.info("mc-proxy started", {
      version: VERSION,
      listeners: running.length,
      workers,
    });

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
        pool,
        lock,
      });
      return stopping;
    };
    return { runtime, listeners: running, updates, pool, shutdown };
  } catch (error) {
    for (const listener of running) listener.stopAccepting();
    running = [];
    pool?.terminateAll();
    stopMetrics?.();
    await stopAdmin?.();
    store.close();
    lock.release();
    throw error;
  }
}

/** `workers = "auto"` → the CPUs this process may run on (affinity, cgroup quota). */
export function workerCount(setting: WorkerCount): number {
  return setting === "auto" ? usableCpus(MAX_WORKER_COUNT) : setting;
}

/**
 * One server per database and per listener port. Worker threads bind with SO_REUSEPORT, so
 * without this a second server would share the port silently instead of failing; the message
 * is the one a refused bind gives.
 */
function takeInstanceLocks(lock: InstanceLock, config: Config): void {
  lock.take(
    `database:${resolve(config.database.path)}`,
    `database.path ${JSON.stringify(config.database.path)}: in use by another mc-proxy server`,
  );
  for (const spec of config.listeners) {
    const { port } = ParsedListener.from(spec).bind;
    if (port === 0) continue; // port 0: the kernel's own pick
    lock.takePort(
      port,
      `listener ${JSON.stringify(spec.addr)}: address already in use (is another mc-proxy or server running?)`,
    );
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
  pool: WorkerPool | null;
  lock: InstanceLock;
}): Promise<void> {
  const { runtime, logger, pool } = options;
  const env = runtime.env;
  const timeoutMs = options.config.proxy.shutdownTimeoutMs;
  if (pool !== null) {
    pool.stopAccepting();
    options.stopHealthChecks();
    const active = runtime.status().listeners.reduce((sum, l) => sum + l.activeConnections, 0);
    logger.info(`received ${options.reason}, shutting down`, {
      active,
      shutdown_timeout_ms: timeoutMs,
    });
    const drained = await pool.drain(timeoutMs);
    if (drained.closed > 0) {
      logger.warn("shutdown timeout reached, closed open connections", { closed: drained.closed });
    }
    options.stopMetrics?.();
    await options.stopAdmin?.();
    options.store.close();
    options.lock.release();
    logger.info("stopped");
    return;
  }
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
  options.store.close();
  options.lock.release();
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
    else if (config.firewall.geoipDb) {
      // A file that fails to load is logged and leaves every event loop on the old one.
      server.updates.apply({ kind: "geoip", path: config.firewall.geoipDb }).catch((error) => {
        logger.error("GeoIP reload failed", { error: String(error) });
      });
    } else logger.warn("no geoip_db configured, nothing to reload");
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
