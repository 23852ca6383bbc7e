// Parse once (issue 19): each config value is parsed where it enters, and everything past
// that point uses the parsed value (its typed twin), never the text. Each test below gives
// an object whose text and twin disagree, so a consumer that parsed the text again would
// take the other branch and fail the test.
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../src/config/parse-config.ts";
import { validateRoute } from "../src/config/route.ts";
import { ParsedAddress, ParsedBackend, ParsedListener } from "../src/domain/types.ts";
import { parseCidr, parseIp } from "../src/ip/ip.ts";
import { createMemoryLogger } from "../src/log/logger.ts";
import { startMetricsServer } from "../src/metrics/server.ts";
import { startListener } from "../src/net/listener.ts";
import { RouteTable } from "../src/route/route-table.ts";
import { ListenerState } from "../src/runtime/listener-state.ts";
import { Runtime } from "../src/runtime/runtime.ts";
import { Store } from "../src/store/store.ts";
import { tempDir } from "./helpers/proxy.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function config(listenerToml: string, extra = "") {
  const dir = tempDir("mc-proxy-parse-once-");
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const text = `[database]\npath = "${join(dir, "db.sqlite")}"\n${extra}\n[[listeners]]\n${listenerToml}\n`;
  return { dir, config: parseConfig(text, join(dir, "mc-proxy.toml")) };
}

function cidr(text: string) {
  const parsed = parseCidr(text);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.cidr;
}

function ip(text: string) {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(text);
  return parsed;
}

function route(hostname: string, backend: string) {
  const result = validateRoute({ hostname, backend });
  if ("error" in result) throw new Error(result.error);
  return result.route;
}

describe("the config loader keeps what it parsed", () => {
  test("a listener's address, its trusted networks and its routes' backends", () => {
    const { config: parsed } = config(
      `addr = "[::1]:8443"\nproxy_protocol = true\nproxy_protocol_from = ["10.0.0.0/8", "2001:DB8::1"]\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "backend.internal:443"\n`,
      `[metrics]\naddr = ":9102"\n`,
    );
    const listener = ParsedListener.from(parsed.listeners[0]!);
    expect(listener.bind).toEqual({ host: "::1", port: 8443 });
    expect(listener.trustedFrom).toEqual([cidr("10.0.0.0/8"), cidr("2001:db8::1/128")]);
    // The text stays as configured (canonical for the networks): what the Config shows.
    expect(listener.proxyProtocolFrom).toEqual(["10.0.0.0/8", "2001:db8::1/128"]);
    expect(ParsedBackend.from(listener.routes[0]!.backends[0]!).target).toEqual({
      host: "backend.internal",
      port: 443,
    });
    expect(ParsedAddress.from(parsed.metrics!).bind).toEqual({ host: "", port: 9102 });
  });

  test("a copy is only text: asking it for the parsed value throws instead of parsing", () => {
    const { config: parsed } = config(`addr = "127.0.0.1:0"`, `[metrics]\naddr = ":0"\n`);
    const listener = parsed.listeners[0]!;
    expect(() => ParsedListener.from({ ...listener })).toThrow(
      'listener "127.0.0.1:0": not built by the config loader',
    );
    expect(() => ParsedAddress.from({ addr: ":0" })).toThrow(
      'address ":0": not built by the config loader',
    );
    const validated = route("a.test", "127.0.0.1:1");
    const copy = { ...validated, backends: validated.backends.map((backend) => ({ ...backend })) };
    expect(() => new RouteTable([copy])).toThrow("backend 127.0.0.1:1: not built by validateRoute");
  });
});

describe("the runtime and the sockets use the twin, not the text", () => {
  test("isTrustedPeer checks the parsed networks", () => {
    const { config: parsed } = config(
      `addr = "127.0.0.1:0"\nproxy_protocol = true\nproxy_protocol_from = ["10.0.0.0/8"]`,
    );
    const loaded = ParsedListener.from(parsed.listeners[0]!);
    // Text says 10.0.0.0/8, the twin says 192.0.2.0/24: the twin decides.
    const skewed = new ParsedListener(loaded, loaded.bind, [cidr("192.0.2.0/24")]);
    const state = new ListenerState(skewed);
    expect(state.isTrustedPeer(ip("192.0.2.7"))).toBe(true);
    expect(state.isTrustedPeer(ip("10.0.0.1"))).toBe(false);
  });

  test("the route table dials the parsed backend", () => {
    const validated = route("a.test", "10.0.0.1:443");
    const skewed = {
      ...validated,
      backends: [new ParsedBackend("10.0.0.1:443", 1, { host: "127.0.0.1", port: 9 })],
    };
    const member = new RouteTable([skewed]).lookup("a.test")?.route.pool.members[0];
    expect(member?.host).toBe("127.0.0.1");
    expect(member?.port).toBe(9);
  });

  test("a route read back from the store is decoded there, once", () => {
    const { config: parsed } = config(
      `addr = "127.0.0.1:0"\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "[2001:db8::5]:8443"\n`,
    );
    const store = Store.open(parsed.database.path);
    cleanups.unshift(() => store.close());
    store.reconcileWithConfig(parsed);
    const [stored] = store.routes("127.0.0.1:0");
    expect(ParsedBackend.from(stored!.backends[0]!).target).toEqual({
      host: "2001:db8::5",
      port: 8443,
    });
  });

  test("the listener and /metrics bind the parsed address", () => {
    const { config: parsed } = config(`addr = "127.0.0.1:0"`);
    const runtime = new Runtime({
      config: parsed,
      routes: new Map(),
      rules: [],
      geoip: null,
      logger: createMemoryLogger("info").logger,
      version: "0.0.0-test",
    });
    const loaded = ParsedListener.from(parsed.listeners[0]!);
    // The text names port 1 (privileged, never ours); the twin says port 0.
    const skewed = new ParsedListener({ ...loaded, addr: "127.0.0.1:1" }, loaded.bind, []);
    const listener = startListener(new ListenerState(skewed), runtime.env);
    cleanups.unshift(() => listener.stopAccepting());
    expect(listener.port).not.toBe(1);
    expect(listener.port).toBeGreaterThan(0);

    const metrics = startMetricsServer(
      new ParsedAddress("127.0.0.1:1", { host: "127.0.0.1", port: 0 }),
      runtime,
    );
    cleanups.unshift(() => metrics.stop());
    expect(metrics.port).not.toBe(1);
    expect(metrics.port).toBeGreaterThan(0);
  });
});
