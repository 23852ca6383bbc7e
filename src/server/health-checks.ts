// Active health checks: one scheduler for the whole process checks every opted-in route's backends.
import { request as httpRequest } from "node:http";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ProxyTimeouts } from "../domain/types.ts";
import { describeError, dialBackend } from "../l7/backend-dialer.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import type { Logger } from "../log/logger.ts";
import { encodeProxyV2Local } from "../proxy-protocol/index.ts";
import type { BackendState } from "../route/backend-pool.ts";
import type { Route } from "../route/route-table.ts";
import type { Runtime } from "../runtime/runtime.ts";

/** What one check found: null when the backend answered, else the reason it did not. */
type CheckOutcome = string | null;

const USER_AGENT = "mc-proxy-health-check";

/**
 * Starts the one health-check scheduler: every `health_check_interval` it walks the route
 * tables the listeners serve now and checks each backend of each route with `health_check`
 * set, skipping a backend whose previous check is still running. Not per connection and not
 * per worker: the results land in the BackendState objects the connection path reads.
 * Returns the function that stops it.
 */
export function startHealthChecks(
  runtime: Pick<Runtime, "listenerStates">,
  timeouts: ProxyTimeouts,
  logger: Logger,
): () => void {
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    for (const listener of runtime.listenerStates()) {
      for (const route of listener.routes.entries()) {
        if (route.spec.healthCheck === "none") continue;
        for (const backend of route.pool.members) {
          if (backend.checking) continue;
          backend.checking = true;
          checkBackend(route, backend, timeouts).then((outcome) => {
            backend.checking = false;
            if (stopped) return;
            if (outcome === null) backend.markUp("health_check", logger);
            else backend.markDown("health_check", outcome, performance.now(), 0, logger);
          });
        }
      }
    }
  };
  // The first round at once: a backend that is down at start is known before the first
  // interval, and a new route is checked at most one interval after it was added.
  const first = setTimeout(tick, 0);
  const timer = setInterval(tick, timeouts.healthCheckIntervalMs);
  return () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(timer);
  };
}

/** One check of one backend, bounded by health_check_timeout; never rejects. */
export function checkBackend(
  route: Route,
  backend: BackendState,
  timeouts: ProxyTimeouts,
): Promise<CheckOutcome> {
  const spec = route.spec;
  const timeoutMs = timeouts.healthCheckTimeoutMs;
  // A wildcard route's backends serve its subdomains; the parent name is the best we have.
  const serverName = spec.hostname.startsWith("*.") ? spec.hostname.slice(2) : spec.hostname;
  const proxyHeader = spec.sendProxyProtocol ? encodeProxyV2Local() : null;
  switch (spec.healthCheck) {
    case "http":
      return checkHttp(backend, {
        timeoutMs,
        serverName,
        path: spec.healthCheckPath,
        proxyHeader,
        tls: spec.backendTls,
        backendCa: timeouts.backendCa,
      });
    case "tls":
      return checkTls(backend, serverName, proxyHeader, timeoutMs);
    default:
      return checkTcp(backend, timeoutMs);
  }
}

/** Resolves once: the first of the check's own outcome and the timeout. */
function bounded(
  timeoutMs: number,
  run: (done: (outcome: CheckOutcome) => void) => () => void,
): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let cleanup = () => {};
    const done = (outcome: CheckOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cleanup();
      resolve(outcome);
    };
    const timer = setTimeout(() => done(`timed out after ${timeoutMs}ms`), timeoutMs);
    cleanup = run(done);
  });
}

/** `tcp`: the connection is accepted (by the kernel, at least). */
function checkTcp(backend: BackendState, timeoutMs: number): Promise<CheckOutcome> {
  return bounded(timeoutMs, (done) => {
    const socket = netConnect({ host: backend.host, port: backend.port });
    socket.once("connect", () => done(null));
    socket.once("error", (error) => done(describeError(error)));
    return () => socket.destroy();
  });
}

/**
 * `tls`: a TLS handshake completes (certificate not verified: this asks whether the backend's
 * application answers, which a TCP connect cannot tell, since the kernel accepts for it).
 */
function checkTls(
  backend: BackendState,
  serverName: string,
  proxyHeader: Uint8Array | null,
  timeoutMs: number,
): Promise<CheckOutcome> {
  return bounded(timeoutMs, (done) => {
    const raw = netConnect({ host: backend.host, port: backend.port });
    if (proxyHeader !== null) raw.write(proxyHeader);
    const socket = tlsConnect({ socket: raw, servername: serverName, rejectUnauthorized: false });
    socket.once("secureConnect", () => done(null));
    socket.once("error", (error) => done(describeError(error)));
    raw.once("error", (error) => done(describeError(error)));
    socket.once("close", () => done("closed before the TLS handshake completed"));
    return () => {
      socket.destroy();
      raw.destroy();
    };
  });
}

/** `http` (l7): GET the path over the route's backend leg (PROXY header, TLS); 2xx/3xx is up. */
function checkHttp(
  backend: BackendState,
  options: {
    timeoutMs: number;
    serverName: string;
    path: string;
    proxyHeader: Uint8Array | null;
    tls: boolean;
    backendCa: string;
  },
): Promise<CheckOutcome> {
  return bounded(options.timeoutMs, (done) => {
    const request = httpRequest({
      // Not pooled: createConnection is used only without an agent.
      agent: false,
      method: "GET",
      path: options.path,
      host: backend.host,
      port: backend.port,
      setHost: false,
      headers: { host: options.serverName, "user-agent": USER_AGENT, connection: "close" },
      createConnection: () =>
        dialBackend({
          backend,
          connectTimeoutMs: options.timeoutMs,
          tls: options.tls
            ? { serverName: options.serverName, trust: backendTrust(options.backendCa) }
            : null,
          proxyHeader: options.proxyHeader,
        }),
    });
    request.once("response", (response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      done(status >= 200 && status < 400 ? null : `GET ${options.path}: status ${status}`);
    });
    request.once("error", (error) => done(describeError(error)));
    request.end();
    return () => request.destroy();
  });
}
