// What the HTTP and WebSocket handlers of one l7 session know about it and report back to it.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Route } from "../route/route-table.ts";
import type { SessionAgent } from "./backend-dialer.ts";
import type { BackendSlots } from "./backend-slots.ts";
import type { ClientFlow } from "./body-pump.ts";

export interface ProxyContext {
  route: Route;
  /** The client's address as X-Forwarded-For gives it. */
  clientAddress: string;
  viaProxyProtocol: boolean;
  /** Backpressure on the client's socket, for the body pumps. */
  flow: ClientFlow;
  /** Gate for concurrent backend requests (h2 streams) and their descriptors. */
  backendSlots: BackendSlots;
  /** Keep-alive backend connections of this session (HTTP requests). */
  agent: SessionAgent;
  /** A fresh backend connection of this session (WebSocket tunnels); closed with the session. */
  dial(): Socket | TLSSocket;
  /** An HTTP/1.1 request head was read: header_timeout stops, body_idle_timeout runs. */
  http1Request(req: IncomingMessage, res: ServerResponse): void;
  /** A head that starts no HTTP/1.1 exchange was read (an upgrade, an h2 stream). */
  headRead(): void;
  /** The backend answered a request or accepted a tunnel. */
  backendAnswered(): void;
  /** A backend connection could not be set up: logs one `dial` warning with the reason. */
  dialFailed(error: Error): void;
  /** A request failed after its backend connection was up (reset, bad response). */
  backendFailed(error: Error): void;
}
