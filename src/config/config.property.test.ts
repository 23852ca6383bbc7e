import { expect, test } from "bun:test";
import fc from "fast-check";
import { stringify } from "smol-toml";
import type { Config } from "../domain/types.ts";
import { ConfigError } from "./config-error.ts";
import { parseConfig } from "./parse-config.ts";
import { CONFIG_KEYS } from "./schema.ts";

const NUM_RUNS = Number(process.env.FC_NUM_RUNS) || 200;

/** Either a usable Config or a one-line ConfigError: nothing else may come out. */
function checkOutcome(text: string): void {
  let config: Config;
  try {
    config = parseConfig(text, "/etc/mc-proxy/mc-proxy.toml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const { message, exitCode } = error as ConfigError;
    expect(message).not.toMatch(/[\r\n]/);
    expect(message.length).toBeGreaterThan(0);
    expect(exitCode).toBe(2);
    return;
  }
  // Accepted: the invariants the rest of the program relies on.
  expect(config.listeners.length).toBeGreaterThan(0);
  expect(config.database.path.startsWith("/")).toBe(true);
  for (const listener of config.listeners) {
    const names = listener.routes.map((route) => route.hostname);
    expect(new Set(names).size).toBe(names.length);
    for (const route of listener.routes) expect(route.hostname).toBe(route.hostname.toLowerCase());
  }
  for (const ms of [config.proxy.connectTimeoutMs, config.proxy.idleTimeoutMs]) {
    expect(Number.isInteger(ms) && ms > 0).toBe(true);
  }
}

// Strings that reach past the type checks into the validators.
const interesting = fc.constantFrom(
  "",
  ":443",
  ":0",
  "127.0.0.1:0",
  "[::1]:443",
  "x:99999",
  "localhost:9090",
  "l4",
  "l7",
  "5s",
  "1m30s",
  "0s",
  "25h",
  "10.0.0.0/8",
  "10.0.0.1/8",
  "::ffff:10.0.0.0/104",
  "RU",
  "a.example.com",
  "A.Example.COM.",
  "*.example.com",
  "*.com",
  "a\nb",
  "\u2028",
  "rel/path.pem",
  "/abs/path.pem",
);

// Line breaks inside values are the way a message could grow a second line.
const broken = fc
  .tuple(interesting, fc.constantFrom("\n", "\r\n", "\r", "\u2028"), interesting)
  .map(([a, br, b]) => `${a}${br}${b}`);
const scalar = fc.oneof(
  { weight: 4, arbitrary: interesting },
  { weight: 2, arbitrary: broken },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.date({ noInvalidDate: true }) },
);
const tomlValue = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 }) },
  {
    weight: 1,
    arbitrary: fc.array(fc.dictionary(fc.constantFrom(...CONFIG_KEYS.route), scalar), {
      maxLength: 3,
    }),
  },
);

const allKeys = [...new Set(Object.values(CONFIG_KEYS).flat())];

test("arbitrary text gives a Config or a one-line ConfigError", () => {
  fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 200 }), checkOutcome), {
    numRuns: NUM_RUNS,
  });
});

test("TOML-ish lines built from the config's own headers and keys", () => {
  const header = fc.constantFrom(
    "[database]",
    "[[listeners]]",
    "[[listeners.routes]]",
    "[listeners]",
    "[grpc]",
    "[firewall]",
    "[metrics]",
    "[proxy]",
    "[unknown]",
  );
  const assignment = fc
    .tuple(fc.oneof(fc.constantFrom(...allKeys), fc.string({ maxLength: 6 })), tomlValue)
    .map(([key, value]) => {
      try {
        return stringify({ [key]: value }).trimEnd();
      } catch {
        return `${key} = ${String(value)}`;
      }
    });
  const line = fc.oneof(header, assignment, fc.string({ maxLength: 12 }));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 14 }), (lines) => checkOutcome(lines.join("\n"))),
    { numRuns: NUM_RUNS },
  );
});

// A valid config; each run overwrites or deletes a few known keys with arbitrary values.
function validConfig(): Record<string, Record<string, unknown> | Record<string, unknown>[]> {
  return {
    database: { path: "mc.db" },
    listeners: [
      {
        addr: ":443",
        proxy_protocol: true,
        proxy_protocol_from: ["10.0.0.0/8"],
        max_connections: 10,
        max_connections_per_ip: 2,
        routes: [
          { hostname: "a.example.com", backend: "127.0.0.1:1" },
          {
            hostname: "b.example.com",
            backend: "[::1]:2",
            mode: "l7",
            tls_cert: "c",
            tls_key: "k",
          },
        ],
      },
    ],
    grpc: {
      addr: "127.0.0.1:9090",
      tls_cert: "c",
      tls_key: "k",
      client_cert: "a",
      client_key: "b",
    },
    firewall: { geoip_db: "g", blocked_ips: ["::1"], blocked_countries: ["RU"] },
    metrics: { addr: "127.0.0.1:9102" },
    proxy: { idle_timeout: "1m30s", backend_ca: "ca.pem" },
  };
}

test("a valid config with known keys set to arbitrary values", () => {
  expect(() => checkOutcome(stringify(validConfig()))).not.toThrow();
  expect(parseConfig(stringify(validConfig()), "/c.toml").listeners[0]!.routes).toHaveLength(2);
  const table = fc.constantFrom(
    "root",
    "database",
    "listener",
    "route",
    "grpc",
    "firewall",
    "metrics",
    "proxy",
  ) as fc.Arbitrary<keyof typeof CONFIG_KEYS>;
  const mutation = table.chain((name) =>
    fc.record({
      name: fc.constant(name),
      key: fc.constantFrom(...CONFIG_KEYS[name]),
      value: fc.option(tomlValue, { nil: undefined }),
    }),
  );
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
      const config = validConfig();
      const listener = (config.listeners as Record<string, unknown>[])[0]!;
      const targets: Record<keyof typeof CONFIG_KEYS, Record<string, unknown>> = {
        root: config,
        database: config.database as Record<string, unknown>,
        listener,
        route: (listener.routes as Record<string, unknown>[])[1]!,
        grpc: config.grpc as Record<string, unknown>,
        firewall: config.firewall as Record<string, unknown>,
        metrics: config.metrics as Record<string, unknown>,
        proxy: config.proxy as Record<string, unknown>,
      };
      for (const { name, key, value } of mutations) {
        if (value === undefined) delete targets[name][key];
        else targets[name][key] = value;
      }
      checkOutcome(stringify(config));
    }),
    { numRuns: NUM_RUNS },
  );
});
