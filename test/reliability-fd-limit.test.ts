// At the open-file limit: a proxy whose descriptors run out recovers once connections end, and
// max_connections below the limit keeps it from running out at all.
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  clientHelloFor,
  gotFin,
  listenBackend,
  type RawPeer,
  rawPeer,
  receivedHead,
  type TestBackend,
} from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";
import { startWatchedProxy, type WatchedProxy } from "./reliability-support.ts";

const HELLO_TIMEOUT_MS = 2000;
/** Descriptors the proxy may open beyond its baseline. */
const HEADROOM = 100;
const CLIENTS = 160;

let watched: WatchedProxy | undefined;
let backend: TestBackend | undefined;
const peers: RawPeer[] = [];

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.socket.terminate();
  await watched?.stop();
  backend?.stop();
});

/** CPU time the process used so far, in ms (utime + stime, at 100 ticks a second). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function setUp(listenerToml = ""): Promise<Uint8Array> {
  const hello = await clientHelloFor("limit.test");
  backend = listenBackend({
    data(connection) {
      if (connection.received >= hello.length) connection.socket.write("ok");
    },
    end(connection) {
      connection.socket.end();
    },
  });
  watched = await startWatchedProxy({
    routes: [{ hostname: "limit.test", backend: `127.0.0.1:${backend.port}` }],
    proxyToml: `hello_timeout = "${HELLO_TIMEOUT_MS / 1000}s"`,
    listenerToml,
  });
  const limit = watched.baselineFds + HEADROOM;
  const result = Bun.spawnSync(["prlimit", `--pid=${watched.pid}`, `--nofile=${limit}:${limit}`]);
  expect(result.exitCode).toBe(0);
  return hello;
}

async function servedNow(hello: Uint8Array): Promise<boolean> {
  const peer = await rawPeer(watched!.port);
  peers.push(peer);
  peer.socket.write(hello);
  await eventually(() => peer.received >= 2 || peer.closedAt !== null, EVENTUALLY_MS);
  peer.socket.end();
  return new TextDecoder().decode(receivedHead(peer)) === "ok";
}

test("out of descriptors: the proxy recovers, and every connection is cut or served", async () => {
  const hello = await setUp();
  // More idle clients than the proxy has descriptors: the kernel completes the handshakes
  // of the rest and queues them in the listen backlog.
  for (let i = 0; i < CLIENTS; i++) peers.push(await rawPeer(watched!.port));
  // Wait until the proxy has taken all the descriptors it may (the rest wait in the backlog).
  const fdsExhausted = await eventually(
    watched!.fds,
    (fds) => fds >= watched!.baselineFds + HEADROOM - 2,
  );
  const cpuBefore = cpuMs(watched!.pid);
  await Bun.sleep(1000);
  const cpuWhileExhausted = cpuMs(watched!.pid) - cpuBefore;
  // hello_timeout cuts the first ones, which frees descriptors for the queued ones, which are
  // cut in turn: nobody is left hanging.
  expect(
    await eventually(() => peers.every(gotFin), 4 * HELLO_TIMEOUT_MS + EVENTUALLY_MS, 100),
  ).toBe(true);
  const cpuAfter = cpuMs(watched!.pid);
  await Bun.sleep(1000);
  const cpuIdle = cpuMs(watched!.pid) - cpuAfter;
  expect(await servedNow(hello)).toBe(true);
  const settled = await watched!.settle();
  console.log(
    `fd limit: soft limit baseline+${HEADROOM}; ${CLIENTS} idle clients → proxy fds ${fdsExhausted} ` +
      `(limit ${watched!.baselineFds + HEADROOM}); CPU while out of descriptors ${cpuWhileExhausted} ms per s ` +
      `(accept retried in a loop), after recovery ${cpuIdle} ms per s; served again; fds ${settled.fds} (baseline ${watched!.baselineFds})`,
  );
  expect(fdsExhausted).toBeGreaterThanOrEqual(watched!.baselineFds + HEADROOM - 2);
  expect(watched!.countOutcome("hello_timeout")).toBe(CLIENTS);
  expect(cpuIdle).toBeLessThan(300);
  expect(settled).toEqual({ active: 0, fds: watched!.baselineFds });
}, 60_000);

test("max_connections below the descriptor limit: the excess is reset at once, nothing spins", async () => {
  const maxConnections = HEADROOM / 2;
  const hello = await setUp(`max_connections = ${maxConnections}`);
  // A reset can beat the client's own "connected" event: then the connect itself fails.
  let resetAtConnect = 0;
  for (let i = 0; i < CLIENTS; i++) {
    try {
      peers.push(await rawPeer(watched!.port));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ECONNRESET") throw error;
      resetAtConnect++;
    }
  }
  // The excess is reset straight after accept; the admitted ones wait for hello_timeout.
  expect(
    await eventually(
      () =>
        peers.filter((peer) => peer.closeError === "ECONNRESET").length + resetAtConnect ===
        CLIENTS - maxConnections,
      EVENTUALLY_MS,
    ),
  ).toBe(true);
  const fdsHeld = watched!.fds();
  const cpuBefore = cpuMs(watched!.pid);
  await Bun.sleep(1000);
  const cpuHeld = cpuMs(watched!.pid) - cpuBefore;
  expect(fdsHeld).toBe(watched!.baselineFds + maxConnections);
  expect(
    await eventually(
      () => peers.every((peer) => peer.closedAt !== null || gotFin(peer)),
      HELLO_TIMEOUT_MS + EVENTUALLY_MS,
    ),
  ).toBe(true);
  expect(await servedNow(hello)).toBe(true);
  const settled = await watched!.settle();
  console.log(
    `fd limit: max_connections=${maxConnections}: ${CLIENTS - maxConnections} reset at accept, ` +
      `proxy fds ${fdsHeld}, CPU while full ${cpuHeld} ms per s; fds after ${settled.fds}`,
  );
  expect(watched!.countOutcome("limit")).toBe(CLIENTS - maxConnections);
  expect(cpuHeld).toBeLessThan(300);
  expect(settled).toEqual({ active: 0, fds: watched!.baselineFds });
}, 60_000);
