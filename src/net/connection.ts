// One client connection's life (SPEC §4): PROXY header → ClientHello → route → dial → pipe → end.
import type { Socket } from "bun";
import type { EndReason } from "../domain/end-reason.ts";
import type { FirewallRule } from "../domain/types.ts";
import { formatIp, type IpAddress, parseIp } from "../ip/ip.ts";
import type { L7Session } from "../l7/handoff.ts";
import { startL7Session } from "../l7/session.ts";
import type { LogFields } from "../log/logger.ts";
import { decodeProxyHeader } from "../proxy-protocol/decode.ts";
import { encodeProxyV2 } from "../proxy-protocol/v2.ts";
import type { BackendState } from "../route/backend-pool.ts";
import type { Route } from "../route/route-table.ts";
import type { ListenerState } from "../runtime/listener-state.ts";
import type { ProxyEnv } from "../runtime/proxy-env.ts";
import type { TrafficStats } from "../runtime/traffic-stats.ts";
import { UNRECOGNIZED_NAME_ALERT } from "../tls/alert.ts";
import { readClientHello } from "../tls/client-hello.ts";
import { type BackendPeer, dialBackend } from "./dial.ts";
import { pauseReading, releaseReadBuffer, resumeReading, WriteQueue } from "./pipe.ts";

// Phases of the state machine. Plain numbers: compared on every chunk.
const PROXY_HEADER = 0;
const HELLO = 1;
const DIALING = 2;
const PIPING = 3;
const CLOSED = 4;
/** An l7 route took the connection: events go to the session (src/l7). */
const L7 = 5;
/**
 * What a client may send while its backend is dialed before its reading is paused. Not pausing
 * up front saves two epoll changes, two TCP_CORK calls and two writable wake-ups per connection
 * (strace); above the 16 KiB a ClientHello may take, so only a client streaming early pauses.
 */
const DIALING_BUFFER_BYTES = 64 * 1024;
type Phase =
  | typeof PROXY_HEADER
  | typeof HELLO
  | typeof DIALING
  | typeof PIPING
  | typeof CLOSED
  | typeof L7;

export class Connection {
  private phase: Phase = HELLO;
  private readonly startedAt = performance.now();
  /** When the current phase runs out (hello_timeout, connect_timeout), in performance.now() ms. */
  private deadline = 0;
  private lastActivity = this.startedAt;
  /** The client as the firewall, limits and logs see it (from the PROXY header if any). */
  private clientIp: IpAddress | null = null;
  private clientAddress: string;
  private clientPort: number;
  private admitted = false;
  /** Bytes read before piping starts (PROXY header, ClientHello), forwarded untouched. */
  private pending: Uint8Array | null = null;
  private serverName: string | null = null;
  private route: Route | null = null;
  private routeStats: TrafficStats | null = null;
  private backend: Socket<BackendPeer> | null = null;
  /** The backend dialed now or piped to; counted in its `active` until the end or a failure. */
  private backendState: BackendState | null = null;
  /** The backend the access log names: the one used, else the last one tried. */
  private backendAddr = "";
  /** Bit i set: the route's backend i was dialed (failover never dials one twice). */
  private tried = 0;
  /** Dials started: 1 for the first; a late answer from an earlier one is dropped. */
  private attempt = 0;
  private attemptStartedAt = 0;
  /** The whole connect_timeout, across every backend tried; `deadline` is this attempt's. */
  private dialDeadline = 0;
  /** `addr: reason` of each failed dial, `; `-separated; built only when a dial fails. */
  private dialErrors: string | null = null;
  private readonly toBackend = new WriteQueue();
  private readonly toClient = new WriteQueue();
  /** FIN received from each side. */
  private clientEnded = false;
  private backendEnded = false;
  private bytesUp = 0;
  private bytesDown = 0;
  private blockedBy: FirewallRule | null = null;
  /** Descriptors this connection counts in env.descriptors (client, then backend). */
  private descriptors = 0;
  private l7: L7Session | null = null;
  /** The client sent more than DIALING_BUFFER_BYTES before its backend opened. */
  private pausedWhileDialing = false;

