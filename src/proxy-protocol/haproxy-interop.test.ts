// Interop with a real peer: haproxy writes headers we decode and reads the headers we encode.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess, TCPSocketListener } from "bun";
import { onFreshPorts, stopProcess, waitUntilListening } from "../../test/helpers/haproxy.ts";
import { trackProcess } from "../../test/helpers/scratch.ts";
import { decodeProxyHeader } from "./decode.ts";
import type { ProxyEndpoint, ProxyHeaderResult } from "./header.ts";
import { encodeProxyV1 } from "./v1.ts";
import { encodeProxyV2 } from "./v2.ts";

const PAYLOAD = new TextEncoder().encode("hello after the header");

/** Bytes received by the capture server, one entry per connection, resolved on the payload. */
const captures: ((bytes: Uint8Array) => void)[] = [];
let capture: TCPSocketListener<{ received: Uint8Array }> | undefined;
let haproxy: Subprocess | undefined;
let workDir = "";
const ports = { plainV2: 0, plainV1: 0, acceptV2: 0, acceptV1: 0 };

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  if (bytes.length < tail.length) return false;
  for (let i = 0; i < tail.length; i++)
    if (bytes[bytes.length - tail.length + i] !== tail[i]) return false;
  return true;
}

beforeAll(async () => {
  if (!Bun.which("haproxy")) throw new Error("haproxy is not installed: apt-get install haproxy");
  capture = Bun.listen<{ received: Uint8Array }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { received: new Uint8Array(0) };
      },
      data(socket, chunk) {
        const received = new Uint8Array(socket.data.received.length + chunk.length);
        received.set(socket.data.received);
        received.set(chunk, socket.data.received.length);
        socket.data.received = received;
        if (endsWith(received, PAYLOAD)) {
          captures.shift()?.(received);
          socket.end();
        }
      },
    },
  });
  workDir = await mkdtemp(join(tmpdir(), "mc-proxy-haproxy-"));
  const backend = `127.0.0.1:${capture.port}`; // the capture server above
  // haproxy cannot listen on port 0: ports free a moment ago, retried should one be taken first.
  haproxy = await onFreshPorts(4, async (chosen) => {
    [ports.plainV2, ports.plainV1, ports.acceptV2, ports.acceptV1] = chosen as [
      number,
      number,
      number,
      number,
    ];
    const config = `
global
  maxconn 100
  noreuseport
defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend plain_v2
  bind 127.0.0.1:${ports.plainV2}
  unique-id-format %{+X}o%ci:%cp
  default_backend send_v2_tlvs
frontend plain_v1
  bind 127.0.0.1:${ports.plainV1}
  default_backend send_v1
frontend accept_v2
  bind 127.0.0.1:${ports.acceptV2} accept-proxy
  default_backend send_v2
frontend accept_v1
  bind 127.0.0.1:${ports.acceptV1} accept-proxy
  default_backend send_v1
backend send_v2_tlvs
  server capture ${backend} send-proxy-v2 proxy-v2-options crc32c,unique-id
backend send_v2
  server capture ${backend} send-proxy-v2
backend send_v1
  server capture ${backend} send-proxy
`;
    await Bun.write(join(workDir, "haproxy.cfg"), config);
    const proc = trackProcess(
      Bun.spawn(["haproxy", "-db", "-f", join(workDir, "haproxy.cfg")], {
        stdout: "ignore",
        stderr: "pipe",
      }),
    );
    let stderr = "";
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
    })();
    try {
      await waitUntilListening("haproxy", proc, chosen, () => stderr);
    } catch (error) {
      await stopProcess(proc);
      throw error;
    }
    return proc;
  });
});

afterAll(async () => {
  haproxy?.kill();
  await haproxy?.exited;
  capture?.stop(true);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/**
 * Connects to haproxy on `port`, sends `prefix` then the payload, and returns what haproxy sent
 * to the capture server, with the client's own local port.
 */
async function relay(
  port: number,
  prefix: Uint8Array,
): Promise<{ received: Uint8Array; clientPort: number }> {
  const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
  captures.push(resolve);
  const timer = setTimeout(
    () => reject(new Error(`nothing relayed by haproxy on port ${port} within 15 s`)),
    15_000,
  );
  const client = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
  client.write(new Uint8Array([...prefix, ...PAYLOAD]));
  try {
    return { received: await promise, clientPort: client.localPort };
  } finally {
    clearTimeout(timer);
    client.end();
  }
}

function expectHeader(
  received: Uint8Array,
  version: 1 | 2,
  source: ProxyEndpoint,
  destination: ProxyEndpoint,
  family: string,
): void {
  const result: ProxyHeaderResult = decodeProxyHeader(received);
  expect(result).toMatchObject({
    kind: "done",
    header: { version, command: "proxy", family, source, destination },
  });
  if (result.kind !== "done") return;
  // Everything after the header is the client's stream, untouched.
  expect(received.subarray(result.length)).toEqual(PAYLOAD);
}

describe("PROXY headers written by haproxy", () => {
  test("v2 with TLVs (CRC32C, unique ID) for a direct client", async () => {
    const { received, clientPort } = await relay(ports.plainV2, new Uint8Array(0));
    const tlvBytes = received.length - PAYLOAD.length - 28;
    expect(tlvBytes).toBeGreaterThan(0); // the TLVs are really there, and skipped
    expectHeader(
      received,
      2,
      { address: "127.0.0.1", port: clientPort },
      { address: "127.0.0.1", port: ports.plainV2 },
      "tcp4",
    );
  }, 10_000);

  test("v1 for a direct client", async () => {
    const { received, clientPort } = await relay(ports.plainV1, new Uint8Array(0));
    expectHeader(
      received,
      1,
      { address: "127.0.0.1", port: clientPort },
      { address: "127.0.0.1", port: ports.plainV1 },
      "tcp4",
    );
  }, 10_000);
});

describe("PROXY headers written by encodeProxyV1/V2, read by haproxy (accept-proxy) and relayed", () => {
  test.each([
    ["v2 IPv4", encodeProxyV2, "acceptV2", 2, ["203.0.113.9", 4242], ["198.51.100.7", 443], "tcp4"],
    [
      "v2 IPv6",
      encodeProxyV2,
      "acceptV2",
      2,
      ["2001:db8::9", 4242],
      ["2001:db8::443", 8443],
      "tcp6",
    ],
    ["v1 IPv4", encodeProxyV1, "acceptV1", 1, ["203.0.113.10", 1], ["198.51.100.8", 65535], "tcp4"],
    ["v1 IPv6", encodeProxyV1, "acceptV1", 1, ["2001:db8::a", 5000], ["2001:db8::b", 443], "tcp6"],
  ] as const)(
    "%s",
    async (_name, encode, portKey, version, source, destination, family) => {
      const src = { address: source[0], port: source[1] };
      const dst = { address: destination[0], port: destination[1] };
      const { received } = await relay(ports[portKey], encode(src, dst));
      expectHeader(received, version, src, dst, family);
    },
    10_000,
  );
});
