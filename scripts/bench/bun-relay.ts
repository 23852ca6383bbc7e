// The Bun floor for `bun run bench`: the smallest correct TCP relay on Bun's socket layer, so
// the report can show how close mc-proxy comes to what the runtime itself allows. Not a
// product: no TLS parsing, no routing, no firewall, no timeouts, no logging.
//
//   bun scripts/bench/bun-relay.ts <backendPort>...
//
// One listener on 127.0.0.1 per backend port, in the order given, announced on stdout as
// `PORTS <p1> <p2> ...`. Like an SNI router it dials the backend when the client's first
// bytes arrive; it honours backpressure (short writes are queued, the source is paused until
// `drain`) and passes half-close on as mc-proxy and HAProxy do: a FIN is forwarded with
// shutdown() once the bytes before it are written, a reset as a reset. It exits when its
// stdin closes (a dying bench leaves no stray process) and on SIGTERM.
import type { Socket, SocketHandler } from "bun";

const HOST = "127.0.0.1";

/** One relayed connection: the `data` of both of its sockets. */
class Relay {
  backend: Socket<Relay> | null = null;
  /** Bytes read but not yet written, per destination (the client's while dialing, too). */
  toBackend: Uint8Array[] = [];
  toClient: Uint8Array[] = [];
  clientEnded = false;
  backendEnded = false;
  /** Over: the sockets are closed or closing; nothing more is relayed. */
  closed = false;

  constructor(
    readonly client: Socket<Relay>,
    readonly backendPort: number,
  ) {}
}

/** bun-types omits pause/resume on TCP sockets, but they exist at run time. */
interface Pausable {
  pause(): void;
  resume(): void;
}
const pause = (socket: Socket<Relay>) => (socket as unknown as Pausable).pause();
const resume = (socket: Socket<Relay>) => (socket as unknown as Pausable).resume();

/** Writes `chunk` to `to`, or queues what it did not take and pauses `from` until `drain`. */
function forward(from: Socket<Relay>, to: Socket<Relay>, queue: Uint8Array[], chunk: Uint8Array) {
  if (queue.length === 0) {
    const written = to.write(chunk);
    if (written === chunk.length) return;
    // Bun gives every read a buffer of its own: keeping a view of it is safe.
    chunk = chunk.subarray(Math.max(written, 0));
  }
  queue.push(chunk);
  pause(from);
}

/** Writes what is queued for `to`; true once the queue is empty. */
function flush(to: Socket<Relay>, queue: Uint8Array[]): boolean {
  while (queue.length > 0) {
    const chunk = queue[0]!;
    const written = to.write(chunk);
    if (written < chunk.length) {
      if (written > 0) queue[0] = chunk.subarray(written);
      return false;
    }
    queue.shift();
  }
  return true;
}

/** Both sides sent FIN and every byte is through: close both. */
function endIfDone(relay: Relay): void {
  if (!relay.clientEnded || !relay.backendEnded) return;
  if (relay.toClient.length > 0 || relay.toBackend.length > 0) return;
  relay.closed = true;
  relay.client.end();
  relay.backend!.end();
}

/**
 * `from` closed. A reset is passed on as a reset; a clean close as end(), once the bytes
 * `from` sent are written (`pending`, for `to`; `to`'s drain ends it then).
 */
function closeOther(relay: Relay, to: Socket<Relay>, pending: Uint8Array[], error?: Error) {
  if (relay.closed) return;
  relay.closed = true;
  if (error) to.terminate();
  else if (pending.length === 0) to.end();
}

/**
 * `to` can take more: write its queue, then pass on the FIN its source sent meanwhile, or
 * let the source (paused by forward()) read again.
 */
function drained(
  relay: Relay,
  to: Socket<Relay>,
  queue: Uint8Array[],
  sourceEnded: boolean,
  source: Socket<Relay> | null,
) {
  if (queue.length === 0 || !flush(to, queue)) return;
  if (relay.closed) to.end();
  else if (sourceEnded) {
    to.shutdown();
    endIfDone(relay);
  } else resume(source!);
}

