// An l7 session: TLS terminated in-process with the route's certificate, HTTP reverse-proxied (SPEC §7).
import type { IncomingMessage, ServerResponse } from "node:http";
import { performServerHandshake } from "node:http2";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { EndReason } from "../domain/end-reason.ts";
import { encodeProxyV2 } from "../proxy-protocol/index.ts";
import type { BackendState } from "../route/backend-pool.ts";
import type { Route } from "../route/route-table.ts";
import {
  type BackendTarget,
  describeError,
  dialBackend,
  failedBackend,
  SessionAgent,
} from "./backend-dialer.ts";
import { BackendSlots, MAX_BACKEND_CONNECTIONS_PER_CLIENT } from "./backend-slots.ts";
import { backendTrust } from "./backend-trust.ts";
import { ClientStream } from "./client-stream.ts";
import { H2_MAX_BYTES_WITHOUT_STREAM, H2FloodGuard } from "./h2-flood.ts";
import type { L7Handoff, L7Session } from "./handoff.ts";
import { proxyHttp2Stream } from "./http-proxy.ts";
import { serveHttp1 } from "./http1-server.ts";
import type { ProxyContext } from "./proxy-context.ts";

/** ALPN (RFC 7301) offers, in our order of preference. */
const ALPN_PROTOCOLS = ["h2", "http/1.1"];

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS we advertise (RFC 9113 §6.5.2), the value RFC 9113 §5.1.2
 * recommends as the floor. Streams over it are refused (RST_STREAM REFUSED_STREAM); past
 * MAX_BACKEND_CONNECTIONS_PER_CLIENT the open ones wait for a backend connection.
 */
export const H2_MAX_CONCURRENT_STREAMS = 100;

/** Where the session stands in reading request heads, for header_timeout. */
const HEAD_NONE = 0; // in a request, a tunnel, or an h2 session past its first stream
const HEAD_BETWEEN = 1; // HTTP/1.1 keep-alive between requests: the clock starts on a byte
const HEAD_READING = 2; // the clock runs (from the hand-off: handshake and first head)

/**
 * Takes over a connection whose ClientHello routed to an l7 route. The bytes already read
 * (the ClientHello) and every later chunk are fed to a node:tls server socket; once the
 * handshake is done, ALPN picks node:http2 or node:http, and each request is proxied to the
 * backend with a keep-alive agent owned by this session.
 */
export function startL7Session(handoff: L7Handoff): L7Session {
  return new TerminatingSession(handoff);
}

class TerminatingSession implements L7Session, ProxyContext {
  private readonly stream: ClientStream;
  private readonly tls: TLSSocket;
  private target: BackendTarget | null = null;
  private agentInstance: SessionAgent | null = null;
  /** Agents of backends given up on after a failed dial: their requests may still run. */
  private readonly retiredAgents: SessionAgent[] = [];
  /** The backend this session sends to now (counted in its `active` until it changes or ends). */
  private backend: BackendState | null = null;
  /** Bit i: the route's backend i failed a dial in this session. */
  private failedMask = 0;
  /** The addr the access log names: the backend used last. */
  private backendAddr = "";
  /** WebSocket tunnels' backend sockets: closed with the session. */
  private readonly tunnels = new Set<Socket>();
  /** Backend requests in flight and queued, backend sockets counted against the budget. */
  readonly backendSlots: BackendSlots;
  private answered = false;
  private dialFailures = 0;
  private finished = false;
  /** The client is gone or the session was aborted: backend errors from here on are ours. */
  private tornDown = false;
  private headState = HEAD_READING;
  /** header_timeout's deadline while headState is HEAD_READING, else 0. */
  private headDeadline: number;
  /** The HTTP/1.1 request in progress has a body not read to its end yet. */
  private bodyOpen = false;
  private currentResponse: ServerResponse | null = null;
  /** Set once ALPN chose h2: bounds bytes that open no stream (h2-flood.ts). */
  private floodGuard: H2FloodGuard | null = null;
  private readonly onBodyEnd = () => {
    this.bodyOpen = false;
  };

  readonly route: Route;
  readonly clientAddress: string;
  readonly viaProxyProtocol: boolean;
  readonly flow: ClientStream;

