// `[proxy] workers = N`: the proxy's semantics hold exactly across worker threads (real
// processes, real sockets; the access log's worker= field proves every worker was reached).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { AdminClient } from "../src/client/admin-client.ts";
import { parseConfig } from "../src/config/parse-config.ts";
import { createMemoryLogger } from "../src/log/logger.ts";
import { startServer } from "../src/server/server.ts";
import { type AdminCerts, makeAdminCerts } from "./admin-support.ts";
import { freePort } from "./helpers/clients.ts";
import {
  logField,
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { clientHelloFor } from "./helpers/tcp.ts";

const OPEN = "127.0.0.1:0"; // no limits: routes added through the API, drain
const LIMITED = "127.0.0.2:0"; // max_connections = 3
const PER_IP = "127.0.0.3:0"; // max_connections_per_ip = 2

/**
 * A backend that holds every connection until released, then answers `answerBytes` and FIN.
 * Counts connections, so a test can wait for "exactly this many got through".
 */
interface HeldBackend {
  port: number;
  connections(): number;
  waitFor(count: number): Promise<void>;
  release(): void;
  stop(): void;
}

function startHeldBackend(answerBytes: number): HeldBackend {
  const held = new Set<{ end(data: Uint8Array): void }>();
  const answer = new Uint8Array(answerBytes).fill(0x61);
  let connections = 0;
  let released = false;
  const waiters: { count: number; resolve: () => void }[] = [];
  const send = (socket: import("bun").Socket<undefined>) => {
    // Written whole or not at all is fine for the sizes used here (≤ 64 KiB).
    socket.write(answer);
    socket.end();
  };
  const server: TCPSocketListener<undefined> = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        connections++;
        for (const waiter of waiters.splice(0)) {
          if (connections >= waiter.count) waiter.resolve();
          else waiters.push(waiter);
        }
        if (released) send(socket);
        else held.add({ end: () => send(socket) });
      },
      data() {},
    },
  });
  return {
    port: server.port,
    connections: () => connections,
    waitFor(count) {
      if (connections >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    release() {
      released = true;
      for (const socket of held) socket.end(new Uint8Array());
      held.clear();
    },
    stop: () => server.stop(true),
  };
}

interface ClientResult {
  /** Bytes received before the end. */
  bytes: number;
  /** "end" (FIN), or the error code (ECONNRESET…). */
  end: string;
}

/** Connects (from `localAddress`), sends a ClientHello for `sni`, reads until the end. */
function helloClient(
  port: number,
  hello: Uint8Array,
  options: { host?: string; localAddress?: string } = {},
): { socket: Socket; done: Promise<ClientResult> } {
  const socket = connect({
    host: options.host ?? "127.0.0.1",
    port,
    localAddress: options.localAddress,
  });
  let bytes = 0;
  const done = new Promise<ClientResult>((resolve) => {
    socket.on("connect", () => socket.write(hello));
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on("end", () => {
      socket.end();
      resolve({ bytes, end: "end" });
    });
    socket.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ bytes, end: error.code ?? error.message }),
    );
    socket.on("close", () => resolve({ bytes, end: "end" }));
  });
  return { socket, done };
}

/** The access-log lines of the listener, and the workers named in them. */
function connectionLines(proxy: RunningProxy, listener: string): string[] {
  return proxy.logs.filter(
    (line) => line.includes('msg="connection"') && logField(line, "listener") === listener,
  );
}

function workersIn(lines: string[]): Set<string> {
  return new Set(lines.map((line) => logField(line, "worker") ?? "none"));
}

async function waitForLines(
  proxy: RunningProxy,
  listener: string,
  filter: (line: string) => boolean,
  count: number,
): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = connectionLines(proxy, listener).filter(filter);
    if (lines.length >= count) return lines;
    if (Date.now() > deadline) {
      throw new Error(`only ${lines.length} of ${count} lines; log:\n${proxy.logs.join("\n")}`);
    }
    await proxy.waitForLog(/msg="connection"/, 200).catch(() => {});
    await Bun.sleep(20);
  }
}

