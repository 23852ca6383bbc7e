// Faulty backends: refused, reset, never reading, half-closing early, closing mid-stream. After
// each, the proxy reports 0 active connections and is back at its baseline of descriptors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  type BackendConnection,
  clientHelloFor,
  type DeadBackend,
  deadBackend,
  listenBackend,
  type RawPeer,
  rawPeer,
  receivedHead,
  residentBytes,
  sha256,
  type TestBackend,
  writeWithBackpressure,
} from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";
import { MIB, startWatchedProxy, type WatchedProxy } from "./reliability-support.ts";

/** Connections per case, side by side: a leak of one descriptor each shows as 20. */
const PER_CASE = 20;
const IDLE_TIMEOUT_MS = 3000;

const EARLY_ANSWER = randomBytes(32 * 1024);
const PARTIAL_ANSWER = randomBytes(48 * 1024);

let watched: WatchedProxy;
/** refuses.test's backend: bound, never listening, for the whole file. */
let refused: DeadBackend;
const backends: Record<string, TestBackend> = {};
const hellos: Record<string, Uint8Array> = {};
const peers: RawPeer[] = [];

beforeAll(async () => {
  // Accepts, reads the ClientHello, answers once (the warm-up route).
  backends.ok = listenBackend({
    data(connection) {
      connection.socket.end("ok");
    },
  });
  backends.reset = listenBackend({
    data(connection) {
      connection.socket.terminate();
    },
  });
  backends.neverReads = listenBackend({
    open(connection) {
      (connection.socket as unknown as { pause(): void }).pause();
    },
  });
  // Answers and sends its FIN at once, then keeps reading until the client's FIN.
  backends.halfCloses = listenBackend({
    open(connection) {
      connection.socket.write(EARLY_ANSWER);
      connection.socket.shutdown();
    },
    end(connection) {
      connection.socket.end();
    },
  });
  // Sends part of an answer, then closes while the client is still uploading.
  const answered = new Set<BackendConnection>();
  backends.closesMidStream = listenBackend({
    data(connection) {
      if (answered.has(connection)) return;
      answered.add(connection);
      connection.socket.write(PARTIAL_ANSWER);
      connection.socket.end();
    },
  });
  refused = deadBackend();
  const routes = [
    { hostname: "ok.test", backend: `127.0.0.1:${backends.ok.port}` },
    { hostname: "refuses.test", backend: `127.0.0.1:${refused.port}` },
    { hostname: "reset.test", backend: `127.0.0.1:${backends.reset.port}` },
    { hostname: "never-reads.test", backend: `127.0.0.1:${backends.neverReads.port}` },
    { hostname: "half-closes.test", backend: `127.0.0.1:${backends.halfCloses.port}` },
    { hostname: "closes-mid-stream.test", backend: `127.0.0.1:${backends.closesMidStream.port}` },
  ];
  for (const { hostname } of routes) hellos[hostname] = await clientHelloFor(hostname);
  watched = await startWatchedProxy({
    routes,
    proxyToml: `idle_timeout = "${IDLE_TIMEOUT_MS / 1000}s"\nconnect_timeout = "2s"`,
    warmUp: async (port) => {
      const peer = await rawPeer(port);
      peer.socket.write(hellos["ok.test"]!);
      expect(await eventually(() => peer.endedAt !== null, EVENTUALLY_MS)).toBe(true);
      expect(new TextDecoder().decode(receivedHead(peer))).toBe("ok");
      peer.socket.end();
    },
  });
}, 60_000);

afterAll(async () => {
  for (const peer of peers) peer.socket.terminate();
  await watched?.stop();
  for (const backend of Object.values(backends)) backend.stop();
  refused?.close();
});

/** Opens PER_CASE clients that each send the ClientHello for `hostname`. */
async function openClients(hostname: string): Promise<RawPeer[]> {
  const opened = await Promise.all(Array.from({ length: PER_CASE }, () => rawPeer(watched.port)));
  for (const peer of opened) peer.socket.write(hellos[hostname]!);
  peers.push(...opened);
  return opened;
}

async function expectSettled(label: string): Promise<void> {
  const settled = await watched.settle();
  console.log(
    `faulty backends / ${label}: active ${settled.active}, fds ${settled.fds} (baseline ${watched.baselineFds})`,
  );
  expect(settled).toEqual({ active: 0, fds: watched.baselineFds });
}

