// Several backends per route with real TLS backends: balancing, failover, health checks, old clients.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { AdminClient } from "../src/client/index.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { curl, freePort, tlsAttempt } from "./helpers/clients.ts";
import {
  logField,
  mcproxyctlCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { type RestartableBackend, startRestartableBackend } from "./helpers/restartable-backend.ts";

const LISTENER = "127.0.0.1:0";
const NAMES = ["b0", "b1", "b2"] as const;

let ca: TestCa;
let admin: CertPair;
let dir: string;
let config: string;
let proxy: RunningProxy;
let port: number;
let client: AdminClient;
let metricsAddr: string;
let grpcAddr: string;
const backends: RestartableBackend[] = [];
/** Ports nothing listens on (the "dead" route's backends). */
const deadAddrs: string[] = [];
/** Accepts TCP and never answers: the kernel completes the handshake, the application hangs. */
let hung: Server;
const hungSockets = new Set<Socket>();
let hungAddr: string;
/**
 * A port whose accept queue is full (python3, listen(0), never accepts): the kernel drops
 * new SYNs, so a dial to it hangs until connect_timeout's share runs out.
 */
let blackhole: { addr: string; close(): Promise<void> };
const queueFillers: Socket[] = [];
/** l7 backends: plain HTTP; the "bad" one fails its health path until told otherwise. */
let httpOk: ReturnType<typeof Bun.serve>;
let httpBad: ReturnType<typeof Bun.serve>;
let badHealthy = false;
const okRequests: string[] = [];

/** By CN (b0, b1, b2) → backend addr. */
function addrOf(name: string): string {
  return backends[NAMES.indexOf(name as (typeof NAMES)[number])]!.addr;
}

/** One TLS handshake through the proxy; the backend's CN, or how it failed. */
async function reach(servername: string): Promise<string> {
  const attempt = await tlsAttempt(port, { servername });
  return attempt.outcome === "secure" ? attempt.peerCommonName! : attempt.outcome;
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** A TLS connection through the proxy that stays open until close(). */
async function hold(servername: string): Promise<{ cn: string; close(): void }> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no handshake with ${servername} within 10 s`));
    }, 10_000);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const cn = String(socket.getPeerCertificate().subject?.CN ?? "");
      resolve({ cn, close: () => socket.destroy() });
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** One sample of /metrics, or undefined. */
async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(",");
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${wanted}}`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** Polls `read` until `check` holds, for at most 10 s (counters move a moment after a client sees the end). */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  let value = await read();
  while (!check(value) && Date.now() < deadline) {
    await Bun.sleep(20);
    value = await read();
  }
  return value;
}

/** Log lines from index `from` on that match every pattern. */
function linesSince(from: number, ...patterns: RegExp[]): string[] {
  return proxy.logs.slice(from).filter((line) => patterns.every((p) => p.test(line)));
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `msg="backend down"` (or up) lines for one route and backend, from index `from` on. */
function stateLines(state: "down" | "up", route: string, backend: string, from = 0): string[] {
  return linesSince(
    from,
    new RegExp(`msg="backend ${state}" `),
    new RegExp(` route=${escaped(route)} backend=${escaped(backend)} `),
  );
}

async function startBlackhole(): Promise<{ addr: string; close(): Promise<void> }> {
  const proc = Bun.spawn(
    [
      "python3",
      "-c",
      [
        "import socket, sys",
        "s = socket.socket()",
        's.bind(("127.0.0.1", 0))',
        "s.listen(0)",
        "print(s.getsockname()[1], flush=True)",
        "sys.stdin.read()",
      ].join("\n"),
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
  );
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  const portText = new TextDecoder().decode(value ?? new Uint8Array()).trim();
  if (!/^\d+$/.test(portText)) {
    proc.kill();
    throw new Error(`blackhole did not start: ${JSON.stringify(portText)}`);
  }
  const holePort = Number(portText);
  // Fill the accept queue (backlog 0 holds one): this connection completes, later SYNs are dropped.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(holePort, "127.0.0.1", () => resolve());
    socket.once("error", reject);
    queueFillers.push(socket);
  });
  const extra = connect(holePort, "127.0.0.1");
  extra.on("error", () => {});
  queueFillers.push(extra);
  return {
    addr: `127.0.0.1:${holePort}`,
    async close() {
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

beforeAll(async () => {
  dir = tempDir("mc-proxy-multi-backend-");
  ca = makeCa("multi-ca", dir);
  admin = ca.issue("admin");
  const grpcCert = ca.issue("localhost", ["localhost"]);
  const webCert = ca.issue("web.test");
  for (const name of NAMES) backends.push(await startRestartableBackend(ca.issue(name)));
  for (let i = 0; i < 3; i++) deadAddrs.push(`127.0.0.1:${await freePort()}`);

  hung = createServer((socket) => {
    hungSockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => hungSockets.delete(socket));
  });
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  hungAddr = `127.0.0.1:${(hung.address() as { port: number }).port}`;
  blackhole = await startBlackhole();

  httpOk = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const path = new URL(request.url).pathname;
      okRequests.push(`${path} ${request.headers.get("host")}`);
      return new Response(path === "/healthz" ? "ok" : "from-ok");
    },
  });
  httpBad = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/healthz") return new Response("no", { status: badHealthy ? 200 : 503 });
      return new Response("from-bad");
    },
  });

  const [b0, b1, b2] = backends.map((backend) => backend.addr);
  metricsAddr = `127.0.0.1:${await freePort()}`;
  grpcAddr = `127.0.0.1:${await freePort()}`;
  config = writeFile(
    dir,
    "mc-proxy.toml",
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
  [[listeners.routes]]
  hostname = "rr.test"
  backends = ["${b0}", "${b1}", { addr = "${b2}", weight = 2 }]
  balance = "round_robin"
  [[listeners.routes]]
  hostname = "lc.test"
  backends = ["${b0}", "${b1}", { addr = "${b2}", weight = 2 }]
  [[listeners.routes]]
  hostname = "failover.test"
  backends = ["${b0}", "${b1}", "${b2}"]
  balance = "round_robin"
  [[listeners.routes]]
  hostname = "dead.test"
  backends = ${JSON.stringify(deadAddrs)}
  [[listeners.routes]]
  hostname = "slow.test"
  backends = ["${blackhole.addr}", "${b0}"]
  balance = "round_robin"
  [[listeners.routes]]
  hostname = "checked.test"
  backends = ["${b0}", "${hungAddr}"]
  balance = "round_robin"
  health_check = "tls"
  [[listeners.routes]]
  hostname = "tcpcheck.test"
  backends = ["${b0}", "${deadAddrs[0]}"]
  health_check = "tcp"
  [[listeners.routes]]
  hostname = "web2.test"
  mode = "l7"
  tls_cert = "${webCert.cert}"
  tls_key = "${webCert.key}"
  backends = ["${deadAddrs[1]}", "127.0.0.1:${httpOk.port}"]
  balance = "round_robin"
  [[listeners.routes]]
  hostname = "web.test"
  mode = "l7"
  tls_cert = "${webCert.cert}"
  tls_key = "${webCert.key}"
  backends = ["127.0.0.1:${httpOk.port}", "127.0.0.1:${httpBad.port}"]
  balance = "round_robin"
  health_check = "http"
  health_check_path = "/healthz"

[grpc]
addr = "${grpcAddr}"
tls_cert = "${grpcCert.cert}"
tls_key = "${grpcCert.key}"
client_ca = "${ca.cert}"
client_cert = "${admin.cert}"
client_key = "${admin.key}"

[metrics]
addr = "${metricsAddr}"

[proxy]
connect_timeout = "3s"
backend_hold_down = "1s"
health_check_interval = "300ms"
health_check_timeout = "500ms"
`,
  );
  proxy = await startProxy(config);
  port = proxy.port(LISTENER);
  client = AdminClient.connect({ addr: grpcAddr, ca: ca.cert, cert: admin.cert, key: admin.key });
}, 60_000);

afterAll(async () => {
  client?.close();
  await proxy?.stop();
  for (const backend of backends) await backend.close();
  for (const socket of hungSockets) socket.destroy();
  for (const socket of queueFillers) socket.destroy();
  await blackhole?.close();
  hung?.close();
  httpOk?.stop(true);
  httpBad?.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

describe("balancing", () => {
  test("round_robin with weights 1,1,2: 40 connections go 10/10/20, and the log names each one's backend", async () => {
    const from = proxy.logs.length;
    const seen: string[] = [];
    for (let i = 0; i < 40; i++) seen.push(await reach("rr.test"));
    expect(countBy(seen)).toEqual({ b0: 10, b1: 10, b2: 20 });
    // Smooth: the weight-2 backend never gets three in a row.
    expect(seen.join(",")).not.toContain("b2,b2,b2");

    const access = await eventually(
      async () => linesSince(from, /msg="connection"/, / route=rr\.test /),
      (lines) => lines.length === 40,
    );
    expect(countBy(access.map((line) => logField(line, "backend")!))).toEqual({
      [addrOf("b0")]: 10,
      [addrOf("b1")]: 10,
      [addrOf("b2")]: 20,
    });
    const stats = await client.stats();
    const route = stats.listeners[0]!.routes.find((r) => r.hostname === "rr.test")!;
    expect(route.backends.map((b) => [b.addr, b.weight, b.up, b.connectionsTotal])).toEqual([
      [addrOf("b0"), 1, true, 10],
      [addrOf("b1"), 1, true, 10],
      [addrOf("b2"), 2, true, 20],
    ]);
  });

  test("least_connections with weights 1,1,2: open connections fill 2/2/4, then freed slots are refilled first", async () => {
    const held: { cn: string; close(): void }[] = [];
    try {
      for (let i = 0; i < 8; i++) held.push(await hold("lc.test"));
      expect(countBy(held.map((h) => h.cn))).toEqual({ b0: 2, b1: 2, b2: 4 });
      expect(
        await metric("mc_proxy_backend_connections_active", {
          listener: LISTENER,
          route: "lc.test",
          backend: addrOf("b2"),
        }),
      ).toBe(4);

      // Close b0's two: it now has the fewest open per weight, so it gets the next two.
      for (const h of held.filter((h) => h.cn === "b0")) h.close();
      await eventually(
        () =>
          metric("mc_proxy_backend_connections_active", {
            listener: LISTENER,
            route: "lc.test",
            backend: addrOf("b0"),
          }),
        (value) => value === 0,
      );
      const next = [await hold("lc.test"), await hold("lc.test")];
      held.push(...next);
      expect(next.map((h) => h.cn)).toEqual(["b0", "b0"]);
    } finally {
      for (const h of held) h.close();
    }
  });
});

describe("failover", () => {
  test("a backend stopped mid-run: no client loses its connection, the backend is marked down once, and used again once it is back", async () => {
    const b1 = backends[1]!;
    const from = proxy.logs.length;
    const seen: string[] = [];
    for (let round = 0; round < 20; round++) {
      if (round === 5) b1.stop();
      // Three at once: the round-robin turn of one of them is b1's.
      seen.push(...(await Promise.all([0, 1, 2].map(() => reach("failover.test")))));
    }
    // Every client got a backend: those whose turn was b1 went on to the next one.
    expect(seen.filter((outcome) => !["b0", "b1", "b2"].includes(outcome))).toEqual([]);
    expect(seen.slice(0, 15).filter((cn) => cn === "b1").length).toBe(5);
    expect(seen.slice(15).filter((cn) => cn === "b1").length).toBe(0);
    expect(seen.length).toBe(60);

    expect(stateLines("down", "failover.test", b1.addr, from).length).toBe(1);
    const down = stateLines("down", "failover.test", b1.addr, from)[0]!;
    expect(logField(down, "cause")).toBe("dial");
    expect(logField(down, "error")).toContain("ECONNREFUSED");
    // No connection failed, so no `dial backend failed` line for this route.
    expect(linesSince(from, /msg="dial backend failed"/, /sni=failover\.test/)).toEqual([]);
    const labels = { listener: LISTENER, route: "failover.test", backend: b1.addr };
    expect(await metric("mc_proxy_backend_up", labels)).toBe(0);
    expect((await metric("mc_proxy_backend_failures_total", labels))!).toBeGreaterThanOrEqual(1);
    const status = await client.status();
    expect(status.backendsDown).toContainEqual({
      listenerAddr: LISTENER,
      hostname: "failover.test",
      backend: b1.addr,
    });
    // The access log names the backend each failed-over connection really used.
    const access = linesSince(from, /msg="connection"/, / route=failover\.test /);
    expect(access.every((line) => logField(line, "outcome") === "closed")).toBe(true);

    // Back on the same port: once its hold-down is over, its turn comes again.
    const upFrom = proxy.logs.length;
    b1.start();
    const deadline = Date.now() + 10_000;
    let reached = false;
    while (!reached && Date.now() < deadline) reached = (await reach("failover.test")) === "b1";
    expect(reached).toBe(true);
    await proxy.waitForLog(
      new RegExp(`msg="backend up" .*route=failover\\.test backend=${escaped(b1.addr)} `),
    );
    expect(stateLines("up", "failover.test", b1.addr, upFrom).length).toBe(1);
    const after: string[] = [];
    for (let i = 0; i < 30; i++) after.push(await reach("failover.test"));
    expect(countBy(after).b1).toBeGreaterThanOrEqual(9);
    expect(await metric("mc_proxy_backend_up", labels)).toBe(1);
    expect(stateLines("down", "failover.test", b1.addr, from).length).toBe(1);
  }, 60_000);

  test("a dial that times out goes to the next backend within connect_timeout", async () => {
    const from = proxy.logs.length;
    const started = performance.now();
    expect(await reach("slow.test")).toBe("b0");
    const tookMs = performance.now() - started;
    // connect_timeout 3s shared by two backends: the first gets 1.5 s, then b0 answers.
    expect(tookMs).toBeGreaterThanOrEqual(1400);
    expect(tookMs).toBeLessThan(3000);
    const down = stateLines("down", "slow.test", blackhole.addr, from);
    expect(down.length).toBe(1);
    expect(logField(down[0]!, "error")).toBe("timed out after 1500ms");
    // Held down now: the next client goes straight to b0.
    const next = performance.now();
    expect(await reach("slow.test")).toBe("b0");
    expect(performance.now() - next).toBeLessThan(1000);
  });

  test("every backend down: the client gets a reset, and one warn line lists each backend tried", async () => {
    for (let round = 0; round < 2; round++) {
      const from = proxy.logs.length;
      expect(await reach("dead.test")).toBe("ECONNRESET");
      const access = await eventually(
        async () => linesSince(from, /msg="connection"/, / route=dead\.test /),
        (lines) => lines.length === 1,
      );
      expect(logField(access[0]!, "outcome")).toBe("dial_failed");
      const dial = linesSince(from, /msg="dial backend failed"/, /sni=dead\.test/);
      expect(dial.length).toBe(1);
      expect(dial[0]).toContain("level=WARN");
      expect(logField(dial[0]!, "backend")!.split(",").sort()).toEqual([...deadAddrs].sort());
      expect(logField(dial[0]!, "tried")).toBe("3");
      const error = logField(dial[0]!, "error")!;
      for (const addr of deadAddrs) expect(error).toContain(`${addr}: ECONNREFUSED`);
      // Marked down once, on the first round only; the second round tries them all anyway
      // (none is up), without new state lines.
      for (const addr of deadAddrs) {
        expect(stateLines("down", "dead.test", addr, from).length).toBe(round === 0 ? 1 : 0);
      }
    }
  });
});

describe("health checks", () => {
  test("tls check: a backend that accepts but never answers is marked down and skipped", async () => {
    const line = await proxy.waitForLog(
      new RegExp(`msg="backend down" .*route=checked\\.test backend=${escaped(hungAddr)} `),
    );
    expect(logField(line, "cause")).toBe("health_check");
    expect(logField(line, "error")).toMatch(/timed out after 500ms/);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await reach("checked.test"));
    expect(seen).toEqual(["b0", "b0", "b0", "b0", "b0", "b0"]);
    expect(stateLines("down", "checked.test", addrOf("b0")).length).toBe(0);
    expect(stateLines("down", "checked.test", hungAddr).length).toBe(1);
  });

  test("tcp check: a port nobody listens on is marked down, the other backend stays up", async () => {
    const line = await proxy.waitForLog(
      new RegExp(`msg="backend down" .*route=tcpcheck\\.test backend=${escaped(deadAddrs[0]!)} `),
    );
    expect(logField(line, "cause")).toBe("health_check");
    expect(logField(line, "error")).toContain("ECONNREFUSED");
    expect(await reach("tcpcheck.test")).toBe("b0");
    expect(stateLines("down", "tcpcheck.test", addrOf("b0")).length).toBe(0);
  });

  test("l7 without checks: a failed dial answers that request 502, the session's next request goes to the other backend", async () => {
    const from = proxy.logs.length;
    const result = await curl([
      "-k",
      "--resolve",
      `web2.test:${port}:127.0.0.1`,
      `https://web2.test:${port}/one`,
      `https://web2.test:${port}/two`,
    ]);
    // Round robin's first turn is the dead backend: 502 for /one, then /two on the same
    // connection (one session) goes to the backend that answers.
    expect(result.stdout).toBe("502 Bad Gateway\nfrom-ok");
    expect(stateLines("down", "web2.test", deadAddrs[1]!, from).length).toBe(1);
    const access = await eventually(
      async () => linesSince(from, /msg="connection"/, / route=web2\.test /),
      (lines) => lines.length === 1,
    );
    expect(logField(access[0]!, "backend")).toBe(`127.0.0.1:${httpOk.port}`);
  });

  test("l7 http check on a path: the backend failing it is skipped, and back once it passes", async () => {
    const badAddr = `127.0.0.1:${httpBad.port}`;
    const line = await proxy.waitForLog(
      new RegExp(`msg="backend down" .*route=web\\.test backend=${escaped(badAddr)} `),
    );
    expect(logField(line, "error")).toBe("GET /healthz: status 503");
    expect(okRequests).toContain("/healthz web.test");
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const result = await curl([
        "-k",
        "--resolve",
        `web.test:${port}:127.0.0.1`,
        `https://web.test:${port}/`,
      ]);
      answers.push(result.stdout);
    }
    expect(answers).toEqual(["from-ok", "from-ok", "from-ok", "from-ok"]);

    badHealthy = true;
    await proxy.waitForLog(
      new RegExp(
        `msg="backend up" .*route=web\\.test backend=${escaped(badAddr)} .*cause=health_check`,
      ),
    );
    const later: string[] = [];
    for (let i = 0; i < 4; i++) {
      const result = await curl([
        "-k",
        "--resolve",
        `web.test:${port}:127.0.0.1`,
        `https://web.test:${port}/`,
      ]);
      later.push(result.stdout);
    }
    expect(later).toContain("from-bad");
  });
});

