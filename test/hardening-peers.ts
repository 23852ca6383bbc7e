// Peers for the hardening tests: a raw HTTP/1.1 backend that records every byte, a raw TLS client.
import { createServer, type Server, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

export interface RecordingBackend {
  port: number;
  /** Every byte every connection sent, in arrival order, as latin1 text. */
  received(): string;
  /** Connections accepted so far, and open now. */
  accepted(): number;
  open(): number;
  stop(): Promise<void>;
}

/**
 * A backend that answers every request head it reads with `200 ok` (content-length 2, kept
 * alive), except a WebSocket upgrade to a path starting `/ws-ok`, answered 101 and then echoed
 * byte for byte. A request with Content-Length is answered once its body is in. With
 * `answerDelayMs`, each answer waits.
 */
export async function startRecordingBackend(
  options: { answerDelayMs?: number } = {},
): Promise<RecordingBackend> {
  let text = "";
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let pending = "";
    let tunnel = false;
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (tunnel) {
        socket.write(chunk);
        return;
      }
      pending += chunk.toString("latin1");
      let end = pending.indexOf("\r\n\r\n");
      while (end !== -1 && !tunnel) {
        const head = pending.slice(0, end);
        const bodyLength = Number(/^content-length: *(\d+)$/im.exec(head)?.[1] ?? 0);
        if (pending.length < end + 4 + bodyLength) break;
        pending = pending.slice(end + 4 + bodyLength);
        const answer = () => {
          if (/^GET \/ws-ok/.test(head) && /^upgrade: websocket$/im.test(head)) {
            tunnel = true;
            socket.write(
              "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            );
            if (pending.length > 0) socket.write(Buffer.from(pending, "latin1"));
            pending = "";
          } else if (!socket.destroyed) {
            socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
          }
        };
        if (options.answerDelayMs) setTimeout(answer, options.answerDelayMs);
        else answer();
        end = pending.indexOf("\r\n\r\n");
      }
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    received: () => text,
    accepted: () => accepted,
    open: () => sockets.size,
    stop: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}

export interface RawTlsClient {
  socket: TLSSocket;
  /** The client's port, as the proxy's access log names it. */
  localPort: number;
  /** Everything received so far (latin1). */
  text(): string;
  /** Resolves when the received text matches, rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with everything received once the proxy closed the connection. */
  closed(timeoutMs?: number): Promise<string>;
  destroy(): void;
}

/** A TLS connection to the proxy (certificates not checked) with the given ALPN offer. */
export async function rawTlsClient(
  port: number,
  servername: string,
  alpn: string[] = ["http/1.1"],
): Promise<RawTlsClient> {
  const socket = tlsConnect({
    host: "127.0.0.1",
    port,
    servername,
    ALPNProtocols: alpn,
    rejectUnauthorized: false,
  });
  let text = "";
  let isClosed = false;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
    notify();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    isClosed = true;
    notify();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  const wait = (done: () => boolean, what: string, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      if (done()) {
        resolve(text);
        return;
      }
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(
          new Error(`${what} not seen within ${timeoutMs}ms; received: ${JSON.stringify(text)}`),
        );
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(text);
      };
      listeners.add(check);
    });
  return {
    socket,
    localPort: socket.localPort ?? 0,
    text: () => text,
    waitFor: (pattern, timeoutMs = 5000) =>
      wait(() => pattern.test(text), String(pattern), timeoutMs),
    closed: (timeoutMs = 5000) => wait(() => isClosed, "close", timeoutMs),
    destroy: () => socket.destroy(),
  };
}
