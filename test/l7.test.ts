// End to end through l7 routes: curl (HTTP/1.1, h2), WebSocket, backend TLS, PROXY headers, l4 beside l7.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { curl } from "./helpers/clients.ts";
import {
  logField,
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";
import { type DeadBackend, deadBackend } from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";
import {
  type EchoBackend,
  type EchoedRequest,
  type ProxyHeaderBackend,
  startEchoBackend,
  startProxyHeaderBackend,
} from "./l7-peers.ts";

const LISTENER = "127.0.0.1:0";
/** A second listener behind a (pretend) balancer speaking the PROXY protocol. */
const PP_LISTENER = "127.0.0.2:0";

let ca: TestCa;
let backendCa: TestCa;
let strangerCa: TestCa;
let echo: EchoBackend;
let secureEcho: EchoBackend;
let strangerEcho: EchoBackend;
let proxyHeaderBackend: ProxyHeaderBackend;
let rawBackend: OpensslServer;
let proxy: RunningProxy;
let port: number;
let ppPort: number;
/** gone.test's backend: refuses every dial for the whole file. */
let dead: DeadBackend;

function l7Route(hostname: string, backend: string, extra = ""): string {
  const pair = ca.issue(hostname.replace("*", "star"), [hostname]);
  return `
  [[listeners.routes]]
  hostname = "${hostname}"
  backend = "${backend}"
  mode = "l7"
  tls_cert = "${pair.cert}"
  tls_key = "${pair.key}"
  ${extra}
`;
}

beforeAll(async () => {
  ca = makeCa("l7-ca");
  backendCa = makeCa("backend-ca");
  strangerCa = makeCa("stranger-ca");
  echo = startEchoBackend();
  secureEcho = startEchoBackend(backendCa.issue("secure.test"));
  strangerEcho = startEchoBackend(strangerCa.issue("untrusted.test"));
  proxyHeaderBackend = await startProxyHeaderBackend();
  rawBackend = await startOpensslServer(ca.issue("raw.test"));
  dead = deadBackend();
  const dir = tempDir();
  const config = writeProxyConfig(
    dir,
    `[[listeners]]
addr = "${LISTENER}"
${l7Route("app.test", `127.0.0.1:${echo.port}`)}
${l7Route("*.wild.test", `127.0.0.1:${echo.port}`)}
${l7Route("secure.test", `127.0.0.1:${secureEcho.port}`, "backend_tls = true")}
${l7Route("untrusted.test", `127.0.0.1:${strangerEcho.port}`, "backend_tls = true")}
${l7Route("mismatch.test", `127.0.0.1:${secureEcho.port}`, "backend_tls = true")}
${l7Route("gone.test", `127.0.0.1:${dead.port}`)}
${l7Route("pp.test", `127.0.0.1:${proxyHeaderBackend.port}`, "send_proxy_protocol = true")}

  [[listeners.routes]]
  hostname = "raw.test"
  backend = "127.0.0.1:${rawBackend.port}"

[[listeners]]
addr = "${PP_LISTENER}"
proxy_protocol = true
${l7Route("app.test", `127.0.0.1:${echo.port}`)}

[proxy]
connect_timeout = "2s"
backend_ca = "${backendCa.cert}"
`,
  );
  proxy = await startProxy(config);
  port = proxy.port(LISTENER);
  ppPort = proxy.port(PP_LISTENER);
});

afterAll(async () => {
  await proxy?.stop();
  echo?.stop();
  secureEcho?.stop();
  strangerEcho?.stop();
  proxyHeaderBackend?.stop();
  rawBackend?.stop();
  dead?.close();
});

/** curl through the main listener to `https://<name>:<port><path>`, trusting the test CA. */
async function curlVia(
  name: string,
  path: string,
  args: string[] = [],
  options: { address?: string; listenerPort?: number } = {},
) {
  const listenerPort = options.listenerPort ?? port;
  return await curl([
    "--cacert",
    ca.cert,
    "--resolve",
    `${name}:${listenerPort}:${options.address ?? "127.0.0.1"}`,
    ...args,
    `https://${name}:${listenerPort}${path}`,
  ]);
}

/** The body (JSON) and, after a last newline, curl's `%{http_version}` and `%{http_code}`. */
async function echoVia(name: string, path: string, args: string[] = []) {
  const result = await curlVia(name, path, [
    ...args,
    "--write-out",
    "\n%{http_version} %{http_code}",
  ]);
  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);
  const lastNewline = result.stdout.lastIndexOf("\n");
  const [version, status] = result.stdout.slice(lastNewline + 1).split(" ");
  return { body: result.stdout.slice(0, lastNewline), version, status };
}

