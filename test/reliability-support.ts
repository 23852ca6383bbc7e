// Shared set-up of the reliability tests: a real mc-proxy with its admin API, watched through
// GetStatus (active connections) and /proc/<pid>/fd, plus timed TLS clients and raw peers.
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { Socket } from "bun";
import { AdminClient, type AdminConnectOptions } from "../src/client/index.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort } from "./helpers/clients.ts";
import { logField, type RunningProxy, startProxy, tempDir, writeFile } from "./helpers/proxy.ts";
import { openFds } from "./helpers/raw.ts";

export const LISTENER = "127.0.0.1:0";
export const MIB = 1024 * 1024;

export interface RouteToml {
  hostname: string;
  backend: string;
}

export interface WatchedProxy {
  readonly proxy: RunningProxy;
  readonly pid: number;
  /** The listener's bound port. */
  readonly port: number;
  readonly admin: AdminClient;
  /** How to reach the admin API again (after a restart, say). */
  readonly adminOptions: AdminConnectOptions;
  readonly dir: string;
  readonly databasePath: string;
  readonly configPath: string;
  readonly ca: TestCa;
  /** Open descriptors once warmed up: listener, admin API and its one client channel, runtime. */
  readonly baselineFds: number;
  /** GetStatus: the listener's active_connections. */
  active(): Promise<number>;
  fds(): number;
  /** `msg="connection"` end lines so far whose outcome is `outcome`. */
  countOutcome(outcome: string): number;
  /**
   * Waits until GetStatus reports 0 active connections and the descriptors are back at the
   * baseline; resolves with the last figures either way (the caller asserts on them).
   */
  settle(timeoutMs?: number): Promise<{ active: number; fds: number }>;
  stop(): Promise<void>;
}

export interface WatchedProxyOptions {
  routes: RouteToml[];
  /** Lines for the [proxy] section, e.g. `hello_timeout = "3s"`. */
  proxyToml?: string;
  /** Extra lines for the [[listeners]] table. */
  listenerToml?: string;
  /** MC_PROXY_LOG_LEVEL; info keeps one end line per connection (what countOutcome reads). */
  logLevel?: string;
  /** Warm-up: a name routed to a backend that answers, to touch every code path once. */
  warmUp?: (port: number) => Promise<void>;
}

/** Admin certificates for a [grpc] section with mTLS, and the client that presents them. */
function grpcSection(ca: TestCa, addr: string): { toml: string; client: CertPair } {
  const server = ca.issue("localhost", ["localhost"]);
  const client = ca.issue("admin", ["admin"]);
  return {
    client,
    toml: `[grpc]
addr = "${addr}"
tls_cert = "${server.cert}"
tls_key = "${server.key}"
client_ca = "${ca.cert}"
client_cert = "${client.cert}"
client_key = "${client.key}"
`,
  };
}

export function proxyConfigToml(options: {
  dir: string;
  routes: RouteToml[];
  proxyToml?: string;
  listenerToml?: string;
  grpcToml: string;
}): string {
  const routes = options.routes
    .map(
      (route) => `  [[listeners.routes]]
  hostname = "${route.hostname}"
  backend = "${route.backend}"
`,
    )
    .join("");
  return `[database]
path = "${join(options.dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
${options.listenerToml ?? ""}
${routes}
${options.grpcToml}
[proxy]
${options.proxyToml ?? ""}
`;
}

export async function startWatchedProxy(options: WatchedProxyOptions): Promise<WatchedProxy> {
  const dir = tempDir("mc-proxy-reliability-");
  const ca = makeCa("reliability-ca", dir);
  const grpcAddr = `127.0.0.1:${await freePort()}`;
  const grpc = grpcSection(ca, grpcAddr);
  const configPath = writeFile(
    dir,
    "mc-proxy.toml",
    proxyConfigToml({
      dir,
      routes: options.routes,
      proxyToml: options.proxyToml,
      listenerToml: options.listenerToml,
      grpcToml: grpc.toml,
    }),
  );
  const proxy = await startProxy(configPath, {
    env: { MC_PROXY_LOG_LEVEL: options.logLevel ?? "info" },
  });
  const adminOptions: AdminConnectOptions = {
    addr: grpcAddr,
    ca: ca.cert,
    cert: grpc.client.cert,
    key: grpc.client.key,
  };
  const admin = AdminClient.connect(adminOptions);
  const active = async () => {
    const status = await admin.status();
    return status.listeners.find((listener) => listener.addr === LISTENER)!.activeConnections;
  };
  await active(); // opens the admin channel: one descriptor in the proxy from now on
  if (options.warmUp) await options.warmUp(proxy.port(LISTENER));
  const fds = () => openFds(proxy.pid);
  // Let the warm-up's sockets close, then take the lowest of a few readings.
  await Bun.sleep(300);
  let baselineFds = fds();
  for (let i = 0; i < 3; i++) {
    await Bun.sleep(100);
    baselineFds = Math.min(baselineFds, fds());
  }
  const countOutcome = (outcome: string) =>
    proxy.logs.filter(
      (line) => line.includes('msg="connection"') && logField(line, "outcome") === outcome,
    ).length;
  return {
    proxy,
    pid: proxy.pid,
    port: proxy.port(LISTENER),
    admin,
    adminOptions,
    dir,
    databasePath: join(dir, "mc-proxy.db"),
    configPath,
    ca,
    baselineFds,
    active,
    fds,
    countOutcome,
    async settle(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last = { active: -1, fds: -1 };
      while (Date.now() < deadline) {
        last = { active: await active(), fds: fds() };
        if (last.active === 0 && last.fds <= baselineFds) return last;
        await Bun.sleep(100);
      }
      return last;
    },
    async stop() {
      admin.close();
      await proxy.stop();
    },
  };
}

