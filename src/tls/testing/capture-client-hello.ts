// Test support: captures the first flight a real TLS client sends (its ClientHello) with a raw
// TCP server on 127.0.0.1, for live tests and for scripts/capture-client-hellos.ts.
import tls from "node:tls";
import { concatBytes } from "./records.ts";

export interface Capture {
  /** Everything the client sent before it fell silent waiting for a ServerHello. */
  bytes: Uint8Array;
  /** The same bytes as the TCP reads delivered them. */
  chunks: Uint8Array[];
}

export interface CaptureOptions {
  /** Silence after the last byte that ends the capture: the client is waiting for an answer. */
  quietMs?: number;
  /** Give up when the client sent nothing complete by then. */
  timeoutMs?: number;
}

/**
 * Listens on 127.0.0.1 port 0, runs `startClient(port)` (which returns a function stopping the
 * client) and collects what the first connection sends until it is quiet for `quietMs`. The
 * end is found by silence, not by parsing, so the parser under test does not decide what it
 * is fed.
 */
export async function captureFirstFlight(
  startClient: (port: number) => () => void,
  { quietMs = 150, timeoutMs = 5000 }: CaptureOptions = {},
): Promise<Capture> {
  const chunks: Uint8Array[] = [];
  let stopClient: (() => void) | null = null;
  let quietTimer: ReturnType<typeof setTimeout> | undefined;
  let failTimer: ReturnType<typeof setTimeout> | undefined;
  const { promise, resolve, reject } = Promise.withResolvers<Capture>();
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        chunks.push(new Uint8Array(data));
        clearTimeout(quietTimer);
        quietTimer = setTimeout(() => {
          socket.terminate();
          resolve({ bytes: concatBytes(chunks), chunks });
        }, quietMs);
      },
    },
  });
  try {
    failTimer = setTimeout(
      () => reject(new Error(`no ClientHello captured within ${timeoutMs} ms`)),
      timeoutMs,
    );
    stopClient = startClient(listener.port);
    return await promise;
  } finally {
    clearTimeout(failTimer);
    clearTimeout(quietTimer);
    stopClient?.();
    listener.stop(true);
  }
}

export interface NodeTlsClientOptions {
  servername?: string;
  alpn?: string[];
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

/** The ClientHello of a `node:tls` client (as implemented by the running Bun). */
export function captureNodeTlsClientHello(
  options: NodeTlsClientOptions,
  capture?: CaptureOptions,
): Promise<Capture> {
  return captureFirstFlight((port) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      servername: options.servername,
      ALPNProtocols: options.alpn,
      minVersion: options.minVersion,
      maxVersion: options.maxVersion,
      rejectUnauthorized: false,
    });
    socket.on("error", () => {}); // the capture server hangs up mid-handshake on purpose
    return () => socket.destroy();
  }, capture);
}

/** The ClientHello of `openssl s_client` run with `args` (stdin held open so it waits). */
export function captureOpensslClientHello(
  args: string[],
  capture?: CaptureOptions,
): Promise<Capture> {
  return captureFirstFlight((port) => {
    const child = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, ...args], {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
    });
    return () => child.kill();
  }, capture);
}
