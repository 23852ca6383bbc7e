// End to end: real TLS clients (openssl, curl, node:tls) reach the backend their SNI names.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type OpensslServer, runSClient, startOpensslServer } from "./helpers/backends.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { curl, tlsAttempt } from "./helpers/clients.ts";
import { type RunningProxy, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";
import { type DeadBackend, deadBackend, gotFin, rawPeer } from "./helpers/tcp.ts";
import { eventually } from "./helpers/wait.ts";

const LISTENER = "127.0.0.1:0";

describe("SNI routing with real peers", () => {
  let ca: TestCa;
  let alpha: OpensslServer;
  let beta: OpensslServer;
  let wild: OpensslServer;
  let proxy: RunningProxy;
  let port: number;
  let dead: DeadBackend;

  beforeAll(async () => {
    ca = makeCa();
    alpha = await startOpensslServer(ca.issue("alpha.test"));
    beta = await startOpensslServer(ca.issue("beta.test"));
    wild = await startOpensslServer(ca.issue("wild", ["*.wild.test"]));
    dead = deadBackend(); // bound, never listening: a stopped backend, for the whole file
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${LISTENER}"

  [[listeners.routes]]
  hostname = "alpha.test"
  backend = "127.0.0.1:${alpha.port}"

  [[listeners.routes]]
  hostname = "Beta.Test."
  backend = "127.0.0.1:${beta.port}"

  [[listeners.routes]]
  hostname = "*.wild.test"
  backend = "127.0.0.1:${wild.port}"

  [[listeners.routes]]
  hostname = "gone.test"
  backend = "127.0.0.1:${dead.port}"

[proxy]
connect_timeout = "2s"
`,
    );
    proxy = await startProxy(config);
    port = proxy.port(LISTENER);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    for (const server of [alpha, beta, wild]) server?.stop();
    dead?.close();
  });

  test.each([
    ["alpha.test", "alpha.test"],
    ["beta.test", "beta.test"],
    ["BETA.test", "beta.test"],
    ["x.wild.test", "wild"],
  ])("openssl s_client -servername %s gets the certificate of %s", async (name, cn) => {
    const result = await runSClient(port, ["-servername", name]);
    expect(result.peerCommonName).toBe(cn);
  });

  test.each(["alpha.test", "beta.test"])(
    "curl --resolve %s verifies the backend's certificate",
    async (name) => {
      const result = await curl([
        "--cacert",
        ca.cert,
        "--resolve",
        `${name}:${port}:127.0.0.1`,
        `https://${name}:${port}/`,
      ]);
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
      // s_server -www answers with a page describing the session.
      expect(result.stdout).toContain("Ciphers");
    },
  );

  test("a wildcard matches one label only", async () => {
    const result = await runSClient(port, ["-servername", "a.b.wild.test"]);
    expect(result.peerCommonName).toBeNull();
    expect(result.stdout + result.stderr).toMatch(/unrecognized name|alert number 112/);
  });

  test("an unknown name gets the unrecognized_name alert", async () => {
    const result = await runSClient(port, ["-servername", "nope.test"]);
    expect(result.exitCode).not.toBe(0);
    expect(result.peerCommonName).toBeNull();
    expect(result.stdout + result.stderr).toMatch(/unrecognized name|alert number 112/);
    await proxy.waitForLog(/msg="connection".*sni=nope\.test.*outcome=no_route/);
  });

  test("a ClientHello without SNI gets the alert and is closed", async () => {
    const result = await runSClient(port, ["-noservername"]);
    expect(result.exitCode).not.toBe(0);
    expect(result.peerCommonName).toBeNull();
    expect(result.stdout + result.stderr).toMatch(/unrecognized name|alert number 112/);
    await proxy.waitForLog(/msg="connection".*outcome=no_sni/);
  });

  test("a stopped backend gives the client a reset and the log a dial line", async () => {
    const result = await tlsAttempt(port, { servername: "gone.test" });
    expect(result.outcome).toBe("ECONNRESET");
    const line = await proxy.waitForLog(/level=WARN .*dial.*gone\.test/);
    expect(line).toContain(`backend=127.0.0.1:${dead.port}`);
    await proxy.waitForLog(/msg="connection".*sni=gone\.test.*outcome=dial_failed/);
  });

  test("bytes that are not TLS are closed without an answer", async () => {
    const peer = await rawPeer(port);
    try {
      peer.socket.write("GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n");
      await proxy.waitForLog(/msg="connection".*outcome=bad_hello/);
      // The proxy ends the connection (a FIN, not a reset) and not one byte came before it.
      expect(await eventually(() => gotFin(peer))).toBe(true);
      expect(peer.received).toBe(0);
      expect(peer.closeError).toBeNull();
    } finally {
      peer.socket.end();
    }
  });
});