  constructor(
    private readonly client: Socket<Connection>,
    private readonly listener: ListenerState,
    private readonly env: ProxyEnv,
  ) {
    // Undefined at run time (despite bun-types) when the peer reset before the accept was
    // handled, e.g. HAProxy's health checks; onOpen then refuses "" instead of throwing.
    this.clientAddress = client.remoteAddress ?? "";
    this.clientPort = client.remotePort ?? 0;
  }

  /** Accept: count, check trust/firewall/limits, start the hello clock. */
  onOpen(): void {
    const listener = this.listener;
    listener.stats.total++;
    listener.stats.active++;
    this.env.open.add(this);
    if (this.holdDescriptor() > this.env.descriptorBudget) {
      this.reset("limit");
      return;
    }
    const peer = parseIp(this.clientAddress);
    if (peer === null) {
      this.reset("bad_hello");
      return;
    }
    this.clientIp = peer;
    this.clientAddress = formatIp(peer);
    this.deadline = this.startedAt + this.env.timeouts.helloTimeoutMs;
    if (listener.spec.proxyProtocol) {
      // Reset before reading a byte: only the trusted balancers may claim a client address.
      if (!listener.isTrustedPeer(peer)) {
        this.reset("not_trusted");
        return;
      }
      this.phase = PROXY_HEADER;
      return;
    }
    this.admit();
  }

  /** Firewall, then limits, on the real client address. False when the connection was reset. */
  private admit(): boolean {
    const verdict = this.env.firewall.check(this.clientIp!);
    if (verdict.blocked) {
      this.blockedBy = verdict.rule;
      this.env.hits.record(verdict.rule);
      this.reset("blocked");
      return false;
    }
    // ListenerState owns the limits; Explain asks the same object (wouldAdmit).
    if (!this.listener.tryAdmit(this.clientAddress)) {
      this.reset("limit");
      return false;
    }
    this.admitted = true;
    return true;
  }

  onClientData(chunk: Uint8Array): void {
    switch (this.phase) {
      case PIPING:
        this.bytesUp += chunk.length;
        this.lastActivity = performance.now();
        if (this.toBackend.write(this.backend!, chunk)) releaseReadBuffer(chunk);
        else pauseReading(this.client);
        return;
      case PROXY_HEADER:
        this.append(chunk);
        this.readProxyHeader();
        return;
      case HELLO:
        this.append(chunk);
        this.readHello();
        return;
      case DIALING:
        // Kept for the backend; a client that keeps sending is paused past the bound.
        this.append(chunk);
        if (this.pending!.length > DIALING_BUFFER_BYTES && !this.pausedWhileDialing) {
          this.pausedWhileDialing = true;
          pauseReading(this.client);
        }
        return;
      case L7:
        this.l7!.onData(chunk);
        return;
      default:
        return;
    }
  }

  /**
   * Appends to `pending`, a view into a buffer grown geometrically: a client sending its
   * ClientHello one byte per segment costs O(n) copying, not O(n²). The common case, a
   * whole ClientHello in one read, copies it once into an exactly sized buffer.
   */
  private append(chunk: Uint8Array): void {
    const before = this.pending;
    if (before === null) {
      // Bun hands every read over in a buffer of its own, never reused: keep it, no copy.
      // (A chunk that is a view into a larger buffer is copied, so growing in place below
      // can never write into memory the chunk does not own.)
      const ownsBuffer = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      this.pending = ownsBuffer ? chunk : chunk.slice();
      return;
    }
    const end = before.byteOffset + before.length;
    if (end + chunk.length <= before.buffer.byteLength) {
      new Uint8Array(before.buffer).set(chunk, end);
      this.pending = new Uint8Array(before.buffer, before.byteOffset, before.length + chunk.length);
      return;
    }
    const grown = new Uint8Array(Math.max(2 * (before.length + chunk.length), 1024));
    grown.set(before, 0);
    grown.set(chunk, before.length);
    this.pending = grown.subarray(0, before.length + chunk.length);
  }

