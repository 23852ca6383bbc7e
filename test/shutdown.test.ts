// SIGTERM: stop accepting, let transfers finish within shutdown_timeout, cut the rest, exit 0.
import { afterEach, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { listensOn } from "./helpers/haproxy.ts";
import {
  listenerWithRoute,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { clientHelloFor, rawConnect } from "./helpers/tcp.ts";
import { eventually } from "./helpers/wait.ts";

let proxy: RunningProxy | undefined;
let backend: Server | undefined;

afterEach(async () => {
  await proxy?.stop("SIGKILL");
  backend?.close();
});

/** A backend that, once it has the ClientHello, sends `total` bytes in slices every 50 ms. */
async function startDripBackend(total: number, slices: number): Promise<number> {
  backend = createServer((socket) => {
    socket.once("data", () => {
      let sent = 0;
      const timer = setInterval(() => {
        const size = Math.min(Math.ceil(total / slices), total - sent);
        socket.write(Buffer.alloc(size, 0x61));
        sent += size;
        if (sent >= total) {
          clearInterval(timer);
          socket.end();
        }
      }, 50);
      socket.on("close", () => clearInterval(timer));
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((ready) => backend!.listen(0, "127.0.0.1", ready));
  const address = backend.address();
  return typeof address === "object" && address ? address.port : 0;
}

async function startWith(backendPort: number, shutdownTimeout: string): Promise<number> {
  const dir = tempDir();
  const config = writeProxyConfig(
    dir,
    `${listenerWithRoute("127.0.0.1:0", "drip.test", backendPort)}
[proxy]
shutdown_timeout = "${shutdownTimeout}"
`,
  );
  proxy = await startProxy(config);
  return proxy.port("127.0.0.1:0");
}

test("a transfer in flight completes after SIGTERM; new connections are refused; exit 0", async () => {
  const total = 40 * 64 * 1024;
  const port = await startWith(await startDripBackend(total, 40), "20s");
  const client = await rawConnect(port);
  let received = 0;
  const ended = new Promise<void>((resolve) => client.on("end", resolve));
  client.on("data", (chunk: Buffer) => {
    received += chunk.length;
  });
  client.write(await clientHelloFor("drip.test"));
  expect(await eventually(() => received > 0)).toBe(true);

  proxy!.proc.kill("SIGTERM");
  await proxy!.waitForLog(/received SIGTERM, shutting down/);
  // Refused: the proxy closed its listener. (Once released, the port is anybody's: should
  // another process have taken it already, the proxy must at least no longer hold it.)
  const attempt = await rawConnect(port).then(
    (socket) => {
      socket.destroy();
      return "connected";
    },
    (error: NodeJS.ErrnoException) => error.code,
  );
  if (attempt !== "ECONNREFUSED") expect(listensOn(proxy!.pid, port)).toBe(false);
  await ended;
  expect(received).toBe(total);
  client.end();
  expect(await proxy!.exited).toBe(0);
  await proxy!.waitForLog(/msg="stopped"/);
}, 60_000);

test("a connection still open at shutdown_timeout is closed and the process exits 0", async () => {
  // 1000 slices of 50 ms: far longer than the 1 s shutdown_timeout.
  const port = await startWith(await startDripBackend(1000 * 1024, 1000), "1s");
  const client = await rawConnect(port);
  let received = 0;
  const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
  client.on("data", (chunk: Buffer) => {
    received += chunk.length;
  });
  client.on("error", () => {});
  client.write(await clientHelloFor("drip.test"));
  expect(await eventually(() => received > 0)).toBe(true);

  const signalledAt = performance.now();
  proxy!.proc.kill("SIGTERM");
  expect(await proxy!.exited).toBe(0);
  const elapsed = performance.now() - signalledAt;
  await closed;
  expect(received).toBeLessThan(1000 * 1024);
  // Drained for the timeout, not killed at once and not hung.
  expect(elapsed).toBeGreaterThanOrEqual(900);
  await proxy!.waitForLog(/shutdown timeout reached, closed open connections.*closed=1/);
}, 60_000);
