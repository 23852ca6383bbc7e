// One node:http server for the whole process, fed the decrypted sockets of HTTP/1.1 sessions.
import { createServer, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { proxyHttp1Request } from "./http-proxy.ts";
import type { ProxyContext } from "./proxy-context.ts";
import { tunnelUpgrade } from "./websocket-tunnel.ts";

/**
 * Each session's context, keyed by its TLS socket (node:http hands the same object back as
 * `req.socket`). Weak: a finished session leaves nothing behind.
 */
const contexts = new WeakMap<object, ProxyContext>();

let server: Server | null = null;

/**
 * The server never listens: sockets arrive by `emit("connection")`. Its own timers are off
 * (requestTimeout would cut a long upload at 300 s, keepAliveTimeout an idle client at 5 s):
 * the deadline sweep applies idle_timeout to l7 connections exactly as to l4 ones.
 */
function sharedServer(): Server {
  if (server !== null) return server;
  const created = createServer({ requestTimeout: 0, keepAliveTimeout: 0 });
  created.timeout = 0;
  created.on("request", (req, res) => {
    const context = contexts.get(req.socket);
    if (context) {
      context.http1Request(req, res);
      proxyHttp1Request(context, req, res);
    } else res.destroy();
  });
  created.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    const context = contexts.get(req.socket);
    if (context) {
      context.headRead();
      tunnelUpgrade(context, req, socket, head);
    } else socket.destroy();
  });
  created.on("clientError", (_error, socket: Duplex) => {
    // A malformed request: answer 400 if the socket can still take it, as nginx does.
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  server = created;
  return created;
}

/** Serves HTTP/1.1 on a decrypted TLS socket of one session. */
export function serveHttp1(socket: Duplex, context: ProxyContext): void {
  contexts.set(socket, context);
  sharedServer().emit("connection", socket);
}