/** Nearest-rank percentile of samples (ms). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface TimedHandshake {
  /** "secure" or the error. */
  outcome: string;
  /** From connect() to the first byte the server sent (its ServerHello), ms. */
  firstByteMs: number;
  /** From connect() to the completed handshake, ms. */
  handshakeMs: number;
  peerCommonName: string | null;
}

/**
 * One full TLS handshake with node:tls through the proxy, timed. node:tls runs over a Duplex
 * fed by a plain TCP socket, so the first byte from the server can be timestamped.
 */
export function timedHandshake(
  port: number,
  servername: string,
  timeoutMs = 10_000,
): Promise<TimedHandshake> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let firstByteMs = -1;
    const raw = netConnect({ host: "127.0.0.1", port });
    const duplex = new Duplex({
      read() {
        raw.resume();
      },
      write(chunk, _encoding, callback) {
        raw.write(chunk, callback);
      },
      final(callback) {
        raw.end();
        callback();
      },
      destroy(error, callback) {
        raw.destroy();
        callback(error);
      },
    });
    raw.on("data", (chunk: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - startedAt;
      if (!duplex.push(chunk)) raw.pause();
    });
    raw.on("end", () => duplex.push(null));
    raw.on("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    const socket = tls.connect({ socket: duplex, servername, rejectUnauthorized: false });
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    let done = false;
    function finish(outcome: string, cn: string | null = null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const handshakeMs = performance.now() - startedAt;
      socket.destroy();
      raw.destroy();
      resolve({ outcome, firstByteMs, handshakeMs, peerCommonName: cn });
    }
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      finish("secure", typeof cert?.subject?.CN === "string" ? cert.subject.CN : null);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.once("close", () => finish("closed"));
  });
}

/** What happened to a raw client socket (Bun.connect) so far. */
export interface RawPeer {
  socket: Socket<RawPeer>;
  openedAt: number;
  /** Bytes received. */
  received: number;
  /** The first bytes received, up to 64 KiB (for checking content). */
  head: Uint8Array[];
  endedAt: number | null;
  closedAt: number | null;
  closeError: string | null;
  closed: Promise<void>;
  /** Called on the next `drain` (set by writeWithBackpressure). */
  onDrain: (() => void) | null;
}

/** A raw TCP client (Bun.connect, half-open allowed) that records what the proxy does to it. */
export async function rawPeer(port: number, hostname = "127.0.0.1"): Promise<RawPeer> {
  const { promise: closed, resolve: onClosed } = Promise.withResolvers<void>();
  const peer = {
    openedAt: performance.now(),
    received: 0,
    head: [],
    endedAt: null,
    closedAt: null,
    closeError: null,
    closed,
    onDrain: null,
  } as unknown as RawPeer;
  peer.socket = await Bun.connect<RawPeer>({
    hostname,
    port,
    allowHalfOpen: true,
    data: peer,
    socket: {
      data(socket, chunk) {
        const state = socket.data;
        if (state.received < 64 * 1024) state.head.push(new Uint8Array(chunk));
        state.received += chunk.length;
      },
      drain(socket) {
        const onDrain = socket.data.onDrain;
        socket.data.onDrain = null;
        onDrain?.();
      },
      end(socket) {
        socket.data.endedAt ??= performance.now();
      },
      close(socket, error) {
        const state = socket.data;
        if (state.closedAt !== null) return;
        const onDrain = state.onDrain;
        state.onDrain = null;
        onDrain?.();
        state.closedAt = performance.now();
        state.closeError = error ? ((error as { code?: string }).code ?? error.message) : null;
        onClosed();
      },
      error() {},
    },
  });
  return peer;
}

/**
 * True once the proxy ended the peer's stream: a FIN (`end`), or a close without error, which
 * is how Bun reports the FIN when this side had already sent its own.
 */
