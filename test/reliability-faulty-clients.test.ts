// Faulty clients: a reset in the middle of a stream, and a half-close followed by waiting. After
// each, the proxy reports 0 active connections and is back at its baseline of descriptors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  type BackendConnection,
  clientHelloFor,
  gotFin,
  listenBackend,
  type RawPeer,
  rawPeer,
  receivedHead,
  type TestBackend,
  writeWithBackpressure,
} from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";
import { MIB, startWatchedProxy, type WatchedProxy } from "./reliability-support.ts";

const PER_CASE = 20;
const IDLE_TIMEOUT_MS = 3000;
const BLOCK = randomBytes(64 * 1024);

let watched: WatchedProxy;
const backends: Record<string, TestBackend> = {};
const hellos: Record<string, Uint8Array> = {};
const peers: RawPeer[] = [];

/** Writes BLOCK after BLOCK for as long as the socket takes them. */
function stream(connection: BackendConnection): void {
  while (connection.closedAt === null && connection.socket.write(BLOCK) === BLOCK.length) {}
}

beforeAll(async () => {
  // Streams to the client without end, reading whatever comes.
  backends.streams = listenBackend({ open: stream, drain: stream });
  // Answers with the byte count once the client's FIN arrives, then closes.
  backends.answersOnEnd = listenBackend({
    end(connection) {
      connection.socket.end(`received=${connection.received}\n`);
    },
  });
  // Reads and never answers nor closes.
  backends.silent = listenBackend({});
  const routes = [
    { hostname: "streams.test", backend: `127.0.0.1:${backends.streams.port}` },
    { hostname: "answers-on-end.test", backend: `127.0.0.1:${backends.answersOnEnd.port}` },
    { hostname: "silent.test", backend: `127.0.0.1:${backends.silent.port}` },
  ];
  for (const { hostname } of routes) hellos[hostname] = await clientHelloFor(hostname);
  watched = await startWatchedProxy({
    routes,
    proxyToml: `idle_timeout = "${IDLE_TIMEOUT_MS / 1000}s"`,
    warmUp: async (port) => {
      const peer = await rawPeer(port);
      peer.socket.write(hellos["answers-on-end.test"]!);
      peer.socket.shutdown();
      expect(await eventually(() => gotFin(peer), EVENTUALLY_MS)).toBe(true);
      peer.socket.end();
    },
  });
}, 60_000);

afterAll(async () => {
  for (const peer of peers) peer.socket.terminate();
  await watched?.stop();
  for (const backend of Object.values(backends)) backend.stop();
});

async function openClients(hostname: string): Promise<RawPeer[]> {
  const opened = await Promise.all(Array.from({ length: PER_CASE }, () => rawPeer(watched.port)));
  for (const peer of opened) peer.socket.write(hellos[hostname]!);
  peers.push(...opened);
  return opened;
}

async function expectSettled(label: string): Promise<void> {
  const settled = await watched.settle();
  console.log(
    `faulty clients / ${label}: active ${settled.active}, fds ${settled.fds} (baseline ${watched.baselineFds})`,
  );
  expect(settled).toEqual({ active: 0, fds: watched.baselineFds });
}

