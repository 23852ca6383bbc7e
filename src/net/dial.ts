// Dialing a backend with Bun.connect; one shared handler object for every backend socket.
import type { Socket, SocketHandler } from "bun";
import type { BackendState } from "../route/backend-pool.ts";

/**
 * What a backend socket reports to: the connection itself for its first dial (no object per
 * dial), or a small forwarder that tags a failover dial with its attempt number, so a late
 * answer from an attempt already given up on is told apart from the current one.
 */
export interface BackendPeer {
  onBackendOpen(socket: Socket<BackendPeer>): void;
  onDialError(error: Error): void;
  onBackendData(chunk: Uint8Array): void;
  onBackendDrain(): void;
  onBackendEnd(): void;
  onBackendClose(socket: Socket<BackendPeer>, error?: Error): void;
}

const BACKEND_HANDLERS: SocketHandler<BackendPeer> = {
  open(socket) {
    // No setNoDelay(true) here: Bun sets TCP_NODELAY on every socket it connects, twice
    // already (strace), so a third call was one more syscall per connection.
    socket.data.onBackendOpen(socket as Socket<BackendPeer>);
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
    socket.data.onBackendClose(socket as Socket<BackendPeer>, error);
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
export function dialBackend(backend: BackendState, peer: BackendPeer): void {
  Bun.connect<BackendPeer>({
    hostname: backend.host,
    port: backend.port,
    allowHalfOpen: true,
    data: peer,
    socket: BACKEND_HANDLERS,
  }).catch(ignoreRejection);
}

/** Dial failures arrive through connectError; one shared handler, no closure per dial. */
function ignoreRejection(): void {}
