import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { StoreError } from "./errors.ts";
import { defaultSnapshotPath, snapshotDatabaseFile } from "./snapshot.ts";
import { Store } from "./store.ts";
import { listener, makeConfig, makeTempDir, route } from "./testing.ts";

let dir: string;
let cleanup: () => void;
let dbPath: string;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  dbPath = join(dir, "mc-proxy.db");
});
afterEach(() => cleanup());

function seededStore(): Store {
  const store = Store.open(dbPath);
  store.reconcileWithConfig(
    makeConfig(
      dbPath,
      [
        listener(":443", [
          route("a.example.com", "127.0.0.1:1"),
          route("b.example.com", "127.0.0.1:2"),
        ]),
      ],
      [{ type: "cidr", value: "10.0.0.0/8" }],
    ),
  );
  return store;
}

/** Opens a snapshot as an independent database: integrity, and what it holds. */
function inspect(path: string): { integrity: string; hostnames: string[]; rules: number } {
  const db = new Database(path, { readonly: true });
  try {
    const integrity = db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").get()!;
    const hostnames = db
      .query<{ hostname: string }, []>("SELECT hostname FROM routes ORDER BY id")
      .all()
      .map((row) => row.hostname);
    const rules = db.query<{ n: number }, []>("SELECT count(*) AS n FROM firewall_rules").get()!.n;
    return { integrity: integrity.integrity_check, hostnames, rules };
  } finally {
    db.close();
  }
}

function catchError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (error) {
    if (error instanceof StoreError) return error;
    throw error;
  }
  throw new Error("expected a StoreError, none was thrown");
}

describe("defaultSnapshotPath", () => {
  test.each([
    [
      "/srv/mc-proxy/mc-proxy.db",
      "2026-03-26T22:09:18.999Z",
      "/srv/mc-proxy/backups/mc-proxy-20260326T220918Z.db",
    ],
    [
      "/srv/mc-proxy/mc-proxy.db",
      "2026-01-02T03:04:05Z",
      "/srv/mc-proxy/backups/mc-proxy-20260102T030405Z.db",
    ],
    // A local-time offset in the input still gives the UTC name.
    ["data/x.db", "2026-12-31T23:30:00-02:00", "data/backups/mc-proxy-20270101T013000Z.db"],
  ])("%s at %s → %s", (databasePath, iso, expected) => {
    const path = defaultSnapshotPath(databasePath, new Date(iso));
    expect(path).toBe(expected);
    expect(path).toMatch(/\/backups\/mc-proxy-\d{8}T\d{6}Z\.db$/);
  });
});

