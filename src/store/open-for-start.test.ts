import { Database } from "bun:sqlite";
import { afterEach, beforeEach, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Store } from "./store.ts";
import { listener, makeConfig, makeTempDir, route } from "./testing.ts";

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
});
afterEach(() => cleanup());

function contents(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    return JSON.stringify([
      db.query("PRAGMA user_version").get(),
      db.query("SELECT listener_addr, hostname, backend FROM routes ORDER BY hostname").all(),
      db.query("SELECT type, value FROM firewall_rules").all(),
      db.query("SELECT key FROM meta ORDER BY key").all(),
    ]);
  } finally {
    db.close();
  }
}

test("abort on a new database removes every file it made", () => {
  const path = join(dir, "mc-proxy.db");
  const pending = Store.openForStart(path);
  pending.store.reconcileWithConfig(
    makeConfig(path, [listener(":443", [route("a.example.com", "127.0.0.1:1")])]),
  );
  pending.abort();
  expect(readdirSync(dir)).toEqual([]);
});

test("abort on an existing database rolls back seeding of a new listener; commit keeps it", () => {
  const path = join(dir, "mc-proxy.db");
  const first = makeConfig(path, [listener(":443", [route("a.example.com", "127.0.0.1:1")])]);
  const seeded = Store.open(path);
  seeded.reconcileWithConfig(first);
  seeded.close();
  const before = contents(path);
  const second = makeConfig(path, [
    ...first.listeners,
    listener(":8443", [route("b.example.com", "127.0.0.1:2")]),
  ]);
  const aborted = Store.openForStart(path);
  expect(aborted.store.reconcileWithConfig(second).addedListeners).toEqual([":8443"]);
  aborted.abort();
  expect(contents(path)).toBe(before);
  const committed = Store.openForStart(path);
  committed.store.reconcileWithConfig(second);
  committed.commit();
  committed.store.close();
  expect(contents(path)).toContain("b.example.com");
});