  private readProxyHeader(): void {
    const result = decodeProxyHeader(this.pending!);
    if (result.kind === "need-more") return;
    if (result.kind === "malformed") {
      this.env.logger.debug("bad PROXY header", {
        client: this.clientAddress,
        reason: result.reason,
      });
      this.close("bad_proxy_header");
      return;
    }
    const source = result.header.source;
    // LOCAL and UNKNOWN carry no client: the balancer speaks for itself (health checks).
    if (source !== null) {
      const ip = parseIp(source.address);
      // The decoder emits canonical text, so this cannot fail unless the two disagree; a
      // client address that is not one must never reach the firewall as null.
      if (ip === null) {
        this.close("bad_proxy_header");
        return;
      }
      this.clientIp = ip;
      this.clientAddress = source.address;
      this.clientPort = source.port;
    }
    this.pending =
      result.length < this.pending!.length ? this.pending!.subarray(result.length) : null;
    this.phase = HELLO;
    if (!this.admit()) return;
    if (this.pending !== null) this.readHello();
  }

  private readHello(): void {
    const result = readClientHello(this.pending!);
    if (result.kind === "need-more") return;
    if (result.kind === "malformed") {
      this.env.logger.debug("bad ClientHello", {
        client: this.clientAddress,
        reason: result.reason,
      });
      this.close("bad_hello");
      return;
    }
    const serverName = result.hello.serverName;
    if (serverName === null) {
      this.refuseName("no_sni");
      return;
    }
    this.serverName = serverName;
    const match = this.listener.routes.lookup(serverName);
    if (match === null) {
      this.refuseName("no_route");
      return;
    }
    this.route = match.route;
    const routeStats = this.listener.statsForRoute(match.route.spec.hostname);
    routeStats.total++;
    routeStats.active++;
    this.routeStats = routeStats;
    if (match.route.spec.mode === "l7") {
      this.startL7(match.route);
      return;
    }
    this.phase = DIALING;
    const now = performance.now();
    this.dialDeadline = now + this.env.timeouts.connectTimeoutMs;
    this.holdDescriptor();
    this.dialNext(now);
  }

  /**
   * Dials the backend the route's policy picks among those not tried yet; false when none is
   * left. The attempt gets an equal share of what is left of connect_timeout with the backends
   * still untried, so one that never answers cannot use up the time of those after it (with
   * one backend: the whole connect_timeout, as always).
   */
  private dialNext(now: number): boolean {
    const pool = this.route!.pool;
    const index = pool.pick(this.tried, now);
    if (index === -1) return false;
    this.tried |= 1 << index;
    const backend = pool.members[index]!;
    backend.active++;
    this.backendState = backend;
    this.backendAddr = backend.addr;
    const attempt = ++this.attempt;
    this.attemptStartedAt = now;
    this.deadline = now + (this.dialDeadline - now) / (pool.untried(this.tried) + 1);
    dialBackend(backend, attempt === 1 ? this : new FailoverDial(this, attempt));
    return true;
  }

  /**
   * The current dial failed or timed out: the backend is marked down (held down for
   * backend_hold_down) and the next one is dialed with the same buffered ClientHello, while
   * connect_timeout lasts. Only when none is left does the client get its reset and the one
   * `dial backend failed` line naming every backend tried.
   */
  private dialFailed(reason: string): void {
    const backend = this.backendState!;
    const now = performance.now();
    this.backendState = null;
    backend.active--;
    backend.markDown("dial", reason, now, this.env.timeouts.backendHoldDownMs, this.env.logger);
    const entry = `${backend.addr}: ${reason}`;
    this.dialErrors = this.dialErrors === null ? entry : `${this.dialErrors}; ${entry}`;
    if (now < this.dialDeadline && this.dialNext(now)) return;
    this.warnDial(reason);
    this.reset("dial_failed");
  }