describe("HTTP reverse proxy", () => {
  test.each([
    ["--http1.1", "1.1"],
    ["--http2", "2"],
  ])(
    "curl %s negotiates %s, and the backend sees the client in X-Forwarded-*",
    async (flag, version) => {
      const result = await echoVia("app.test", "/hello?x=1", [
        flag,
        "--header",
        "X-Forwarded-For: 6.6.6.6",
        "--header",
        "X-Forwarded-Proto: http",
        "--include",
      ]);
      expect(result.version).toBe(version);
      expect(result.status).toBe("200");
      const [head, body] = result.body.split("\r\n\r\n");
      expect(head).toMatch(/^x-backend: echo\r?$/im);
      const seen = JSON.parse(body!) as EchoedRequest;
      expect(seen.method).toBe("GET");
      expect(seen.path).toBe("/hello?x=1");
      // Not a PROXY-protocol listener: the client's own X-Forwarded-For is replaced, not kept.
      expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
      expect(seen.headers["x-forwarded-proto"]).toBe("https");
      expect(seen.headers["x-forwarded-host"]).toBe(`app.test:${port}`);
      expect(seen.headers.host).toBe(`app.test:${port}`);
    },
  );

  test.each(["--http1.1", "--http2"])("%s: a request body streams to the backend", async (flag) => {
    const dir = tempDir();
    const payload = writeFile(dir, "payload.bin", "x".repeat(300_000));
    const result = await echoVia("app.test", "/upload", [flag, "--data-binary", `@${payload}`]);
    const seen = JSON.parse(result.body) as EchoedRequest;
    expect(seen.method).toBe("POST");
    expect(seen.bodyBytes).toBe(300_000);
  });

  test.each(["--http1.1", "--http2"])("%s: several requests on one connection", async (flag) => {
    const result = await curl([
      "--cacert",
      ca.cert,
      "--resolve",
      `app.test:${port}:127.0.0.1`,
      flag,
      "--write-out",
      "\n%{num_connects}\n",
      `https://app.test:${port}/first`,
      `https://app.test:${port}/second`,
    ]);
    expect(result.stderr).toBe("");
    const lines = result.stdout.trim().split("\n");
    expect(
      lines.map((line, i) => (i % 2 === 0 ? (JSON.parse(line) as EchoedRequest).path : line)),
    ).toEqual([
      "/first",
      "1",
      "/second",
      // The second request reused the first connection.
      "0",
    ]);
  });

  test("hop-by-hop headers, and those named in Connection, do not reach the backend", async () => {
    const result = await echoVia("app.test", "/", [
      "--http1.1",
      "--header",
      "Connection: keep-alive, X-Private",
      "--header",
      "X-Private: secret",
      "--header",
      "Proxy-Authorization: Basic Zm9vOmJhcg==",
      "--header",
      "X-Kept: yes",
    ]);
    const seen = JSON.parse(result.body) as EchoedRequest;
    expect(seen.headers["x-private"]).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expect(seen.headers["x-kept"]).toBe("yes");
  });

  test("a wildcard l7 route terminates with its certificate", async () => {
    const result = await echoVia("a.wild.test", "/w", ["--http2"]);
    expect((JSON.parse(result.body) as EchoedRequest).headers.host).toBe(`a.wild.test:${port}`);
  });

  test("behind a PROXY-protocol listener, the client address is appended to X-Forwarded-For", async () => {
    const result = await curlVia(
      "app.test",
      "/pp",
      ["--haproxy-protocol", "--header", "X-Forwarded-For: 9.9.9.9"],
      { address: "127.0.0.2", listenerPort: ppPort },
    );
    expect(result.exitCode).toBe(0);
    const seen = JSON.parse(result.stdout) as EchoedRequest;
    // curl's PROXY v1 header names its own address on the loopback connection.
    expect(seen.headers["x-forwarded-for"]).toMatch(/^9\.9\.9\.9, 127\.0\.0\.\d+$/);
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
  });

  test("send_proxy_protocol: each backend connection starts with a PROXY v2 header naming the client", async () => {
    const result = await curlVia("pp.test", "/", ["--http1.1"]);
    expect(result.exitCode).toBe(0);
    const seen = JSON.parse(result.stdout) as {
      version: number;
      source: { address: string; port: number };
      forwardedFor: string;
    };
    expect(seen.version).toBe(2);
    expect(seen.source.address).toBe("127.0.0.1");
    expect(seen.source.port).toBeGreaterThan(0);
    expect(seen.forwardedFor).toBe("127.0.0.1");
  });
});

