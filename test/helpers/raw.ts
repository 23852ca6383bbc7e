// Raw TCP peers for byte-exact tests: a real ClientHello followed by arbitrary bytes.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { captureNodeTlsClientHello } from "../../src/tls/testing/capture-client-hello.ts";

/** A real ClientHello from node:tls naming `servername` (the proxy only reads this far). */
export async function clientHelloFor(servername: string): Promise<Uint8Array> {
  return (await captureNodeTlsClientHello({ servername })).bytes;
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
  const server = createServer((socket: Socket) => {
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
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    server,
    received: promise,
    count: () => total,
    close: () => server.close(),
  };
}

/** Connects to 127.0.0.1:port (optionally from a chosen local address). */
export async function rawConnect(port: number, localAddress?: string): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Writes `chunks()` honouring backpressure; returns how much was written and its SHA-256. */
export async function writeAll(
  socket: Socket,
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
