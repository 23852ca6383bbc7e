// kill -9 during `mc-proxy snapshot` (issue 23, item 10): the final name never holds a partial copy.
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Store } from "../src/store/store.ts";
import { mcProxyCommand, tempDir, writeProxyConfig } from "./helpers/proxy.ts";

let dir: string;
let config: string;
let snapDir: string;

beforeAll(() => {
  dir = tempDir();
  config = writeProxyConfig(dir, `[[listeners]]\naddr = "127.0.0.1:0"\n`);
  const dbPath = join(dir, "mc-proxy.db");
  Store.open(dbPath).close();
  // 96 MiB of rows: VACUUM INTO takes long enough to be caught half-way.
  const db = new Database(dbPath);
  db.run("CREATE TABLE ballast (b BLOB)");
  const insert = db.prepare("INSERT INTO ballast VALUES (randomblob(1048576))");
  db.transaction(() => {
    for (let i = 0; i < 96; i++) insert.run();
  })();
  db.close();
  snapDir = join(dir, "snaps");
  mkdirSync(snapDir);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function largestFile(directory: string): number {
  let largest = 0;
  for (const name of readdirSync(directory)) {
    try {
      largest = Math.max(largest, statSync(join(directory, name)).size);
    } catch {
      // Gone between readdir and stat.
    }
  }
  return largest;
}

test("SIGKILL while the copy is being written leaves nothing under the final name; the next snapshot works", async () => {
  const destination = join(snapDir, "x.db");
  const child = Bun.spawn([...mcProxyCommand(), "snapshot", "-c", config, "-o", destination], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const deadline = performance.now() + 30_000;
  let caughtAt = 0;
  while (performance.now() < deadline && child.exitCode === null) {
    caughtAt = largestFile(snapDir);
    if (caughtAt > 4 * 1024 * 1024) break;
    await Bun.sleep(2);
  }
  child.kill("SIGKILL");
  await child.exited;
  // Caught mid-copy (the source is 96 MiB), not after it finished.
  expect(caughtAt).toBeGreaterThan(4 * 1024 * 1024);
  expect(child.signalCode).toBe("SIGKILL");
  expect(existsSync(destination)).toBe(false);

  const again = Bun.spawnSync([...mcProxyCommand(), "snapshot", "-c", config, "-o", destination], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
  });
  expect(again.exitCode).toBe(0);
  expect(again.stdout.toString()).toBe(`${destination}\n`);
  const copy = new Database(destination, { readonly: true });
  try {
    expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    expect(copy.query("SELECT count(*) AS n FROM ballast").get()).toEqual({ n: 96 });
  } finally {
    copy.close();
  }
}, 120_000);
