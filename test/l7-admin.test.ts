// l7 routes through the admin API of a running proxy: bad certificates refused, good ones live at once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { AdminCallError, type AdminClient } from "../src/client/index.ts";
import { boundAdminAddr, makeAdminMtls } from "./helpers/admin.ts";
import { runSClient } from "./helpers/backends.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { curl } from "./helpers/clients.ts";
import { type RunningProxy, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";
import { type EchoBackend, type EchoedRequest, startEchoBackend } from "./l7-peers.ts";

const LISTENER = "127.0.0.1:0";

let ca: TestCa;
let echo: EchoBackend;
let proxy: RunningProxy;
let client: AdminClient;
let port: number;

beforeAll(async () => {
  const mtls = makeAdminMtls();
  ca = makeCa("l7-admin-ca");
  echo = startEchoBackend();
  const dir = tempDir();
  const config = writeProxyConfig(
    dir,
    `[[listeners]]
addr = "${LISTENER}"

${mtls.grpcToml({ withClient: false })}`,
  );
  proxy = await startProxy(config);
  port = proxy.port(LISTENER);
  client = mtls.connect(await boundAdminAddr(proxy));
});

afterAll(async () => {
  client?.close();
  await proxy?.stop();
  echo?.stop();
});

function l7Route(hostname: string, pair: CertPair) {
  return {
    hostname,
    backend: `127.0.0.1:${echo.port}`,
    mode: "l7",
    tlsCert: pair.cert,
    tlsKey: pair.key,
  };
}

async function addRouteError(route: ReturnType<typeof l7Route>): Promise<AdminCallError> {
  try {
    await client.addRoute(LISTENER, route);
  } catch (error) {
    if (error instanceof AdminCallError) return error;
    throw error;
  }
  throw new Error("AddRoute succeeded");
}

describe("AddRoute of l7 routes", () => {
  test.each([
    [
      "a missing key file",
      () => ({ ...ca.issue("missing.test"), key: "/nonexistent/key.pem" }),
      'tls_key "/nonexistent/key.pem": cannot read: no such file',
    ],
    [
      "another certificate's key",
      () => ({ ...ca.issue("mismatch.test"), key: ca.issue("someone-else.test").key }),
      "the key does not match the certificate",
    ],
  ])(
    "%s is INVALID_ARGUMENT naming the file, and nothing changes",
    async (_label, pair, message) => {
      const error = await addRouteError(l7Route("refused.test", pair()));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toContain(message);
      expect(await client.listRoutes(LISTENER)).toEqual([{ listenerAddr: LISTENER, routes: [] }]);
    },
  );

  test("a good l7 route serves at once, and a route change reloads certificate files", async () => {
    const first = ca.issue("first-cert", ["live.test"]);
    await client.addRoute(LISTENER, l7Route("live.test", first));
    const result = await curl([
      "--cacert",
      ca.cert,
      "--resolve",
      `live.test:${port}:127.0.0.1`,
      "--http2",
      `https://live.test:${port}/added`,
    ]);
    expect(result.stderr).toBe("");
    expect((JSON.parse(result.stdout) as EchoedRequest).path).toBe("/added");
    expect((await runSClient(port, ["-servername", "live.test"])).peerCommonName).toBe(
      "first-cert",
    );

    // A renewed certificate written over the same files is picked up by the next route change.
    const renewed = ca.issue("renewed-cert", ["live.test"]);
    copyFileSync(renewed.cert, first.cert);
    copyFileSync(renewed.key, first.key);
    await client.addRoute(LISTENER, l7Route("other.test", ca.issue("other.test")));
    expect((await runSClient(port, ["-servername", "live.test"])).peerCommonName).toBe(
      "renewed-cert",
    );
  });
});
