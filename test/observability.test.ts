// Observability end to end against the real `mc-proxy server`: every end reason counted exactly
// (GetStats, `mcproxyctl stats`), /metrics parsed by the Prometheus client's own parser, and
// Explain compared with what a real connection from the same client then gets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join, resolve } from "node:path";
import { AdminClient } from "../src/client/index.ts";
import { END_REASONS, type EndReason } from "../src/domain/end-reason.ts";
import type {
  BackendSnapshot,
  Explanation,
  StatsSnapshot,
  TrafficCounts,
} from "../src/domain/reports.ts";
import { METRICS } from "../src/metrics/prometheus.ts";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort, tlsAttempt } from "./helpers/clients.ts";
import { type HoldBackend, startHoldBackend } from "./helpers/hold-backend.ts";
import {
  logField,
  mcproxyctlCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { clientHelloFor } from "./helpers/raw.ts";

const GEOIP = resolve(import.meta.dir, "fixtures/geoip/country-a.mmdb"); // .2 RU, .3 CN, .4 DE
const NO_SNI_HELLO = new Uint8Array(
  readFileSync(resolve(import.meta.dir, "fixtures/client-hellos/openssl-tls13-no-sni.bin")),
);
/** The fatal unrecognized_name alert (RFC 8446 §6): what no_sni and no_route clients receive. */
const UNRECOGNIZED_NAME = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];
const PAYLOAD = new Uint8Array(500).fill(0x61);
const REPLY = new Uint8Array(1234).fill(0x62);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function mcproxyctl(args: string[]): Promise<Run> {
  const proc = Bun.spawn([...mcproxyctlCommand(), ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

interface Talk {
  /** "reset" when the proxy sent a RST, "closed" after a FIN. */
  outcome: "reset" | "closed";
  received: Buffer;
}

/**
 * One raw TCP conversation: connect from `localAddress` to `host:port`, write `bytes` (if any),
 * half-close when `end` is set, and collect what comes back until the proxy closes.
 */
async function talk(
  port: number,
  options: { bytes?: Uint8Array[]; end?: boolean; localAddress?: string; host?: string } = {},
): Promise<Talk> {
  const socket = connect({
    host: options.host ?? "127.0.0.1",
    port,
    localAddress: options.localAddress,
    allowHalfOpen: true,
  });
  const chunks: Buffer[] = [];
  return await new Promise<Talk>((resolvePromise, reject) => {
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 15 s from port ${port}`));
    }, 15_000);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET") reset = true;
      else reject(error);
    });
    socket.on("end", () => socket.end());
    socket.on("close", () => {
      clearTimeout(timer);
      resolvePromise({ outcome: reset ? "reset" : "closed", received: Buffer.concat(chunks) });
    });
    socket.once("connect", () => {
      for (const bytes of options.bytes ?? []) socket.write(bytes);
      if (options.end) socket.end();
    });
  });
}

/** A backend that reads until the client's FIN, then answers REPLY and closes. */
async function startReplyBackend(): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("end", () => {
      socket.write(REPLY);
      socket.end();
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, server };
}

function ends(counts: Partial<Record<EndReason, number>>): Record<string, number> {
  const all: Record<string, number> = {};
  for (const reason of END_REASONS) all[reason] = counts[reason] ?? 0;
  return all;
}

/** The one backend of a route, as GetStats reports it. */
function backendAt(
  addr: string,
  connectionsTotal: number,
  failuresTotal = 0,
): { backends: BackendSnapshot[] } {
  return {
    backends: [
      {
        addr,
        weight: 1,
        up: failuresTotal === 0,
        connectionsTotal,
        failuresTotal,
        connectionsActive: 0,
      },
    ],
  };
}

function counts(
  connectionsTotal: number,
  bytesUp: number,
  bytesDown: number,
  byReason: Partial<Record<EndReason, number>>,
): TrafficCounts {
  return { connectionsTotal, connectionsActive: 0, bytesUp, bytesDown, ends: ends(byReason) };
}

/** Polls until `check` passes (the proxy counts a connection's end a moment after the client sees it). */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000;
  let value = await read();
  while (!check(value) && Date.now() < deadline) {
    await Bun.sleep(50);
    value = await read();
  }
  return value;
}

function adminConfig(grpcAddr: string, server: CertPair, ca: TestCa, admin: CertPair): string {
  return `[grpc]
addr = "${grpcAddr}"
tls_cert = "${server.cert}"
tls_key = "${server.key}"
client_ca = "${ca.cert}"
client_cert = "${admin.cert}"
client_key = "${admin.key}"
`;
}

/** The Prometheus text parsed by the official Python client (python3-prometheus-client). */
interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

function parsePrometheus(text: string): ParsedFamily[] {
  const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const script = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": family.name, "type": family.type, "help": family.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]})
print(json.dumps(out))
`;
  const result = Bun.spawnSync([python, "-c", script], {
    stdin: new TextEncoder().encode(text),
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    throw new Error(`prometheus_client parser failed: ${result.stderr.toString()}`);
  }
  return JSON.parse(result.stdout.toString()) as ParsedFamily[];
}

describe("counters: every end reason, exact values", () => {
  const LISTENER = "127.0.0.1:0";
  const PP_LISTENER = "127.0.0.6:0";
  let ca: TestCa;
  let admin: CertPair;
  let reply: { port: number; server: Server };
  let hold: HoldBackend;
  let proxy: RunningProxy;
  let client: AdminClient;
  let config: string;
  let metricsAddr: string;
  let deadAddr: string;
  let hello: { app: Uint8Array; wild: Uint8Array; idle: Uint8Array; dead: Uint8Array };
  let noRoute: { other: Uint8Array; twoLabels: Uint8Array };

  beforeAll(async () => {
    ca = makeCa("obs-ca");
    admin = ca.issue("admin", ["admin"]);
    const server = ca.issue("localhost", ["localhost"]);
    reply = await startReplyBackend();
    hold = await startHoldBackend();
    hello = {
      app: await clientHelloFor("app.test"),
      wild: await clientHelloFor("x.wild.test"),
      idle: await clientHelloFor("idle.test"),
      dead: await clientHelloFor("dead.test"),
    };
    noRoute = {
      other: await clientHelloFor("nothing.test"),
      twoLabels: await clientHelloFor("a.b.wild.test"),
    };
    const dir = tempDir("mc-proxy-observability-");
    const grpcAddr = `127.0.0.1:${await freePort()}`;
    metricsAddr = `127.0.0.1:${await freePort()}`;
    deadAddr = `127.0.0.1:${await freePort()}`;
    config = writeFile(
      dir,
      "mc-proxy.toml",
      `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
max_connections_per_ip = 2
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${reply.port}"
  [[listeners.routes]]
  hostname = "*.wild.test"
  backend = "127.0.0.1:${reply.port}"
  [[listeners.routes]]
  hostname = "idle.test"
  backend = "127.0.0.1:${hold.port}"
  [[listeners.routes]]
  hostname = "dead.test"
  backend = "${deadAddr}"
  [[listeners.routes]]
  hostname = "unused.test"
  backend = "127.0.0.1:${reply.port}"

[[listeners]]
addr = "${PP_LISTENER}"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.7/32"]
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${reply.port}"

[firewall]
geoip_db = "${GEOIP}"
blocked_ips = ["127.0.0.2", "192.0.2.1"]
blocked_cidrs = ["127.0.1.0/24"]
blocked_countries = ["CN"]

[metrics]
addr = "${metricsAddr}"

[proxy]
hello_timeout = "3s"
idle_timeout = "1500ms"

${adminConfig(grpcAddr, server, ca, admin)}`,
    );
    proxy = await startProxy(config);
    client = AdminClient.connect({ addr: grpcAddr, ca: ca.cert, cert: admin.cert, key: admin.key });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await proxy?.stop();
    reply?.server.close();
    hold?.close();
  });

  test("GetStats counts each end reason, bytes and firewall hits exactly", async () => {
    const port = proxy.port(LISTENER);
    const ppPort = proxy.port(PP_LISTENER);

    // blocked ×4 on the listener: ip twice, cidr once, country (127.0.0.3 is CN) once.
    for (const localAddress of ["127.0.0.2", "127.0.0.2", "127.0.1.9", "127.0.0.3"]) {
      expect((await talk(port, { localAddress, bytes: [hello.app] })).outcome).toBe("reset");
    }

    // limit ×1: two silent connections from 127.0.0.20 fill max_connections_per_ip = 2 (and
    // end later by hello_timeout ×2); the third is reset.
    const held = [
      talk(port, { localAddress: "127.0.0.20" }),
      talk(port, { localAddress: "127.0.0.20" }),
    ];
    await eventually(
      () => client.explain({ listenerAddr: LISTENER, sni: "app.test", clientAddr: "127.0.0.20" }),
      (explanation) => explanation.limits.fromClient === 2,
    );
    expect((await talk(port, { localAddress: "127.0.0.20", bytes: [hello.app] })).outcome).toBe(
      "reset",
    );

    // no_sni ×1 and no_route ×2 (an unknown name; two labels under a one-label wildcard).
    for (const bytes of [NO_SNI_HELLO, noRoute.other, noRoute.twoLabels]) {
      const answer = await talk(port, { bytes: [bytes] });
      expect(answer.outcome).toBe("closed");
      expect([...answer.received]).toEqual(UNRECOGNIZED_NAME);
    }

    // bad_hello ×1: not TLS at all.
    const notTls = await talk(port, {
      bytes: [new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")],
    });
    expect(notTls).toEqual({ outcome: "closed", received: Buffer.alloc(0) });

    // hello_timeout ×1 more: half a ClientHello, then silence.
    const partial = talk(port, { localAddress: "127.0.0.21", bytes: [hello.app.subarray(0, 20)] });

    // dial_failed ×1: dead.test's backend port is closed.
    expect((await talk(port, { bytes: [hello.dead] })).outcome).toBe("reset");

    // idle_timeout ×1: piped to a backend that never answers.
    const idle = talk(port, { localAddress: "127.0.0.22", bytes: [hello.idle] });

    // closed ×3: two exact, one wildcard; each sends hello + PAYLOAD and gets REPLY.
    for (const bytes of [hello.app, hello.app, hello.wild]) {
      const answer = await talk(port, { bytes: [bytes, PAYLOAD], end: true });
      expect(answer.outcome).toBe("closed");
      expect(answer.received.length).toBe(REPLY.length);
    }

    // The PROXY protocol listener: not_trusted, bad_proxy_header, blocked (the header's
    // address is the client), closed.
    const header = (source: string) =>
      new TextEncoder().encode(`PROXY TCP4 ${source} 127.0.0.6 40000 443\r\n`);
    expect((await talk(ppPort, { host: "127.0.0.6", bytes: [hello.app] })).outcome).toBe("reset");
    const noHeader = await talk(ppPort, {
      host: "127.0.0.6",
      localAddress: "127.0.0.7",
      bytes: [hello.app],
    });
    expect(noHeader.outcome).toBe("closed");
    const blockedViaHeader = await talk(ppPort, {
      host: "127.0.0.6",
      localAddress: "127.0.0.7",
      bytes: [header("127.0.0.2")],
    });
    expect(blockedViaHeader.outcome).toBe("reset");
    const viaHeader = await talk(ppPort, {
      host: "127.0.0.6",
      localAddress: "127.0.0.7",
      bytes: [header("127.0.0.40"), hello.app, PAYLOAD],
      end: true,
    });
    expect(viaHeader.received.length).toBe(REPLY.length);

    expect((await Promise.all(held)).map((answer) => answer.outcome)).toEqual(["closed", "closed"]);
    expect((await partial).outcome).toBe("closed");
    expect((await idle).outcome).toBe("closed");

    const stats = await eventually(
      () => client.stats(),
      (snapshot) =>
        snapshot.listeners.every((listener) => listener.connectionsActive === 0) &&
        snapshot.listeners[0]!.connectionsTotal === 17,
    );
    const closedUp = 2 * (hello.app.length + PAYLOAD.length) + hello.wild.length + PAYLOAD.length;
    const expected: StatsSnapshot = {
      listeners: [
        {
          addr: LISTENER,
          ...counts(17, closedUp + hello.idle.length, 3 * REPLY.length, {
            blocked: 4,
            limit: 1,
            no_sni: 1,
            no_route: 2,
            bad_hello: 1,
            hello_timeout: 3,
            dial_failed: 1,
            idle_timeout: 1,
            closed: 3,
          }),
          routes: [
            {
              hostname: "*.wild.test",
              ...counts(1, hello.wild.length + PAYLOAD.length, REPLY.length, { closed: 1 }),
              ...backendAt(`127.0.0.1:${reply.port}`, 1),
            },
            {
              hostname: "app.test",
              ...counts(2, 2 * (hello.app.length + PAYLOAD.length), 2 * REPLY.length, {
                closed: 2,
              }),
              ...backendAt(`127.0.0.1:${reply.port}`, 2),
            },
            {
              hostname: "dead.test",
              ...counts(1, 0, 0, { dial_failed: 1 }),
              ...backendAt(deadAddr, 0, 1),
            },
            {
              hostname: "idle.test",
              ...counts(1, hello.idle.length, 0, { idle_timeout: 1 }),
              ...backendAt(`127.0.0.1:${hold.port}`, 1),
            },
            {
              hostname: "unused.test",
              ...counts(0, 0, 0, {}),
              ...backendAt(`127.0.0.1:${reply.port}`, 0),
            },
          ],
        },
        {
          addr: PP_LISTENER,
          // The PROXY header is the balancer's, not the client's: it is not forwarded or counted.
          ...counts(4, hello.app.length + PAYLOAD.length, REPLY.length, {
            not_trusted: 1,
            bad_proxy_header: 1,
            blocked: 1,
            closed: 1,
          }),
          routes: [
            {
              hostname: "app.test",
              ...counts(1, hello.app.length + PAYLOAD.length, REPLY.length, { closed: 1 }),
              ...backendAt(`127.0.0.1:${reply.port}`, 1),
            },
          ],
        },
      ],
      firewallHits: [
        { rule: { type: "cidr", value: "127.0.1.0/24" }, hits: 1 },
        { rule: { type: "country", value: "CN" }, hits: 1 },
        { rule: { type: "ip", value: "127.0.0.2" }, hits: 3 },
        { rule: { type: "ip", value: "192.0.2.1" }, hits: 0 },
      ],
    };
    expect(stats).toEqual(expected);

    // Every connection logged one access line, and its fields agree with the counters.
    const lines = proxy.logs.filter((line) => line.includes('msg="connection"'));
    expect(lines.length).toBe(21);
    const outcomes: Record<string, number> = {};
    for (const line of lines) {
      const outcome = logField(line, "outcome")!;
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    const totals = ends({});
    for (const listener of expected.listeners) {
      for (const [reason, count] of Object.entries(listener.ends)) totals[reason]! += count;
    }
    expect(outcomes).toEqual(Object.fromEntries(Object.entries(totals).filter(([, n]) => n > 0)));
    const wildLine = lines.find((line) => logField(line, "route") === "*.wild.test")!;
    expect(logField(wildLine, "sni")).toBe("x.wild.test");
    expect(logField(wildLine, "backend")).toBe(`127.0.0.1:${reply.port}`);
    expect(logField(wildLine, "listener")).toBe(LISTENER);
    expect(logField(wildLine, "bytes_up")).toBe(String(hello.wild.length + PAYLOAD.length));
    expect(logField(wildLine, "bytes_down")).toBe(String(REPLY.length));
    expect(logField(wildLine, "duration_ms")).toMatch(/^\d+$/);
    expect(logField(wildLine, "client")).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test("/metrics parses with the Prometheus client's parser and agrees with GetStats", async () => {
    const stats = await client.stats();
    const response = await fetch(`http://${metricsAddr}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheus(await response.text());

    // Every documented family is there once, with its type and help string.
    const documented = Object.values(METRICS).map(([name, type, help]) => ({
      // The parser names a counter family without its _total suffix.
      name: type === "counter" ? name.replace(/_total$/, "") : name,
      type,
      help,
    }));
    expect(families.map(({ name, type, help }) => ({ name, type, help }))).toEqual(documented);

    const value = (name: string, labels: Record<string, string>): number | undefined =>
      families
        .flatMap((family) => family.samples)
        .find(
          (sample) =>
            sample.name === name &&
            Object.keys(labels).length === Object.keys(sample.labels).length &&
            Object.entries(labels).every(([key, v]) => sample.labels[key] === v),
        )?.value;

    let samples = 0;
    const check = (name: string, labels: Record<string, string>, expected: number) => {
      expect({ name, labels, value: value(name, labels) }).toEqual({
        name,
        labels,
        value: expected,
      });
      samples++;
    };
    for (const listener of stats.listeners) {
      const labels = { listener: listener.addr };
      check("mc_proxy_connections_total", labels, listener.connectionsTotal);
      check("mc_proxy_connections_active", labels, listener.connectionsActive);
      check("mc_proxy_bytes_total", { ...labels, direction: "up" }, listener.bytesUp);
      check("mc_proxy_bytes_total", { ...labels, direction: "down" }, listener.bytesDown);
      for (const [reason, count] of Object.entries(listener.ends)) {
        check("mc_proxy_connection_ends_total", { ...labels, reason }, count);
      }
      for (const route of listener.routes) {
        const routeLabels = { listener: listener.addr, route: route.hostname };
        check("mc_proxy_route_connections_total", routeLabels, route.connectionsTotal);
        check("mc_proxy_route_connections_active", routeLabels, route.connectionsActive);
        check("mc_proxy_route_bytes_total", { ...routeLabels, direction: "up" }, route.bytesUp);
        check("mc_proxy_route_bytes_total", { ...routeLabels, direction: "down" }, route.bytesDown);
        for (const [reason, count] of Object.entries(route.ends)) {
          check("mc_proxy_route_connection_ends_total", { ...routeLabels, reason }, count);
        }
        for (const backend of route.backends) {
          const backendLabels = { ...routeLabels, backend: backend.addr };
          check("mc_proxy_backend_up", backendLabels, backend.up ? 1 : 0);
          check("mc_proxy_backend_connections_total", backendLabels, backend.connectionsTotal);
          check("mc_proxy_backend_failures_total", backendLabels, backend.failuresTotal);
          check("mc_proxy_backend_connections_active", backendLabels, backend.connectionsActive);
        }
      }
    }
    for (const { rule, hits } of stats.firewallHits) {
      check("mc_proxy_firewall_hits_total", { type: rule.type, rule: rule.value }, hits);
    }
    // Nothing but what GetStats reports (and the two process gauges).
    expect(families.reduce((sum, family) => sum + family.samples.length, 0)).toBe(samples + 2);
    const info = families.find((family) => family.name === "mc_proxy_build_info")!;
    expect(info.samples).toEqual([
      { name: "mc_proxy_build_info", labels: { version: expect.any(String) }, value: 1 },
    ]);
    const started = families.find((family) => family.name === "mc_proxy_start_time_seconds")!;
    expect(Math.abs(started.samples[0]!.value - Date.now() / 1000)).toBeLessThan(120);
  });

  test("RUNBOOK.md documents every metric with its type and help string", () => {
    const runbook = readFileSync(resolve(import.meta.dir, "../RUNBOOK.md"), "utf8");
    const rows = runbook.split("\n").filter((line) => line.startsWith("| `mc_proxy_"));
    const documented = rows.map((line) => {
      const cells = line.split("|").map((cell) => cell.trim());
      return [cells[1]!.replaceAll("`", ""), cells[2], cells[4]];
    });
    expect(documented).toEqual(
      Object.values(METRICS).map(([name, type, help]) => [name, type, help]),
    );
  });

  test("the metrics endpoint serves /metrics only", async () => {
    expect((await fetch(`http://${metricsAddr}/`)).status).toBe(404);
    expect((await fetch(`http://${metricsAddr}/metrics`, { method: "POST" })).status).toBe(405);
    await proxy.waitForLog(new RegExp(`msg="metrics listening" addr=${metricsAddr}`));
  });

  test("`mcproxyctl stats` prints the counters as tables, and --json as the API names them", async () => {
    const stats = await client.stats();
    const table = await mcproxyctl(["stats", "-c", config]);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const [listeners, routes, backends, rules] = table.stdout.trimEnd().split("\n\n");
    const rows = (block: string) => block.split("\n").map((line) => line.split(/\s+/));
    const a = stats.listeners[0]!;
    expect(rows(listeners!)).toEqual([
      ["LISTENER", "TOTAL", "ACTIVE", "BYTES_UP", "BYTES_DOWN", "ENDS"],
      [
        LISTENER,
        "17",
        "0",
        String(a.bytesUp),
        String(a.bytesDown),
        "blocked=4",
        "limit=1",
        "no_sni=1",
        "no_route=2",
        "bad_hello=1",
        "hello_timeout=3",
        "dial_failed=1",
        "idle_timeout=1",
        "closed=3",
      ],
      [
        PP_LISTENER,
        "4",
        "0",
        String(stats.listeners[1]!.bytesUp),
        String(stats.listeners[1]!.bytesDown),
        "blocked=1",
        "not_trusted=1",
        "bad_proxy_header=1",
        "closed=1",
      ],
    ]);
    expect(rows(routes!)[0]).toEqual([
      "LISTENER",
      "ROUTE",
      "TOTAL",
      "ACTIVE",
      "BYTES_UP",
      "BYTES_DOWN",
      "ENDS",
    ]);
    expect(rows(routes!).slice(1)).toContainEqual([
      LISTENER,
      "dead.test",
      "1",
      "0",
      "0",
      "0",
      "dial_failed=1",
    ]);
    expect(rows(routes!).slice(1)).toContainEqual([
      LISTENER,
      "unused.test",
      "0",
      "0",
      "0",
      "0",
      "-",
    ]);
    expect(rows(routes!).length).toBe(1 + 6);
    expect(rows(backends!)[0]).toEqual([
      "LISTENER",
      "ROUTE",
      "BACKEND",
      "STATE",
      "TOTAL",
      "ACTIVE",
      "FAILURES",
    ]);
    expect(rows(backends!).slice(1)).toContainEqual([
      LISTENER,
      "dead.test",
      deadAddr,
      "down",
      "0",
      "0",
      "1",
    ]);
    expect(rows(backends!).length).toBe(1 + 6);
    expect(rows(rules!)).toEqual([
      ["RULE_TYPE", "RULE", "HITS"],
      ["cidr", "127.0.1.0/24", "1"],
      ["country", "CN", "1"],
      ["ip", "127.0.0.2", "3"],
      ["ip", "192.0.2.1", "0"],
    ]);

    const json = await mcproxyctl(["stats", "--json", "-c", config]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.listeners[0]).toMatchObject({
      addr: LISTENER,
      connections_total: 17,
      connections_active: 0,
      bytes_up: a.bytesUp,
      bytes_down: a.bytesDown,
      ends: a.ends,
    });
    expect(parsed.listeners[0].routes[0]).toEqual({
      hostname: "*.wild.test",
      connections_total: 1,
      connections_active: 0,
      bytes_up: a.routes[0]!.bytesUp,
      bytes_down: REPLY.length,
      ends: ends({ closed: 1 }),
      backends: [
        {
          addr: `127.0.0.1:${reply.port}`,
          weight: 1,
          up: true,
          connections_total: 1,
          failures_total: 0,
          connections_active: 0,
        },
      ],
    });
    expect(parsed.firewall_hits).toContainEqual({
      rule: { type: "ip", value: "127.0.0.2" },
      hits: 3,
    });
  });
});

describe("explain agrees with what a real connection then does", () => {
  const LISTENER = "127.0.0.1:0";
  let ca: TestCa;
  let admin: CertPair;
  let backendApp: OpensslServer;
  let backendWild: OpensslServer;
  let proxy: RunningProxy;
  let client: AdminClient;
  let config: string;
  let port: number;

  beforeAll(async () => {
    ca = makeCa("explain-ca");
    admin = ca.issue("admin", ["admin"]);
    const server = ca.issue("localhost", ["localhost"]);
    backendApp = await startOpensslServer(ca.issue("backend-app"));
    backendWild = await startOpensslServer(ca.issue("backend-wild"));
    const dir = tempDir("mc-proxy-explain-");
    const grpcAddr = `127.0.0.1:${await freePort()}`;
    config = writeFile(
      dir,
      "mc-proxy.toml",
      `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"
max_connections_per_ip = 1
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backendApp.port}"
  [[listeners.routes]]
  hostname = "*.wild.test"
  backend = "127.0.0.1:${backendWild.port}"

[firewall]
geoip_db = "${GEOIP}"
blocked_ips = ["127.0.0.2"]
blocked_countries = ["CN"]

${adminConfig(grpcAddr, server, ca, admin)}`,
    );
    proxy = await startProxy(config);
    port = proxy.port(LISTENER);
    client = AdminClient.connect({ addr: grpcAddr, ca: ca.cert, cert: admin.cert, key: admin.key });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await proxy?.stop();
    backendApp?.stop();
    backendWild?.stop();
  });

  /** The access log line of the next connection from `ip` after log index `from`. */
  async function connectionLine(from: number, ip: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const line = proxy.logs
        .slice(from)
        .find((l) => l.includes('msg="connection"') && logField(l, "client")?.startsWith(`${ip}:`));
      if (line) return line;
      await Bun.sleep(20);
    }
    throw new Error(`no connection line for ${ip}; log:\n${proxy.logs.join("\n")}`);
  }

  const ask = (clientAddr: string, sni: string): Promise<Explanation> =>
    client.explain({ listenerAddr: LISTENER, sni, clientAddr });

  test.each([
    ["a blocked IP", "127.0.0.2", "app.test", "ip", "127.0.0.2", "RU"],
    ["a blocked country (127.0.0.3 is CN)", "127.0.0.3", "app.test", "country", "CN", "CN"],
  ])(
    "%s: blocked with the rule, then the real connection is reset",
    async (_name, ip, sni, type, value, country) => {
      const explanation = await ask(ip, sni);
      expect(explanation.decision).toBe("blocked");
      expect(explanation.firewall).toEqual({
        blocked: true,
        rule: { type: type as "ip" | "country", value },
        country,
      });
      // Every step is still shown: the route this client would have had.
      expect(explanation.route.matched).toBe("exact");
      expect(explanation.explanation).toStartWith(
        `blocked: firewall rule ${type} ${value} matches ${ip}`,
      );

      const from = proxy.logs.length;
      const real = await talk(port, { localAddress: ip, bytes: [await clientHelloFor(sni)] });
      expect(real).toEqual({ outcome: "reset", received: Buffer.alloc(0) });
      const line = await connectionLine(from, ip);
      expect(logField(line, "outcome")).toBe("blocked");
      expect(logField(line, "rule_type")).toBe(type);
      expect(logField(line, "rule")).toBe(value);
    },
  );

  test.each([
    ["an exact route", "app.test", "exact", "app.test", "backend-app"],
    ["a wildcard route", "x.wild.test", "wildcard", "*.wild.test", "backend-wild"],
    [
      "an upper-case SNI with a trailing dot",
      "X.Wild.Test.",
      "wildcard",
      "*.wild.test",
      "backend-wild",
    ],
  ])(
    "%s: forward_l4 to the route's backend, and the real connection reaches it",
    async (_name, sni, matched, hostname, backendCn) => {
      const explanation = await ask("127.0.0.4", sni);
      expect(explanation.decision).toBe("forward_l4");
      expect(explanation.firewall).toEqual({ blocked: false, rule: null, country: "DE" });
      expect(explanation.limits).toEqual({
        maxConnections: 0,
        admitted: 0,
        maxConnectionsPerIp: 1,
        fromClient: 0,
        wouldExceed: false,
      });
      expect(explanation.route.matched).toBe(matched as "exact" | "wildcard");
      expect(explanation.route.route?.hostname).toBe(hostname);
      const backend = explanation.route.route!.backend;

      const from = proxy.logs.length;
      const real = await tlsAttempt(port, { servername: sni, localAddress: "127.0.0.4" });
      expect(real).toEqual({ outcome: "secure", peerCommonName: backendCn });
      const line = await connectionLine(from, "127.0.0.4");
      expect(logField(line, "route")).toBe(hostname);
      expect(logField(line, "backend")).toBe(backend);
    },
  );

  test.each([
    ["no route for the name", "nothing.test", "no_route"],
    ["two labels under a one-label wildcard", "a.b.wild.test", "no_route"],
    ["no SNI", "", "no_sni"],
  ])(
    "%s: %s, and the real connection gets the unrecognized_name alert",
    async (_name, sni, decision) => {
      const explanation = await ask("127.0.0.4", sni);
      expect(explanation.decision).toBe(decision as "no_route" | "no_sni");
      expect(explanation.route).toEqual({ matched: "none", route: null, backends: [] });

      const from = proxy.logs.length;
      const hello = sni === "" ? NO_SNI_HELLO : await clientHelloFor(sni);
      const real = await talk(port, { localAddress: "127.0.0.4", bytes: [hello] });
      expect(real.outcome).toBe("closed");
      expect([...real.received]).toEqual(UNRECOGNIZED_NAME);
      const line = await connectionLine(from, "127.0.0.4");
      expect(logField(line, "outcome")).toBe(decision);
    },
  );

  test("over max_connections_per_ip: limit, and the real connection is reset", async () => {
    const holder = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.5" });
    holder.on("error", () => {});
    try {
      const explanation = await eventually(
        () => ask("127.0.0.5", "app.test"),
        (answer) => answer.limits.fromClient === 1,
      );
      expect(explanation.decision).toBe("limit");
      expect(explanation.limits).toEqual({
        maxConnections: 0,
        admitted: 1,
        maxConnectionsPerIp: 1,
        fromClient: 1,
        wouldExceed: true,
      });
      // Another address is not limited.
      expect((await ask("127.0.0.6", "app.test")).decision).toBe("forward_l4");

      const from = proxy.logs.length;
      const real = await talk(port, {
        localAddress: "127.0.0.5",
        bytes: [await clientHelloFor("app.test")],
      });
      expect(real).toEqual({ outcome: "reset", received: Buffer.alloc(0) });
      const line = await connectionLine(from, "127.0.0.5");
      expect(logField(line, "outcome")).toBe("limit");
    } finally {
      holder.destroy();
    }
  });

  test("explain counts nothing: no firewall hit, no connection", async () => {
    const before = await client.stats();
    await ask("127.0.0.2", "app.test");
    await ask("127.0.0.4", "app.test");
    expect(await client.stats()).toEqual(before);
  });

  test("`mcproxyctl explain` prints each step, and --json the API's fields", async () => {
    const human = await mcproxyctl([
      "explain",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--sni",
      "x.wild.test",
      "--client",
      "127.0.0.3:51000",
    ]);
    expect(human.stderr).toBe("");
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(
      [
        `listener:    ${LISTENER}`,
        "client:      127.0.0.3:51000 (country CN)",
        "sni:         x.wild.test",
        "firewall:    blocked by country CN",
        "limits:      listener 0/unlimited, this client 0/1: within limits",
        `route:       wildcard *.wild.test -> 127.0.0.1:${backendWild.port} (l4)`,
        "decision:    blocked",
        "explanation: blocked: firewall rule country CN matches 127.0.0.3 (country CN); the connection is reset",
        "",
      ].join("\n"),
    );

    const json = await mcproxyctl([
      "explain",
      "--json",
      "-c",
      config,
      "--listener",
      LISTENER,
      "--sni",
      "app.test",
      "--client",
      "127.0.0.4",
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      listener_addr: LISTENER,
      sni: "app.test",
      client_addr: "127.0.0.4",
      decision: "forward_l4",
      explanation: `forward_l4: exact route app.test -> 127.0.0.1:${backendApp.port} (TLS passed through)`,
      firewall: { blocked: false, rule: null, country: "DE" },
      limits: {
        max_connections: 0,
        admitted: 0,
        max_connections_per_ip: 1,
        from_client: 0,
        would_exceed: false,
      },
      route: {
        matched: "exact",
        backends: [
          {
            addr: `127.0.0.1:${backendApp.port}`,
            weight: 1,
            up: true,
            connections_active: 0,
          },
        ],
        route: {
          hostname: "app.test",
          backend: `127.0.0.1:${backendApp.port}`,
          backends: [{ addr: `127.0.0.1:${backendApp.port}`, weight: 1 }],
          balance: "least_connections",
          health_check: "none",
          health_check_path: "",
          mode: "l4",
          tls_cert: "",
          tls_key: "",
          backend_tls: false,
          send_proxy_protocol: false,
        },
      },
    });
  });

  test.each([
    [
      ["--listener", ":9999", "--client", "127.0.0.4"],
      1,
      'Explain: NOT_FOUND: listener_addr ":9999": no such running listener (listeners: "127.0.0.1:0")',
    ],
    [
      ["--listener", LISTENER, "--client", "nope"],
      2,
      'Explain: INVALID_ARGUMENT: client_addr "nope": expected an IP address',
    ],
    [
      ["--listener", LISTENER, "--client", "127.0.0.4", "--sni", "a b"],
      2,
      'Explain: INVALID_ARGUMENT: sni "a b": expected a host name in printable ASCII',
    ],
    [["--client", "127.0.0.4"], 2, "explain: --listener is required"],
    [["--listener", LISTENER], 2, "explain: --client is required"],
  ])("mcproxyctl explain %j exits %i naming the problem", async (args, code, message) => {
    const result = await mcproxyctl(["explain", "-c", config, ...args]);
    expect(result.code).toBe(code);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(message);
  });
});