describe("snapshot", () => {
  test.each([
    ["beside the database", () => join(dir, "copy.db")],
    ["into the default backups directory, created", () => join(dir, "backups", "copy.db")],
    ["at the default path", () => defaultSnapshotPath(dbPath, new Date())],
  ])("Store.snapshot %s: a whole, private copy", (_name, makeDestination) => {
    const store = seededStore();
    const destination = makeDestination();
    store.snapshot(destination);
    store.close();
    expect(inspect(destination)).toEqual({
      integrity: "ok",
      hostnames: ["a.example.com", "b.example.com"],
      rules: 1,
    });
    expect(statSync(destination).mode & 0o777).toBe(0o600);
  });

  // Issue 23, item 11: only the default backups directory is ever created.
  test.each([
    ["a nested directory under backups", () => join(dir, "backups", "nested", "copy.db")],
    ["a directory chain elsewhere", () => join(dir, "no", "such", "dir", "copy.db")],
  ])("refuses %s that does not exist, and creates nothing", (_name, makeDestination) => {
    const store = seededStore();
    const destination = makeDestination();
    const error = catchError(() => store.snapshot(destination));
    store.close();
    expect(error.code).toBe("io");
    expect(error.message).toContain(`directory ${dirname(destination)} does not exist`);
    expect(existsSync(join(dir, "no"))).toBe(false);
    expect(existsSync(join(dir, "backups", "nested"))).toBe(false);
  });

  test("a directory it creates is 0700", () => {
    const store = seededStore();
    store.snapshot(join(dir, "backups", "copy.db"));
    store.close();
    expect(statSync(join(dir, "backups")).mode & 0o777).toBe(0o700);
  });

  test.each([
    ["a file with content", "keep me"],
    ["an empty file", ""],
  ])("never overwrites %s", (_name, content) => {
    const store = seededStore();
    const destination = join(dir, "taken.db");
    writeFileSync(destination, content);
    const error = catchError(() => store.snapshot(destination));
    store.close();
    expect(error.code).toBe("already_exists");
    expect(error.message).toBe(
      `snapshot ${destination} already exists: refusing to overwrite it (add --force to replace it, or choose another path with -o)`,
    );
    expect(readFileSync(destination, "utf8")).toBe(content);
  });

  test("snapshotDatabaseFile copies without migrating: a newer schema is copied as it is", () => {
    const raw = new Database(dbPath, { create: true });
    raw.run(
      "CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (42); PRAGMA user_version = 99",
    );
    raw.close();
    const destination = join(dir, "copy.db");
    snapshotDatabaseFile(dbPath, destination);
    const copy = new Database(destination, { readonly: true });
    expect(copy.query("PRAGMA user_version").get()).toEqual({ user_version: 99 });
    expect(copy.query("SELECT x FROM future").get()).toEqual({ x: 42 });
    copy.close();
  });

  test("snapshotDatabaseFile of a missing database creates neither database nor snapshot", () => {
    const destination = join(dir, "copy.db");
    const error = catchError(() => snapshotDatabaseFile(dbPath, destination));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain(`database ${dbPath} does not exist`);
    expect(existsSync(dbPath)).toBe(false);
    expect(existsSync(destination)).toBe(false);
  });

  test("a failed copy removes the file it claimed", () => {
    writeFileSync(dbPath, "not a database at all, but long enough to have a header".repeat(20));
    const destination = join(dir, "copy.db");
    const error = catchError(() => snapshotDatabaseFile(dbPath, destination));
    expect(error.code).toBe("io");
    expect(error.message).toContain(`snapshot of ${dbPath} into ${destination} failed`);
    expect(existsSync(destination)).toBe(false);
  });

  test("snapshots taken while another process writes are consistent", async () => {
    seededStore().close();
    // The writer adds w0, w1, w2, … one transaction each, as fast as it can, for 1.5 s.
    const writer = `
      import { Store } from ${JSON.stringify(join(import.meta.dir, "store.ts"))};
      const store = Store.open(${JSON.stringify(dbPath)});
      const base = { backend: "127.0.0.1:9", backends: [{ addr: "127.0.0.1:9", weight: 1 }], balance: "least_connections", healthCheck: "none", healthCheckPath: "", mode: "l4", tlsCert: "", tlsKey: "", backendTls: false, sendProxyProtocol: false };
      let n = 0;
      console.log("ready");
      const end = Date.now() + 1500;
      while (Date.now() < end) store.addRoute(":443", { ...base, hostname: "w" + n++ + ".example.com" });
      store.close();
      console.log(n);
    `;
    const child = Bun.spawn([process.execPath, "-e", writer], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const reader = child.stdout.getReader();
    let output = "";
    while (!output.includes("ready\n")) {
      const chunk = await reader.read();
      if (chunk.done) break;
      output += new TextDecoder().decode(chunk.value);
    }
    expect(output).toContain("ready");

    const counts: number[] = [];
    for (let i = 0; i < 8; i++) {
      await Bun.sleep(100);
      const destination = join(dir, "backups", `during-${i}.db`);
      snapshotDatabaseFile(dbPath, destination);
      const { integrity, hostnames } = inspect(destination);
      expect(integrity).toBe("ok");
      // Consistent = one committed state: the seed, then w0..w(k-1) with no gap.
      const written = hostnames.slice(2);
      expect(written).toEqual(written.map((_h, k) => `w${k}.example.com`));
      counts.push(written.length);
    }
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      output += new TextDecoder().decode(chunk.value);
    }
    expect(await child.exited).toBe(0);
    const total = Number(output.trim().split("\n").at(-1));
    // The copies saw the writer mid-way: growing, never ahead of what it finally wrote.
    expect(counts.some((n) => n > 0 && n < total)).toBe(true);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(inspect(dbPath).hostnames).toHaveLength(total + 2);
  });
});
