// `mc-proxy server`: config → store → runtime → listeners and admin API, plus signals.
import type { BoundAdminServer } from "../admin/server.ts";
import {
  differenceObject,
  differenceSides,
  diffRoutesAndRules,
  isPruneOnly,
} from "../config/diff.ts";
import { loadConfig } from "../config/load-config.ts";
import { type Config, type FirewallRule, ParsedAddress, type RouteSpec } from "../domain/types.ts";
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import type { Logger } from "../log/logger.ts";
import { startMetricsServer } from "../metrics/server.ts";
import { descriptorBudget, openFileLimit } from "../net/descriptor-cap.ts";
import { type RunningListener, startListener } from "../net/listener.ts";
import { startDeadlineSweep, sweepTickMs } from "../net/sweeper.ts";
import { CertificateError, loadRouteCertificate } from "../runtime/certificates.ts";
import { Runtime } from "../runtime/runtime.ts";
import { type ReconcileResult, Store } from "../store/store.ts";
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
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const geoip = config.firewall.geoipDb ? GeoIpDatabase.open(config.firewall.geoipDb) : null;
  // Read [proxy] backend_ca now, so a bad file stops the start rather than the first dial.
  backendTrust(config.proxy.backendCa);
  for (const listener of config.listeners) checkRouteCertificates(listener.routes);
  const fileLimit = openFileLimit();
  const budget = descriptorBudget(fileLimit);

  const pending = Store.openForStart(config.database.path, { logger });
  const store = pending.store;
  let running: RunningListener[] = [];
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
    stopMetrics?.();
    await admin?.stop();
    pending.abort();
    throw error;
  }

  admin?.serve({ store, runtime, logger, version: VERSION });
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
    });
    return stopping;
  };
  return { runtime, listeners: running, shutdown };
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
