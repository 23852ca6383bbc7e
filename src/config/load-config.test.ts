import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";
import { ConfigError } from "./config-error.ts";
import { loadConfig } from "./load-config.ts";
import { CONFIG_KEYS, DEFAULTS } from "./schema.ts";

const EXAMPLE = join(import.meta.dir, "../../mc-proxy.toml.example");
const dir = mkdtempSync(join(tmpdir(), "mc-proxy-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function failure(path: string): ConfigError {
  try {
    loadConfig(path);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig(${path}) did not throw`);
}

test("a file's relative paths resolve against its own directory, not the working directory", () => {
  mkdirSync(join(dir, "etc"));
  const path = join(dir, "etc", "mc.toml");
  writeFileSync(path, `[database]\npath = "data/mc.db"\n[[listeners]]\naddr = ":0"\n`);
  const config = loadConfig(path);
  expect(config.sourcePath).toBe(path);
  expect(config.database.path).toBe(join(dir, "etc", "data", "mc.db"));
});

test("a missing file is a ConfigError naming the path and the reason", () => {
  const path = join(dir, "absent.toml");
  const error = failure(path);
  expect(error.message).toBe(`cannot read config file "${path}": no such file or directory`);
  expect(error.exitCode).toBe(2);
});

test("a directory is a ConfigError naming the path and the reason", () => {
  expect(failure(dir).message).toBe(`cannot read config file "${dir}": is a directory`);
});

test("a file that is not UTF-8 is refused rather than read with replacement characters", () => {
  const path = join(dir, "latin1.toml");
  writeFileSync(path, Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x22, 0xe9, 0x22, 0x0a]));
  expect(failure(path).message).toBe(`config file "${path}": not valid UTF-8`);
});

test("a syntax error in a file gives its line and column on one line", () => {
  const path = join(dir, "broken.toml");
  writeFileSync(path, `[database]\npath = "x"\n\n[[listeners]]\naddr = ":443\n`);
  expect(failure(path).message).toBe(
    `${path}: invalid TOML at line 5, column 13: control characters are not allowed in strings`,
  );
});

test("mc-proxy.toml.example parses", () => {
  const config = loadConfig(EXAMPLE);
  expect(config.database.path).toBe("/srv/mc-proxy/mc-proxy.db");
  expect(config.listeners.map((l) => [l.addr, l.routes.length])).toEqual([
    [":443", 4],
    [":8443", 1],
  ]);
  expect(config.listeners[0]!.routes.map((r) => r.mode)).toEqual(["l4", "l4", "l4", "l7"]);
  expect(config.listeners[0]!.routes[2]!.backends).toEqual([
    { addr: "10.0.0.5:443", weight: 1 },
    { addr: "10.0.0.6:443", weight: 2 },
  ]);
  expect(config.listeners[1]!.proxyProtocolFrom).toEqual(["10.0.0.0/8", "192.0.2.10/32"]);
  expect(config.grpc?.clientCa).toBe("/srv/mc-proxy/certs/ca.pem");
  expect(config.firewall.geoipDb).toBe("/srv/mc-proxy/GeoLite2-Country.mmdb");
  expect(config.metrics).toEqual({ addr: "127.0.0.1:9102" });
});

test("mc-proxy.toml.example writes every key, and shows the [proxy] defaults", async () => {
  type Table = Record<string, unknown>;
  const raw = parse(await Bun.file(EXAMPLE).text()) as Table;
  const keys = (value: unknown) => Object.keys(value as Table);
  const listener = (raw.listeners as Table[])[0]!;
  const seen: Record<keyof typeof CONFIG_KEYS, string[]> = {
    root: keys(raw),
    database: keys(raw.database),
    listener: keys(listener),
    // backend and backends cannot share a route: the keys of the first listener's routes.
    route: [...new Set((listener.routes as Table[]).flatMap(keys))],
    grpc: keys(raw.grpc),
    firewall: keys(raw.firewall),
    metrics: keys(raw.metrics),
    proxy: keys(raw.proxy),
  };
  for (const [table, keys] of Object.entries(CONFIG_KEYS)) {
    expect(seen[table as keyof typeof CONFIG_KEYS].sort()).toEqual([...keys].sort());
  }
  expect(raw.proxy).toEqual(DEFAULTS.proxy);
});
