// SPEC §6 behind a real balancer: HAProxy (send-proxy / send-proxy-v2) → mc-proxy listener with
// proxy_protocol → openssl backends. Routing uses the SNI; the firewall uses the header's client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as netConnect } from "node:net";
import * as tls from "node:tls";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { makeCa } from "./helpers/certs.ts";
import { type RunningHaproxy, startHaproxy } from "./helpers/haproxy.ts";
import {
  logField,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { eventually } from "./helpers/wait.ts";

const LISTENER = "127.0.0.1:0";
const BLOCKED_CLIENT = "127.0.0.5";
const ALLOWED_CLIENT = "127.0.0.6";

interface Attempt {
  /** "secure", or how it failed: an error code such as ECONNRESET, or "closed". */
  outcome: string;
  peerCommonName: string | null;
  /** The client's own port: HAProxy puts it in the header, mc-proxy logs it. */
  localPort: number;
}

/** One TLS handshake to HAProxy on 127.0.0.1:port from `localAddress`. */
async function handshakeFrom(
  port: number,
  servername: string,
  localAddress: string,
): Promise<Attempt> {
  return await new Promise((resolve) => {
    const raw = netConnect({ host: "127.0.0.1", port, localAddress });
    const socket = tls.connect({ socket: raw, servername, rejectUnauthorized: false });
    let localPort = 0;
    raw.once("connect", () => {
      localPort = raw.localPort ?? 0;
    });
    const timer = setTimeout(() => finish("timeout"), 10_000);
    let done = false;
    function finish(outcome: string, cn: string | null = null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      resolve({ outcome, peerCommonName: cn, localPort });
    }
    raw.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.once("close", () => finish("closed"));
    socket.once("secureConnect", () => {
      const cn = socket.getPeerCertificate()?.subject?.CN;
      finish("secure", typeof cn === "string" ? cn : null);
    });
  });
}

describe("HAProxy in front of a proxy_protocol listener", () => {
  let alpha: OpensslServer;
  let beta: OpensslServer;
  let proxy: RunningProxy;
  let haproxy: RunningHaproxy;

  beforeAll(async () => {
    const ca = makeCa();
    alpha = await startOpensslServer(ca.issue("alpha.test"));
    beta = await startOpensslServer(ca.issue("beta.test"));
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${LISTENER}"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.0/8"]

  [[listeners.routes]]
  hostname = "alpha.test"
  backend = "127.0.0.1:${alpha.port}"

  [[listeners.routes]]
  hostname = "beta.test"
  backend = "127.0.0.1:${beta.port}"

[firewall]
blocked_ips = ["${BLOCKED_CLIENT}"]
`,
    );
    proxy = await startProxy(config);
    const target = `127.0.0.1:${proxy.port(LISTENER)}`;
    haproxy = await startHaproxy([
      { name: "v1", target, sendProxy: "v1" },
      { name: "v2", target, sendProxy: "v2" },
    ]);
  }, 60_000);

  afterAll(async () => {
    await haproxy?.stop();
    await proxy?.stop();
    alpha?.stop();
    beta?.stop();
  });

  /** The connection line of the client that used `localAddress:localPort`. */
  async function connectionLine(localAddress: string, localPort: number): Promise<string> {
    const client = `${localAddress.replaceAll(".", "\\.")}:${localPort}`;
    return await proxy.waitForLog(new RegExp(`msg="connection" client=${client} `));
  }

  test.each([
    ["v1", "alpha.test"],
    ["v1", "beta.test"],
    ["v2", "alpha.test"],
    ["v2", "beta.test"],
  ] as const)("through send-proxy %s, SNI %s reaches its own backend", async (relay, name) => {
    const attempt = await handshakeFrom(haproxy.port(relay), name, ALLOWED_CLIENT);
    expect(attempt).toMatchObject({ outcome: "secure", peerCommonName: name });
    // mc-proxy saw the client HAProxy named in the header, not HAProxy (127.0.0.1).
    const line = await connectionLine(ALLOWED_CLIENT, attempt.localPort);
    expect(logField(line, "sni")).toBe(name);
    expect(logField(line, "route")).toBe(name);
    expect(logField(line, "outcome")).toBe("closed");
  });

  test.each(["v1", "v2"] as const)(
    "through send-proxy %s, the firewall blocks the address inside the header",
    async (relay) => {
      const attempt = await handshakeFrom(haproxy.port(relay), "alpha.test", BLOCKED_CLIENT);
      // mc-proxy resets HAProxy's connection; HAProxy then closes the client's before any TLS.
      expect(["ECONNRESET", "closed"]).toContain(attempt.outcome);
      expect(attempt.peerCommonName).toBeNull();
      const line = await connectionLine(BLOCKED_CLIENT, attempt.localPort);
      expect(logField(line, "outcome")).toBe("blocked");
      expect(logField(line, "rule_type")).toBe("ip");
      expect(logField(line, "rule")).toBe(BLOCKED_CLIENT);
      expect(logField(line, "bytes_up")).toBe("0");
      expect(logField(line, "backend")).toBe("");
      // The balancer itself (127.0.0.1) is never what the firewall or the log saw.
      expect(proxy.logs.some((l) => l.includes('msg="connection" client=127.0.0.1:'))).toBe(false);
    },
  );
});

describe("HAProxy health checks against a proxy_protocol listener", () => {
  let proxy: RunningProxy;
  let haproxy: RunningHaproxy;

  beforeAll(async () => {
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${LISTENER}"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.0/8"]

  [[listeners.routes]]
  hostname = "alpha.test"
  backend = "127.0.0.1:9"
`,
    );
    proxy = await startProxy(config);
    const target = `127.0.0.1:${proxy.port(LISTENER)}`;
    haproxy = await startHaproxy([
      // A v2 LOCAL header, then HAProxy's usual reset.
      { name: "local", target, sendProxy: "v2", serverOptions: "check check-send-proxy inter 100" },
      // A bare connect, then a reset: often before mc-proxy has handled the accept.
      { name: "bare", target, sendProxy: "v2", serverOptions: "check inter 100" },
    ]);
  }, 60_000);

  afterAll(async () => {
    await haproxy?.stop();
    await proxy?.stop();
  });

  test("each check ends in one clean log line, even when it was reset before the accept", async () => {
    const lines = () => proxy.logs.filter((line) => line.includes('msg="connection"'));
    expect((await eventually(lines, (found) => found.length >= 20)).length).toBeGreaterThanOrEqual(
      20,
    );
    for (const line of lines()) {
      // The socket's own address (LOCAL), or "" when the peer was gone before the accept.
      expect(logField(line, "client")).toMatch(/^(127\.0\.0\.1:\d+|:0)$/);
      expect(["bad_hello", "bad_proxy_header"]).toContain(logField(line, "outcome")!);
    }
    expect(proxy.logs.join("\n")).not.toMatch(/undefined|TypeError/);
  });
});
