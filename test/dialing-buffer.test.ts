// A client streaming while its backend is still being dialed: the proxy keeps at most
// DIALING_BUFFER_BYTES (+ one read), pauses the client, and resumes it once the backend opens.
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type { Subprocess } from "bun";
import {
  listenerWithRoute,
  logField,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";
import { clientHelloFor, rawConnect, writeAll } from "./helpers/tcp.ts";

const MIB = 1024 * 1024;
/** Far more than the kernel buffers between a paused proxy and its client (a few MiB). */
const PAYLOAD_BYTES = 32 * MIB;
/** How long the backend leaves its accept queue full: the proxy's SYN is dropped meanwhile. */
const STALL_MS = 1500;

/**
 * A backend that cannot be dialed until told: `listen(0)` holds one handshaken connection in
 * the accept queue (the test's filler) and the kernel drops further SYNs while it is full, so
 * the proxy's connect waits for a SYN retransmit. After a line on stdin it accepts, and for
 * each connection prints `accept <peer port>`, then `done <peer port> <bytes> <sha256>` at EOF.
 * SIGALRM ends it after 20 s whatever happens.
 */
const BACKEND_SCRIPT = `
import hashlib, signal, socket, sys, threading
signal.alarm(20)
lock = threading.Lock()
def say(line):
    with lock:
        print(line, flush=True)
def drain(conn, port):
    digest, total = hashlib.sha256(), 0
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    say(f"done {port} {total} {digest.hexdigest()}")
    conn.close()
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(0)
say(f"port {server.getsockname()[1]}")
sys.stdin.readline()
while True:
    conn, peer = server.accept()
    say(f"accept {peer[1]}")
    threading.Thread(target=drain, args=(conn, peer[1]), daemon=True).start()
`;

interface Backend {
  proc: Subprocess<"pipe", "pipe", "inherit">;
  port: number;
  /** Resolves with the first stdout line (already seen or future) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Lets the backend call accept(). */
  startAccepting(): void;
}

async function startStalledBackend(): Promise<Backend> {
  const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const proc = spawn([python, "-c", BACKEND_SCRIPT], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      for (let newline = rest.indexOf("\n"); newline !== -1; newline = rest.indexOf("\n")) {
        const line = rest.slice(0, newline);
        rest = rest.slice(newline + 1);
        lines.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.pattern.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
        }
      }
    }
  })();
  const waitForLine = (pattern: RegExp, timeoutMs: number): Promise<string> => {
    const seen = lines.find((line) => pattern.test(line));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `backend printed no line matching ${pattern} within ${timeoutMs}ms; it printed:\n${lines.join("\n")}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  };
  const port = Number((await waitForLine(/^port \d+$/, 5000)).split(" ")[1]);
  return {
    proc,
    port,
    waitForLine,
    startAccepting() {
      proc.stdin.write("accept\n");
      proc.stdin.flush();
    },
  };
}

interface TcpSocketState {
  localPort: number;
  remotePort: number;
  /** /proc/net/tcp `st`: 01 ESTABLISHED, 02 SYN_SENT, … */
  state: string;
  /** Bytes not yet acknowledged by the peer. */
  txQueue: number;
  /** Bytes received and not yet read by the application. */
  rxQueue: number;
}

/** The IPv4 TCP sockets of this network namespace, from /proc/net/tcp (Linux). */
function tcpSockets(): TcpSocketState[] {
  return readFileSync("/proc/net/tcp", "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((row) => {
      const [, local, remote, state, queues] = row.trim().split(/\s+/);
      const [tx, rx] = queues!.split(":");
      return {
        localPort: Number.parseInt(local!.split(":")[1]!, 16),
        remotePort: Number.parseInt(remote!.split(":")[1]!, 16),
        state: state!,
        txQueue: Number.parseInt(tx!, 16),
        rxQueue: Number.parseInt(rx!, 16),
      };
    });
}

/** Rejects with `message` when `promise` takes longer than `timeoutMs`. */
async function within<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (waited ${timeoutMs}ms)`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let backend: Backend | undefined;
let proxy: RunningProxy | undefined;
const sockets: Socket[] = [];

afterAll(async () => {
  // The backend first: a connection the proxy still holds to it ends with it, so the proxy
  // can exit at once even when the test failed half-way.
  backend?.proc.kill();
  for (const socket of sockets) socket.destroy();
  await proxy?.stop();
});

test("a client streaming while its backend is dialed is paused, resumed on open, and loses nothing", async () => {
  backend = await startStalledBackend();
  // Completes in the kernel and fills the accept queue: the proxy's SYN is dropped from now on.
  const filler = await rawConnect(backend.port);
  sockets.push(filler);

  const dir = tempDir();
  // A short shutdown_timeout bounds afterAll should a failure leave a connection open.
  const config = writeProxyConfig(
    dir,
    `${listenerWithRoute("127.0.0.1:0", "dial.test", backend.port)}\n[proxy]\nshutdown_timeout = "1s"\n`,
  );
  proxy = await startProxy(config, { env: { MC_PROXY_LOG_LEVEL: "info" } });
  const proxyPort = proxy.port("127.0.0.1:0");
  const hello = await clientHelloFor("dial.test");

  const client = await rawConnect(proxyPort);
  sockets.push(client);
  client.on("data", () => {});
  client.on("error", () => {});
  const startedAt = performance.now();
  let writtenAt: number | undefined;
  // The ClientHello and the payload back to back: the payload arrives while the proxy dials.
  const sending = writeAll(client, hello, PAYLOAD_BYTES, randomBytes(MIB)).then((sent) => {
    writtenAt = performance.now();
    client.end();
    return sent;
  });

  await Bun.sleep(STALL_MS);
  const tcp = tcpSockets();
  const dialing = tcp.filter((s) => s.remotePort === backend!.port && s.state === "02");
  expect(dialing, "the proxy's connect to the backend should still be in SYN-SENT").toHaveLength(1);
  expect(
    writtenAt,
    `the client should be held back while the backend is dialed, yet wrote all ${PAYLOAD_BYTES} bytes`,
  ).toBeUndefined();
  const proxySide = tcp.find((s) => s.localPort === proxyPort && s.remotePort === client.localPort);
  expect(
    proxySide?.rxQueue ?? 0,
    "the proxy should leave the client's bytes unread in its socket (reading paused)",
  ).toBeGreaterThan(0);

  backend.startAccepting();
  const proxied = await backend.waitForLine(
    new RegExp(`^accept (?!${filler.localPort}$)\\d+$`),
    5000,
  );
  const acceptedAt = performance.now();
  filler.end();
  const sent = await within(
    sending,
    5000,
    "the client could not finish writing after the backend opened: its reading was not resumed",
  );
  const proxiedPort = proxied.split(" ")[1];
  const done = await backend.waitForLine(new RegExp(`^done ${proxiedPort} `), 5000);
  const [, , bytes, sha256] = done.split(" ");
  console.log(
    `dialing-buffer: backend accepted after ${Math.round(acceptedAt - startedAt)} ms, client finished writing after ${Math.round(writtenAt! - startedAt)} ms (${proxySide?.rxQueue} bytes unread in the proxy while paused)`,
  );
  expect(
    acceptedAt - startedAt,
    "the dial should have waited for a SYN retransmit",
  ).toBeGreaterThanOrEqual(STALL_MS);
  expect(Number(bytes), "bytes the backend received").toBe(sent.bytes);
  expect(sha256, "SHA-256 of what the backend received").toBe(sent.sha256);
  const end = await proxy.waitForLog(/msg="connection".*sni=dial\.test/);
  expect(logField(end, "outcome"), end).toBe("closed");
}, 60_000);