  constructor(private readonly handoff: L7Handoff) {
    this.route = handoff.route;
    this.clientAddress = handoff.clientAddress;
    this.viaProxyProtocol = handoff.viaProxyProtocol;
    this.stream = new ClientStream(handoff.client);
    this.flow = this.stream;
    this.backendSlots = new BackendSlots(handoff.backendDescriptors);
    this.headDeadline = performance.now() + handoff.timeouts.headerTimeoutMs;
    // The context was built when the route table was (src/route): a bad file never gets here.
    this.tls = new TLSSocket(this.stream, {
      isServer: true,
      secureContext: this.route.secureContext ?? undefined,
      ALPNProtocols: ALPN_PROTOCOLS,
    });
    // Failures reach us through the TLS socket and the client's close; an unhandled 'error'
    // on the raw stream would throw out of the event loop and end the whole process.
    this.stream.on("error", () => {});
    this.tls.once("secure", () => this.onSecure());
    this.tls.on("error", (error) => {
      // Handshake failures (a client that distrusts the certificate) and TLS alerts.
      handoff.logger.debug("l7 TLS error", {
        client: this.clientText(),
        error: describeError(error),
      });
    });
    this.tls.once("close", () => {
      // TLS is over (close_notify, HTTP done, or an error): FIN once pending bytes are out.
      if (!this.stream.destroyed) this.stream.end();
    });
    this.stream.feed(handoff.initialBytes);
  }

  // --- L7Session: events from src/net ---

  onData(chunk: Uint8Array): void {
    if (this.headState === HEAD_BETWEEN) {
      this.headState = HEAD_READING;
      this.headDeadline = performance.now() + this.handoff.timeouts.headerTimeoutMs;
    }
    const stream = this.stream;
    stream.feed(chunk);
    if (
      this.floodGuard?.exceeded(
        stream.lastActivity,
        stream.bytesIn,
        stream.bodyBytesIn,
        stream.bytesOut,
        stream.bodiesOpen,
      )
    ) {
      this.handoff.logger.warn("l7 h2 client cut: too many bytes without a request", {
        client: this.clientText(),
        limit_bytes: H2_MAX_BYTES_WITHOUT_STREAM,
      });
      this.abort("closed");
    }
  }

  onDrain(): void {
    this.stream.drain();
  }

  onEnd(): void {
    this.stream.feedEnd();
  }

  onClose(error?: Error): void {
    this.teardown(error);
    this.finish(this.dialFailures > 0 && !this.answered ? "dial_failed" : "closed");
  }

  abort(reason?: EndReason): void {
    // With a reason the session reports itself (and its byte counts); without, the caller does.
    // First: terminate() may run the close handler at once, which would report "closed".
    if (reason !== undefined) this.finish(reason);
    this.teardown(new Error("aborted"));
    this.handoff.client.terminate();
  }

  lastActivity(): number {
    return this.stream.lastActivity;
  }

  deadline(): number {
    if (this.headState === HEAD_READING) return this.headDeadline;
    // Not read because we hold the client (a full backend) is not the client being idle.
    if (this.bodyOpen && !this.stream.readsHeld) {
      return this.stream.lastRead + this.handoff.timeouts.bodyIdleTimeoutMs;
    }
    return 0;
  }

  deadlineReason(): EndReason {
    return this.headState === HEAD_READING ? "header_timeout" : "body_timeout";
  }

  // --- ProxyContext: what the request handlers use ---

  get agent(): SessionAgent {
    this.agentInstance ??= new SessionAgent(
      this.backendTarget(),
      MAX_BACKEND_CONNECTIONS_PER_CLIENT,
      (socket) => this.backendSlots.track(socket),
    );
    return this.agentInstance;
  }

  dial(): Socket {
    const socket = dialBackend(this.backendTarget());
    this.backendSlots.track(socket);
    this.tunnels.add(socket);
    socket.once("close", () => this.tunnels.delete(socket));
    return socket;
  }

  http1Request(req: IncomingMessage, res: ServerResponse): void {
    this.headState = HEAD_NONE;
    this.bodyOpen = !req.readableEnded;
    if (this.bodyOpen) req.once("end", this.onBodyEnd);
    this.currentResponse = res;
    res.once("close", () => {
      // A pipelined request may have begun already; only the current one's end counts.
      if (this.currentResponse !== res) return;
      this.currentResponse = null;
      this.bodyOpen = false;
      this.headState = HEAD_BETWEEN;
    });
  }

  headRead(): void {
    this.headState = HEAD_NONE;
    this.bodyOpen = false;
  }

  backendAnswered(): void {
    this.answered = true;
    const backend = this.backend;
    if (backend !== null && !backend.up) backend.markUp("dial", this.handoff.logger);
  }

  /**
   * This request gets its 502 (its bytes went to that backend, so it is not replayed); the
   * backend is marked down, and the session's next request dials another one.
   */
  dialFailed(error: Error): void {
    if (this.tornDown) return;
    this.dialFailures++;
    const failed = failedBackend(error) ?? this.backend;
    const { logger, timeouts } = this.handoff;
    if (failed !== null) {
      failed.markDown(
        "dial",
        describeError(error),
        performance.now(),
        timeouts.backendHoldDownMs,
        logger,
      );
      const index = this.route.pool.members.indexOf(failed);
      if (index !== -1) this.failedMask |= 1 << index;
      if (failed === this.backend) this.dropBackend();
    }
    logger.warn("dial backend failed", {
      client: this.clientText(),
      sni: this.tls.servername || this.route.spec.hostname,
      backend: failed?.addr ?? this.route.spec.backend,
      mode: "l7",
      backend_tls: this.route.spec.backendTls,
      error: describeError(error),
    });
  }

