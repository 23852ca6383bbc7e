// The firewall with real sockets: clients bound to chosen loopback addresses are reset or served.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join, resolve } from "node:path";
import {
  listenerWithRoute,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import { clientHelloFor, type HoldBackend, rawConnect, startHoldBackend } from "./helpers/tcp.ts";
import { eventually } from "./helpers/wait.ts";

const GEOIP = resolve(import.meta.dir, "fixtures/geoip");
const LISTENER = ":0"; // every interface, IPv4 and IPv6: the ::1 client needs it

/**
 * Connects from `localAddress`, sends a real ClientHello for app.test, and reports how the
 * proxy answered: "reset" (ECONNRESET), "open" (piped: `backend` received the ClientHello),
 * "closed", or "timeout" when none of these came within a generous deadline. Attempts run one
 * at a time, so the backend's byte count grows by this connection's hello only.
 */
async function attempt(
  backend: HoldBackend,
  port: number,
  hello: Uint8Array,
  localAddress: string,
  host = "127.0.0.1",
) {
  const { connect } = await import("node:net");
  const bytesBefore = backend.bytes();
  const socket = connect({ host, port, localAddress });
  let ended: string | null = null;
  // The RST may arrive before or after "connect" fires: both count.
  socket.once("error", (error: NodeJS.ErrnoException) => {
    ended ??= error.code === "ECONNRESET" ? "reset" : (error.code ?? "error");
  });
  socket.once("close", () => {
    ended ??= "closed";
  });
  socket.once("connect", () => socket.write(hello));
  const outcome = await eventually(
    () => ended ?? (backend.bytes() - bytesBefore >= hello.length ? "open" : null),
    (seen) => seen !== null,
  );
  socket.destroy();
  return outcome ?? "timeout";
}

describe("blocking by ip, cidr and country", () => {
  let backend: HoldBackend;
  let proxy: RunningProxy;
  let port: number;
  let hello: Uint8Array;
  let geoip: string;

  beforeAll(async () => {
    backend = await startHoldBackend();
    hello = await clientHelloFor("app.test");
    const dir = tempDir();
    geoip = join(dir, "GeoLite2-Country.mmdb");
    copyFileSync(join(GEOIP, "country-a.mmdb"), geoip);
    const config = writeProxyConfig(
      dir,
      `${listenerWithRoute(LISTENER, "app.test", backend.port)}
[firewall]
geoip_db = "${geoip}"
blocked_ips = ["127.0.0.2"]
blocked_cidrs = ["127.0.1.0/24", "::/127"]
blocked_countries = ["CN"]
`,
    );
    proxy = await startProxy(config);
    port = proxy.port(LISTENER);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    backend?.close();
  });

  test.each([
    ["a blocked IP", "127.0.0.2", "127.0.0.1", "ip", "127.0.0.2"],
    ["a blocked IPv4 CIDR", "127.0.1.9", "127.0.0.1", "cidr", "127.0.1.0/24"],
    ["a blocked IPv6 CIDR", "::1", "::1", "cidr", "::/127"],
    ["a blocked country (127.0.0.3 is CN)", "127.0.0.3", "127.0.0.1", "country", "CN"],
  ])("%s: reset, and the backend sees nothing", async (_name, source, host, ruleType, rule) => {
    const connectionsBefore = backend.connections();
    const bytesBefore = backend.bytes();
    expect(await attempt(backend, port, hello, source, host)).toBe("reset");
    const line = await proxy.waitForLog(
      new RegExp(`outcome=blocked rule_type=${ruleType} rule=${rule.replace(/[.*/]/g, "\\$&")}`),
    );
    expect(line).toContain(`client=${source.includes(":") ? `[${source}]` : source}:`);
    expect(backend.connections()).toBe(connectionsBefore);
    expect(backend.bytes()).toBe(bytesBefore);
  });

  test.each([
    ["127.0.0.1 (no rule)", "127.0.0.1"],
    ["127.0.0.4 (DE)", "127.0.0.4"],
    ["127.0.1.0's neighbour 127.0.2.1", "127.0.2.1"],
  ])("%s is served", async (_name, source) => {
    const before = backend.bytes();
    expect(await attempt(backend, port, hello, source)).toBe("open");
    expect(backend.bytes() - before).toBe(hello.length);
  });
});

describe("SIGHUP moves a client into a blocked country", () => {
  let backend: HoldBackend;
  let proxy: RunningProxy;
  let port: number;
  let hello: Uint8Array;
  let geoip: string;

  beforeAll(async () => {
    backend = await startHoldBackend();
    hello = await clientHelloFor("app.test");
    const dir = tempDir();
    geoip = join(dir, "geo.mmdb");
    copyFileSync(join(GEOIP, "country-a.mmdb"), geoip);
    const config = writeProxyConfig(
      dir,
      `${listenerWithRoute("127.0.0.1:0", "app.test", backend.port)}
[firewall]
geoip_db = "${geoip}"
blocked_countries = ["RU"]
`,
    );
    proxy = await startProxy(config);
    port = proxy.port("127.0.0.1:0");
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    backend?.close();
  });

  test("served before, reset after the reload, still reset after a corrupt file", async () => {
    expect(await attempt(backend, port, hello, "127.0.0.4")).toBe("open"); // DE
    expect(await attempt(backend, port, hello, "127.0.0.2")).toBe("reset"); // RU

    copyFileSync(join(GEOIP, "country-b.mmdb"), geoip); // 127.0.0.4 → RU
    proxy.proc.kill("SIGHUP");
    await proxy.waitForLog(/msg="GeoIP database reloaded"/);
    expect(await attempt(backend, port, hello, "127.0.0.4")).toBe("reset");

    copyFileSync(join(GEOIP, "corrupt.mmdb"), geoip);
    proxy.proc.kill("SIGHUP");
    const error = await proxy.waitForLog(
      /level=ERROR msg="GeoIP reload failed, keeping the previous database"/,
    );
    expect(error).toContain(geoip);
    expect(await attempt(backend, port, hello, "127.0.0.4")).toBe("reset");
    expect(await attempt(backend, port, hello, "127.0.0.1")).toBe("open");
  });
});

describe("connection limits", () => {
  let backend: HoldBackend;
  let proxy: RunningProxy;
  let hello: Uint8Array;

  beforeAll(async () => {
    backend = await startHoldBackend();
    hello = await clientHelloFor("app.test");
    const dir = tempDir();
    const config = writeProxyConfig(
      dir,
      listenerWithRoute("127.0.0.1:0", "app.test", backend.port, "max_connections_per_ip = 2") +
        listenerWithRoute("127.0.0.2:0", "app.test", backend.port, "max_connections = 3"),
    );
    proxy = await startProxy(config);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    backend?.close();
  });

  test("max_connections_per_ip = 2: the third from one address is reset, another address is served", async () => {
    const port = proxy.port("127.0.0.1:0");
    const held: Socket[] = [];
    const connectionsBefore = backend.connections();
    for (let i = 0; i < 2; i++) {
      const socket = await rawConnect(port, "127.0.0.10");
      socket.on("error", () => {});
      socket.write(hello);
      held.push(socket);
    }
    // Both are piped (the backend got them): they hold the address's two slots.
    await eventually(backend.connections, (n) => n >= connectionsBefore + 2);
    expect(await attempt(backend, port, hello, "127.0.0.10")).toBe("reset");
    await proxy.waitForLog(/client=127\.0\.0\.10:\d+ .*outcome=limit/);
    expect(await attempt(backend, port, hello, "127.0.0.11")).toBe("open");
    for (const socket of held) socket.destroy();
    // Wait for the proxy to end both (their access lines), which frees the slots.
    const ends = () =>
      proxy.logs.filter(
        (line) =>
          line.includes('msg="connection"') &&
          line.includes("client=127.0.0.10:") &&
          !line.includes("outcome=limit"),
      ).length;
    await eventually(ends, (n) => n >= 2);
    // Freed slots are reusable.
    expect(await attempt(backend, port, hello, "127.0.0.10")).toBe("open");
  });

  test("max_connections = 3: the fourth from any address is reset", async () => {
    const port = proxy.port("127.0.0.2:0");
    const held: Socket[] = [];
    const connectionsBefore = backend.connections();
    for (const source of ["127.0.0.20", "127.0.0.21", "127.0.0.22"]) {
      const { connect } = await import("node:net");
      const socket = connect({ host: "127.0.0.2", port, localAddress: source });
      socket.on("error", () => {});
      await new Promise((r) => socket.once("connect", r));
      socket.write(hello);
      held.push(socket);
    }
    await eventually(backend.connections, (n) => n >= connectionsBefore + 3);
    expect(await attempt(backend, port, hello, "127.0.0.23", "127.0.0.2")).toBe("reset");
    for (const socket of held) socket.destroy();
  });
});
