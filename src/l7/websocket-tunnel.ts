// WebSocket upgrades: the handshake goes to the backend with X-Forwarded-*, then bytes flow both ways.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { isDialError } from "./backend-dialer.ts";
import { pumpToBackend, pumpToClient } from "./body-pump.ts";
import {
  backendRequestHeaders,
  rawHeaderPairs,
  serializeRequestHead,
} from "./forwarded-headers.ts";
import type { ProxyContext } from "./proxy-context.ts";

/** An answer written straight to the client socket: after 'upgrade' node:http no longer answers. */
function plainResponse(statusLine: string, body: string): string {
  return `HTTP/1.1 ${statusLine}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
}

const BAD_GATEWAY_RESPONSE = plainResponse("502 Bad Gateway", "502 Bad Gateway\n");
const NOT_IMPLEMENTED_RESPONSE = plainResponse(
  "501 Not Implemented",
  "only websocket is tunnelled\n",
);

/**
 * Handles node:http's 'upgrade' event. The backend's answer (101 or a refusal) is passed to the
 * client unread, as are all later frames: mc-proxy does not parse WebSocket frames. Both
 * directions are pumped with backpressure; either side closing closes the other.
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
  const headers = backendRequestHeaders(rawHeaderPairs(req.rawHeaders), {
    clientAddress: context.clientAddress,
    viaProxyProtocol: context.viaProxyProtocol,
    host: req.headers.host ?? context.route.spec.hostname,
    upgrade,
  });
  const backend = context.dial();
  backend.write(serializeRequestHead(req.method ?? "GET", req.url ?? "/", headers));
  if (head.length > 0) backend.write(head);
  let answered = false;
  backend.once("data", () => {
    answered = true;
    context.backendAnswered();
  });
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
  client.on("close", () => backend.destroy());
  backend.on("close", () => {
    if (!client.writableEnded) client.end();
  });
  pumpToClient(backend, client, context.flow);
  pumpToBackend(client, backend, context.flow);
}