/** Dial failures arrive through connectError; one shared handler, as in mc-proxy's dial.ts. */
function ignoreRejection(): void {}

const BACKEND: SocketHandler<Relay> = {
  open(backend) {
    const relay = backend.data;
    if (relay.closed) {
      backend.terminate(); // the client left while we were dialing
      return;
    }
    relay.backend = backend;
    if (!flush(backend, relay.toBackend)) pause(relay.client);
    else if (relay.clientEnded) backend.shutdown();
  },
  data(backend, chunk) {
    const relay = backend.data;
    if (!relay.closed) forward(backend, relay.client, relay.toClient, chunk);
  },
  drain(backend) {
    const relay = backend.data;
    drained(relay, backend, relay.toBackend, relay.clientEnded, relay.client);
  },
  end(backend) {
    const relay = backend.data;
    relay.backendEnded = true;
    if (relay.toClient.length > 0) return; // the client's drain passes the FIN on
    relay.client.shutdown();
    endIfDone(relay);
  },
  close(backend, error) {
    const relay = backend.data;
    if (relay.backend === backend) closeOther(relay, relay.client, relay.toClient, error);
  },
  connectError(backend) {
    const relay = backend.data;
    relay.closed = true;
    relay.client.terminate();
  },
  error() {
    // Followed by close, which does the work.
  },
};

const CLIENT: SocketHandler<Relay> = {
  open(client) {
    // An accepted socket starts with its listener's data: the backend port.
    client.data = new Relay(client, client.data as unknown as number);
  },
  data(client, chunk) {
    const relay = client.data;
    if (relay.closed) return;
    if (relay.backend !== null) {
      forward(client, relay.backend, relay.toBackend, chunk);
      return;
    }
    // Dialing: keep the bytes for the backend's open (a loopback dial is quick: no pause).
    relay.toBackend.push(chunk);
    if (relay.toBackend.length > 1) return;
    Bun.connect<Relay>({
      hostname: HOST,
      port: relay.backendPort,
      allowHalfOpen: true,
      data: relay,
      socket: BACKEND,
    }).catch(ignoreRejection);
  },
  drain(client) {
    const relay = client.data;
    drained(relay, client, relay.toClient, relay.backendEnded, relay.backend);
  },
  end(client) {
    const relay = client.data;
    relay.clientEnded = true;
    if (relay.backend === null && relay.toBackend.length === 0) {
      relay.closed = true; // FIN before a single byte: nothing to relay
      client.end();
      return;
    }
    // Still dialing, or bytes queued: the backend's open or drain passes the FIN on.
    if (relay.backend === null || relay.toBackend.length > 0) return;
    relay.backend.shutdown();
    endIfDone(relay);
  },
  close(client, error) {
    const relay = client.data;
    // Still dialing: the backend's open drops it.
    if (relay.backend === null) relay.closed = true;
    else closeOther(relay, relay.backend, relay.toBackend, error);
  },
  error() {
    // Followed by close, which does the work.
  },
};

const backendPorts = process.argv.slice(2).map(Number);
if (backendPorts.length === 0 || !backendPorts.every((p) => Number.isInteger(p) && p > 0)) {
  console.error("usage: bun scripts/bench/bun-relay.ts <backendPort>...");
  process.exit(2);
}
const ports = backendPorts.map(
  (backendPort) =>
    Bun.listen<Relay>({
      hostname: HOST,
      port: 0,
      allowHalfOpen: true,
      exclusive: true,
      data: backendPort as unknown as Relay, // replaced by a Relay in open()
      socket: CLIENT,
    }).port,
);
console.log(`PORTS ${ports.join(" ")}`);

process.on("SIGTERM", () => process.exit(0));
for await (const _ of Bun.stdin.stream()) {
  // Nothing to read: waiting for the end of stdin.
}
process.exit(0);
