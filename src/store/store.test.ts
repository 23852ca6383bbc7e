import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, FirewallRule, RouteSpec } from "../domain/types.ts";
import { createMemoryLogger } from "../log/logger.ts";
import { StoreError } from "./errors.ts";
import { SCHEMA_VERSION } from "./migrations.ts";
import { Store } from "./store.ts";
import { listener, makeConfig, makeTempDir, route } from "./testing.ts";

let dir: string;
let cleanup: () => void;
let dbPath: string;
const open: Store[] = [];

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  dbPath = join(dir, "mc-proxy.db");
});
afterEach(() => {
  for (const store of open.splice(0)) store.close();
  cleanup();
});

function openStore(path = dbPath, options: Parameters<typeof Store.open>[1] = {}): Store {
  const store = Store.open(path, options);
  open.push(store);
  return store;
}

function closeStore(store: Store): void {
  store.close();
  open.splice(open.indexOf(store), 1);
}

/** Everything the store holds, for "changed nothing" comparisons. */
function dump(store: Store): { routes: [string, RouteSpec[]][]; rules: FirewallRule[] } {
  return { routes: [...store.allRoutes()], rules: store.firewallRules() };
}

const seedConfig = (): Config =>
  makeConfig(
    dbPath,
    [
      listener(":443", [
        route("metacircular.net", "127.0.0.1:28443"),
        route("*.metacircular.net", "127.0.0.1:28444", { sendProxyProtocol: true }),
      ]),
      listener("127.0.0.1:8443", [
        route("app.example.com", "[::1]:9443", {
          mode: "l7",
          tlsCert: "/srv/mc-proxy/certs/app.pem",
          tlsKey: "/srv/mc-proxy/certs/app-key.pem",
          backendTls: true,
        }),
      ]),
    ],
    [
      { type: "ip", value: "203.0.113.50" },
      { type: "cidr", value: "198.51.100.0/24" },
      { type: "country", value: "RU" },
    ],
  );

describe("open", () => {
  test("creates the file 0600 in WAL mode at the latest schema, and its -wal/-shm alike", () => {
    openStore();
    for (const suffix of ["", "-wal", "-shm"]) {
      expect(statSync(dbPath + suffix).mode & 0o777).toBe(0o600);
    }
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.query("PRAGMA user_version").get()).toEqual({ user_version: SCHEMA_VERSION });
    expect(raw.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    const tables = raw
      .query<{ name: string }, []>(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
      )
      .all()
      .map((row) => row.name);
    expect(tables).toEqual(["firewall_rules", "listeners", "meta", "route_backends", "routes"]);
    raw.close();
  });

  test("reopening keeps the data and does not migrate again", () => {
    const first = openStore();
    first.reconcileWithConfig(seedConfig());
    const before = dump(first);
    closeStore(first);
    const second = openStore();
    expect(dump(second)).toEqual(before);
    expect(second.reconcileWithConfig(seedConfig())).toEqual({ seeded: false, addedListeners: [] });
  });

  test("an existing file keeps its mode, with a warning when others can read it", () => {
    writeFileSync(dbPath, "");
    chmodSync(dbPath, 0o640);
    const { logger, lines } = createMemoryLogger();
    openStore(dbPath, { logger });
    expect(statSync(dbPath).mode & 0o777).toBe(0o640);
    expect(lines.join("\n")).toContain("mode=0640");
  });

  test.each([
    ["a missing parent directory", () => join(dir, "missing", "mc-proxy.db"), /no such file/],
    [
      "a parent that is a file",
      () => {
        writeFileSync(join(dir, "file"), "x");
        return join(dir, "file", "mc-proxy.db");
      },
      /not a directory/,
    ],
    [
      "a file that is not SQLite",
      () => {
        writeFileSync(dbPath, "this is not a database, just text that is long enough".repeat(20));
        return dbPath;
      },
      /not a database/,
    ],
  ])("%s is an io error naming the path and the user", (_name, makePath, reason) => {
    const path = makePath();
    const error = catchError(() => openStore(path));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe("io");
    expect((error as StoreError).message).toContain(path);
    expect((error as StoreError).message).toContain(`uid ${process.getuid?.()}`);
    expect((error as StoreError).message).toMatch(reason);
  });

  test("permission denied names the path and the user the process runs as", async () => {
    // The kernel check must be real: as root, drop to nobody for the attempt.
    const locked = join(dir, "locked");
    mkdirSync(locked, { mode: 0o500 });
    chmodSync(dir, 0o755);
    const path = join(locked, "mc-proxy.db");
    const script = `
      import { Store } from ${JSON.stringify(join(import.meta.dir, "store.ts"))};
      try { Store.open(${JSON.stringify(path)}); console.log("opened"); }
      catch (error) { console.log(error.code + " " + error.message); }
    `;
    const asRoot = process.getuid?.() === 0;
    const command = asRoot
      ? [
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          process.execPath,
          "-e",
          script,
        ]
      : [process.execPath, "-e", script];
    const child = Bun.spawn(command, { stdout: "pipe", stderr: "inherit" });
    const output = (await new Response(child.stdout).text()).trim();
    expect(await child.exited).toBe(0);
    const uid = asRoot ? 65534 : process.getuid?.();
    expect(output).toStartWith(`io database ${path}: cannot open or create: permission denied`);
    expect(output).toContain(`uid ${uid}`);
    expect(existsSync(path)).toBe(false);
  });

  test("a database with a newer schema is refused, naming both versions", () => {
    const raw = new Database(dbPath, { create: true });
    raw.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const error = catchError(() => openStore());
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe("io");
    expect((error as StoreError).message).toContain(
      `database ${dbPath} has schema version ${SCHEMA_VERSION + 1}, newer than this mc-proxy understands (${SCHEMA_VERSION})`,
    );
  });
});

