// The contract between the connection state machine (src/net) and an l7 session (src/l7).
import type { EndReason } from "../domain/end-reason.ts";
import type { ProxyTimeouts } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Route } from "../route/route-table.ts";

/** The client socket as the l7 session may use it: raw bytes out, flow control, close. */
export interface ClientTransport {
  /** Like Bun's socket.write: how many bytes were taken (fewer means wait for onDrain). */
  write(chunk: Uint8Array): number;
  /** FIN. */
  end(): void;
  /** TCP RST. */
  terminate(): void;
  pause(): void;
  resume(): void;
}

/**
 * Everything an l7 session gets when the ClientHello routed to an l7 route. From here the
 * session owns the connection: src/net only forwards socket events (onData, onDrain, onEnd,
 * onClose) and never writes to the client again.
 */
export interface L7Handoff {
  client: ClientTransport;
  /** The bytes read so far, starting with the ClientHello (PROXY header already removed). */
  initialBytes: Uint8Array;
  route: Route;
  /** The client as the firewall saw it (from the PROXY header on such listeners). */
  clientAddress: string;
  clientPort: number;
  /** The listener's own address, for a PROXY v2 header sent to the backend. */
  localAddress: string;
  localPort: number;
  /** True on a proxy_protocol listener: an incoming X-Forwarded-For is kept and appended to. */
  viaProxyProtocol: boolean;
  timeouts: ProxyTimeouts;
  logger: Logger;
  /**
   * The descriptor budget (src/net/descriptor-cap.ts) for backend sockets beyond the first,
   * which the connection counted at the hand-off: every further one is held while it is open.
   */
  backendDescriptors: BackendDescriptors;
  /**
   * Called once when the session is over; the connection then counts and logs it. `backend`
   * is the addr the session used last ("" when it never needed one).
   */
  finish(reason: EndReason, bytesUp: number, bytesDown: number, backend: string): void;
}

export interface BackendDescriptors {
  /** True while the process is under its descriptor budget. */
  available(): boolean;
  /** Counts one more backend socket of this connection. */
  hold(): void;
  /** Gives back one counted by hold(). */
  release(): void;
}

/** Socket events forwarded by src/net to the session that owns the client. */
export interface L7Session {
  onData(chunk: Uint8Array): void;
  onDrain(): void;
  /** The client sent FIN. */
  onEnd(): void;
  /** The client socket closed (with the error when it was reset). */
  onClose(error?: Error): void;
  /**
   * Shutdown deadline or idle sweep: close everything now. Given a reason, the session calls
   * finish(reason, bytesUp, bytesDown) itself, so the log line keeps its byte counts.
   */
  abort(reason?: EndReason): void;
  /** Milliseconds (performance.now()) of the last byte either way, for idle_timeout. */
  lastActivity(): number;
  /**
   * When the session must be cut (performance.now() ms) for header_timeout or
   * body_idle_timeout, 0 when neither runs; deadlineReason() says which.
   */
  deadline(): number;
  deadlineReason(): EndReason;
}
