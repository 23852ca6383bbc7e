// Client-side helpers: node:tls connections through the proxy, free ports, curl.
import { createServer, connect as netConnect } from "node:net";
import * as tls from "node:tls";
import { spawn } from "./scratch.ts";

/**
 * A port that was free a moment ago. Nothing keeps it free: listen on port 0 and read the port
 * back where the program can; use deadBackend() (tcp.ts) for a port that must refuse; peers
 * that cannot report a port go through onFreshPorts() (haproxy.ts), which retries.
 */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface TlsAttempt {
  /** "secure" when the handshake completed, else the error code (ECONNRESET, …) or message. */
  outcome: string;
  peerCommonName: string | null;
}

/**
 * One TLS handshake through the proxy with node:tls. Certificates are not verified here:
 * what matters is which backend answered (its CN) or how the connection failed.
 */
export async function tlsAttempt(
  port: number,
  options: { servername?: string; localAddress?: string; host?: string; timeoutMs?: number } = {},
): Promise<TlsAttempt> {
  return await new Promise((resolve) => {
    // A plain socket first: node:tls's typings have no localAddress, and tests bind the
    // client to chosen loopback addresses (127.0.0.2, …) to appear as different clients.
    const raw = netConnect({
      host: options.host ?? "127.0.0.1",
      port,
      localAddress: options.localAddress,
    });
    const socket = tls.connect({
      socket: raw,
      servername: options.servername,
      rejectUnauthorized: false,
    });
    raw.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    const timer = setTimeout(() => finish("timeout"), options.timeoutMs ?? 10_000);
    let done = false;
    function finish(outcome: string, cn: string | null = null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      resolve({ outcome, peerCommonName: cn });
    }
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      finish("secure", typeof cert?.subject?.CN === "string" ? cert.subject.CN : null);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.once("close", () => finish("closed"));
  });
}

export interface CurlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function curl(args: string[], timeoutMs = 15_000): Promise<CurlResult> {
  const proc = spawn(
    ["curl", "--silent", "--show-error", "--max-time", String(timeoutMs / 1000), ...args],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}
