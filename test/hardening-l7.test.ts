// Hostile HTTP clients on an l7 route (issue 23): upgrade smuggling, header rules, Host checks.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import {
  type RawTlsClient,
  type RecordingBackend,
  rawTlsClient,
  startRecordingBackend,
} from "./hardening-peers.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { FLAG, FRAME, frame, rawH2Client, requestBlock } from "./helpers/h2-frames.ts";
import { type RunningProxy, startProxy, tempDir, writeFile } from "./helpers/proxy.ts";

const LISTENER = "127.0.0.1:0";
const HEADER_TIMEOUT_S = 1;
const BODY_IDLE_TIMEOUT_S = 1;
/** A deadline fires within a sweep tick (≤ 100 ms here) of its time; the rest is slack for load. */
const CUT_WITHIN_MS = 4000;

let ca: TestCa;
let backend: RecordingBackend;
let proxy: RunningProxy;
let port: number;
let dir: string;

function l7Route(hostname: string, backendPort: number): string {
  const pair = ca.issue(hostname.replace("*", "star"), [hostname]);
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
  ca = makeCa("hardening-ca");
  backend = await startRecordingBackend();
  dir = tempDir();
  const config = writeFile(
    dir,
    "mc-proxy.toml",
    `
[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
${l7Route("app.test", backend.port)}
${l7Route("*.wild.test", backend.port)}

[proxy]
header_timeout = "${HEADER_TIMEOUT_S}s"
body_idle_timeout = "${BODY_IDLE_TIMEOUT_S}s"
`,
  );
  proxy = await startProxy(config);
  port = proxy.port(LISTENER);
});

afterAll(async () => {
  await proxy?.stop();
  await backend?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

const UPGRADE_HEADERS =
  "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

describe("WebSocket upgrade smuggling (issue 23, item 1)", () => {
  test("a refused upgrade is relayed and the connection closes: a request behind it never reaches the backend", async () => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write(
        `GET /refused HTTP/1.1\r\nHost: app.test\r\n${UPGRADE_HEADERS}\r\n` +
          "GET /admin HTTP/1.1\r\nHost: internal.admin\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
      );
      const received = await client.closed();
      // The backend's own answer to the upgrade request, relayed, then the end.
      expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(received).toMatch(/\r\nconnection: close\r\n/i);
      expect(received.endsWith("\r\n\r\nok")).toBe(true);
      expect(received.match(/HTTP\/1\.1 /g)?.length).toBe(1);
      expect(backend.received()).toContain("GET /refused HTTP/1.1");
      expect(backend.received()).not.toContain("internal.admin");
      expect(backend.received()).not.toContain("6.6.6.6");
    } finally {
      client.destroy();
    }
  });

  test("after 101 the tunnel carries bytes both ways, including those sent with the handshake", async () => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write(
        `GET /ws-ok HTTP/1.1\r\nHost: app.test\r\n${UPGRADE_HEADERS}\r\nearly-frame`,
      );
      await client.waitFor(/^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nearly-frame$/);
      client.socket.write("late-frame");
      await client.waitFor(/early-framelate-frame$/);
    } finally {
      client.destroy();
    }
  });
});

/** Writes `text` one byte every `everyMs` until the socket closes or `text` is used up. */
async function trickle(client: RawTlsClient, text: string, everyMs: number): Promise<void> {
  for (const byte of text) {
    if (client.socket.destroyed || client.socket.writableEnded) return;
    client.socket.write(byte);
    await Bun.sleep(everyMs);
  }
}

/** The access-log line of the connection from `localPort`. */
function connectionLine(localPort: number): Promise<string> {
  return proxy.waitForLog(new RegExp(`msg="connection" client=127\\.0\\.0\\.1:${localPort} `));
}

