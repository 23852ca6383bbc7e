// A plain TCP backend that counts connections and bytes and holds every connection open.
import { createServer, type Server, type Socket } from "node:net";

export interface HoldBackend {
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  /** Bytes received so far, over all connections. */
  bytes(): number;
  close(): void;
}

export async function startHoldBackend(): Promise<HoldBackend> {
  let connections = 0;
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    connections: () => connections,
    bytes: () => bytes,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
