// Bun.listen for one configured listener: one handler object, a Connection per socket.
import type { Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from "bun";
import type { ListenerState } from "../runtime/listener-state.ts";
import type { ProxyEnv } from "../runtime/proxy-env.ts";
import { Connection } from "./connection.ts";

export class ListenError extends Error {
  override readonly name = "ListenError";
}

export interface RunningListener {
  readonly state: ListenerState;
  /** The port actually bound (differs from the config for port 0). */
  readonly port: number;
  readonly hostname: string;
  /** Stop accepting; open connections carry on. */
  stopAccepting(): void;
}

function clientHandlers(state: ListenerState, env: ProxyEnv): SocketHandler<Connection> {
  return {
    open(socket) {
      const connection = new Connection(socket as Socket<Connection>, state, env);
      socket.data = connection;
      connection.onOpen();
    },
    data(socket, chunk) {
      socket.data.onClientData(chunk);
    },
    drain(socket) {
      socket.data.onClientDrain();
    },
    end(socket) {
      socket.data.onClientEnd();
    },
    close(socket, error) {
      socket.data?.onClientClose(error);
    },
    error() {
      // Followed by close, which does the work.
    },
  };
}

/**
 * Binds the listener. `":443"` binds `::`, which on Linux also takes IPv4 (IPV6_V6ONLY off),
 * so one socket serves every interface of both families. `exclusive` turns SO_REUSEPORT off:
 * a second instance on the same port must fail loudly, not share the traffic.
 */
export function startListener(
  state: ListenerState,
  env: ProxyEnv,
  options: {
    /** SO_REUSEPORT on: every worker thread binds the same port and the kernel spreads accepts. */
    reusePort?: boolean;
    /** The port to bind instead of the configured one (a worker joining port 0's pick). */
    port?: number;
  } = {},
): RunningListener {
  // Parsed once, by the config loader.
  const bind = state.spec.bind;
  const hostname = bind.host === "" ? "::" : bind.host;
  let server: TCPSocketListener<undefined>;
  try {
    server = Bun.listen<Connection>({
      hostname,
      port: options.port ?? bind.port,
      exclusive: options.reusePort !== true,
      reusePort: options.reusePort === true,
      allowHalfOpen: true,
      socket: clientHandlers(state, env),
      // bun-types 1.4.4 declares reusePort only for connect; Bun.listen reads it (BUN-FACTS.md).
    } as TCPSocketListenOptions<Connection>) as unknown as TCPSocketListener<undefined>;
  } catch (error) {
    throw new ListenError(`listener ${JSON.stringify(state.addr)}: ${describeListenError(error)}`);
  }
  return {
    state,
    port: server.port,
    hostname: server.hostname,
    stopAccepting: () => server.stop(false),
  };
}

function describeListenError(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === "EADDRINUSE")
    return "address already in use (is another mc-proxy or server running?)";
  if (code === "EACCES") {
    return "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE or root)";
  }
  if (code === "EADDRNOTAVAIL") return "address not available on this host";
  return error instanceof Error ? error.message : String(error);
}
