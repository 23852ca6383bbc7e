// WebSocket upgrades: the handshake goes to the backend with X-Forwarded-*; a tunnel opens only on 101.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { authorityServedBy } from "./authority.ts";
import { isDialError } from "./backend-dialer.ts";
import { pumpToBackend, pumpToClient } from "./body-pump.ts";
import {
  backendRequestHeaders,
  clientResponseHeaders,
  rawHeaderPairs,
  serializeRequestHead,
} from "./forwarded-headers.ts";
import type { ProxyContext } from "./proxy-context.ts";
import { ResponseBodyEnd, type ResponseHead, readResponseHead } from "./response-head.ts";

/** An answer written straight to the client socket: after 'upgrade' node:http no longer answers. */
function plainResponse(statusLine: string, body: string): string {
  return `HTTP/1.1 ${statusLine}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
}

const BAD_GATEWAY_RESPONSE = plainResponse("502 Bad Gateway", "502 Bad Gateway\n");
const NOT_IMPLEMENTED_RESPONSE = plainResponse(
  "501 Not Implemented",
  "only websocket is tunnelled\n",
);

const MISDIRECTED_RESPONSE = plainResponse(
  "421 Misdirected Request",
  "421 Misdirected Request: this connection does not serve that name\n",
);

const SWITCHING_PROTOCOLS = 101;

/**
 * Handles node:http's 'upgrade' event. The handshake goes to the backend; until its answer's
 * head has been read, nothing more of the client is read or forwarded. Only a
 * `101 Switching Protocols` opens the raw tunnel (the 101 and all later bytes pass unread:
 * mc-proxy does not parse WebSocket frames). Any other answer is relayed as an HTTP response
 * with `connection: close` and the connection ends after its body: the bytes the client sent
 * after the handshake are never forwarded, so a request hidden behind a refused upgrade cannot
 * reach the backend past the header rewrite (request smuggling).
 */
export function tunnelUpgrade(
  context: ProxyContext,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
): void {
  const upgrade = req.headers.upgrade ?? "";
  if (upgrade.toLowerCase() !== "websocket") {
    client.end(NOT_IMPLEMENTED_RESPONSE);
    return;
  }
  const host = req.headers.host;
  if (host !== undefined && !authorityServedBy(context.route.spec.hostname, host)) {
    client.end(MISDIRECTED_RESPONSE);
    return;
  }
  const method = req.method ?? "GET";
  const headers = backendRequestHeaders(rawHeaderPairs(req.rawHeaders), {
    clientAddress: context.clientAddress,
    viaProxyProtocol: context.viaProxyProtocol,
    host: req.headers.host ?? context.route.spec.hostname,
    upgrade,
  });
  // Hold the client until the backend has said yes: the TLS socket stops emitting and the raw
  // client socket is no longer read. `head` (bytes already read past the request) waits too.
  client.pause();
  let releaseClient: (() => void) | null = context.flow.holdReads();
  const letClientGo = () => {
    releaseClient?.();
    releaseClient = null;
  };
  const backend = context.dial();
  backend.write(serializeRequestHead(method, req.url ?? "/", headers));
  let answered = false;
  let received: Uint8Array = new Uint8Array(0);
  const onHeadBytes = (chunk: Uint8Array) => {
    if (!answered) {
      answered = true;
      context.backendAnswered();
    }
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const result = readResponseHead(received);
    if (result.kind === "need-more") return;
    backend.off("data", onHeadBytes);
    backend.pause();
    if (result.kind === "malformed") {
      context.backendFailed(new Error(`upgrade answer: ${result.reason}`));
      client.end(BAD_GATEWAY_RESPONSE);
      backend.destroy();
      return;
    }
    if (result.head.status === SWITCHING_PROTOCOLS) {
      openTunnel(context, client, backend, received, head);
      letClientGo();
      return;
    }
    relayRefusal(context, client, backend, method, result.head, received);
  };
  backend.on("data", onHeadBytes);
  backend.on("error", (error) => {
    if (!answered && isDialError(error)) {
      context.dialFailed(error);
      client.end(BAD_GATEWAY_RESPONSE);
      return;
    }
    context.backendFailed(error);
    client.destroy();
  });
  client.on("error", () => backend.destroy());
  client.on("close", () => {
    letClientGo();
    backend.destroy();
  });
  backend.on("close", () => {
    if (!client.writableEnded) client.end();
  });
}

/** 101: the backend's bytes (the 101 head first) go to the client, then both ways raw. */
function openTunnel(
  context: ProxyContext,
  client: Duplex,
  backend: Duplex,
  received: Uint8Array,
  clientHead: Buffer,
): void {
  client.write(received);
  if (clientHead.length > 0) backend.write(clientHead);
  pumpToClient(backend, client, context.flow);
  pumpToBackend(client, backend, context.flow);
  backend.resume();
  client.resume();
}

/**
 * Any answer but 101: relayed as a plain response (hop-by-hop fields dropped, `connection:
 * close`), its body up to where it ends, then the connection closes. The client stays unread.
 */
function relayRefusal(
  context: ProxyContext,
  client: Duplex,
  backend: Duplex,
  method: string,
  head: ResponseHead,
  received: Uint8Array,
): void {
  const body = new ResponseBodyEnd(method, head);
  const fields = clientResponseHeaders(head.headers);
  let text = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  for (const name in fields) {
    const value = fields[name]!;
    for (const item of Array.isArray(value) ? value : [value]) text += `${name}: ${item}\r\n`;
  }
  client.write(`${text}connection: close\r\n\r\n`);
  const forward = (chunk: Uint8Array): void => {
    let used: number;
    try {
      used = body.feed(chunk);
    } catch (error) {
      context.backendFailed(error as Error);
      client.destroy();
      backend.destroy();
      return;
    }
    if (used > 0 && !client.writableEnded) client.write(chunk.subarray(0, used));
    if (!body.done && context.flow.writesCongested) {
      backend.pause();
      context.flow.onceWritable(() => backend.resume());
    }
    if (body.done) {
      backend.off("data", forward);
      if (!client.writableEnded) client.end();
      backend.destroy();
    }
  };
  forward(received.subarray(head.length));
  if (body.done) return;
  backend.on("data", forward);
  backend.on("end", () => {
    if (!client.writableEnded) client.end();
  });
  backend.resume();
}
