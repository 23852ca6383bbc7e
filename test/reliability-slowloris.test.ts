// Slowloris: 2,000 clients dribbling a ClientHello at one byte a second are all cut at
// hello_timeout, while honest clients keep completing TLS handshakes through the same listener.
import { afterAll, expect, test } from "bun:test";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { makeCa } from "./helpers/certs.ts";
import { clientHelloFor, type RawPeer, rawPeer, residentBytes } from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";
import {
  MIB,
  percentile,
  startWatchedProxy,
  type TimedHandshake,
  timedHandshake,
  type WatchedProxy,
} from "./reliability-support.ts";

const SLOW_CLIENTS = 2000;
const HELLO_TIMEOUT_MS = 3000;
/** The sweep runs every hello_timeout / 10; a cut may come that much late, plus scheduling. */
const LATE_CUT_SLACK_MS = 2500;
const HONEST_LOOPS = 2;

let backend: OpensslServer | undefined;
let watched: WatchedProxy | undefined;
const slow: RawPeer[] = [];

afterAll(async () => {
  for (const peer of slow) peer.socket.terminate();
  await watched?.stop();
  backend?.stop();
});

test(`${SLOW_CLIENTS} slowloris clients are closed by hello_timeout while honest handshakes go on`, async () => {
  const ca = makeCa("slowloris-ca");
  backend = await startOpensslServer(ca.issue("honest-backend"));
  watched = await startWatchedProxy({
    routes: [{ hostname: "honest.test", backend: `127.0.0.1:${backend.port}` }],
    proxyToml: `hello_timeout = "${HELLO_TIMEOUT_MS / 1000}s"`,
    warmUp: async (port) => {
      expect((await timedHandshake(port, "honest.test")).outcome).toBe("secure");
    },
  });
  const { port, pid } = watched;
  const hello = await clientHelloFor("honest.test");
  const rssBefore = residentBytes(pid);

  // Honest clients: back-to-back full handshakes from before the attack until it is over.
  let attackOver = false;
  const samples: TimedHandshake[] = [];
  const honest = Array.from({ length: HONEST_LOOPS }, async () => {
    while (!attackOver) samples.push(await timedHandshake(port, "honest.test"));
  });

  // The attack: each slow client sends the first byte of a real ClientHello at once and one
  // more every second, so the proxy always holds a valid, incomplete hello.
  const sent = new Map<RawPeer, number>();
  const dribble = setInterval(() => {
    for (const peer of slow) {
      if (peer.endedAt !== null || peer.closedAt !== null) continue;
      const offset = sent.get(peer)!;
      peer.socket.write(hello.subarray(offset, offset + 1));
      sent.set(peer, offset + 1);
    }
  }, 1000);
  const rampStart = performance.now();
  for (let opened = 0; opened < SLOW_CLIENTS; opened += 100) {
    const batch = await Promise.all(Array.from({ length: 100 }, () => rawPeer(port)));
    for (const peer of batch) {
      peer.socket.write(hello.subarray(0, 1));
      sent.set(peer, 1);
      slow.push(peer);
    }
  }
  const rampMs = performance.now() - rampStart;
  const active = await watched.active();
  let rssPeak = residentBytes(pid);
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, residentBytes(pid));
  }, 250);

  const allCut = await eventually(
    () => slow.every((peer) => peer.endedAt !== null || peer.closedAt !== null),
    HELLO_TIMEOUT_MS + LATE_CUT_SLACK_MS + 5000,
    100,
  );
  clearInterval(dribble);
  clearInterval(sampler);
  attackOver = true;
  await Promise.all(honest);

  // Every slow client was cut by the proxy (a FIN), not before hello_timeout and not much later.
  expect(allCut).toBe(true);
  const lifetimes = slow.map((peer) => (peer.endedAt ?? peer.closedAt!) - peer.openedAt);
  expect(slow.filter((peer) => peer.endedAt === null).length).toBe(0);
  expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 50);
  expect(Math.max(...lifetimes)).toBeLessThan(HELLO_TIMEOUT_MS + LATE_CUT_SLACK_MS);
  // They kept talking: bytes arriving do not extend hello_timeout.
  expect(Math.min(...sent.values())).toBeGreaterThanOrEqual(3);
  expect(
    await eventually(() => watched!.countOutcome("hello_timeout") === SLOW_CLIENTS, EVENTUALLY_MS),
  ).toBe(true);

  // Honest clients were served throughout.
  const firstByte = samples.map((sample) => sample.firstByteMs);
  const handshakes = samples.map((sample) => sample.handshakeMs);
  const failed = samples.filter((sample) => sample.outcome !== "secure");
  console.log(
    `slowloris: ${SLOW_CLIENTS} slow clients opened in ${rampMs.toFixed(0)} ms (active=${active}), ` +
      `cut after ${Math.min(...lifetimes).toFixed(0)}–${Math.max(...lifetimes).toFixed(0)} ms; ` +
      `proxy RSS ${(rssBefore / MIB).toFixed(1)} → peak ${(rssPeak / MIB).toFixed(1)} MiB\n` +
      `slowloris: honest handshakes ${samples.length} (${failed.length} failed); ` +
      `connect-to-first-byte p50 ${percentile(firstByte, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(firstByte, 99).toFixed(1)} ms, max ${Math.max(...firstByte).toFixed(1)} ms; ` +
      `handshake p99 ${percentile(handshakes, 99).toFixed(1)} ms`,
  );
  expect(active).toBeGreaterThanOrEqual(SLOW_CLIENTS);
  expect(failed).toEqual([]);
  expect(samples.length).toBeGreaterThanOrEqual(50);
  expect(percentile(firstByte, 99)).toBeLessThan(1000);

  // The proxy let go of every one, although the slow clients still hold their half-open ends.
  const settled = await watched.settle();
  console.log(
    `slowloris: fds baseline ${watched.baselineFds}, after ${settled.fds}; active ${settled.active}`,
  );
  expect(settled).toEqual({ active: 0, fds: watched.baselineFds });
}, 60_000);
