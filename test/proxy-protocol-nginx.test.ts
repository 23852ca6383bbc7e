// SPEC §6 backend side: a route with send_proxy_protocol gives nginx (listen … proxy_protocol) the
// true client, for a direct client and for one that came through HAProxy first.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { curl } from "./helpers/clients.ts";
import { type RunningHaproxy, startHaproxy } from "./helpers/haproxy.ts";
import { parseEchoBody, type RunningNginx, startNginxProxyEcho } from "./helpers/nginx.ts";
import { type RunningProxy, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";
import { eventually } from "./helpers/wait.ts";

/** Clients connect here directly. */
const DIRECT = "127.0.0.1:0";
/** HAProxy connects here, with a PROXY header. */
const BEHIND_BALANCER = "127.0.0.2:0";

describe("send_proxy_protocol to a real nginx", () => {
  let ca: TestCa;
  let nginx: RunningNginx;
  let proxy: RunningProxy;
  let haproxy: RunningHaproxy;

  beforeAll(async () => {
    ca = makeCa();
    nginx = await startNginxProxyEcho(ca.issue("nginx.test"));
    const backend = `127.0.0.1:${nginx.port}`;
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${DIRECT}"

  [[listeners.routes]]
  hostname = "nginx.test"
  backend = "${backend}"
  send_proxy_protocol = true

  # The same nginx without a header: proves nginx really insists on one.
  [[listeners.routes]]
  hostname = "bare.test"
  backend = "${backend}"

[[listeners]]
addr = "${BEHIND_BALANCER}"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.0/8"]

  [[listeners.routes]]
  hostname = "nginx.test"
  backend = "${backend}"
  send_proxy_protocol = true
`,
    );
    proxy = await startProxy(config);
    const target = `127.0.0.2:${proxy.port(BEHIND_BALANCER)}`;
    haproxy = await startHaproxy([
      { name: "v1", target, sendProxy: "v1" },
      { name: "v2", target, sendProxy: "v2" },
    ]);
  }, 60_000);

  afterAll(async () => {
    await haproxy?.stop();
    await proxy?.stop();
    await nginx?.stop();
  });

  /**
   * curl from `localAddress` to 127.0.0.1:port for `hostname`, verifying nginx's certificate.
   * Returns nginx's body and curl's own address (its `%{local_ip}:%{local_port}`).
   */
  async function fetchFrom(
    port: number,
    localAddress: string,
    hostname = "nginx.test",
  ): Promise<{ exitCode: number; body: string; self: string; stderr: string }> {
    const result = await curl([
      "--cacert",
      ca.cert,
      "--interface",
      localAddress,
      "--resolve",
      `${hostname}:${port}:127.0.0.1`,
      "--write-out",
      "%{local_ip}:%{local_port}",
      `https://${hostname}:${port}/`,
    ]);
    const newline = result.stdout.lastIndexOf("\n");
    return {
      exitCode: result.exitCode,
      body: result.stdout.slice(0, newline + 1),
      self: result.stdout.slice(newline + 1),
      stderr: result.stderr,
    };
  }

  test("a direct client: nginx sees its address and port, and the listener's address", async () => {
    const port = proxy.port(DIRECT);
    const result = await fetchFrom(port, "127.0.0.7");
    expect(result.exitCode).toBe(0);
    expect(result.self).toMatch(/^127\.0\.0\.7:\d+$/);
    expect(parseEchoBody(result.body)).toEqual({
      source: result.self,
      destination: `127.0.0.1:${port}`,
    });
  });

  test.each(["v1", "v2"] as const)(
    "through HAProxy (send-proxy %s): nginx sees the original client, not HAProxy",
    async (relay) => {
      const result = await fetchFrom(haproxy.port(relay), "127.0.0.8");
      expect(result.exitCode).toBe(0);
      expect(result.self).toMatch(/^127\.0\.0\.8:\d+$/);
      // Source: the client HAProxy named. Destination: mc-proxy's own listener address.
      expect(parseEchoBody(result.body)).toEqual({
        source: result.self,
        destination: `127.0.0.2:${proxy.port(BEHIND_BALANCER)}`,
      });
    },
  );

  test("without send_proxy_protocol, the same nginx refuses the connection", async () => {
    const result = await fetchFrom(proxy.port(DIRECT), "127.0.0.7", "bare.test");
    expect(result.exitCode).not.toBe(0);
    expect(result.body).toBe("");
    // nginx read the ClientHello where it wanted a PROXY header.
    expect(await eventually(nginx.errorLog, (log) => log.includes("broken header"))).toContain(
      "broken header",
    );
  });
});
