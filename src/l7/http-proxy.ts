// Reverse-proxying one request (HTTP/1.1 or h2 from the client) to the backend over HTTP/1.1.
import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { constants as http2Constants, type ServerHttp2Stream } from "node:http2";
import { authorityServedBy } from "./authority.ts";
import { isDialError } from "./backend-dialer.ts";
import { pumpToBackend, pumpToClient } from "./body-pump.ts";
import {
  backendRequestHeaders,
  clientResponseHeaders,
  type HeaderMap,
  http2HeaderPairs,
  rawHeaderPairs,
} from "./forwarded-headers.ts";
import type { ProxyContext } from "./proxy-context.ts";

const BAD_GATEWAY = 502;
const BAD_GATEWAY_BODY = "502 Bad Gateway\n";
const BAD_REQUEST = 400;
const MISDIRECTED = 421;
const MISDIRECTED_BODY = "421 Misdirected Request: this connection does not serve that name\n";

/** A short plain-text answer from the proxy itself (HTTP/1.1). */
function answerHttp1(res: ServerResponse, statusCode: number, body: string): void {
  res.writeHead(statusCode, {
    "content-type": "text/plain",
    "content-length": body.length,
  });
  res.end(body);
}

/**
 * Sends the request head to the backend. The caller pumps the body in (body-pump.ts), so only
 * a few chunks per direction are ever in memory.
 */
function openBackendRequest(
  context: ProxyContext,
  method: string,
  path: string,
  headers: HeaderMap,
): ClientRequest {
  const agent = context.agent;
  return httpRequest({
    agent,
    // The agent dials its own backend; these only name its connection pool.
    host: agent.backend.host,
    port: agent.backend.port,
    method,
    path,
    headers,
    // Host is the client's (in headers), not the backend's address.
    setHost: false,
  });
}

function countHostFields(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === "host") count++;
  }
  return count;
}

/** A request from an HTTP/1.1 client (`req`/`res` of node:http). */
export function proxyHttp1Request(
  context: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  // RFC 9112 §3.2: a 1.1 request without Host, or with more than one, is answered 400 (node
  // keeps the first of two silently, and a backend might read the other).
  // A request line without a version reaches here as HTTP/0.9 under Bun: refuse it rather
  // than forward it as 1.1.
  const version = req.httpVersion;
  const hostFields = countHostFields(req.rawHeaders);
  const problem =
    version !== "1.1" && version !== "1.0"
      ? "no HTTP/1.x version in the request line"
      : hostFields > 1
        ? "more than one Host"
        : hostFields === 0 && version === "1.1"
          ? "no Host"
          : null;
  if (problem !== null) {
    res.shouldKeepAlive = false;
    answerHttp1(res, BAD_REQUEST, `400 Bad Request: ${problem}\n`);
    return;
  }
  const host = req.headers.host;
  if (host !== undefined && !authorityServedBy(context.route.spec.hostname, host)) {
    // The body (if any) is not read: close after the answer rather than drain it.
    res.shouldKeepAlive = false;
    answerHttp1(res, MISDIRECTED, MISDIRECTED_BODY);
    return;
  }
  const headers = backendRequestHeaders(rawHeaderPairs(req.rawHeaders), {
    clientAddress: context.clientAddress,
    viaProxyProtocol: context.viaProxyProtocol,
    // HTTP/1.0 clients may omit Host: fall back to the name the route serves.
    host: req.headers.host ?? context.route.spec.hostname,
  });
  const backendReq = openBackendRequest(context, req.method ?? "GET", req.url ?? "/", headers);
  /** The client left first: the backend request was cut on purpose, nothing to report. */
  let clientGone = false;
  backendReq.on("response", (backendRes) => {
    context.backendAnswered();
    res.writeHead(
      backendRes.statusCode ?? BAD_GATEWAY,
      backendRes.statusMessage,
      clientResponseHeaders(rawHeaderPairs(backendRes.rawHeaders)),
    );
    pumpToClient(backendRes, res, context.flow);
    backendRes.on("error", () => res.destroy());
  });
  backendReq.on("error", (error) => {
    if (clientGone) return;
    if (res.headersSent) {
      // Mid-body: the client must not take a cut-off body for a whole one.
      context.backendFailed(error);
      res.destroy();
      return;
    }
    reportFailure(context, error);
    res.writeHead(BAD_GATEWAY, {
      "content-type": "text/plain",
      "content-length": BAD_GATEWAY_BODY.length,
    });
    res.end(BAD_GATEWAY_BODY);
  });
  // The client went away before the response was complete: stop the backend request too.
  res.on("close", () => {
    if (res.writableFinished) return;
    clientGone = true;
    backendReq.destroy();
  });
  // An aborted upload: the close handlers above do the work; an unhandled 'error' would throw.
  req.on("error", () => {});
  // Not pipeline(): a backend failure must not destroy the client connection, which still has
  // to carry the 502.
  pumpToBackend(req, backendReq, context.flow);
}