describe("header_timeout and body_idle_timeout (issue 23, item 4)", () => {
  test("50 clients trickling a request head a byte every 200 ms are all cut at header_timeout", async () => {
    const clients = await Promise.all(
      Array.from({ length: 50 }, () => rawTlsClient(port, "app.test")),
    );
    const started = performance.now();
    try {
      const head = `GET /slow HTTP/1.1\r\nHost: app.test\r\nX-Long: ${"a".repeat(200)}\r\n\r\n`;
      for (const client of clients) void trickle(client, head, 200);
      await Promise.all(clients.map((client) => client.closed(CUT_WITHIN_MS + 1000)));
      const elapsed = performance.now() - started;
      console.log(`header_timeout: 50 trickling clients cut after ${Math.round(elapsed)} ms`);
      expect(elapsed).toBeGreaterThanOrEqual(HEADER_TIMEOUT_S * 1000 - 200);
      const line = await connectionLine(clients[0]!.localPort);
      expect(line).toContain("outcome=header_timeout");
      expect(backend.received()).not.toContain("GET /slow");
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  test("a keep-alive connection idle between requests is not cut; a byte of the next head starts the clock", async () => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write("GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n");
      await client.waitFor(/\r\n\r\nok$/);
      await Bun.sleep(HEADER_TIMEOUT_S * 1000 * 2);
      expect(client.socket.destroyed).toBe(false);
      client.socket.write("GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n");
      await client.waitFor(/ok[\s\S]*\r\n\r\nok$/);
      client.socket.write("GET /thi");
      await client.closed(CUT_WITHIN_MS);
      expect(await connectionLine(client.localPort)).toContain("outcome=header_timeout");
    } finally {
      client.destroy();
    }
  });

  test("a request body that stops is cut at body_idle_timeout; one that keeps moving is not", async () => {
    const stalled = await rawTlsClient(port, "app.test");
    const moving = await rawTlsClient(port, "app.test");
    try {
      const head = "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 12\r\n\r\n";
      stalled.socket.write(`${head}ab`);
      moving.socket.write(head);
      // 12 bytes, one every 250 ms: 3 s in all, three body_idle_timeouts, never 1 s silent.
      const movingDone = trickle(moving, "abcdefghijkl", 250);
      await stalled.closed(CUT_WITHIN_MS);
      expect(await connectionLine(stalled.localPort)).toContain("outcome=body_timeout");
      await movingDone;
      await moving.waitFor(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ok$/);
    } finally {
      stalled.destroy();
      moving.destroy();
    }
  });
});

describe("h2 header block that never ends (issue 23, item 5)", () => {
  test("HEADERS without END_HEADERS, then endless empty CONTINUATION frames: cut, WARN, nothing reaches the backend", async () => {
    const client = await rawH2Client(port, "app.test");
    const before = backend.received().length;
    let sent = 0;
    try {
      await client.waitForFrame((f) => f.type === FRAME.SETTINGS);
      client.write(frame(FRAME.HEADERS, 0, 1, requestBlock("app.test", "/never")));
      const started = performance.now();
      // 1,000 frames (9 KiB) per batch for up to 5 s, or until the proxy closes the connection.
      const batch = Buffer.concat(
        Array.from({ length: 1000 }, () => frame(FRAME.CONTINUATION, 0, 1)),
      );
      while (!client.closed && performance.now() - started < 5000) {
        client.write(batch);
        sent += 1000;
        await Bun.sleep(1);
      }
      await client.waitClosed(1000);
      console.log(
        `CONTINUATION flood: cut after ${sent} frames, ${Math.round(performance.now() - started)} ms`,
      );
      expect(sent).toBeLessThan(100_000);
      await proxy.waitForLog(/level=WARN msg="l7 h2 client cut: too many bytes without a request"/);
      expect(backend.received().slice(before)).not.toContain("/never");
    } finally {
      client.destroy();
    }
  });

  test("a complete header block split over CONTINUATION frames is served", async () => {
    const client = await rawH2Client(port, "app.test");
    try {
      await client.waitForFrame((f) => f.type === FRAME.SETTINGS);
      const block = requestBlock("app.test", "/split", [["x-big", "b".repeat(8000)]]);
      const third = Math.ceil(block.length / 3);
      client.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, third)));
      client.write(frame(FRAME.CONTINUATION, 0, 1, block.subarray(third, 2 * third)));
      client.write(frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(2 * third)));
      const headers = await client.waitForFrame(
        (f) => f.type === FRAME.HEADERS && f.streamId === 1,
      );
      expect(headers.payload.length).toBeGreaterThan(0);
      expect(backend.received()).toContain("GET /split HTTP/1.1");
    } finally {
      client.destroy();
    }
  });
});