describe("faulty clients", () => {
  test("reset mid-upload: the backend sees the reset (ECONNRESET, no FIN before it)", async () => {
    const connectionsBefore = backends.silent!.connections.length;
    // One upload for all, made before the clients connect: 20 of them made one by one after
    // would keep the last clients idle for seconds on a loaded machine (idle_timeout is 3 s).
    const upload = randomBytes(8 * MIB);
    const clients = await openClients("silent.test");
    // The backend reads all it gets: keep writing through pauses a loaded machine makes, until
    // the reset below closes the socket.
    const uploads = clients.map((peer) => writeWithBackpressure(peer, upload, EVENTUALLY_MS));
    const connections = () => backends.silent!.connections.slice(connectionsBefore);
    expect(
      await eventually(
        () => connections().length === PER_CASE && connections().every((c) => c.received >= MIB),
        EVENTUALLY_MS,
      ),
    ).toBe(true);
    for (const peer of clients) peer.socket.terminate();
    await Promise.all(uploads);
    expect(
      await eventually(() => connections().every((c) => c.closedAt !== null), EVENTUALLY_MS),
    ).toBe(true);
    // This backend only reads, so nothing of its own can mask the reset it is sent.
    expect(connections().map((c) => c.closeError)).toEqual(connections().map(() => "ECONNRESET"));
    expect(connections().every((c) => c.endedAt === null)).toBe(true);
    await expectSettled("reset mid-upload");
  }, 60_000);

  test("reset mid-download, both directions busy: the backend is closed at once", async () => {
    const connectionsBefore = backends.streams!.connections.length;
    const upload = randomBytes(4 * MIB); // before the clients connect, as above
    const clients = await openClients("streams.test");
    const uploads = clients.map((peer) => writeWithBackpressure(peer, upload, 500));
    expect(
      await eventually(() => clients.every((peer) => peer.received >= MIB), EVENTUALLY_MS),
    ).toBe(true);
    const resetAt = performance.now();
    for (const peer of clients) peer.socket.terminate();
    await Promise.all(uploads);
    const connections = backends.streams!.connections.slice(connectionsBefore);
    expect(connections.length).toBe(PER_CASE);
    expect(
      await eventually(() => connections.every((c) => c.closedAt !== null), EVENTUALLY_MS),
    ).toBe(true);
    // A backend busy writing may see the reset as EPIPE, or (once its own send() has reported
    // it) as an EOF: the kernel hides which. What matters is that it is let go of at once.
    const slowest = Math.max(...connections.map((c) => c.closedAt! - resetAt));
    expect(slowest).toBeLessThan(2000);
    await expectSettled("reset mid-download");
  }, 60_000);

  test("half-close then wait: the FIN reaches the backend, its answer and FIN reach the client", async () => {
    const connectionsBefore = backends.answersOnEnd!.connections.length;
    const clients = await openClients("answers-on-end.test");
    const upload = randomBytes(256 * 1024);
    await Promise.all(clients.map((peer) => writeWithBackpressure(peer, upload)));
    // FIN, then wait with the socket open: the proxy must finish without the client closing.
    for (const peer of clients) peer.socket.shutdown();
    expect(await eventually(() => clients.every(gotFin), EVENTUALLY_MS)).toBe(true);
    const expected = `received=${hellos["answers-on-end.test"]!.length + upload.length}\n`;
    for (const peer of clients) expect(new TextDecoder().decode(receivedHead(peer))).toBe(expected);
    const connections = backends.answersOnEnd!.connections.slice(connectionsBefore);
    expect(connections.every((c) => c.endedAt !== null)).toBe(true);
    await expectSettled("half-close then wait (backend answers)");
  });

  test("half-close then wait on a backend that never answers: idle_timeout ends it", async () => {
    const before = watched.countOutcome("idle_timeout");
    const connectionsBefore = backends.silent!.connections.length;
    const clients = await openClients("silent.test");
    for (const peer of clients) peer.socket.shutdown();
    const connections = () => backends.silent!.connections.slice(connectionsBefore);
    // The FIN is passed on at once, long before the idle cut.
    expect(
      await eventually(
        () => connections().length === PER_CASE && connections().every((c) => c.endedAt !== null),
        2000,
      ),
    ).toBe(true);
    expect(clients.some(gotFin)).toBe(false);
    expect(await eventually(() => clients.every(gotFin), IDLE_TIMEOUT_MS + EVENTUALLY_MS)).toBe(
      true,
    );
    expect(watched.countOutcome("idle_timeout")).toBe(before + PER_CASE);
    await expectSettled("half-close then wait (silent backend)");
  }, 60_000);
});