  /** Hands the client to an l7 session: TLS is terminated in-process (SPEC §7). */
  private startL7(route: Route): void {
    this.holdDescriptor(); // its backend connection
    const client = this.client;
    const initialBytes = this.pending!;
    this.pending = null;
    this.phase = L7;
    this.l7 = startL7Session({
      client: {
        write: (chunk) => client.write(chunk),
        end: () => client.end(),
        terminate: () => client.terminate(),
        pause: () => pauseReading(client),
        resume: () => resumeReading(client),
      },
      initialBytes,
      route,
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      localAddress: client.localAddress,
      localPort: client.localPort,
      viaProxyProtocol: this.listener.spec.proxyProtocol,
      timeouts: this.env.timeouts,
      logger: this.env.logger,
      backendDescriptors: {
        available: () => this.env.descriptors.inUse() < this.env.descriptorBudget,
        hold: () => {
          if (this.phase !== CLOSED) this.holdDescriptor();
        },
        release: () => {
          if (this.phase === CLOSED || this.descriptors <= 2) return;
          this.descriptors--;
          this.env.descriptors.release(1);
        },
      },
      finish: (reason, bytesUp, bytesDown, backend) => {
        this.bytesUp = bytesUp;
        this.bytesDown = bytesDown;
        this.backendAddr = backend;
        this.finish(reason);
      },
    });
  }

  onBackendOpen(backend: Socket<BackendPeer>, attempt = 1): void {
    if (this.phase !== DIALING || attempt !== this.attempt) {
      // Timed out (this attempt, or the whole dial) or the client left while we were dialing.
      backend.terminate();
      return;
    }
    const state = this.backendState!;
    state.connections++;
    if (!state.up) state.markUp("dial", this.env.logger);
    this.backend = backend;
    this.phase = PIPING;
    this.lastActivity = performance.now();
    const route = this.route!;
    if (route.spec.sendProxyProtocol) {
      const header = encodeProxyV2(
        { address: this.clientAddress, port: this.clientPort },
        { address: this.client.localAddress, port: this.client.localPort },
      );
      this.toBackend.write(backend, header);
    }
    const hello = this.pending!;
    this.pending = null;
    // The ClientHello (and anything read while dialing) is client-to-backend traffic too.
    this.bytesUp += hello.length;
    if (this.toBackend.write(backend, hello)) {
      releaseReadBuffer(hello);
      if (this.clientEnded) backend.shutdown();
      // Only if DIALING_BUFFER_BYTES paused it: resume() is a native call, even as a no-op.
      else if (this.pausedWhileDialing) resumeReading(this.client);
    } else {
      pauseReading(this.client); // until the backend drains
    }
  }

  onDialError(error: Error, attempt = 1): void {
    if (this.phase !== DIALING || attempt !== this.attempt) return;
    this.dialFailed(errorText(error));
  }

  /** The one line for a client whose every dial failed: each backend tried, each reason. */
  private warnDial(lastReason: string): void {
    const pool = this.route!.pool;
    let backends = "";
    for (let index = 0; index < pool.size; index++) {
      if ((this.tried & (1 << index)) === 0) continue;
      backends =
        backends === "" ? pool.members[index]!.addr : `${backends},${pool.members[index]!.addr}`;
    }
    this.env.logger.warn("dial backend failed", {
      client: this.clientAddress,
      listener: this.listener.addr,
      sni: this.serverName,
      backend: backends,
      tried: this.attempt,
      // One backend: its reason alone, as before several existed.
      error: this.attempt === 1 ? lastReason : this.dialErrors,
    });
  }

  onBackendData(chunk: Uint8Array): void {
    if (this.phase !== PIPING) return;
    this.bytesDown += chunk.length;
    this.lastActivity = performance.now();
    if (this.toClient.write(this.client, chunk)) releaseReadBuffer(chunk);
    else pauseReading(this.backend!);
  }

  onClientDrain(): void {
    if (this.phase === L7) {
      this.l7!.onDrain();
      return;
    }
    if (this.phase !== PIPING || !this.toClient.flush(this.client)) return;
    if (this.backendEnded) {
      this.client.shutdown();
      this.finishIfBothEnded();
    } else {
      resumeReading(this.backend!);
    }
  }

  onBackendDrain(): void {
    if (this.phase !== PIPING || !this.toBackend.flush(this.backend!)) return;
    if (this.clientEnded) {
      this.backend!.shutdown();
      this.finishIfBothEnded();
    } else {
      resumeReading(this.client);
    }
  }

