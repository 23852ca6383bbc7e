// Raw TCP peers and backends for byte-exact tests: a real ClientHello followed by arbitrary
// bytes, clients that record what the proxy did to them, backends that count, hash, hold or
// read slowly, and a dead backend that refuses every connection for as long as a test runs.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, createServer, type Socket as NetSocket, type Server } from "node:net";
import type { Socket } from "bun";
import { captureNodeTlsClientHello } from "../../src/tls/testing/capture-client-hello.ts";

/** A real ClientHello from node:tls naming `servername` (the proxy only reads this far). */
export async function clientHelloFor(servername: string): Promise<Uint8Array> {
  return (await captureNodeTlsClientHello({ servername })).bytes;
}

// --- A dead backend --------------------------------------------------------------------------

/**
 * libc's socket calls through bun:ffi: neither Bun nor node:net can bind a TCP socket without
 * also listening on it.
 */
const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});
const AF_INET = 2;
const SOCK_STREAM_CLOEXEC = 1 | 0o2000000; // SOCK_STREAM | SOCK_CLOEXEC: not inherited by children

export interface DeadBackend {
  /** A 127.0.0.1 port that refuses every connection (RST: ECONNREFUSED) until close(). */
  readonly port: number;
  close(): void;
}

const deadBackends = new Set<DeadBackend>();
process.on("exit", () => {
  for (const dead of deadBackends) dead.close();
});

/**
 * A backend that is down, and stays down for as long as the test holds it: a TCP socket bound
 * to 127.0.0.1 on a kernel-chosen port that never listens. Linux answers a SYN to a port with
 * no listener with a RST, so every dial is refused; and while the socket stays bound (without
 * SO_REUSEADDR/SO_REUSEPORT) no other socket on the machine can bind or listen on that port, nor
 * get it as an ephemeral port. A port that was merely free a moment ago promises none of this:
 * on a busy machine another process may listen there by the time the proxy dials.
 * `port` other than 0 claims that port (a server's, just stopped), and throws if it is taken.
 */
export function deadBackend(port = 0): DeadBackend {
  const fd = libc.symbols.socket(AF_INET, SOCK_STREAM_CLOEXEC, 0);
  if (fd < 0) throw new Error("dead backend: socket() failed");
  // struct sockaddr_in: family (host order), port (network order), address, padding.
  const address = new Uint8Array(16);
  const view = new DataView(address.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  address.set([127, 0, 0, 1], 4);
  const length = new Uint32Array([address.length]);
  if (
    libc.symbols.bind(fd, ptr(address), address.length) !== 0 ||
    libc.symbols.getsockname(fd, ptr(address), ptr(length)) !== 0
  ) {
    libc.symbols.close(fd);
    throw new Error(`dead backend: bind() to 127.0.0.1:${port} failed (in use?)`);
  }
  let open = true;
  const dead: DeadBackend = {
    port: view.getUint16(2, false),
    close() {
      if (!open) return;
      open = false;
      libc.symbols.close(fd);
      deadBackends.delete(dead);
    },
  };
  deadBackends.add(dead);
  return dead;
}

// --- Backends ----------------------------------------------------------------------------------

function boundPort(server: Server): number {
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

export interface HoldBackend {
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  /** Bytes received so far, over all connections. */
  bytes(): number;
  close(): void;
}

/** A plain TCP backend that counts connections and bytes and holds every connection open. */
export async function startHoldBackend(): Promise<HoldBackend> {
  let connections = 0;
  let bytes = 0;
  const sockets = new Set<NetSocket>();
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  return {
    port: boundPort(server),
    connections: () => connections,
    bytes: () => bytes,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

export interface SinkBackend {
  port: number;
  server: Server;
  /** Resolves when the first connection ends: its byte count and SHA-256. */
  received: Promise<{ bytes: number; sha256: string }>;
  /** Bytes received so far. */
  count(): number;
  close(): void;
}

/**
 * A backend that hashes what it receives and reads slowly: after each `pauseEvery` bytes it
 * stops reading for `pauseMs`, so the proxy has to hold the client back.
 */
export async function startSlowSink(options: {
  pauseEvery: number;
  pauseMs: number;
}): Promise<SinkBackend> {
  let total = 0;
  const { promise, resolve } = Promise.withResolvers<{ bytes: number; sha256: string }>();
  const sockets = new Set<NetSocket>();
  const server = createServer((socket: NetSocket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const hash = createHash("sha256");
    let sincePause = 0;
    socket.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      total += chunk.length;
      sincePause += chunk.length;
      if (sincePause >= options.pauseEvery) {
        sincePause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), options.pauseMs);
      }
    });
    socket.on("end", () => {
      resolve({ bytes: total, sha256: hash.digest("hex") });
      socket.end();
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  return {
    port: boundPort(server),
    server,
    received: promise,
    count: () => total,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
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

// --- Clients -----------------------------------------------------------------------------------

/** Connects to 127.0.0.1:port (optionally from a chosen local address). */
export async function rawConnect(port: number, localAddress?: string): Promise<NetSocket> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Writes `chunks()` honouring backpressure; returns how much was written and its SHA-256. */
export async function writeAll(
  socket: NetSocket,
  prefix: Uint8Array,
  totalBytes: number,
  block: Uint8Array,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  hash.update(prefix);
  socket.write(prefix);
  let written = 0;
  while (written < totalBytes) {
    const size = Math.min(block.length, totalBytes - written);
    const chunk = block.subarray(0, size);
    hash.update(chunk);
    written += size;
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
  }
  return { bytes: prefix.length + written, sha256: hash.digest("hex") };
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

/** Everything a raw peer received (its first 64 KiB), as one buffer. */
export function receivedHead(peer: RawPeer): Uint8Array {
  return Buffer.concat(peer.head);
}

/**
 * Writes `bytes` through a raw peer, waiting for `drain` after each short write. Stops early
 * when the socket closes or when no drain came for `stallMs` (the far side stopped reading).
 * Returns how many bytes the socket took, and whether the writes stalled: a write left waiting
 * for a drain that never came, neither within `stallMs` nor before the connection ended (on a
 * loaded machine the far side's own timeout may close it first).
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
      // rawPeer's close handler also calls onDrain: closed while waiting is a stall too.
      if (!drained || peer.closedAt !== null) return { written: offset, stalled: true };
    }
  }
  return { written: offset, stalled: false };
}

// --- The proxy process, seen from /proc -----------------------------------------------------------

/** Resident memory of a process, in bytes, from /proc/<pid>/status. */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** Open file descriptors of a process. */
export function openFds(pid: number): number {
  return Bun.spawnSync(["ls", `/proc/${pid}/fd`])
    .stdout.toString()
    .trim()
    .split("\n").length;
}
