// `mc-proxy server`: config → store → runtime → listeners and admin API, plus signals.

import { resolve } from "node:path";
import type { BoundAdminServer } from "../admin/server.ts";
import {
  differenceObject,
  differenceSides,
  diffRoutesAndRules,
  isPruneOnly,
} from "../config/diff.ts";
import { loadConfig } from "../config/load-config.ts";
import { MAX_WORKER_COUNT } from "../config/parse-config.ts";
import {
  type Config,
  type FirewallRule,
  ParsedAddress,
  ParsedListener,
  type RouteSpec,
  type WorkerCount,
} from "../domain/types.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import type { Logger } from "../log/logger.ts";
import { startMetricsServer } from "../metrics/server.ts";
import { descriptorBudget, openFileLimit } from "../net/descriptor-cap.ts";
import { type RunningListener, startListener } from "../net/listener.ts";
import { startDeadlineSweep, sweepTickMs } from "../net/sweeper.ts";
import { CertificateError, loadRouteCertificate } from "../runtime/certificates.ts";
import { Runtime } from "../runtime/runtime.ts";
import { InProcessUpdates, type RuntimeUpdates } from "../runtime/runtime-updates.ts";
import { type ReconcileResult, Store } from "../store/store.ts";
import { VERSION } from "../version.ts";
import { usableCpus } from "./cpu-count.ts";
import { warnExposure } from "./exposure-warnings.ts";
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
 * Starts everything from a config file, all or nothing (SPEC §3, ARCHITECTURE "Start-up"):
 * 1. what needs no database is checked first: the GeoIP file, [proxy] backend_ca, the
 *    certificates of the TOML's l7 routes;
 * 2. the database is opened in one write transaction that stays open (Store.openForStart):
 *    migration and seeding happen inside it, and the routes and rules it then holds are checked
 *    (l7 certificates, country rules against geoip_db) and compiled;
 * 3. the listeners, the admin API and the metrics endpoint bind;
 * 4. only then the transaction commits.
 * Any failure before the commit rolls the database back (and removes a database file this
 * start created), closes whatever was bound and throws, naming the problem.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  options: {
    /** Where worker threads' log lines go (already formatted); the process's stderr by default. */
    writeWorkerLog?: (text: string) => void;
  } = {},
): Promise<RunningServer> {
  const geoip = config.firewall.geoipDb ? GeoIpDatabase.open(config.firewall.geoipDb) : null;
  // Read [proxy] backend_ca now, so a bad file stops the start rather than the first dial.
  backendTrust(config.proxy.backendCa);
  for (const listener of config.listeners) checkRouteCertificates(listener.routes);
  const fileLimit = openFileLimit();
  const budget = descriptorBudget(fileLimit);
  const workers = workerCount(config.proxy.workers);

  // Taken before the database is touched: a second server on the same database or port is
  // refused with nothing written.
  const lock = new InstanceLock();
  let pending: ReturnType<typeof Store.openForStart>;
  try {
    takeInstanceLocks(lock, config);
    pending = Store.openForStart(config.database.path, { logger });
  } catch (error) {
    lock.release();
    throw error;
  }
  const store = pending.store;
  let running: RunningListener[] = [];
  let pool: WorkerPool | null = null;
  let admin: BoundAdminServer | null = null;
  let stopMetrics: (() => void) | null = null;
  let metricsPort = 0;
  let runtime: Runtime;
  let built: Runtime | null = null;
  let reconciled: ReconcileResult;
  let stored: { routes: Map<string, RouteSpec[]>; rules: FirewallRule[] };
  try {
    reconciled = store.reconcileWithConfig(config);
    stored = { routes: store.allRoutes(), rules: store.firewallRules() };
    checkStoredState(config, reconciled, stored, geoip);
    if (workers === 1) {
      runtime = new Runtime({
        config,
        routes: stored.routes,
        rules: stored.rules,
        geoip,
        logger,
        version: VERSION,
        descriptorBudget: budget,
      });
      built = runtime;
      for (const state of runtime.listenerStates()) running.push(startListener(state, runtime.env));
    } else {
      // The workers bind inside the transaction too: a port one of them cannot bind fails the
      // start with the database rolled back; they get the routes and rules as data and never
      // read the database themselves.
      const started = await startWorkers({
        count: workers,
        config,
        routes: stored.routes,
        rules: stored.rules,
        geoip,
        descriptorBudget: budget,
        logger,
        writeLog: options.writeWorkerLog ?? ((text) => logger.writeFormatted(text)),
      });
      runtime = started.runtime;
      pool = started.pool;
      running = started.listeners;
    }
    if (config.grpc) {
      const { bindAdminServer } = await import("../admin/server.ts");
      admin = await bindAdminServer(config.grpc);
    }
    if (config.metrics) {
      const address = ParsedAddress.from(config.metrics);
      const metrics = startMetricsServer(address, runtime);
      stopMetrics = metrics.stop;
      metricsPort = metrics.port;
    }
    pending.commit();
  } catch (error) {
    for (const listener of running) listener.stopAccepting();
    // Accepted in the moment between binding and the failure: served from state never committed.
    for (const connection of [...(built?.env.open ?? [])]) connection.abort();
    running = [];
    pool?.terminateAll();
    stopMetrics?.();
    await admin?.stop();
    pending.abort();
    lock.release();
    throw error;
  }

  const updates: RuntimeUpdates = pool ?? new InProcessUpdates(runtime);
  // One event loop: the admin API changes `runtime` itself and answers at once.
  admin?.serve({
    store,
    runtime,
    ...(pool === null ? {} : { updates: pool }),
    logger,
    version: VERSION,
  });
  if (reconciled.seeded) logger.info("database seeded from config", { path: config.database.path });
  for (const addr of reconciled.addedListeners) {
    if (!reconciled.seeded) logger.info("listener added from config", { listener: addr });
  }
  warnDormantListeners(config, store.listenerAddrs(), logger);
  warnConfigDifferences(config, stored, logger);
  warnExposure(config, logger);
  logger.info("descriptor budget", { open_file_limit: fileLimit ?? "unknown", budget });
  for (const listener of running) {
    logger.info("listening", {
      listener: listener.state.addr,
      addr: formatBound(listener.hostname, listener.port),
      routes: listener.state.routes.size,
      proxy_protocol: listener.state.spec.proxyProtocol,
    });
  }
  if (config.grpc && admin) {
    logger.info("admin API listening", {
      addr: formatBound(hostOf(config.grpc.addr), admin.port),
      mtls: config.grpc.clientCa !== "",
    });
  }
  if (config.metrics) {
    logger.info("metrics listening", {
      addr: formatBound(ParsedAddress.from(config.metrics).bind.host || "::", metricsPort),
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
            config.proxy.headerTimeoutMs,
            config.proxy.bodyIdleTimeoutMs,
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
  logger.info("mc-proxy started", { version: VERSION, listeners: running.length, workers });

  let stopping: Promise<void> | null = null;
  const stopAdmin = admin ? admin.stop : null;
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
}

/** l7 certificates, read and matched to their keys now: CertificateError names route and file. */
function checkRouteCertificates(routes: readonly RouteSpec[]): void {
  for (const route of routes) {
    if (route.mode !== "l7") continue;
    try {
      loadRouteCertificate(route.tlsCert, route.tlsKey);
    } catch (error) {
      if (!(error instanceof CertificateError)) throw error;
      throw new CertificateError(`route ${route.hostname}: ${error.message}`, { cause: error });
    }
  }
}

/**
 * A route or rule the database holds that cannot be served. Its message says it comes from the
 * database (editing the TOML does not change it) and how to remove it. Exit code 2, like a
 * config error: restarting cannot fix it.
 */
export class StoredStateError extends Error {
  override readonly name = "StoredStateError";
  readonly exitCode = 2;
}

/** The routes and rules the database holds after seeding, checked before anything binds. */
function checkStoredState(
  config: Config,
  reconciled: ReconcileResult,
  stored: { routes: Map<string, RouteSpec[]>; rules: FirewallRule[] },
  geoip: GeoIpDatabase | null,
): void {
  const fromToml = new Set(reconciled.addedListeners);
  const configPath = config.sourcePath;
  for (const listener of config.listeners) {
    // Just written from the TOML: checked with the TOML above.
    if (fromToml.has(listener.addr)) continue;
    for (const route of stored.routes.get(listener.addr) ?? []) {
      if (route.mode !== "l7") continue;
      try {
        loadRouteCertificate(route.tlsCert, route.tlsKey);
      } catch (error) {
        if (!(error instanceof CertificateError)) throw error;
        throw new StoredStateError(
          `route ${route.hostname} on listener ${JSON.stringify(listener.addr)} comes from the database ${config.database.path}, not from the TOML: ${error.message}; ` +
            `fix the file, or remove the route: \`mcproxyctl routes remove -c ${configPath} --listener ${listener.addr} --hostname ${route.hostname}\` on a running mc-proxy, ` +
            `or, while it cannot start, delete the route from the TOML (if it is there) and run \`mc-proxy config apply --prune -c ${configPath}\``,
          { cause: error },
        );
      }
    }
  }
  if (geoip === null) {
    const country = stored.rules.find((rule) => rule.type === "country");
    if (country) {
      throw new StoredStateError(
        `firewall rule country ${country.value} comes from the database ${config.database.path} and needs [firewall] geoip_db, which the config does not set: ` +
          `set geoip_db, or remove the rule: \`mcproxyctl firewall remove -c ${configPath} --type country --value ${country.value}\` on a running mc-proxy, ` +
          `or \`mc-proxy config apply --prune -c ${configPath}\` while it cannot start`,
      );
    }
  }
}

/**
 * One warning per difference between the TOML's routes and rules and the database's, after
 * seeding (so only what a start does not apply): the object, what each side says, and the
 * command that applies the TOML.
 */
function warnConfigDifferences(
  config: Config,
  stored: { routes: Map<string, RouteSpec[]>; rules: FirewallRule[] },
  logger: Logger,
): void {
  const differences = diffRoutesAndRules(
    {
      listeners: new Map(config.listeners.map((listener) => [listener.addr, listener.routes])),
      rules: config.firewall.rules,
    },
    { listeners: stored.routes, rules: stored.rules },
  );
  for (const difference of differences) {
    const sides = differenceSides(difference);
    logger.warn("config and database differ", {
      object: differenceObject(difference),
      toml: sides.toml,
      database: sides.database,
      apply: `mc-proxy config apply${isPruneOnly(difference) ? " --prune" : ""} -c ${config.sourcePath}`,
    });
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
    checkpointAndClose(options);
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
  checkpointAndClose(options);
  options.lock.release();
  logger.info("stopped");
}

/** Checkpoints the database and closes it; a failed checkpoint is an ERROR line. */
function checkpointAndClose(options: { config: Config; store: Store; logger: Logger }): void {
  const { logger } = options;
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