describe("faulty backends", () => {
  test("refuses: every client gets a TCP RST and a warn line names the dial", async () => {
    const before = watched.countOutcome("dial_failed");
    const clients = await openClients("refuses.test");
    await Promise.all(clients.map((peer) => peer.closed));
    expect(clients.map((peer) => peer.closeError)).toEqual(clients.map(() => "ECONNRESET"));
    expect(clients.every((peer) => peer.received === 0)).toBe(true);
    expect(
      await eventually(
        () => watched.countOutcome("dial_failed") === before + PER_CASE,
        EVENTUALLY_MS,
      ),
    ).toBe(true);
    const warnings = watched.proxy.logs.filter(
      (line) =>
        line.includes("level=WARN") && line.includes("dial") && line.includes("sni=refuses.test"),
    );
    expect(warnings.length).toBe(PER_CASE);
    await expectSettled("refuses");
  });

  test("accepts then resets: the reset is passed on to the client", async () => {
    const clients = await openClients("reset.test");
    await Promise.all(clients.map((peer) => peer.closed));
    expect(backends.reset!.connections.length).toBeGreaterThanOrEqual(PER_CASE);
    expect(clients.map((peer) => peer.closeError)).toEqual(clients.map(() => "ECONNRESET"));
    await expectSettled("accepts then resets");
  });

  test("accepts and never reads: the client's writes stall, memory stays bounded, idle_timeout ends it", async () => {
    // The payload first: making 256 MiB of random bytes takes seconds on a loaded machine, and
    // clients left idle that long after their ClientHello would meet idle_timeout (3 s) first.
    const payload = randomBytes(256 * MIB);
    const rssBefore = residentBytes(watched.pid);
    const clients = await openClients("never-reads.test");
    const pushed = await Promise.all(
      clients.map((peer) => writeWithBackpressure(peer, payload, 1000)),
    );
    const rssStalled = residentBytes(watched.pid);
    const growth = rssStalled - rssBefore;
    const most = Math.max(...pushed.map((result) => result.written));
    console.log(
      `faulty backends / never reads: ${PER_CASE} clients stalled after ≤ ${(most / MIB).toFixed(1)} MiB each ` +
        `(kernel buffers + at most one read held per connection); proxy RSS growth ${(growth / MIB).toFixed(1)} MiB`,
    );
    expect(pushed.every((result) => result.stalled)).toBe(true);
    // Loopback socket buffers on both hops, not the 256 MiB offered.
    expect(most).toBeLessThan(32 * MIB);
    expect(growth).toBeLessThan(48 * MIB);
    expect(backends.neverReads!.connections.length).toBeGreaterThanOrEqual(PER_CASE);
    // Nothing moves either way now: idle_timeout closes them.
    const before = watched.countOutcome("idle_timeout");
    const closed = await eventually(
      () => clients.every((peer) => peer.closedAt !== null || peer.endedAt !== null),
      IDLE_TIMEOUT_MS + EVENTUALLY_MS,
    );
    expect(closed).toBe(true);
    expect(watched.countOutcome("idle_timeout")).toBe(before + PER_CASE);
    await expectSettled("never reads");
  }, 60_000);

  test("half-closes early: its answer and FIN reach the client, the client's later bytes reach it", async () => {
    const clients = await openClients("half-closes.test");
    const gotFin = await eventually(
      () => clients.every((peer) => peer.endedAt !== null && peer.received === EARLY_ANSWER.length),
      EVENTUALLY_MS,
    );
    expect(gotFin).toBe(true);
    // The client keeps writing after the backend's FIN, then ends its side.
    const upload = randomBytes(MIB);
    const results = await Promise.all(
      clients.map(async (peer) => {
        const result = await writeWithBackpressure(peer, upload);
        peer.socket.shutdown();
        return result;
      }),
    );
    expect(results.every((result) => result.written === upload.length)).toBe(true);
    await Promise.all(clients.map((peer) => peer.closed));
    for (const peer of clients) expect(sha256(receivedHead(peer))).toBe(sha256(EARLY_ANSWER));
    const expected = sha256(hellos["half-closes.test"]!, upload);
    const connections = backends.halfCloses!.connections;
    expect(
      await eventually(() => connections.every((c) => c.closedAt !== null), EVENTUALLY_MS),
    ).toBe(true);
    expect(connections.map((c) => c.sha256)).toEqual(connections.map(() => expected));
    await expectSettled("half-closes early");
  });

  test("closes mid-stream: the client gets what was sent and is closed, while it is still uploading", async () => {
    const clients = await openClients("closes-mid-stream.test");
    const upload = randomBytes(8 * MIB);
    await Promise.all(clients.map((peer) => writeWithBackpressure(peer, upload, 1000)));
    expect(
      await eventually(() => clients.every((peer) => peer.closedAt !== null), EVENTUALLY_MS),
    ).toBe(true);
    for (const peer of clients) {
      // Whatever arrived is the backend's answer, in order (a prefix of it, or all of it when
      // the backend's FIN got ahead of its reset).
      const head = receivedHead(peer);
      expect(head.length).toBeLessThanOrEqual(PARTIAL_ANSWER.length);
      expect(sha256(head)).toBe(sha256(PARTIAL_ANSWER.subarray(0, head.length)));
    }
    await expectSettled("closes mid-stream");
  });
});
