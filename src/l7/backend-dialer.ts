// Opening backend connections for an l7 session: TCP, optional PROXY v2 header, optional TLS.
import { Agent, type ClientRequestArgs } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type SecureContext, type TLSSocket, connect as tlsConnect } from "node:tls";
import type { BackendState } from "../route/backend-pool.ts";

/**
 * Errors raised while a backend connection was being set up (refused, unreachable, timed out,
 * certificate rejected), as opposed to failures after it carried bytes. Only these answer 502.
 * A WeakSet rather than a subclass: node hands us its own error objects.
 */
const dialErrors = new WeakMap<Error, BackendState>();

export function isDialError(error: unknown): error is Error {
  return error instanceof Error && dialErrors.has(error);
}

/** The backend a dial error came from (isDialError errors only). */
export function failedBackend(error: Error): BackendState | undefined {
  return dialErrors.get(error);
}

/** `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9` / `DEPTH_ZERO_SELF_SIGNED_CERT: …`, for logs. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code)
    ? `${code}: ${error.message}`
    : error.message;
}

export interface BackendTarget {
  /** The route's backend dialed (host and port parsed once, health and counters). */
  backend: BackendState;
  connectTimeoutMs: number;
  /** backend_tls: SNI is the route hostname, verified against the system store + backend_ca. */
  tls: { serverName: string; trust: SecureContext } | null;
  /** send_proxy_protocol: written before anything else (before the TLS handshake too). */
  proxyHeader: Uint8Array | null;
}

/**
 * Starts a backend connection and returns its socket at once; writes are buffered until it is
 * ready. A failure before it is ready (connect, connect_timeout, TLS verification) is emitted
 * as an 'error' that isDialError() recognises.
 */
export function dialBackend(target: BackendTarget): Socket | TLSSocket {
  const raw = netConnect({ host: target.backend.host, port: target.backend.port });
  raw.setNoDelay(true);
  if (target.proxyHeader !== null) raw.write(target.proxyHeader);
  const socket =
    target.tls === null
      ? raw
      : tlsConnect({
          socket: raw,
          servername: target.tls.serverName,
          secureContext: target.tls.trust,
          // The backend leg is HTTP/1.1 (see http-proxy.ts); say so, so it does not pick h2.
          ALPNProtocols: ["http/1.1"],
        });
  let ready = false;
  const timer = setTimeout(() => {
    const error = new Error(`timed out after ${target.connectTimeoutMs}ms`);
    dialErrors.set(error, target.backend);
    socket.destroy(error);
    if (socket !== raw) raw.destroy();
  }, target.connectTimeoutMs);
  const onReady = () => {
    ready = true;
    clearTimeout(timer);
  };
  socket.once(target.tls === null ? "connect" : "secureConnect", onReady);
  const onError = (error: Error) => {
    clearTimeout(timer);
    if (!ready) dialErrors.set(error, target.backend);
  };
  // Added first, so the error is marked before any other listener (the HTTP client) sees it.
  socket.prependListener("error", onError);
  if (socket !== raw) {
    // The raw socket's own failure (refused) is re-emitted by the TLS socket in node; mark it
    // here too in case a runtime emits it only on the raw socket.
    raw.prependListener("error", onError);
    raw.on("error", (error) => {
      if (!socket.destroyed) socket.destroy(error);
    });
  }
  return socket;
}

/**
 * A keep-alive agent whose connections come from dialBackend. One per l7 session: backend
 * connections are reused by that client's requests (and carry that client's PROXY header),
 * never shared with another client, and all of them close when the session ends.
 */
export class SessionAgent extends Agent {
  constructor(
    private readonly target: BackendTarget,
    maxSockets: number,
    private readonly onSocket: (socket: Duplex) => void,
  ) {
    // maxSockets: requests beyond it wait in the agent for a free connection.
    super({ keepAlive: true, maxSockets });
  }

  /** The backend of the route this agent's connections go to. */
  get backend(): BackendState {
    return this.target.backend;
  }

  override createConnection(_options: ClientRequestArgs): Duplex {
    const socket = dialBackend(this.target);
    this.onSocket(socket);
    return socket;
  }
}