  /** The client sent FIN: pass it on once its bytes are through (half-close, SPEC §4 step 5). */
  onClientEnd(): void {
    this.clientEnded = true;
    switch (this.phase) {
      case PROXY_HEADER:
        this.close("bad_proxy_header");
        return;
      case HELLO:
        this.close("bad_hello");
        return;
      case PIPING:
        if (this.toClient.failed) {
          // Not a FIN: a write to the client failed first, so this EOF is its reset.
          this.resetBoth();
          return;
        }
        if (this.toBackend.isEmpty) {
          this.backend!.shutdown();
          this.finishIfBothEnded();
        }
        return;
      case L7:
        this.l7!.onEnd();
        return;
      default:
        // DIALING: onBackendOpen passes the FIN on after the buffered bytes.
        return;
    }
  }

  onBackendEnd(): void {
    this.backendEnded = true;
    if (this.phase === PIPING && this.toBackend.failed) {
      this.resetBoth();
      return;
    }
    if (this.phase === PIPING && this.toClient.isEmpty) {
      this.client.shutdown();
      this.finishIfBothEnded();
    }
  }

  private finishIfBothEnded(): void {
    if (this.clientEnded && this.backendEnded && this.toClient.isEmpty && this.toBackend.isEmpty) {
      this.close("closed");
    }
  }

  /** The client socket is gone. A reset is passed on as a reset; a clean close as FIN. */
  onClientClose(error?: Error): void {
    if (this.phase === CLOSED) return;
    if (this.phase === L7) {
      // The session reports its end through finish(); make sure it has one.
      this.l7!.onClose(error);
      this.finish("closed");
      return;
    }
    this.finish(
      this.phase === PIPING || this.phase === DIALING
        ? "closed"
        : this.phase === PROXY_HEADER
          ? "bad_proxy_header"
          : "bad_hello",
    );
    const backend = this.backend;
    if (backend !== null) {
      if (error || this.toClient.failed) backend.terminate();
      else backend.end();
    }
  }

  onBackendClose(backend: Socket<BackendPeer>, error?: Error): void {
    // Another socket: a late dial dropped in onBackendOpen.
    if (this.phase !== PIPING || backend !== this.backend) return;
    const reset = Boolean(error) || this.toBackend.failed;
    if (!reset && !this.toClient.isEmpty) {
      // Let the queued bytes reach the client; its drain or close ends the connection.
      this.backendEnded = true;
      return;
    }
    this.finish("closed");
    if (reset) this.client.terminate();
    else this.client.end();
  }

  /** Called by the sweep: enforce hello_timeout, connect_timeout and idle_timeout. */
  checkDeadline(now: number): void {
    switch (this.phase) {
      case PROXY_HEADER:
      case HELLO:
        if (now >= this.deadline) this.close("hello_timeout");
        return;
      case DIALING:
        if (now >= this.deadline) {
          this.dialFailed(`timed out after ${Math.round(this.deadline - this.attemptStartedAt)}ms`);
        }
        return;
      case PIPING:
        if (now - this.lastActivity >= this.env.timeouts.idleTimeoutMs) this.close("idle_timeout");
        return;
      case L7: {
        const l7 = this.l7!;
        if (now - l7.lastActivity() >= this.env.timeouts.idleTimeoutMs) {
          l7.abort("idle_timeout");
          this.finish("idle_timeout");
          return;
        }
        const due = l7.deadline();
        if (due !== 0 && now >= due) {
          const reason = l7.deadlineReason();
          l7.abort(reason);
          this.finish(reason);
        }
        return;
      }
      default:
        return;
    }
  }

  /** Shutdown deadline: whatever is still open is cut. */
  abort(): void {
    // An l7 session finishes itself (with its byte counts) when given a reason.
    this.l7?.abort("shutdown");
    this.finish("shutdown");
    this.backend?.terminate();
    this.client.terminate();
  }

  /** Counts one more descriptor for this connection; the process's count afterwards. */
  private holdDescriptor(): number {
    this.descriptors++;
    return this.env.descriptors.hold();
  }

  /** TCP RST to the client: nothing is sent, the peer sees ECONNRESET. */
  private reset(reason: EndReason): void {
    this.finish(reason);
    this.client.terminate();
  }