describe("reconcileWithConfig", () => {
  test("the first start seeds every listener, route and rule", () => {
    const store = openStore();
    const config = seedConfig();
    expect(store.reconcileWithConfig(config, new Date("2026-03-26T22:09:18Z"))).toEqual({
      seeded: true,
      addedListeners: [":443", "127.0.0.1:8443"],
    });
    expect(store.listenerAddrs()).toEqual([":443", "127.0.0.1:8443"]);
    // Ordered by hostname, whatever the TOML order.
    expect(store.routes(":443")).toEqual([
      route("*.metacircular.net", "127.0.0.1:28444", { sendProxyProtocol: true }),
      route("metacircular.net", "127.0.0.1:28443"),
    ]);
    expect(store.routes("127.0.0.1:8443")).toEqual(config.listeners[1]!.routes);
    expect(store.firewallRules()).toEqual([
      { type: "cidr", value: "198.51.100.0/24" },
      { type: "country", value: "RU" },
      { type: "ip", value: "203.0.113.50" },
    ]);
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.query("SELECT value FROM meta WHERE key = 'seeded_at'").get()).toEqual({
      value: "2026-03-26T22:09:18.000Z",
    });
    raw.close();
  });

  test("seeding tolerates one firewall rule listed twice", () => {
    const store = openStore();
    const rule: FirewallRule = { type: "cidr", value: "2001:db8::/32" };
    store.reconcileWithConfig(makeConfig(dbPath, [], [rule, rule]));
    expect(store.firewallRules()).toEqual([rule]);
  });

  // Each row edits the TOML after the first start; `expected` is what the next start changes.
  test.each<[string, (config: Config) => void, { addedListeners: string[]; listeners: string[] }]>([
    [
      "a changed backend",
      (c) => {
        c.listeners[0]!.routes[1]!.backend = "127.0.0.1:9999";
      },
      { addedListeners: [], listeners: [":443", "127.0.0.1:8443"] },
    ],
    [
      "a route added to an existing listener",
      (c) => {
        c.listeners[0]!.routes.push(route("new.metacircular.net", "127.0.0.1:1"));
      },
      { addedListeners: [], listeners: [":443", "127.0.0.1:8443"] },
    ],
    [
      "a route removed from an existing listener",
      (c) => {
        c.listeners[0]!.routes.pop();
      },
      { addedListeners: [], listeners: [":443", "127.0.0.1:8443"] },
    ],
    [
      "a firewall rule removed and another added",
      (c) => {
        c.firewall.rules = [{ type: "ip", value: "192.0.2.1" }];
      },
      { addedListeners: [], listeners: [":443", "127.0.0.1:8443"] },
    ],
    [
      "a listener removed",
      (c) => {
        c.listeners.pop();
      },
      { addedListeners: [], listeners: [":443", "127.0.0.1:8443"] },
    ],
    [
      "a new listener",
      (c) => {
        c.listeners.push(listener("[::1]:9443", [route("b.example.com", "127.0.0.1:2")]));
      },
      { addedListeners: ["[::1]:9443"], listeners: [":443", "127.0.0.1:8443", "[::1]:9443"] },
    ],
  ])("after seeding, %s in the TOML", (_name, edit, expected) => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    // Admin-API changes made while the server ran: these must survive the restart.
    store.addRoute(":443", route("api.metacircular.net", "127.0.0.1:3"));
    store.removeFirewallRule({ type: "country", value: "RU" });
    const before = dump(store);

    const edited = seedConfig();
    edit(edited);
    const result = store.reconcileWithConfig(edited);

    expect(result).toEqual({ seeded: false, addedListeners: expected.addedListeners });
    expect(store.listenerAddrs()).toEqual(expected.listeners);
    expect(store.firewallRules()).toEqual(before.rules);
    for (const [addr, routes] of before.routes) expect(store.routes(addr)).toEqual(routes);
    for (const addr of expected.addedListeners) {
      const seeded = edited.listeners.find((l) => l.addr === addr)!;
      expect(store.routes(addr)).toEqual(seeded.routes);
    }
  });

  test("a database emptied through the API stays empty: seeding happens once", () => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    for (const [addr, routes] of store.allRoutes()) {
      for (const r of routes) store.removeRoute(addr, r.hostname);
    }
    for (const rule of store.firewallRules()) store.removeFirewallRule(rule);
    expect(store.reconcileWithConfig(seedConfig()).seeded).toBe(false);
    expect(dump(store)).toEqual({
      routes: [
        [":443", []],
        ["127.0.0.1:8443", []],
      ],
      rules: [],
    });
  });

  test("deleting the database file re-seeds from the TOML as it is now", () => {
    const first = openStore();
    first.reconcileWithConfig(seedConfig());
    first.addRoute(":443", route("api.metacircular.net", "127.0.0.1:3"));
    closeStore(first);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(dbPath + suffix, { force: true });

    const edited = seedConfig();
    edited.listeners[0]!.routes = [route("only.metacircular.net", "127.0.0.1:4")];
    const second = openStore();
    expect(second.reconcileWithConfig(edited)).toEqual({
      seeded: true,
      addedListeners: [":443", "127.0.0.1:8443"],
    });
    expect(second.routes(":443")).toEqual([route("only.metacircular.net", "127.0.0.1:4")]);
    expect(statSync(dbPath).mode & 0o777).toBe(0o600);
  });

  test("a seed that fails part-way writes nothing, not even seeded_at", () => {
    const store = openStore();
    const bad = seedConfig();
    // Bypasses validation: an l7 route without a certificate breaks a CHECK on the 3rd insert.
    bad.listeners[1]!.routes[0]!.tlsCert = "";
    expect(() => store.reconcileWithConfig(bad)).toThrow(StoreError);
    expect(store.listenerAddrs()).toEqual([]);
    expect(store.firewallRules()).toEqual([]);
    expect(store.reconcileWithConfig(seedConfig()).seeded).toBe(true);
  });
});