describe.each([2, 4])("workers = %d", (workers) => {
  let certs: AdminCerts;
  let dir: string;
  let held: HeldBackend;
  let answering: HeldBackend;
  let proxy: RunningProxy;
  let admin: AdminClient;
  /** Connections each listener's clients made, for the GetStats check. */
  const made = { [OPEN]: 0, [LIMITED]: 0, [PER_IP]: 0 };

  beforeAll(async () => {
    certs = makeAdminCerts();
    dir = tempDir("mc-proxy-workers-");
    held = startHeldBackend(1024);
    answering = startHeldBackend(16);
    answering.release();
    const config = writeFile(
      dir,
      "mc-proxy.toml",
      `
[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${OPEN}"

[[listeners]]
addr = "${LIMITED}"
max_connections = 3
  [[listeners.routes]]
  hostname = "held.test"
  backend = "127.0.0.1:${held.port}"

[[listeners]]
addr = "${PER_IP}"
max_connections_per_ip = 2
  [[listeners.routes]]
  hostname = "held.test"
  backend = "127.0.0.1:${held.port}"

[grpc]
addr = "127.0.0.1:0"
tls_cert = "${certs.server.cert}"
tls_key = "${certs.server.key}"
client_ca = "${certs.ca}"

[proxy]
workers = ${workers}
`,
    );
    proxy = await startProxy(config);
    const adminLine = await proxy.waitForLog(/msg="admin API listening"/);
    const adminAddr = logField(adminLine, "addr")!;
    admin = AdminClient.connect({
      addr: adminAddr,
      ca: certs.ca,
      cert: certs.client.cert,
      key: certs.client.key,
    });
    expect(await proxy.waitForLog(/msg="mc-proxy started"/)).toContain(`workers=${workers}`);
  }, 30_000);

  afterAll(async () => {
    admin?.close();
    await proxy?.stop();
    held?.stop();
    answering?.stop();
  });

  test("a route added through the API is served by every worker on the next connection", async () => {
    await admin.addRoute(OPEN, { hostname: "new.test", backend: `127.0.0.1:${answering.port}` });
    const hello = await clientHelloFor("new.test");
    const port = proxy.port(OPEN);
    // 16 per worker: SO_REUSEPORT spreads by address hash, so every worker gets some.
    const results = await Promise.all(
      Array.from({ length: 16 * workers }, () => helloClient(port, hello).done),
    );
    made[OPEN] += results.length;
    expect(results.filter((result) => result.bytes === 16).length).toBe(results.length);
    const lines = await waitForLines(
      proxy,
      OPEN,
      (l) => l.includes("route=new.test"),
      results.length,
    );
    expect(lines.every((line) => logField(line, "outcome") === "closed")).toBe(true);
    expect([...workersIn(lines)].sort()).toEqual(
      Array.from({ length: workers }, (_, i) => String(i + 1)),
    );
  });

  test("max_connections = 3 admits exactly 3 across the workers", async () => {
    const hello = await clientHelloFor("held.test");
    const port = proxy.port(LIMITED);
    const before = held.connections();
    const clients = Array.from({ length: 8 * workers }, () =>
      helloClient(port, hello, { host: "127.0.0.2" }),
    );
    made[LIMITED] += clients.length;
    const refused = await waitForLines(
      proxy,
      LIMITED,
      (line) => logField(line, "outcome") === "limit",
      clients.length - 3,
    );
    await held.waitFor(before + 3);
    expect(refused.length).toBe(clients.length - 3);
    expect(held.connections() - before).toBe(3);
    const status = await admin.status();
    expect(status.listeners.find((l) => l.addr === LIMITED)!.activeConnections).toBe(3);
    // The refusals came from more than one worker: the limit is not per worker.
    expect(workersIn(refused).size).toBeGreaterThan(1);
    held.release();
    const results = await Promise.all(clients.map((client) => client.done));
    expect(results.filter((result) => result.bytes === 1024).length).toBe(3);
  });

  test("max_connections_per_ip = 2 holds for each client across the workers", async () => {
    const hello = await clientHelloFor("held.test");
    const port = proxy.port(PER_IP);
    const heldAgain = startHeldBackend(8);
    try {
      await admin.removeRoute(PER_IP, "held.test");
      await admin.addRoute(PER_IP, {
        hostname: "held.test",
        backend: `127.0.0.1:${heldAgain.port}`,
      });
      const clients = ["127.0.0.1", "127.0.0.5"].flatMap((localAddress) =>
        Array.from({ length: 6 * workers }, () =>
          helloClient(port, hello, { host: "127.0.0.3", localAddress }),
        ),
      );
      made[PER_IP] += clients.length;
      const refused = await waitForLines(
        proxy,
        PER_IP,
        (line) => logField(line, "outcome") === "limit",
        clients.length - 4,
      );
      await heldAgain.waitFor(4);
      expect(heldAgain.connections()).toBe(4);
      expect(workersIn(refused).size).toBeGreaterThan(1);
      heldAgain.release();
      const results = await Promise.all(clients.map((client) => client.done));
      expect(results.filter((result) => result.bytes === 8).length).toBe(4);
    } finally {
      heldAgain.stop();
    }
  });

  test("GetStats totals equal what the clients did; active is 0 at rest", async () => {
    // Every connection above has ended (the clients saw their end); the log lines say so too.
    await waitForLines(proxy, LIMITED, () => true, made[LIMITED]);
    await waitForLines(proxy, PER_IP, () => true, made[PER_IP]);
    const stats = await admin.stats();
    const byAddr = new Map(stats.listeners.map((listener) => [listener.addr, listener]));
    expect(byAddr.get(OPEN)!.connectionsTotal).toBe(made[OPEN]);
    expect(byAddr.get(OPEN)!.ends.closed).toBe(made[OPEN]);
    expect(byAddr.get(OPEN)!.bytesDown).toBe(16 * made[OPEN]);
    const route = byAddr.get(OPEN)!.routes.find((r) => r.hostname === "new.test")!;
    expect(route.connectionsTotal).toBe(made[OPEN]);
    expect(byAddr.get(LIMITED)!.connectionsTotal).toBe(made[LIMITED]);
    expect(byAddr.get(LIMITED)!.ends.limit).toBe(made[LIMITED] - 3);
    expect(byAddr.get(PER_IP)!.connectionsTotal).toBe(made[PER_IP]);
    expect(byAddr.get(PER_IP)!.ends.limit).toBe(made[PER_IP] - 4);
    for (const listener of stats.listeners) expect(listener.connectionsActive).toBe(0);
    const status = await admin.status();
    expect(status.totalConnections).toBe(made[OPEN] + made[LIMITED] + made[PER_IP]);
    // Per worker: every worker is listed, and their counts add up to the listeners'.
    expect(status.workers!.map((worker) => worker.worker)).toEqual(
      Array.from({ length: workers }, (_, i) => i + 1),
    );
    expect(status.workers!.reduce((sum, worker) => sum + worker.totalConnections, 0)).toBe(
      status.totalConnections,
    );
    expect(status.workers!.every((worker) => worker.activeConnections === 0)).toBe(true);
    expect(status.workers!.every((worker) => worker.totalConnections > 0)).toBe(true);
  });

  test("SIGTERM drains in-flight transfers on every worker, then exits 0", async () => {
    const draining = startHeldBackend(64 * 1024);
    try {
      await admin.addRoute(OPEN, { hostname: "drain.test", backend: `127.0.0.1:${draining.port}` });
      const hello = await clientHelloFor("drain.test");
      const clients = Array.from({ length: 8 * workers }, () =>
        helloClient(proxy.port(OPEN), hello),
      );
      await draining.waitFor(clients.length);
      proxy.proc.kill("SIGTERM");
      await proxy.waitForLog(/msg="received SIGTERM, shutting down"/);
      draining.release();
      const results = await Promise.all(clients.map((client) => client.done));
      expect(results.map((result) => result.bytes)).toEqual(clients.map(() => 64 * 1024));
      expect(await proxy.exited).toBe(0);
      const lines = connectionLines(proxy, OPEN).filter((l) => l.includes("route=drain.test"));
      expect(lines.length).toBe(clients.length);
      expect(lines.every((line) => logField(line, "outcome") === "closed")).toBe(true);
      expect(workersIn(lines).size).toBe(workers);
      expect(proxy.logs.some((line) => line.includes("shutdown timeout reached"))).toBe(false);
    } finally {
      draining.stop();
    }
  }, 30_000);
});