describe("admin API and CLI", () => {
  /** A client built from the 0.1.0 .proto alone: it knows nothing of backends. */
  function oldClient() {
    const definition = protoLoader.loadSync(
      join(import.meta.dir, "fixtures/proto-0.1.0/mc_proxy/v1/admin.proto"),
      { keepCase: true, longs: Number, enums: String, defaults: true },
    );
    // biome-ignore lint/suspicious/noExplicitAny: a dynamic client has no static type.
    const loaded = grpc.loadPackageDefinition(definition) as any;
    const service = new loaded.mc_proxy.v1.ProxyAdminService(
      grpcAddr.replace("127.0.0.1", "localhost"),
      grpc.credentials.createSsl(
        readFileSync(ca.cert),
        readFileSync(admin.key),
        readFileSync(admin.cert),
      ),
    );
    // biome-ignore lint/suspicious/noExplicitAny: see above.
    const call = (method: string, body: object): Promise<any> =>
      new Promise((resolve, reject) =>
        service[method](body, (error: Error | null, value: unknown) =>
          error ? reject(error) : resolve(value),
        ),
      );
    return { call, close: () => service.close() };
  }

  test("an old client and the RUNBOOK's grpcurl bodies work unchanged", async () => {
    const old = oldClient();
    try {
      const b0 = addrOf("b0");
      // The RUNBOOK bodies, with this test's listener and a backend that exists.
      await old.call("AddRoute", {
        listener_addr: LISTENER,
        route: { hostname: "blog.example.com", backend: b0 },
      });
      const listed = await old.call("ListRoutes", { listener_addr: LISTENER });
      const blog = listed.routes.find(
        (r: { hostname: string }) => r.hostname === "blog.example.com",
      );
      expect(blog).toEqual({
        hostname: "blog.example.com",
        backend: b0,
        mode: "l4",
        tls_cert: "",
        tls_key: "",
        backend_tls: false,
        send_proxy_protocol: false,
      });
      // A multi-backend route reads, for an old client, as its first backend.
      const rr = listed.routes.find((r: { hostname: string }) => r.hostname === "rr.test");
      expect(rr.backend).toBe(b0);
      expect(await reach("blog.example.com")).toBe("b0");
      // The new client sees the same route as one backend of weight 1.
      const routes = (await client.listRoutes(LISTENER))[0]!.routes;
      expect(routes.find((r) => r.hostname === "blog.example.com")).toMatchObject({
        backend: b0,
        backends: [{ addr: b0, weight: 1 }],
        balance: "least_connections",
        healthCheck: "none",
      });
      await old.call("RemoveRoute", { listener_addr: LISTENER, hostname: "blog.example.com" });
      await old.call("GetFirewallRules", {});
      await old.call("AddFirewallRule", {
        rule: { type: "FIREWALL_RULE_TYPE_IP", value: "203.0.113.50" },
      });
      await old.call("RemoveFirewallRule", {
        rule: { type: "FIREWALL_RULE_TYPE_IP", value: "203.0.113.50" },
      });
      const status = await old.call("GetStatus", {});
      expect(status.listeners[0].addr).toBe(LISTENER);
      const stats = await old.call("GetStats", {});
      expect(stats.listeners[0].routes.map((r: { hostname: string }) => r.hostname)).toContain(
        "rr.test",
      );
    } finally {
      old.close();
    }
  });

  test("mcproxyctl routes add --backend A --backend B=3, routes list and explain show them", async () => {
    const run = async (args: string[]) => {
      const proc = Bun.spawn([...mcproxyctlCommand(), ...args], { stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      return { stdout, stderr, code };
    };
    const [b0, b1] = [addrOf("b0"), addrOf("b1")];
    const added = await run([
      "routes",
      "add",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--hostname",
      "multi.test",
      "--backend",
      b0,
      "--backend",
      `${b1}=3`,
      "--balance",
      "round_robin",
      "--health-check",
      "tcp",
    ]);
    expect(added.stderr).toBe("");
    expect(added.stdout).toBe(`added route multi.test -> ${b0}, ${b1} on ${LISTENER}\n`);
    const list = await run(["routes", "list", "-c", config, "--listener", LISTENER]);
    const row = list.stdout.split("\n").find((line) => line.includes("multi.test"))!;
    expect(row.split(/\s+/)).toEqual([
      LISTENER,
      "multi.test",
      `${b0},${b1}=3`,
      "l4",
      "round-robin,check=tcp",
    ]);
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) seen.push(await reach("multi.test"));
    expect(countBy(seen)).toEqual({ b0: 2, b1: 6 });

    const explained = await run([
      "explain",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--sni",
      "multi.test",
      "--client",
      "127.0.0.1",
    ]);
    expect(explained.stdout).toContain(`route:       exact multi.test -> ${b0},${b1}=3 (l4`);
    expect(explained.stdout).toContain(`backends:    ${b0} up, ${b1} up`);
    expect(explained.stdout).toContain("[round_robin, 2 of 2 up]");

    const bad = await run([
      "routes",
      "add",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--hostname",
      "twice.test",
      "--backend",
      b0,
      "--backend",
      b0,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`backends[1] "${b0}": listed twice`);
    const stats = await run(["stats", "-c", config]);
    expect(stats.stdout).toMatch(
      new RegExp(`${escaped(LISTENER)}\\s+dead\\.test\\s+${escaped(deadAddrs[0]!)}\\s+down\\s`),
    );
  });
});
