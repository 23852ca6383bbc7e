// Dialing a backend with Bun.connect; one shared handler object for every backend socket.
import type { Socket, SocketHandler } from "bun";
import type { Route } from "../route/route-table.ts";
import type { Connection } from "./connection.ts";

const BACKEND_HANDLERS: SocketHandler<Connection> = {
  open(socket) {
    // No setNoDelay(true) here: Bun sets TCP_NODELAY on every socket it connects, twice
    // already (strace), so a third call was one more syscall per connection.
    socket.data.onBackendOpen(socket as Socket<Connection>);
  },
  data(socket, chunk) {
    socket.data.onBackendData(chunk);
  },
  drain(socket) {
    socket.data.onBackendDrain();
  },
  end(socket) {
    socket.data.onBackendEnd();
  },
  close(socket, error) {
    socket.data.onBackendClose(error);
  },
  connectError(socket, error) {
    socket.data.onDialError(error);
  },
  error() {
    // Followed by close, which does the work.
  },
};

/**
 * Starts connecting; the outcome arrives as onBackendOpen or onDialError. Bun.connect has no
 * timeout of its own: the connection's deadline sweep enforces connect_timeout and drops a
 * late socket in onBackendOpen.
 */
export function dialBackend(route: Route, connection: Connection): void {
  Bun.connect<Connection>({
    hostname: route.backendHost,
    port: route.backendPort,
    allowHalfOpen: true,
    data: connection,
    socket: BACKEND_HANDLERS,
  }).catch(ignoreRejection);
}

/** Dial failures arrive through connectError; one shared handler, no closure per dial. */
function ignoreRejection(): void {}