describe("a second instance", () => {
  test("on the same port is refused: exit 1, naming the listener", async () => {
    const dir = tempDir("mc-proxy-workers-lock-");
    const addr = `127.0.0.1:${await freePort()}`;
    const config = (name: string) =>
      writeFile(
        dir,
        `${name}.toml`,
        `[database]\npath = "${join(dir, `${name}.db`)}"\n\n[[listeners]]\naddr = "${addr}"\n\n[proxy]\nworkers = 4\n`,
      );
    const first = await startProxy(config("first"));
    try {
      const second = Bun.spawn([...mcProxyCommand(), "server", "-c", config("second")], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stderr, code] = await Promise.all([new Response(second.stderr).text(), second.exited]);
      expect(code).toBe(1);
      expect(stderr.trimEnd().split("\n").at(-1)).toBe(
        `mc-proxy: listener "${addr}": address already in use (is another mc-proxy or server running?)`,
      );
      expect(first.proc.exitCode).toBeNull();
    } finally {
      await first.stop();
    }
  }, 30_000);
});

describe("a worker that dies", () => {
  test("is logged and replaced; what it held is given back; new connections succeed", async () => {
    const dir = tempDir("mc-proxy-workers-crash-");
    const held = startHeldBackend(32);
    const { logger, lines } = createMemoryLogger("info");
    const workerLines: string[] = [];
    const config = parseConfig(
      `[database]\npath = "${join(dir, "mc-proxy.db")}"\n\n[[listeners]]\naddr = "127.0.0.1:0"\nmax_connections = 12\n  [[listeners.routes]]\n  hostname = "held.test"\n  backend = "127.0.0.1:${held.port}"\n\n[proxy]\nworkers = 2\n`,
      join(dir, "mc-proxy.toml"),
    );
    const server = await startServer(config, logger, {
      writeWorkerLog: (text) => workerLines.push(...text.trimEnd().split("\n")),
    });
    try {
      const port = server.listeners[0]!.port;
      const hello = await clientHelloFor("held.test");
      const clients = Array.from({ length: 12 }, () => helloClient(port, hello));
      await held.waitFor(12);
      const listenerStatus = () => server.runtime.status().listeners[0]!;
      expect(listenerStatus().activeConnections).toBe(12);

      const ended: ClientResult[] = [];
      for (const client of clients) void client.done.then((result) => ended.push(result));
      expect(server.pool!.kill(1)).toBe(true);
      const exitedLine = await waitUntil(() =>
        lines.find((l) => l.includes('msg="worker exited"')),
      );
      expect(logField(exitedLine, "level")).toBe("ERROR");
      expect(logField(exitedLine, "worker")).toBe("1");
      expect(logField(exitedLine, "cause")).toBe("terminated");
      const startedLine = await waitUntil(() =>
        lines.find((l) => l.includes('msg="worker started"')),
      );
      expect(logField(startedLine, "replaces")).toBe("1");
      expect(logField(startedLine, "worker")).toBe("3");

      // Worker 1's clients lost their connections; the count of those is what ended.
      const lost = server.runtime.listenerStates()[0]!.stats.ends.worker_exited;
      expect(lost).toBeGreaterThan(0);
      expect(lost).toBeLessThan(12);
      await waitUntil(() => (ended.length >= lost ? true : undefined));
      expect(ended.length).toBe(lost);
      expect(listenerStatus().activeConnections).toBe(12 - lost);

      // Its slots were given back: exactly `lost` new connections fit under max_connections.
      const again = Array.from({ length: lost }, () => helloClient(port, hello));
      await held.waitFor(12 + lost);
      expect(listenerStatus().activeConnections).toBe(12);
      const workersSeen = new Set<string>();
      held.release();
      const results = await Promise.all([
        ...clients.map((c) => c.done),
        ...again.map((c) => c.done),
      ]);
      expect(results.filter((result) => result.bytes === 32).length).toBe(12);
      await waitUntil(() =>
        workerLines.filter((l) => l.includes('msg="connection"')).length >= 12 ? true : undefined,
      );
      for (const line of workerLines.filter((l) => l.includes('msg="connection"'))) {
        workersSeen.add(logField(line, "worker")!);
      }
      expect(workersSeen.has("1")).toBe(false); // its lines died with it; the others logged
      expect(server.runtime.listenerStates()[0]!.stats.total).toBe(12 + lost);
    } finally {
      await server.shutdown("SIGTERM");
      held.stop();
    }
  }, 30_000);
});