  /** One side reset mid-pipe: reset both (SPEC §4 step 5, a reset is passed on as a reset). */
  private resetBoth(): void {
    this.finish("closed");
    this.backend?.terminate();
    this.client.terminate();
  }

  /** SPEC §4 step 3: a fatal unrecognized_name alert, then FIN. */
  private refuseName(reason: "no_sni" | "no_route"): void {
    this.client.write(UNRECOGNIZED_NAME_ALERT);
    this.close(reason);
  }

  /** FIN to both sides. */
  private close(reason: EndReason): void {
    this.finish(reason);
    this.client.end();
    this.backend?.end();
  }

  /**
   * Book-keeping and the one log line; safe to reach more than once. Called before the
   * sockets are closed: Bun may run a close handler synchronously inside end()/terminate(),
   * and that handler must find the connection already finished with the right reason.
   */
  private finish(reason: EndReason): void {
    if (this.phase === CLOSED) return;
    this.phase = CLOSED;
    this.tearDown();
    this.releaseSlots();
    this.count(this.listener.stats, reason);
    if (this.routeStats !== null) {
      this.routeStats.active--;
      this.count(this.routeStats, reason);
    }
    if (this.env.logger.enabled("info")) this.env.logger.info("connection", this.logFields(reason));
    this.env.onConnectionEnd?.();
  }

  /** Drops what is buffered for either side. */
  private tearDown(): void {
    this.pending = null;
    this.toBackend.clear();
    this.toClient.clear();
  }

  /** Leaves the open set, gives back the descriptors and the admission slot. */
  private releaseSlots(): void {
    this.env.open.delete(this);
    if (this.backendState !== null) {
      this.backendState.active--;
      this.backendState = null;
    }
    this.env.descriptors.release(this.descriptors);
    this.descriptors = 0;
    this.listener.stats.active--;
    if (this.admitted) this.listener.release(this.clientAddress);
  }

  /** The end reason and the bytes each way, into the listener's or a route's counters. */
  private count(stats: TrafficStats, reason: EndReason): void {
    stats.ends[reason]++;
    stats.bytesUp += this.bytesUp;
    stats.bytesDown += this.bytesDown;
  }

  /** The one `msg="connection"` line's fields. */
  private logFields(reason: EndReason): LogFields {
    const fields: LogFields = {
      client:
        this.clientIp?.family === 6
          ? `[${this.clientAddress}]:${this.clientPort}`
          : `${this.clientAddress}:${this.clientPort}`,
      listener: this.listener.addr,
      sni: this.serverName ?? "",
      route: this.route?.spec.hostname ?? "",
      backend: this.backendAddr,
      bytes_up: this.bytesUp,
      bytes_down: this.bytesDown,
      duration_ms: Math.round(performance.now() - this.startedAt),
      outcome: reason,
    };
    // Assigned, not spread: an object spread per connection is measurably slower.
    if (this.blockedBy) {
      fields.rule_type = this.blockedBy.type;
      fields.rule = this.blockedBy.value;
    }
    // Last, so a line reads the same with and without worker threads up to here.
    if (this.env.worker !== null) fields.worker = this.env.worker;
    return fields;
  }
}

function errorText(error: Error): string {
  const code = (error as { code?: string }).code;
  return code ? `${code}: ${error.message}` : error.message;
}

/**
 * The socket data of a failover dial (attempt 2 and later): forwards to the connection with
 * the attempt number. Only failover dials allocate one; the first dial reports to the
 * connection itself.
 */
class FailoverDial implements BackendPeer {
  constructor(
    private readonly connection: Connection,
    private readonly attempt: number,
  ) {}

  onBackendOpen(socket: Socket<BackendPeer>): void {
    this.connection.onBackendOpen(socket, this.attempt);
  }

  onDialError(error: Error): void {
    this.connection.onDialError(error, this.attempt);
  }

  onBackendData(chunk: Uint8Array): void {
    this.connection.onBackendData(chunk);
  }

  onBackendDrain(): void {
    this.connection.onBackendDrain();
  }

  onBackendEnd(): void {
    this.connection.onBackendEnd();
  }

  onBackendClose(socket: Socket<BackendPeer>, error?: Error): void {
    this.connection.onBackendClose(socket, error);
  }
}
