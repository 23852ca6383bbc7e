// SPEC §6 listener side, byte by byte: who may send a PROXY header, what a missing, malformed,
// slow, LOCAL or UNKNOWN header does, and what the backend receives after it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as netConnect, type Socket } from "node:net";
import type { TCPSocketListener } from "bun";
import { decodeProxyHeader } from "../src/proxy-protocol/decode.ts";
import { encodeProxyV1 } from "../src/proxy-protocol/v1.ts";
import { encodeProxyV2 } from "../src/proxy-protocol/v2.ts";
import {
  logField,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { clientHelloFor } from "./helpers/tcp.ts";

/** proxy_protocol = true, anyone may connect; its route sends a v2 header on. */
const OPEN = "127.0.0.1:0";
/** proxy_protocol = true, only 127.0.0.9 may connect; its route sends no header. */
const GUARDED = "127.0.0.2:0";
const TRUSTED_BALANCER = "127.0.0.9";
const BLOCKED_CLIENT = "192.0.2.66";
const HOSTNAME = "sink.test";

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  if (bytes.length < tail.length) return false;
  const start = bytes.length - tail.length;
  return tail.every((byte, i) => bytes[start + i] === byte);
}

/** A backend that keeps what each connection sent; `next()` awaits the next one. */
class Sink {
  readonly connections: Uint8Array[] = [];
  private waiters: Array<{ tail: Uint8Array; resolve: (received: Uint8Array) => void }> = [];
  private server!: TCPSocketListener<{ index: number }>;

  get port(): number {
    return this.server.port;
  }

  start(): void {
    this.server = Bun.listen<{ index: number }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          socket.data = { index: this.connections.push(new Uint8Array(0)) - 1 };
        },
        data: (socket, chunk) => {
          const index = socket.data.index;
          const received = concat(this.connections[index]!, chunk);
          this.connections[index] = received;
          const waiter = this.waiters[0];
          if (waiter && endsWith(received, waiter.tail)) {
            this.waiters.shift();
            waiter.resolve(received);
            socket.end();
          }
        },
      },
    });
  }

  /** The next connection's bytes, once they end with `tail` (then the sink closes it). */
  next(tail: Uint8Array, timeoutMs = 5_000): Promise<Uint8Array> {
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    const timer = setTimeout(() => reject(new Error("nothing reached the sink")), timeoutMs);
    this.waiters.push({
      tail,
      resolve: (received) => {
        clearTimeout(timer);
        resolve(received);
      },
    });
    return promise;
  }

  stop(): void {
    this.server?.stop(true);
  }
}

/** A raw client: what it received, and how its connection ended. */
class RawClient {
  received: Uint8Array = new Uint8Array(0);
  /** "closed" for a FIN, else the error code (ECONNRESET). */
  readonly ended: Promise<string>;
  readonly connectedAt = performance.now();
  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    // Writes after a reset fail too; `ended` already holds the first error.
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      this.received = concat(this.received, chunk);
    });
    this.ended = new Promise((resolve) => {
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      socket.once("end", () => {
        resolve("closed");
        socket.end();
      });
      socket.once("close", () => resolve("closed"));
    });
  }

  /** The client's own port, kept: a destroyed socket forgets it. */
  localPort = 0;

  /**
   * Connects; resolves once connected or already failed: a listener that resets at once can
   * beat node's connect event, and `ended` then holds the ECONNRESET.
   */
  static async open(host: string, port: number, localAddress = "127.0.0.1"): Promise<RawClient> {
    const socket = netConnect({ host, port, localAddress });
    const client = new RawClient(socket);
    await Promise.race([
      new Promise<void>((resolve) =>
        socket.once("connect", () => {
          client.localPort = socket.localPort ?? 0;
          resolve();
        }),
      ),
      client.ended,
    ]);
    return client;
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** One byte per write, with a pause so each goes out in its own segment. */
  async writeByteByByte(bytes: Uint8Array): Promise<void> {
    for (const byte of bytes) {
      this.socket.write(Uint8Array.of(byte));
      await Bun.sleep(2);
    }
  }

  /** How it ended, within `timeoutMs` (else "still open"). */
  async end(timeoutMs = 5_000): Promise<string> {
    const timer = Bun.sleep(timeoutMs).then(() => "still open");
    const outcome = await Promise.race([this.ended, timer]);
    this.socket.destroy();
    return outcome;
  }
}

