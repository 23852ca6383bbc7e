// Real backends for the l7 tests: an HTTP + WebSocket echo server, and a PROXY-v2-reading one.
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Server as BunServer } from "bun";
import { decodeProxyHeader } from "../src/proxy-protocol/index.ts";
import type { CertPair } from "./helpers/certs.ts";

/** What the echo backend saw of one request. */
export interface EchoedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  bodyBytes: number;
  /** Set by the TLS echo backend: proves the request came over TLS. */
  tls: boolean;
}

export interface EchoBackend {
  port: number;
  stop(): void;
}

interface SocketData {
  headers: Record<string, string>;
}

/**
 * Bun.serve answering every request with what it saw (method, path, headers, body size) as
 * JSON, and WebSocket upgrades by first sending the upgrade request's headers, then echoing
 * each message as `echo:<message>`. GET /stream sends 64 KiB every 5 ms for a long while, for
 * clients that leave mid-response. With `tls`, it serves HTTPS with that certificate.
 */
export function startEchoBackend(tls?: CertPair): EchoBackend {
  const server: BunServer<SocketData> = Bun.serve<SocketData>({
    hostname: "127.0.0.1",
    port: 0,
    tls: tls
      ? { cert: readFileSync(tls.cert, "utf8"), key: readFileSync(tls.key, "utf8") }
      : undefined,
    async fetch(req, srv) {
      const headers = Object.fromEntries(req.headers);
      if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
        if (srv.upgrade(req, { data: { headers } })) return undefined;
        return new Response("upgrade failed", { status: 400 });
      }
      const url = new URL(req.url);
      if (url.pathname === "/stream") return slowStream();
      const body = req.body ? await req.arrayBuffer() : new ArrayBuffer(0);
      const echoed: EchoedRequest = {
        method: req.method,
        path: url.pathname + url.search,
        headers,
        bodyBytes: body.byteLength,
        tls: tls !== undefined,
      };
      return Response.json(echoed, { headers: { "x-backend": "echo", "keep-alive": "timeout=5" } });
    },
    websocket: {
      open(ws) {
        ws.send(JSON.stringify(ws.data.headers));
      },
      message(ws, message) {
        ws.send(`echo:${String(message)}`);
      },
    },
  });
  return { port: server.port!, stop: () => server.stop(true) };
}

/** 64 KiB every 5 ms, 32 MiB in all: a response a test client can walk away from. */
function slowStream(): Response {
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === 512) {
        controller.close();
        return;
      }
      await Bun.sleep(5);
      sent++;
      controller.enqueue(chunk);
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream" } });
}

export interface ProxyHeaderBackend {
  port: number;
  server: Server;
  stop(): void;
}

/**
 * A raw TCP backend for send_proxy_protocol: decodes the PROXY header with the project's own
 * decoder, reads one HTTP request head, and answers with JSON naming the source address it
 * was told and the request's X-Forwarded-For.
 */
export async function startProxyHeaderBackend(): Promise<ProxyHeaderBackend> {
  const server = createServer((socket: Socket) => {
    let buffered = new Uint8Array(0);
    socket.on("data", (chunk: Buffer) => {
      const joined = new Uint8Array(buffered.length + chunk.length);
      joined.set(buffered, 0);
      joined.set(chunk, buffered.length);
      buffered = joined;
      const result = decodeProxyHeader(buffered);
      if (result.kind === "need-more") return;
      if (result.kind === "malformed") {
        socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
        return;
      }
      const head = new TextDecoder().decode(buffered.subarray(result.length));
      if (!head.includes("\r\n\r\n")) return;
      const forwardedFor = head.match(/^x-forwarded-for: (.*)$/im)?.[1] ?? "";
      const body = JSON.stringify({
        version: result.header.version,
        source: result.header.source,
        forwardedFor: forwardedFor.trim(),
      });
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    server,
    stop: () => server.close(),
  };
}