/** A request from an h2 client: one stream of the session. */
export function proxyHttp2Stream(
  context: ProxyContext,
  stream: ServerHttp2Stream,
  requestHeaders: Record<string, string | string[] | undefined>,
): void {
  const method = String(requestHeaders[":method"] ?? "GET");
  if (method === "CONNECT") {
    // No extended CONNECT (RFC 8441) is offered, so WebSocket clients use HTTP/1.1.
    respondPlain(stream, 405, "CONNECT is not supported\n");
    return;
  }
  const authority = requestHeaders[":authority"] ?? requestHeaders.host;
  if (typeof authority === "string" && !authorityServedBy(context.route.spec.hostname, authority)) {
    respondPlain(stream, MISDIRECTED, MISDIRECTED_BODY);
    return;
  }
  // At most MAX_BACKEND_CONNECTIONS_PER_CLIENT streams talk to the backend at once; the
  // others wait here (backend-slots.ts).
  context.backendSlots.acquire(() => {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      context.backendSlots.release();
    };
    if (stream.destroyed) release();
    else forwardHttp2Stream(context, stream, requestHeaders, method, release);
  });
}

function forwardHttp2Stream(
  context: ProxyContext,
  stream: ServerHttp2Stream,
  requestHeaders: Record<string, string | string[] | undefined>,
  method: string,
  release: () => void,
): void {
  const authority = requestHeaders[":authority"] ?? requestHeaders.host;
  const headers = backendRequestHeaders(http2HeaderPairs(requestHeaders), {
    clientAddress: context.clientAddress,
    viaProxyProtocol: context.viaProxyProtocol,
    host: typeof authority === "string" ? authority : context.route.spec.hostname,
  });
  const path = String(requestHeaders[":path"] ?? "/");
  const backendReq = openBackendRequest(context, method, path, headers);
  let responded = false;
  let complete = false;
  let clientGone = false;
  backendReq.on("response", (backendRes) => {
    context.backendAnswered();
    responded = true;
    backendRes.once("end", () => {
      complete = true;
      release();
    });
    backendRes.once("close", release);
    if (stream.destroyed) {
      backendRes.destroy();
      return;
    }
    stream.respond({
      ...clientResponseHeaders(rawHeaderPairs(backendRes.rawHeaders)),
      ":status": backendRes.statusCode ?? BAD_GATEWAY,
    });
    pumpToClient(backendRes, stream, context.flow);
    backendRes.on("error", () => stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR));
  });
  backendReq.on("error", (error) => {
    release();
    if (clientGone) return;
    if (responded) {
      context.backendFailed(error);
      if (!stream.destroyed) stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    reportFailure(context, error);
    if (!stream.destroyed) respondPlain(stream, BAD_GATEWAY, BAD_GATEWAY_BODY);
  });
  // RST_STREAM from the client, or the session ending: stop the backend request too.
  stream.on("close", () => {
    if (complete) return;
    clientGone = true;
    backendReq.destroy();
    release();
  });
  // RST_STREAM surfaces as 'error' too; unhandled, it would throw and end the process.
  stream.on("error", () => {});
  pumpToBackend(stream, backendReq, context.flow);
}

function reportFailure(context: ProxyContext, error: Error): void {
  if (isDialError(error)) context.dialFailed(error);
  else context.backendFailed(error);
}

function respondPlain(stream: ServerHttp2Stream, status: number, body: string): void {
  stream.respond({ ":status": status, "content-type": "text/plain" });
  stream.end(body);
}