describe("WebSocket", () => {
  test("a WebSocket client exchanges messages with the backend through the l7 route", async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/socket`, {
      headers: { host: `app.test:${port}` },
      tls: { serverName: "app.test", ca: readFileSync(ca.cert, "utf8") },
    });
    const messages: string[] = [];
    const waiters: Array<() => void> = [];
    ws.addEventListener("message", (event) => {
      messages.push(String(event.data));
      waiters.shift()?.();
    });
    const next = async (): Promise<string> => {
      if (messages.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
      return messages.shift()!;
    };
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("websocket error")));
    });
    const handshakeHeaders = JSON.parse(await next()) as Record<string, string>;
    expect(handshakeHeaders["x-forwarded-for"]).toBe("127.0.0.1");
    expect(handshakeHeaders["x-forwarded-proto"]).toBe("https");
    for (const text of ["hello", "second message", "x".repeat(100_000)]) {
      ws.send(text);
      expect(await next()).toBe(`echo:${text}`);
    }
    const closed = new Promise<number>((resolve) =>
      ws.addEventListener("close", (event) => resolve(event.code)),
    );
    ws.close(1000);
    expect(await closed).toBe(1000);
  });
});

describe("WebSocket failures", () => {
  test("an upgrade to a backend that cannot be reached is answered 502", async () => {
    const before = proxy.logs.length;
    const result = await curlVia("gone.test", "/socket", [
      "--http1.1",
      "--include",
      "--header",
      "Connection: Upgrade",
      "--header",
      "Upgrade: websocket",
      "--header",
      "Sec-WebSocket-Version: 13",
      "--header",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ]);
    expect(result.stdout).toStartWith("HTTP/1.1 502 Bad Gateway");
    await waitForNewLog(before, /level=WARN msg="dial backend failed".* sni=gone\.test /);
  });
});

describe("backend_tls", () => {
  test("reaches an HTTPS backend whose CA is [proxy] backend_ca, with SNI = the route hostname", async () => {
    for (const flag of ["--http1.1", "--http2"]) {
      const result = await echoVia("secure.test", "/s", [flag]);
      expect(result.status).toBe("200");
      const seen = JSON.parse(result.body) as EchoedRequest;
      expect(seen.tls).toBe(true);
      expect(seen.headers["x-forwarded-proto"]).toBe("https");
    }
  });

  test.each([
    ["untrusted.test", /self.signed|unable to (get|verify)|certificate/i],
    ["mismatch.test", /ERR_TLS_CERT_ALTNAME_INVALID|does not match/],
  ])(
    "%s: a backend certificate that fails verification gives 502 and says why",
    async (name, why) => {
      const result = await echoVia(name, "/", ["--http1.1"]);
      expect(result.status).toBe("502");
      const line = await proxy.waitForLog(
        new RegExp(`level=WARN msg="dial backend failed".* sni=${name.replace(".", "\\.")} `),
      );
      expect(logField(line, "error")).toMatch(why);
    },
  );
});

describe("failures and coexistence", () => {
  test.each(["--http1.1", "--http2"])(
    "%s: a backend that cannot be reached gives 502, a dial warning, outcome dial_failed",
    async (flag) => {
      const before = proxy.logs.length;
      const result = await echoVia("gone.test", "/", [flag]);
      expect(result.status).toBe("502");
      expect(result.body).toBe("502 Bad Gateway\n");
      const dial = await proxy.waitForLog(/level=WARN msg="dial backend failed".* sni=gone\.test /);
      expect(logField(dial, "error")).toContain("ECONNREFUSED");
      const end = await waitForNewLog(before, /msg="connection".* sni=gone\.test /);
      expect(logField(end, "outcome")).toBe("dial_failed");
    },
  );

  test.each(["--http1.1", "--http2"])(
    "%s: clients that leave mid-response or mid-upload do not disturb the proxy",
    async (flag) => {
      const before = proxy.logs.length;
      const download = await curlVia("app.test", "/stream", [
        flag,
        "--max-time",
        "0.5",
        "--output",
        "/dev/null",
      ]);
      expect(download.exitCode).toBe(28); // curl: operation timed out, after some of the body
      const upload = spawn(
        [
          "curl",
          "--silent",
          "--cacert",
          ca.cert,
          "--resolve",
          `app.test:${port}:127.0.0.1`,
          flag,
          "--upload-file",
          "-",
          `https://app.test:${port}/upload`,
        ],
        { stdin: "pipe", stdout: "ignore", stderr: "ignore" },
      );
      upload.stdin.write(new Uint8Array(256 * 1024));
      // Mid-upload: curl has taken the bytes (a pipe holds 64 KiB, so the flush resolves once
      // curl read the rest) and waits for more. Then it leaves. An EPIPE means it left first.
      await Promise.race([
        Promise.resolve(upload.stdin.flush()).catch(() => {}),
        Bun.sleep(EVENTUALLY_MS),
      ]);
      upload.kill("SIGKILL");
      await upload.exited;
      const after = await echoVia("app.test", "/still-there", [flag]);
      expect(after.status).toBe("200");
      expect(proxy.proc.exitCode).toBeNull();
      // Cutting the backend request because the client left is not a backend failure: wait
      // until the three connections (download, upload, still-there) have ended and logged.
      // (Only two when the 0.5 s download gave up before its ClientHello got through, on a
      // loaded machine: then this waits out the deadline, and checks all the same.)
      const ended = () =>
        proxy.logs.slice(before).filter((line) => /msg="connection".* sni=app\.test /.test(line));
      await eventually(ended, (lines) => lines.length >= 3);
      expect(
        proxy.logs.slice(before).filter((line) => line.includes("backend request failed")),
      ).toEqual([]);
    },
  );

  test("one listener serves an l4 and an l7 route side by side", async () => {
    const [l4, l7] = await Promise.all([
      curlVia("raw.test", "/", ["--http1.1"]),
      echoVia("app.test", "/side-by-side", ["--http2"]),
    ]);
    // openssl s_server -www answers with its own status page: TLS reached it untouched.
    expect(l4.exitCode).toBe(0);
    expect(l4.stdout).toContain("s_server");
    expect((JSON.parse(l7.body) as EchoedRequest).path).toBe("/side-by-side");
  });

  test("the connection log line counts the client's bytes both ways", async () => {
    const before = proxy.logs.length;
    await echoVia("app.test", "/counted", ["--http1.1"]);
    const line = await waitForNewLog(before, /msg="connection".* sni=app\.test .*outcome=closed/);
    expect(Number(logField(line, "bytes_up"))).toBeGreaterThan(300);
    expect(Number(logField(line, "bytes_down"))).toBeGreaterThan(300);
  });
});