describe("a proxy_protocol listener", () => {
  let sink: Sink;
  let proxy: RunningProxy;
  let hello: Uint8Array;
  let openPort: number;
  let guardedPort: number;

  beforeAll(async () => {
    hello = await clientHelloFor(HOSTNAME);
    sink = new Sink();
    sink.start();
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${OPEN}"
proxy_protocol = true

  [[listeners.routes]]
  hostname = "${HOSTNAME}"
  backend = "127.0.0.1:${sink.port}"
  send_proxy_protocol = true

[[listeners]]
addr = "${GUARDED}"
proxy_protocol = true
proxy_protocol_from = ["${TRUSTED_BALANCER}/32"]

  [[listeners.routes]]
  hostname = "${HOSTNAME}"
  backend = "127.0.0.1:${sink.port}"

[firewall]
blocked_ips = ["${BLOCKED_CLIENT}"]

[proxy]
hello_timeout = "1s"
`,
    );
    proxy = await startProxy(config);
    openPort = proxy.port(OPEN);
    guardedPort = proxy.port(GUARDED);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    sink?.stop();
  });

  /** The connection line whose client field is exactly `client`. */
  async function connectionLine(client: string): Promise<string> {
    const escaped = client.replaceAll(".", "\\.").replaceAll("[", "\\[").replaceAll("]", "\\]");
    return await proxy.waitForLog(new RegExp(`msg="connection" client=${escaped} `));
  }

  /** What the sink got: the v2 header mc-proxy wrote, then the untouched ClientHello. */
  function expectForwarded(received: Uint8Array, source: string) {
    const result = decodeProxyHeader(received);
    if (result.kind !== "done") throw new Error(`sink got no PROXY header: ${result.kind}`);
    const { header } = result;
    expect(header.version).toBe(2);
    expect(`${header.source?.address}:${header.source?.port}`).toBe(source);
    expect(header.destination).toEqual({ address: "127.0.0.1", port: openPort });
    expect(received.subarray(result.length)).toEqual(hello);
  }

  const dst = () => ({ address: "127.0.0.1", port: openPort });

  describe.each([
    ["whole", false],
    ["byte by byte", true],
  ] as const)("a valid header sent %s", (_how, byteByByte) => {
    test.each([
      ["v1 TCP4", encodeProxyV1, "203.0.113.7", "203.0.113.7", 4001],
      ["v2 TCP4", encodeProxyV2, "203.0.113.7", "203.0.113.7", 4002],
      ["v1 TCP6", encodeProxyV1, "2001:db8::7", "[2001:db8::7]", 4003],
      ["v2 TCP6", encodeProxyV2, "2001:db8::7", "[2001:db8::7]", 4004],
    ] as const)(
      "%s: its client is logged and sent on in a v2 header, the header itself is not",
      async (_name, encode, address, logged, basePort) => {
        const port = basePort + (byteByByte ? 100 : 0);
        const destination = address.includes(":") ? "2001:db8::1" : "127.0.0.1";
        const header = encode({ address, port }, { address: destination, port: 443 });
        const client = await RawClient.open("127.0.0.1", openPort);
        const forwarded = sink.next(hello);
        if (byteByByte) await client.writeByteByByte(header);
        else client.write(header);
        client.write(hello);
        expectForwarded(await forwarded, `${address}:${port}`);
        expect(await client.end()).toBe("closed");
        const line = await connectionLine(`${logged}:${port}`);
        expect(logField(line, "sni")).toBe(HOSTNAME);
        expect(logField(line, "outcome")).toBe("closed");
      },
    );
  });

  test.each([
    // v2 LOCAL (§2.2 command 0x0): a balancer's own health check, no addresses.
    ["v2 LOCAL", Uint8Array.from([...V2_SIGNATURE, 0x20, 0x00, 0x00, 0x00])],
    // v1 UNKNOWN: the balancer could not tell the source.
    ["v1 UNKNOWN", ascii("PROXY UNKNOWN\r\n")],
  ])("%s: the socket's own address is the client", async (_name, header) => {
    const client = await RawClient.open("127.0.0.1", openPort);
    const forwarded = sink.next(hello);
    client.write(concat(header, hello));
    expectForwarded(await forwarded, `127.0.0.1:${client.localPort}`);
    expect(await client.end()).toBe("closed");
    const line = await connectionLine(`127.0.0.1:${client.localPort}`);
    expect(logField(line, "outcome")).toBe("closed");
  });

  test.each([
    ["no header at all (a bare ClientHello)", new Uint8Array(0)],
    ["an HTTP request line", ascii("GET / HTTP/1.1\r\n\r\n")],
    ["v1 with an unknown protocol", ascii("PROXY TCP5 203.0.113.7 127.0.0.1 4000 443\r\n")],
    ["v1 with an IPv6 source under TCP4", ascii("PROXY TCP4 2001:db8::7 127.0.0.1 4000 443\r\n")],
    ["v1 with a port out of range", ascii("PROXY TCP4 203.0.113.7 127.0.0.1 70000 443\r\n")],
    ["v1 without CRLF in 107 bytes", ascii(`PROXY TCP4 ${"1".repeat(120)}`)],
    ["v2 with version 3", Uint8Array.from([...V2_SIGNATURE, 0x31, 0x11, 0x00, 0x0c])],
    // UDP over IPv4 (0x12): not a stream mc-proxy could route.
    [
      "v2 for UDP",
      Uint8Array.from([...V2_SIGNATURE, 0x21, 0x12, 0x00, 0x0c, ...Array(12).fill(1)]),
    ],
    [
      "v2 TCP4 shorter than its addresses",
      Uint8Array.from([...V2_SIGNATURE, 0x21, 0x11, 0, 4, 1, 2, 3, 4]),
    ],
  ])("%s: closed, and nothing reaches the backend", async (_name, header) => {
    const before = sink.connections.length;
    const client = await RawClient.open("127.0.0.1", openPort);
    client.write(concat(header, hello));
    expect(await client.end()).toBe("closed");
    expect(client.received.length).toBe(0);
    const line = await connectionLine(`127.0.0.1:${client.localPort}`);
    expect(logField(line, "outcome")).toBe("bad_proxy_header");
    expect(logField(line, "bytes_up")).toBe("0");
    expect(logField(line, "backend")).toBe("");
    expect(sink.connections.length).toBe(before);
  });

  test.each([
    ["nothing", new Uint8Array(0)],
    ["half a v1 line", ascii("PROXY TCP4 203.0.113.7 ")],
    ["the v2 signature only", Uint8Array.from(V2_SIGNATURE)],
    [
      "a v2 header missing its address block",
      Uint8Array.from([...V2_SIGNATURE, 0x21, 0x11, 0, 12, 1, 2]),
    ],
  ])("%s, then silence: closed by hello_timeout (1s)", async (_name, partial) => {
    const client = await RawClient.open("127.0.0.1", openPort);
    if (partial.length > 0) client.write(partial);
    const outcome = await client.end();
    const elapsedMs = performance.now() - client.connectedAt;
    expect(outcome).toBe("closed");
    expect(elapsedMs).toBeGreaterThanOrEqual(900);
    expect(elapsedMs).toBeLessThan(3_000);
    const line = await connectionLine(`127.0.0.1:${client.localPort}`);
    expect(logField(line, "outcome")).toBe("hello_timeout");
  });

  test.each([
    ["a FIN", false],
    ["a RST", true],
  ])(
    "a peer that leaves with %s halfway through the header: bad_proxy_header",
    async (_how, rst) => {
      const client = await RawClient.open("127.0.0.1", openPort);
      client.write(ascii("PROXY TCP4 203.0.113.7 "));
      await Bun.sleep(50);
      if (rst) client.socket.resetAndDestroy();
      else client.socket.end();
      const line = await connectionLine(`127.0.0.1:${client.localPort}`);
      expect(logField(line, "outcome")).toBe("bad_proxy_header");
      client.socket.destroy();
    },
  );

  test("the firewall judges the header's client: a blocked one is reset", async () => {
    const before = sink.connections.length;
    const client = await RawClient.open("127.0.0.1", openPort);
    client.write(concat(encodeProxyV2({ address: BLOCKED_CLIENT, port: 4100 }, dst()), hello));
    expect(await client.end()).toBe("ECONNRESET");
    const line = await connectionLine(`${BLOCKED_CLIENT}:4100`);
    expect(logField(line, "outcome")).toBe("blocked");
    expect(logField(line, "rule")).toBe(BLOCKED_CLIENT);
    expect(sink.connections.length).toBe(before);
  });

  describe("with proxy_protocol_from = 127.0.0.9/32", () => {
    test("a direct connection from 127.0.0.1 is reset before its header is read", async () => {
      const before = sink.connections.length;
      const client = await RawClient.open("127.0.0.2", guardedPort, "127.0.0.1");
      // A forged header: exactly what proxy_protocol_from is there to refuse.
      client.write(concat(encodeProxyV2({ address: "203.0.113.99", port: 4200 }, dst()), hello));
      expect(await client.end()).toBe("ECONNRESET");
      expect(client.received.length).toBe(0);
      // The only connection from 127.0.0.1 to this listener (its port may be unknown: the reset
      // can come before node reports the connection).
      const line = await proxy.waitForLog(
        /msg="connection" client=127\.0\.0\.1:\d+ listener=127\.0\.0\.2:0 /,
      );
      expect(logField(line, "outcome")).toBe("not_trusted");
      expect(proxy.logs.some((l) => l.includes("client=203.0.113.99:4200"))).toBe(false);
      expect(sink.connections.length).toBe(before);
    });

    test("the trusted balancer's header is believed; the backend gets the bare stream", async () => {
      const client = await RawClient.open("127.0.0.2", guardedPort, TRUSTED_BALANCER);
      const forwarded = sink.next(hello);
      client.write(concat(encodeProxyV1({ address: "203.0.113.8", port: 4300 }, dst()), hello));
      // This route has no send_proxy_protocol: exactly the ClientHello, no header of any kind.
      expect(await forwarded).toEqual(hello);
      expect(await client.end()).toBe("closed");
      const line = await connectionLine("203.0.113.8:4300");
      expect(logField(line, "listener")).toBe(GUARDED);
      expect(logField(line, "outcome")).toBe("closed");
    });
  });
});
