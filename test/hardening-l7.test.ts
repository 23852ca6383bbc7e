// Hostile HTTP clients on an l7 route (issue 23): upgrade smuggling, header rules, Host checks.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { type RecordingBackend, rawTlsClient, startRecordingBackend } from "./hardening-peers.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { type RunningProxy, startProxy, tempDir, writeFile } from "./helpers/proxy.ts";

const LISTENER = "127.0.0.1:0";

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