export function gotFin(peer: RawPeer): boolean {
  return peer.endedAt !== null || (peer.closedAt !== null && peer.closeError === null);
}

/** The soft and hard open-file limits of a process, from /proc/<pid>/limits. */
export function openFileLimits(pid: number | "self"): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((text) => text.startsWith("Max open files"));
  const match = line?.match(/Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/);
  if (!match) throw new Error(`no open-file limit for ${pid}`);
  const value = (text: string) => (text === "unlimited" ? Number.POSITIVE_INFINITY : Number(text));
  return { soft: value(match[1]!), hard: value(match[2]!) };
}

/**
 * Raises a process's soft open-file limit to its hard limit with prlimit(1) (no privilege
 * needed below the hard limit). Returns the limits afterwards.
 */
export function raiseOpenFileLimit(pid: number): { soft: number; hard: number } {
  const { hard } = openFileLimits(pid);
  const value = Number.isFinite(hard) ? String(hard) : "unlimited";
  const result = Bun.spawnSync(["prlimit", `--pid=${pid}`, `--nofile=${value}:${value}`], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) throw new Error(`prlimit: ${result.stderr.toString()}`);
  return openFileLimits(pid);
}

/** Resolves when `check()` is true, polling; false when it never was within timeoutMs. */
export async function eventually(check: () => boolean, timeoutMs: number, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await Bun.sleep(stepMs);
  }
  return check();
}

/** One connection a test backend accepted. */
export interface BackendConnection {
  socket: Socket<BackendConnection>;
  /** The proxy's port on this connection (read at accept: gone once closed). */
  remotePort: number;
  received: number;
  /** SHA-256 of everything received, filled in when the peer's FIN or close arrives. */
  sha256: string | null;
  hash: Bun.CryptoHasher;
  endedAt: number | null;
  closedAt: number | null;
  closeError: string | null;
}

export interface TestBackend {
  port: number;
  connections: BackendConnection[];
  stop(): void;
}

/**
 * A Bun.listen backend on 127.0.0.1 (half-open allowed) whose behaviour is the given hooks;
 * every connection hashes and counts what it receives.
 */
export function listenBackend(hooks: {
  open?(connection: BackendConnection): void;
  data?(connection: BackendConnection, chunk: Uint8Array): void;
  end?(connection: BackendConnection): void;
  drain?(connection: BackendConnection): void;
}): TestBackend {
  const connections: BackendConnection[] = [];
  const server = Bun.listen<BackendConnection>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(socket) {
        const connection: BackendConnection = {
          socket,
          remotePort: socket.remotePort,
          received: 0,
          sha256: null,
          hash: new Bun.CryptoHasher("sha256"),
          endedAt: null,
          closedAt: null,
          closeError: null,
        };
        socket.data = connection;
        connections.push(connection);
        hooks.open?.(connection);
      },
      data(socket, chunk) {
        const connection = socket.data;
        connection.received += chunk.length;
        connection.hash.update(chunk);
        hooks.data?.(connection, chunk);
      },
      drain(socket) {
        hooks.drain?.(socket.data);
      },
      end(socket) {
        const connection = socket.data;
        connection.endedAt = performance.now();
        connection.sha256 ??= connection.hash.digest("hex");
        hooks.end?.(connection);
      },
      close(socket, error) {
        const connection = socket.data;
        if (!connection || connection.closedAt !== null) return;
        connection.closedAt = performance.now();
        connection.closeError = error ? ((error as { code?: string }).code ?? error.message) : null;
        connection.sha256 ??= connection.hash.digest("hex");
      },
      error() {},
    },
  });
  return {
    port: server.port,
    connections,
    stop: () => server.stop(true),
  };
}

export function sha256(...parts: Uint8Array[]): string {
  const hash = new Bun.CryptoHasher("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
}

/** Everything a raw peer received (its first 64 KiB), as one buffer. */
export function receivedHead(peer: RawPeer): Uint8Array {
  return Buffer.concat(peer.head);
}

/**
 * Writes `bytes` through a raw peer, waiting for `drain` after each short write. Stops early
 * when the socket closes or when no drain came for `stallMs` (the far side stopped reading).
 * Returns how many bytes the socket took.
 */
export async function writeWithBackpressure(
  peer: RawPeer,
  bytes: Uint8Array,
  stallMs = 2000,
): Promise<{ written: number; stalled: boolean }> {
  let offset = 0;
  while (offset < bytes.length && peer.closedAt === null) {
    const chunk = bytes.subarray(offset, offset + 64 * 1024);
    const written = peer.socket.write(chunk);
    if (written < 0) break;
    offset += written;
    if (written < chunk.length) {
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          peer.onDrain = null;
          resolve(false);
        }, stallMs);
        peer.onDrain = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (!drained) return { written: offset, stalled: true };
    }
  }
  return { written: offset, stalled: false };
}
