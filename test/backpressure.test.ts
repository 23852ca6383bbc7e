// 256 MiB through an l4 route into a slow backend: every byte arrives, memory stays bounded.
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  listenerWithRoute,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import {
  clientHelloFor,
  rawConnect,
  residentBytes,
  type SinkBackend,
  startSlowSink,
  writeAll,
} from "./helpers/tcp.ts";

const TOTAL = 256 * 1024 * 1024;
const MIB = 1024 * 1024;

let proxy: RunningProxy | undefined;
let sink: SinkBackend | undefined;

afterAll(async () => {
  await proxy?.stop();
  sink?.close();
});

test("a client writing 256 MiB to a slow backend is held back, loses nothing, and RSS grows < 64 MiB", async () => {
  sink = await startSlowSink({ pauseEvery: MIB, pauseMs: 10 });
  const dir = tempDir();
  const config = writeProxyConfig(dir, listenerWithRoute("127.0.0.1:0", "bulk.test", sink.port));
  proxy = await startProxy(config, { env: { MC_PROXY_LOG_LEVEL: "info" } });
  const port = proxy.port("127.0.0.1:0");
  const hello = await clientHelloFor("bulk.test");
  await Bun.sleep(200);
  const baseline = residentBytes(proxy.pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, residentBytes(proxy!.pid));
  }, 50);

  const client = await rawConnect(port);
  client.on("data", () => {}); // the sink answers nothing; keep the stream flowing anyway
  const sent = await writeAll(client, hello, TOTAL, randomBytes(MIB));
  client.end();
  const received = await sink.received;
  clearInterval(sampler);
  client.destroy();

  expect(received.bytes).toBe(sent.bytes);
  expect(received.sha256).toBe(sent.sha256);
  const growth = peak - baseline;
  console.log(
    `backpressure: RSS baseline ${(baseline / MIB).toFixed(1)} MiB, peak ${(peak / MIB).toFixed(1)} MiB, growth ${(growth / MIB).toFixed(1)} MiB`,
  );
  expect(growth).toBeLessThan(64 * MIB);
  await proxy.waitForLog(/msg="connection".*sni=bulk\.test.*outcome=closed/);
}, 120_000);
