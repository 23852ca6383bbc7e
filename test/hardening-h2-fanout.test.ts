// HTTP/2 fan-out under a 512-descriptor limit (issue 23, item 2): streams cannot multiply backend sockets.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { type RecordingBackend, rawTlsClient, startRecordingBackend } from "./hardening-peers.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import {
  FLAG,
  FRAME,
  type RawH2Client,
  rawH2Client,
  requestBlock,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  settingsOf,
} from "./helpers/h2-frames.ts";
import {
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { clientHelloFor } from "./helpers/raw.ts";

const LISTENER = "127.0.0.1:0";
const FILE_LIMIT = 512;
const HOSTILE_CONNECTIONS = Number(process.env.FANOUT_CONNS ?? 10);
const STREAMS_PER_CONNECTION = 100;
/** The proxy's per-client cap (MAX_BACKEND_CONNECTIONS_PER_CLIENT in src/l7/backend-slots.ts). */
const PER_CLIENT_CAP = 8;
const HONEST_DEADLINE_MS = 5000;

let ca: TestCa;
let slow: RecordingBackend;
let fast: RecordingBackend;
let l4Backend: Server;
let l4Port: number;
let proxy: RunningProxy;
let port: number;
let dir: string;
let maxSlowOpen = 0;
let sampler: ReturnType<typeof setInterval> | undefined;

function l7Route(hostname: string, backendPort: number): string {
  const pair = ca.issue(hostname, [hostname]);
  return `
  [[listeners.routes]]
  hostname = "${hostname}"
  backend = "127.0.0.1:${backendPort}"
  mode = "l7"
  tls_cert = "${pair.cert}"
  tls_key = "${pair.key}"
`;
}

beforeAll(async () => {
  ca = makeCa("fanout-ca");
  slow = await startRecordingBackend({ answerDelayMs: 250 });
  fast = await startRecordingBackend();
  l4Backend = createServer((socket) => {
    socket.once("data", () => socket.end("l4-ok"));
    socket.on("error", () => {});
  });
  await new Promise<void>((ready) => l4Backend.listen(0, "127.0.0.1", ready));
  l4Port = (l4Backend.address() as { port: number }).port;
  dir = tempDir();
  const config = writeFile(
    dir,
    "mc-proxy.toml",
    `
[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
${l7Route("slow.test", slow.port)}
${l7Route("fast.test", fast.port)}

  [[listeners.routes]]
  hostname = "l4.test"
  backend = "127.0.0.1:${l4Port}"
`,
  );
  proxy = await startProxy(config, {
    command: ["prlimit", `--nofile=${FILE_LIMIT}:${FILE_LIMIT}`, ...mcProxyCommand()],
  });
  port = proxy.port(LISTENER);
  sampler = setInterval(() => {
    maxSlowOpen = Math.max(maxSlowOpen, slow.open());
  }, 5);
});

afterAll(async () => {
  clearInterval(sampler);
  await proxy?.stop();
  await slow?.stop();
  await fast?.stop();
  l4Backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

async function honestL4(hello: Uint8Array): Promise<void> {
  const socket = connect({ host: "127.0.0.1", port });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("l4 client: no answer within 5 s")),
        HONEST_DEADLINE_MS,
      );
      socket.on("error", reject);
      socket.on("data", (chunk) => {
        if (chunk.toString().includes("l4-ok")) {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.write(hello);
    });
  } finally {
    socket.destroy();
  }
}

async function honestL7(): Promise<void> {
  const client = await rawTlsClient(port, "fast.test");
  try {
    client.socket.write("GET /honest HTTP/1.1\r\nHost: fast.test\r\n\r\n");
    await client.waitFor(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ok$/, HONEST_DEADLINE_MS);
  } finally {
    client.destroy();
  }
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test("1,000 streams on 10 h2 connections hold at most 8 backend sockets each; honest l4 and l7 clients are served throughout", async () => {
  const hello = await clientHelloFor("l4.test");
  const hostile: RawH2Client[] = [];
  let maxFds = 0;
  try {
    for (let c = 0; c < HOSTILE_CONNECTIONS; c++) {
      const client = await rawH2Client(port, "slow.test");
      hostile.push(client);
      const settings = await client.waitForFrame(
        (f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0,
      );
      expect(settingsOf(settings).get(SETTINGS_MAX_CONCURRENT_STREAMS)).toBe(
        STREAMS_PER_CONNECTION,
      );
      const burst: Buffer[] = [];
      for (let i = 0; i < STREAMS_PER_CONNECTION; i++) {
        burst.push(Buffer.from(frameOf(1 + 2 * i, requestBlock("slow.test", `/fan/${c}/${i}`))));
      }
      client.write(Buffer.concat(burst));
    }
    // Honest clients, one after another, while the hostile streams are queued and served.
    const allAnswered = Promise.all(
      hostile.map((client) =>
        client.waitForFrame(
          () =>
            client.frames.filter((f) => f.type === FRAME.HEADERS).length === STREAMS_PER_CONNECTION,
          60_000,
        ),
      ),
    );
    let done = false;
    allAnswered.finally(() => {
      done = true;
    });
    let honestRounds = 0;
    while (!done) {
      maxFds = Math.max(maxFds, fdCount(proxy.pid));
      await honestL4(hello);
      await honestL7();
      honestRounds++;
    }
    await allAnswered;
    console.log(
      `fan-out: ${HOSTILE_CONNECTIONS * STREAMS_PER_CONNECTION} streams answered; backend sockets at most ${maxSlowOpen}; proxy fds at most ${maxFds}/${FILE_LIMIT}; ${honestRounds} honest l4+l7 rounds served`,
    );
    expect(maxSlowOpen).toBeLessThanOrEqual(HOSTILE_CONNECTIONS * PER_CLIENT_CAP);
    expect(slow.accepted()).toBeLessThanOrEqual(HOSTILE_CONNECTIONS * PER_CLIENT_CAP);
    expect(maxFds).toBeLessThan(FILE_LIMIT);
    expect(honestRounds).toBeGreaterThan(0);
  } finally {
    for (const client of hostile) client.destroy();
  }
}, 90_000);

function frameOf(streamId: number, block: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(block.length, 0, 3);
  header[3] = FRAME.HEADERS;
  header[4] = FLAG.END_HEADERS | FLAG.END_STREAM;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, block]);
}