describe("certificates at start", () => {
  test.each([
    [
      "a missing key file",
      (pair: { cert: string; key: string }) => ({ ...pair, key: "/nonexistent/key.pem" }),
      /tls_key "\/nonexistent\/key\.pem": cannot read: no such file/,
    ],
    [
      "a key that is not the certificate's",
      (pair: { cert: string; key: string }) => ({ ...pair, key: ca.issue("other.test").key }),
      /does not match the certificate/,
    ],
    [
      "a certificate file without PEM",
      (pair: { cert: string; key: string }) => ({ ...pair, cert: pair.key }),
      /tls_cert ".*": no PEM certificate in it/,
    ],
  ])("%s stops the start with exit code 2, naming the path", async (_label, spoil, message) => {
    const dir = tempDir();
    const files = spoil(ca.issue("broken.test"));
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "127.0.0.1:0"

  [[listeners.routes]]
  hostname = "broken.test"
  backend = "127.0.0.1:9"
  mode = "l7"
  tls_cert = "${files.cert}"
  tls_key = "${files.key}"
`,
    );
    const proc = spawn([...mcProxyCommand(), "server", "-c", config], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(exitCode).toBe(2);
    expect(stderr).toContain("route broken.test:");
    expect(stderr).toMatch(message);
  });
});

describe("timeouts and trust at start", () => {
  test("an idle l7 connection is closed after idle_timeout and logged with its bytes", async () => {
    const dir = tempDir();
    const pair = ca.issue("idle.test");
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "127.0.0.1:0"

  [[listeners.routes]]
  hostname = "idle.test"
  backend = "127.0.0.1:${echo.port}"
  mode = "l7"
  tls_cert = "${pair.cert}"
  tls_key = "${pair.key}"

[proxy]
idle_timeout = "1s"
`,
    );
    const idleProxy = await startProxy(config);
    try {
      const idlePort = idleProxy.port("127.0.0.1:0");
      const socket = tlsConnect({
        host: "127.0.0.1",
        port: idlePort,
        servername: "idle.test",
        ca: readFileSync(ca.cert),
        ALPNProtocols: ["http/1.1"],
      });
      // The sweep resets the connection: the client sees ECONNRESET (or just the close).
      const closed = new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.once("error", () => resolve());
      });
      const firstChunk = new Promise<string>((resolve) =>
        socket.once("data", (chunk: Buffer) => resolve(chunk.toString())),
      );
      socket.write("GET /idle HTTP/1.1\r\nHost: idle.test\r\n\r\n");
      expect(await firstChunk).toStartWith("HTTP/1.1 200");
      const started = performance.now();
      await closed;
      // Kept open by keep-alive, then closed by the sweep once 1 s passed without a byte.
      expect(performance.now() - started).toBeGreaterThan(900);
      const line = await idleProxy.waitForLog(/msg="connection".* outcome=idle_timeout/);
      expect(Number(logField(line, "bytes_up"))).toBeGreaterThan(0);
      expect(Number(logField(line, "bytes_down"))).toBeGreaterThan(0);
    } finally {
      await idleProxy.stop();
    }
  });

  test("an unusable [proxy] backend_ca stops the start with exit code 2, naming the path", async () => {
    const dir = tempDir();
    const notPem = writeFile(dir, "not-a-ca.pem", "hello\n");
    const config = writeProxyConfig(
      dir,
      `[[listeners]]
addr = "127.0.0.1:0"

[proxy]
backend_ca = "${notPem}"
`,
    );
    const proc = spawn([...mcProxyCommand(), "server", "-c", config], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(exitCode).toBe(2);
    expect(stderr).toContain(
      `proxy.backend_ca ${JSON.stringify(notPem)}: no PEM certificate in it`,
    );
  });
});

/** The first log line after index `from` matching `pattern` (earlier requests logged alike). */
async function waitForNewLog(from: number, pattern: RegExp): Promise<string> {
  const line = await eventually(
    () => proxy.logs.slice(from).find((candidate) => pattern.test(candidate)),
    (found) => found !== undefined,
  );
  if (line) return line;
  throw new Error(`no log line matching ${pattern} after line ${from}:\n${proxy.logs.join("\n")}`);
}