describe("421 for a name this connection does not serve (issue 23, item 8)", () => {
  test.each([
    ["app.test", "internal.admin", 421],
    ["app.test", "a.wild.test", 421],
    ["app.test", "APP.test:443", 200],
    ["a.wild.test", "b.wild.test", 200],
    ["a.wild.test", "app.test", 421],
  ])("HTTP/1.1, SNI %s, Host %s → %d", async (sni, host, expected) => {
    const client = await rawTlsClient(port, sni);
    const path = `/misdirected-h1/${sni}/${host}`;
    try {
      client.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      await client.waitFor(/^HTTP\/1\.1 \d{3} /);
      expect(client.text()).toStartWith(`HTTP/1.1 ${expected} `);
      if (expected === 421) expect(backend.received()).not.toContain(path);
    } finally {
      client.destroy();
    }
  });

  test.each([
    ["app.test", "internal.admin", "421"],
    ["a.wild.test", "b.wild.test", "200"],
  ])("h2, SNI %s, :authority %s → %s", async (sni, authority, expected) => {
    const client = await rawH2Client(port, sni);
    const path = `/misdirected-h2/${sni}/${authority}`;
    try {
      await client.waitForFrame((f) => f.type === FRAME.SETTINGS);
      client.write(
        frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestBlock(authority, path)),
      );
      const headers = await client.waitForFrame(
        (f) => f.type === FRAME.HEADERS && f.streamId === 1,
      );
      // HPACK: :status 200 is static index 8 (0x88); 421 is a (Huffman) literal, so the
      // body says which it was.
      const data = await client.waitForFrame((f) => f.type === FRAME.DATA && f.streamId === 1);
      if (expected === "200") {
        expect(headers.payload[0]).toBe(0x88);
        expect(data.payload.toString()).toBe("ok");
      } else {
        expect(headers.payload[0]).not.toBe(0x88);
        expect(data.payload.toString()).toStartWith("421 Misdirected Request");
      }
      if (expected === "421") expect(backend.received()).not.toContain(path);
      else expect(backend.received()).toContain(path);
    } finally {
      client.destroy();
    }
  });

  test("a WebSocket upgrade for another name is refused with 421 before the backend sees it", async () => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write(
        `GET /ws-ok-elsewhere HTTP/1.1\r\nHost: internal.admin\r\n${UPGRADE_HEADERS}\r\n`,
      );
      await client.closed();
      expect(client.text()).toStartWith("HTTP/1.1 421 Misdirected Request\r\n");
      expect(backend.received()).not.toContain("/ws-ok-elsewhere");
    } finally {
      client.destroy();
    }
  });
});

describe("one rule for client-address headers; malformed heads get 400 (issue 23, item 12)", () => {
  test("Forwarded, X-Real-IP and X-Forwarded-* from the client are replaced by the proxy's", async () => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write(
        "GET /forged HTTP/1.1\r\nHost: app.test\r\nForwarded: for=6.6.6.6;host=internal.admin\r\n" +
          "X-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: internal.admin\r\n" +
          "X-Forwarded-Proto: http\r\n\r\n",
      );
      await client.waitFor(/\r\n\r\nok$/);
      const seen = backend.received();
      const head = seen.slice(seen.indexOf("GET /forged"));
      const request = head.slice(0, head.indexOf("\r\n\r\n"));
      expect(request).not.toContain("6.6.6.6");
      expect(request).not.toContain("internal.admin");
      expect(request).toMatch(/^forwarded: for=127\.0\.0\.1;proto=https;host="app\.test"$/m);
      expect(request).toMatch(/^x-real-ip: 127\.0\.0\.1$/m);
      expect(request).toMatch(/^x-forwarded-for: 127\.0\.0\.1$/m);
    } finally {
      client.destroy();
    }
  });

  test.each([
    ["HTTP/1.1 without Host", "GET /no-host HTTP/1.1\r\n\r\n", "/no-host"],
    [
      "two Host headers",
      "GET /two-hosts HTTP/1.1\r\nHost: app.test\r\nHost: internal.admin\r\n\r\n",
      "/two-hosts",
    ],
    [
      "a request line without a version",
      "GET /no-version\r\nHost: app.test\r\n\r\n",
      "/no-version",
    ],
  ])("%s: 400, the connection closes, the backend sees nothing", async (_label, request, path) => {
    const client = await rawTlsClient(port, "app.test");
    try {
      client.socket.write(request);
      await client.closed();
      expect(client.text()).toStartWith("HTTP/1.1 400 Bad Request\r\n");
      expect(backend.received()).not.toContain(path);
    } finally {
      client.destroy();
    }
  });
});
