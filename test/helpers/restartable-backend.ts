// A TLS backend that can be stopped and started again on the same port, which nobody can take meanwhile.
import type { Subprocess } from "bun";
import type { CertPair } from "./certs.ts";

interface TcpListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

export interface RestartableBackend {
  readonly port: number;
  readonly addr: string;
  /** TLS connections accepted since the backend was made. */
  readonly accepted: number;
  /** Stops listening: new connections are refused (RST), open ones are reset. */
  stop(): void;
  /** Listens again on the same port. */
  start(): void;
  /** Stops and releases the port for good. */
  close(): Promise<void>;
}

/**
 * A Bun.listen TLS server with the certificate `pair` (its CN tells a client which backend
 * answered), bound with SO_REUSEPORT. Beside it a python3 process holds the port with a
 * socket bound (SO_REUSEPORT) but never listening: while the server is stopped, connections
 * to the port are refused, the kernel hands the port to nobody else, and start() can bind it
 * again.
 */
export async function startRestartableBackend(pair: CertPair): Promise<RestartableBackend> {
  let accepted = 0;
  const open = new Set<{ terminate(): void }>();
  const handler = {
    open(socket: { terminate(): void }) {
      accepted++;
      open.add(socket);
    },
    data() {},
    close(socket: { terminate(): void }) {
      open.delete(socket);
    },
  };
  const listen = (port: number): TcpListener =>
    // reusePort is missing from @types/bun's listen options (BUN-FACTS).
    Bun.listen({
      hostname: "127.0.0.1",
      port,
      reusePort: true,
      tls: { cert: Bun.file(pair.cert), key: Bun.file(pair.key) },
      socket: handler,
    } as unknown as Parameters<typeof Bun.listen>[0]) as unknown as TcpListener;
  let listener: TcpListener | null = listen(0);
  const port = listener.port;
  const holder: Subprocess<"pipe", "pipe", "inherit"> = Bun.spawn(
    [
      "python3",
      "-c",
      [
        "import socket, sys",
        "s = socket.socket()",
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)",
        `s.bind(("127.0.0.1", ${port}))`,
        'print("bound", flush=True)',
        "sys.stdin.read()",
      ].join("\n"),
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
  );
  const reader = holder.stdout.getReader();
  const first = await Promise.race([
    reader.read(),
    Bun.sleep(10_000).then(() => ({ value: undefined, done: true })),
  ]);
  if (!new TextDecoder().decode(first.value ?? new Uint8Array()).includes("bound")) {
    holder.kill();
    listener.stop(true);
    throw new Error(`could not hold port ${port} with a bound socket`);
  }
  const stop = () => {
    listener?.stop(true);
    listener = null;
    for (const socket of open) socket.terminate();
    open.clear();
  };
  return {
    port,
    addr: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    stop,
    start() {
      if (listener === null) listener = listen(port);
    },
    async close() {
      stop();
      holder.stdin.end();
      const timer = setTimeout(() => holder.kill("SIGKILL"), 5_000);
      await holder.exited;
      clearTimeout(timer);
    },
  };
}
