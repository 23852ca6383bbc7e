// The store and several backends per route: migration 2 from a 0.1.0 database, round trips.
import { Database } from "bun:sqlite";
import { afterEach, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { MIGRATIONS, migrate, SCHEMA_VERSION } from "./migrations.ts";
import { Store } from "./store.ts";
import { makeTempDir, route } from "./testing.ts";

let dir: string;
let cleanup: () => void;
let dbPath: string;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  dbPath = join(dir, "mc-proxy.db");
});
afterEach(() => cleanup());

/**
 * A database as mc-proxy 0.1.0 left it: schema version 1 (its only migration, unchanged since),
 * seeded, with an l4 and an l7 route written by its INSERT statement.
 */
function previousVersionDatabase(): void {
  const db = new Database(dbPath, { create: true, strict: true });
  migrate(db, dbPath, MIGRATIONS.slice(0, 1));
  db.run("INSERT INTO listeners (addr) VALUES (':443')");
  db.run("INSERT INTO meta (key, value) VALUES ('seeded_at', '2026-01-01T00:00:00.000Z')");
  const insert = db.prepare(
    `INSERT INTO routes (listener_addr, hostname, backend, mode, tls_cert, tls_key, backend_tls, send_proxy_protocol)
     VALUES ($listener_addr, $hostname, $backend, $mode, $tls_cert, $tls_key, $backend_tls, $send_proxy_protocol)`,
  );
  insert.run({
    listener_addr: ":443",
    hostname: "metacircular.net",
    backend: "127.0.0.1:28443",
    mode: "l4",
    tls_cert: "",
    tls_key: "",
    backend_tls: 0,
    send_proxy_protocol: 1,
  });
  insert.run({
    listener_addr: ":443",
    hostname: "app.example.com",
    backend: "[::1]:9443",
    mode: "l7",
    tls_cert: "/c.pem",
    tls_key: "/k.pem",
    backend_tls: 1,
    send_proxy_protocol: 0,
  });
  expect(db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(1);
  db.close();
}

test("a 0.1.0 database migrates: each route keeps its one backend, least_connections, no check", () => {
  previousVersionDatabase();
  const store = Store.open(dbPath);
  try {
    expect(store.routes(":443")).toEqual([
      route("app.example.com", "[::1]:9443", {
        mode: "l7",
        tlsCert: "/c.pem",
        tlsKey: "/k.pem",
        backendTls: true,
      }),
      route("metacircular.net", "127.0.0.1:28443", { sendProxyProtocol: true }),
    ]);
  } finally {
    store.close();
  }
  const db = new Database(dbPath, { readonly: true, strict: true });
  try {
    expect(db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version).toBe(
      SCHEMA_VERSION,
    );
    expect(
      db
        .query("SELECT route_id, position, addr, weight FROM route_backends ORDER BY route_id")
        .all(),
    ).toEqual([
      { route_id: 1, position: 0, addr: "127.0.0.1:28443", weight: 1 },
      { route_id: 2, position: 0, addr: "[::1]:9443", weight: 1 },
    ]);
    expect(db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").get()).toEqual({
      integrity_check: "ok",
    });
  } finally {
    db.close();
  }
});

test("several backends, weights, balance and check round-trip; removing the route removes them", () => {
  previousVersionDatabase();
  const store = Store.open(dbPath);
  try {
    const multi = route("multi.example.com", "", {
      backends: [
        { addr: "10.0.0.5:443", weight: 1 },
        { addr: "10.0.0.6:443", weight: 3 },
        { addr: "[2001:db8::7]:443", weight: 1000 },
      ],
      balance: "round_robin",
      healthCheck: "tls",
    });
    expect(multi.backend).toBe("10.0.0.5:443");
    store.addRoute(":443", multi);
    expect(store.routes(":443").find((r) => r.hostname === "multi.example.com")).toEqual(multi);
    expect(
      store
        .allRoutes()
        .get(":443")
        ?.find((r) => r.hostname === "multi.example.com"),
    ).toEqual(multi);
    store.removeRoute(":443", "multi.example.com");
    store.addRoute(":443", {
      ...multi,
      backends: multi.backends.slice(1),
      backend: "10.0.0.6:443",
    });
    expect(store.routes(":443").find((r) => r.hostname === "multi.example.com")?.backends).toEqual(
      multi.backends.slice(1),
    );
  } finally {
    store.close();
  }
  // The old rows of the removed route went with it (ON DELETE CASCADE).
  const db = new Database(dbPath, { readonly: true, strict: true });
  try {
    expect(db.query("SELECT count(*) AS n FROM route_backends").get()).toEqual({ n: 4 });
  } finally {
    db.close();
  }
});