describe("mutations", () => {
  test("add and remove a route, and read it back exactly", () => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    const l7 = route("z.example.com", "backend.internal:443", {
      mode: "l7",
      tlsCert: "/c.pem",
      tlsKey: "/k.pem",
      backendTls: true,
      sendProxyProtocol: true,
    });
    store.addRoute(":443", l7);
    expect(store.routes(":443").at(-1)).toEqual(l7);
    expect(store.allRoutes().get(":443")).toHaveLength(3);
    store.removeRoute(":443", "z.example.com");
    expect(store.routes(":443").map((r) => r.hostname)).toEqual([
      "*.metacircular.net",
      "metacircular.net",
    ]);
  });

  test("one hostname may exist on two listeners", () => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    store.addRoute("127.0.0.1:8443", route("metacircular.net", "127.0.0.1:5"));
    expect(store.routes("127.0.0.1:8443").map((r) => r.hostname)).toContain("metacircular.net");
  });

  test("add and remove a firewall rule", () => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    store.addFirewallRule({ type: "cidr", value: "10.0.0.0/8" });
    expect(store.firewallRules()).toContainEqual({ type: "cidr", value: "10.0.0.0/8" });
    store.removeFirewallRule({ type: "cidr", value: "10.0.0.0/8" });
    expect(store.firewallRules()).not.toContainEqual({ type: "cidr", value: "10.0.0.0/8" });
  });

  test.each<[string, (store: Store) => unknown, StoreError["code"], string]>([
    [
      "routes of an unknown listener",
      (s) => s.routes(":1"),
      "not_found",
      'listener ":1" not found',
    ],
    [
      "addRoute on an unknown listener",
      (s) => s.addRoute(":1", route("a.example.com", "127.0.0.1:1")),
      "not_found",
      'listener ":1" not found',
    ],
    [
      "addRoute with a hostname the listener has",
      (s) => s.addRoute(":443", route("metacircular.net", "127.0.0.1:1")),
      "already_exists",
      'route "metacircular.net" already exists on listener ":443"',
    ],
    [
      "removeRoute on an unknown listener",
      (s) => s.removeRoute(":1", "metacircular.net"),
      "not_found",
      'listener ":1" not found',
    ],
    [
      "removeRoute of an unknown hostname",
      (s) => s.removeRoute(":443", "nope.example.com"),
      "not_found",
      'route "nope.example.com" not found on listener ":443"',
    ],
    [
      "addFirewallRule of an existing rule",
      (s) => s.addFirewallRule({ type: "ip", value: "203.0.113.50" }),
      "already_exists",
      "firewall rule ip:203.0.113.50 already exists",
    ],
    [
      "removeFirewallRule of an unknown rule",
      (s) => s.removeFirewallRule({ type: "country", value: "FR" }),
      "not_found",
      "firewall rule country:FR not found",
    ],
    [
      "addRoute breaking a CHECK (l7 without a key)",
      (s) =>
        s.addRoute(":443", route("l7.example.com", "127.0.0.1:1", { mode: "l7", tlsCert: "/c" })),
      "io",
      "add route",
    ],
  ])("%s fails and changes nothing", (_name, act, code, message) => {
    const store = openStore();
    store.reconcileWithConfig(seedConfig());
    const before = dump(store);
    const error = catchError(() => act(store));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    expect((error as StoreError).message).toContain(message);
    expect(dump(store)).toEqual(before);
  });

  test.each<[string, (store: Store) => void]>([
    ["addRoute", (s) => s.addRoute(":443", route("locked.example.com", "127.0.0.1:1"))],
    ["removeRoute", (s) => s.removeRoute(":443", "metacircular.net")],
    ["addFirewallRule", (s) => s.addFirewallRule({ type: "ip", value: "192.0.2.7" })],
    ["removeFirewallRule", (s) => s.removeFirewallRule({ type: "country", value: "RU" })],
  ])("%s that cannot commit (database locked) is an io error and changes nothing", (_n, act) => {
    const store = openStore(dbPath, { busyTimeoutMs: 50 });
    store.reconcileWithConfig(seedConfig());
    const before = dump(store);
    const other = new Database(dbPath);
    other.run("BEGIN IMMEDIATE");
    try {
      const error = catchError(() => act(store));
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe("io");
      expect((error as StoreError).message).toContain("locked");
    } finally {
      other.run("ROLLBACK");
      other.close();
    }
    expect(dump(store)).toEqual(before);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, none was thrown");
}