/** Polls `probe` every 20 ms until it gives a value; fails after 10 s. */
async function waitUntil<T>(probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met within 10 s");
    await Bun.sleep(20);
  }
}

describe("SIGHUP with workers = 4", () => {
  test("reloads GeoIP in every worker; a bad file keeps the new one everywhere", async () => {
    const fixtures = join(import.meta.dir, "fixtures/geoip");
    const dir = tempDir("mc-proxy-workers-geoip-");
    const geoip = join(dir, "geo.mmdb");
    copyFileSync(join(fixtures, "country-a.mmdb"), geoip); // 127.0.0.4 → DE
    const answering = startHeldBackend(4);
    answering.release();
    const config = writeFile(
      dir,
      "mc-proxy.toml",
      `[database]\npath = "${join(dir, "mc-proxy.db")}"\n\n[[listeners]]\naddr = "${OPEN}"\n  [[listeners.routes]]\n  hostname = "app.test"\n  backend = "127.0.0.1:${answering.port}"\n\n[firewall]\ngeoip_db = "${geoip}"\nblocked_countries = ["RU"]\n\n[proxy]\nworkers = 4\n`,
    );
    const proxy = await startProxy(config);
    try {
      const hello = await clientHelloFor("app.test");
      const round = async () => {
        const before = connectionLines(proxy, OPEN).length;
        const results = await Promise.all(
          Array.from(
            { length: 64 },
            () => helloClient(proxy.port(OPEN), hello, { localAddress: "127.0.0.4" }).done,
          ),
        );
        const lines = await waitForLines(proxy, OPEN, () => true, before + results.length);
        return { results, lines: lines.slice(before) };
      };
      const served = await round();
      expect(served.results.every((result) => result.bytes === 4)).toBe(true);
      expect(workersIn(served.lines).size).toBe(4);

      copyFileSync(join(fixtures, "country-b.mmdb"), geoip); // 127.0.0.4 → RU
      proxy.proc.kill("SIGHUP");
      await proxy.waitForLog(/msg="GeoIP database reloaded"/);
      const blocked = await round();
      expect(blocked.results.every((result) => result.bytes === 0)).toBe(true);
      expect(blocked.lines.every((line) => logField(line, "outcome") === "blocked")).toBe(true);
      expect(workersIn(blocked.lines).size).toBe(4);

      copyFileSync(join(fixtures, "corrupt.mmdb"), geoip);
      proxy.proc.kill("SIGHUP");
      await proxy.waitForLog(/msg="GeoIP reload failed, keeping the previous database"/);
      const still = await round();
      expect(still.lines.every((line) => logField(line, "outcome") === "blocked")).toBe(true);
      expect(workersIn(still.lines).size).toBe(4);
    } finally {
      await proxy.stop();
      answering.stop();
    }
  }, 30_000);
});