  backendFailed(error: Error): void {
    if (this.tornDown) return;
    this.handoff.logger.warn("backend request failed", {
      client: this.clientText(),
      backend: this.backend?.addr ?? this.backendAddr,
      error: describeError(error),
    });
  }

  // --- internals ---

  private onSecure(): void {
    if (this.tls.alpnProtocol === "h2") {
      const session = performServerHandshake(this.tls, {
        settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS },
      });
      const guard = new H2FloodGuard(this.handoff.timeouts.headerTimeoutMs);
      const flow = this.stream;
      guard.restart(performance.now(), flow.bytesIn, flow.bodyBytesIn, flow.bytesOut);
      this.floodGuard = guard;
      session.on("stream", (stream, headers) => {
        // The first complete header block ends header_timeout for the session; later
        // streams are bounded by idle_timeout and the h2 limits.
        this.headState = HEAD_NONE;
        guard.restart(flow.lastActivity, flow.bytesIn, flow.bodyBytesIn, flow.bytesOut);
        proxyHttp2Stream(this, stream, headers);
      });
      // The client sent FIN (usually after GOAWAY): finish the open streams, then close. The
      // h2 session does not do this by itself over a socket it was handed.
      this.tls.once("end", () => session.close());
      session.once("close", () => this.tls.end());
      session.on("error", (error) => {
        this.handoff.logger.debug("l7 h2 session error", {
          client: this.clientText(),
          error: describeError(error),
        });
      });
      return;
    }
    // "http/1.1", or no ALPN at all (HTTP/1.1 is what such clients speak).
    serveHttp1(this.tls, this);
  }

  /**
   * Built on first use, after the handshake: for a wildcard route the backend's SNI is the
   * name the client asked for (`*.example.com` is not a name a certificate can be checked
   * against); for an exact route it is the route hostname, the same thing.
   */
  private backendTarget(): BackendTarget {
    if (this.target !== null) return this.target;
    const { route, handoff } = this;
    const spec = route.spec;
    const pool = route.pool;
    const now = performance.now();
    let index = pool.pick(this.failedMask, now);
    if (index === -1) {
      // Every backend failed once in this session: start over rather than refuse.
      this.failedMask = 0;
      index = pool.pick(0, now);
    }
    const backend = pool.members[index]!;
    backend.active++;
    backend.connections++;
    this.backend = backend;
    this.backendAddr = backend.addr;
    const serverName = spec.hostname.startsWith("*.")
      ? this.tls.servername || spec.hostname.slice(2)
      : spec.hostname;
    this.target = {
      backend,
      connectTimeoutMs: handoff.timeouts.connectTimeoutMs,
      tls: spec.backendTls ? { serverName, trust: backendTrust(handoff.timeouts.backendCa) } : null,
      proxyHeader: spec.sendProxyProtocol
        ? encodeProxyV2(
            { address: handoff.clientAddress, port: handoff.clientPort },
            { address: handoff.localAddress, port: handoff.localPort },
          )
        : null,
    };
    return this.target;
  }

  private teardown(error?: Error): void {
    this.tornDown = true;
    if (this.backendSlots.queued > 0 && this.handoff.logger.enabled("debug")) {
      this.handoff.logger.debug("l7 backend requests queued", {
        client: this.clientText(),
        queued: this.backendSlots.queued,
        limit: MAX_BACKEND_CONNECTIONS_PER_CLIENT,
      });
    }
    this.backendSlots.clear();
    this.stream.transportGone(error);
    this.tls.destroy();
    this.agentInstance?.destroy();
    for (const agent of this.retiredAgents) agent.destroy();
    this.retiredAgents.length = 0;
    this.dropBackend();
    for (const socket of this.tunnels) socket.destroy();
    this.tunnels.clear();
  }

  private finish(reason: EndReason): void {
    if (this.finished) return;
    this.finished = true;
    this.dropBackend();
    this.handoff.finish(reason, this.stream.bytesIn, this.stream.bytesOut, this.backendAddr);
  }

  /** Stops counting the current backend as used by this session; the next need picks again. */
  private dropBackend(): void {
    if (this.backend === null) return;
    this.backend.active--;
    this.backend = null;
    this.target = null;
    if (this.agentInstance !== null) {
      this.retiredAgents.push(this.agentInstance);
      this.agentInstance = null;
    }
  }

  private clientText(): string {
    const address = this.handoff.clientAddress;
    const port = this.handoff.clientPort;
    return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
  }
}
