// 512 MiB each way through an l7 route: bytes intact (SHA-256), proxy memory bounded (RSS).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { curl } from "./helpers/clients.ts";
import { type RunningProxy, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";
import { residentBytes } from "./helpers/tcp.ts";

const LISTENER = "127.0.0.1:0";
const MIB = 1 << 20;
const TOTAL_BYTES = 512 * MIB;
const BLOCK_BYTES = MIB;
/** Growth of the proxy's RSS over its idle baseline that counts as unbounded buffering. */
const RSS_GROWTH_LIMIT = 128 * MIB;
/** Both slow readers stop for PAUSE_MS after every PAUSE_EVERY bytes, so the proxy must hold back. */
const PAUSE_EVERY = 64 * MIB;
const PAUSE_MS = 150;

/** Block i of the stream: one random MiB with i written into its first bytes, so order matters. */
const baseBlock = randomBytes(BLOCK_BYTES);
function block(index: number): Uint8Array {
  const copy = new Uint8Array(baseBlock);
  new DataView(copy.buffer).setUint32(0, index);
  return copy;
}

const expectedSha256 = (() => {
  const hash = createHash("sha256");
  for (let i = 0; i < TOTAL_BYTES / BLOCK_BYTES; i++) hash.update(block(i));
  return hash.digest("hex");
})();

/**
 * POST /upload: hashes the body, reading slowly, and answers `<bytes> <sha256>`.
 * GET /download: sends the 512 MiB stream, honouring backpressure.
 */
function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === "/download") {
    res.writeHead(200, {
      "content-length": TOTAL_BYTES,
      "content-type": "application/octet-stream",
    });
    let index = 0;
    const pump = () => {
      while (index < TOTAL_BYTES / BLOCK_BYTES) {
        if (!res.write(block(index++))) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  const hash = createHash("sha256");
  let bytes = 0;
  let sincePause = 0;
  req.on("data", (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    sincePause += chunk.length;
    if (sincePause >= PAUSE_EVERY) {
      sincePause = 0;
      req.pause();
      setTimeout(() => req.resume(), PAUSE_MS);
    }
  });
  req.on("end", () => res.end(`${bytes} ${hash.digest("hex")}`));
}

/** Samples the proxy's RSS every 100 ms until stopped; returns the largest value seen. */
function sampleRss(pid: number): () => number {
  let peak = residentBytes(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, residentBytes(pid));
  }, 100);
  return () => {
    clearInterval(timer);
    return Math.max(peak, residentBytes(pid));
  };
}

describe("bulk transfer through an l7 route", () => {
  let ca: TestCa;
  let backend: Server;
  let proxy: RunningProxy;
  let port: number;
  let baselineRss: number;

  beforeAll(async () => {
    ca = makeCa("bulk-ca");
    backend = createServer(handle);
    await new Promise<void>((ready) => backend.listen(0, "127.0.0.1", ready));
    const backendPort = (backend.address() as { port: number }).port;
    const pair = ca.issue("bulk.test");
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "${LISTENER}"

  [[listeners.routes]]
  hostname = "bulk.test"
  backend = "127.0.0.1:${backendPort}"
  mode = "l7"
  tls_cert = "${pair.cert}"
  tls_key = "${pair.key}"
`,
    );
    proxy = await startProxy(config, { env: { MC_PROXY_LOG_LEVEL: "info" } });
    port = proxy.port(LISTENER);
    // Warm up both protocols once, so the baseline includes the code paths' own footprint.
    for (const flag of ["--http1.1", "--http2"]) {
      await curl([...curlBase(), flag, "--data-binary", "warm-up", url("/upload")]);
    }
    baselineRss = residentBytes(proxy.pid);
  });

  afterAll(async () => {
    await proxy?.stop();
    backend?.close();
  });

  const curlBase = () => ["--cacert", ca.cert, "--resolve", `bulk.test:${port}:127.0.0.1`];
  const url = (path: string) => `https://bulk.test:${port}${path}`;

  test.each(["--http1.1", "--http2"])(
    "%s: 512 MiB up arrive intact with bounded proxy memory",
    async (flag) => {
      let index = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (index === TOTAL_BYTES / BLOCK_BYTES) controller.close();
          else controller.enqueue(block(index++));
        },
      });
      const peakRss = sampleRss(proxy.pid);
      const proc = spawn(
        [
          "curl",
          "--silent",
          "--show-error",
          ...curlBase(),
          flag,
          "--upload-file",
          "-",
          url("/upload"),
        ],
        { stdin: body, stdout: "pipe", stderr: "pipe" },
      );
      const [stdout, stderr, exitCode] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      const peak = peakRss();
      expect(stderr).toBe("");
      expect(exitCode).toBe(0);
      expect(stdout).toBe(`${TOTAL_BYTES} ${expectedSha256}`);
      expect(peak - baselineRss).toBeLessThan(RSS_GROWTH_LIMIT);
    },
    // A hang guard, not a speed limit: 512 MiB through TLS takes minutes on busy cores.
    300_000,
  );

  test.each(["--http1.1", "--http2"])(
    "%s: 512 MiB down arrive intact with bounded proxy memory",
    async (flag) => {
      const peakRss = sampleRss(proxy.pid);
      const proc = spawn(
        ["curl", "--silent", "--show-error", ...curlBase(), flag, url("/download")],
        { stdout: "pipe", stderr: "pipe" },
      );
      const hash = createHash("sha256");
      let bytes = 0;
      let sincePause = 0;
      // A slow reader: curl blocks on its full pipe, and the proxy has to stop reading the backend.
      for await (const chunk of proc.stdout) {
        hash.update(chunk);
        bytes += chunk.length;
        sincePause += chunk.length;
        if (sincePause >= PAUSE_EVERY) {
          sincePause = 0;
          await Bun.sleep(PAUSE_MS);
        }
      }
      const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      const peak = peakRss();
      expect(stderr).toBe("");
      expect(exitCode).toBe(0);
      expect(bytes).toBe(TOTAL_BYTES);
      expect(hash.digest("hex")).toBe(expectedSha256);
      expect(peak - baselineRss).toBeLessThan(RSS_GROWTH_LIMIT);
    },
    // A hang guard, not a speed limit: 512 MiB through TLS takes minutes on busy cores.
    300_000,
  );
});
