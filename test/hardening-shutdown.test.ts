// SIGTERM on a full disk (issue 23, item 14): a failed WAL checkpoint is reported at ERROR.
import { afterEach, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningProxy, startProxy, writeProxyConfig } from "./helpers/proxy.ts";

const ROUTES = 400;

let mountPoint: string | null = null;
let mounted = false;
let proxy: RunningProxy | undefined;

afterEach(async () => {
  await proxy?.stop("SIGKILL");
  proxy = undefined;
  if (mounted) Bun.spawnSync(["umount", "-l", mountPoint!]);
  mounted = false;
  if (mountPoint) rmSync(mountPoint, { recursive: true, force: true });
  mountPoint = null;
});

/** Writes a file until the filesystem says ENOSPC; returns how many bytes fitted. */
function fillDisk(path: string): number {
  const fd = openSync(path, "w");
  const block = Buffer.alloc(4096, 0x55);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
  return written;
}

function routes(): string {
  return Array.from(
    { length: ROUTES },
    (_, i) =>
      `  [[listeners.routes]]\n  hostname = "route-${i}.full-disk.test"\n  backend = "127.0.0.1:${10_000 + i}"\n`,
  ).join("");
}

test("the database on a filesystem that fills up: SIGTERM logs an ERROR for the checkpoint, then stopped", async () => {
  mountPoint = mkdtempSync(join(tmpdir(), "mc-proxy-tmpfs-"));
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint], {
    stderr: "pipe",
  });
  // Needs root (CAP_SYS_ADMIN); the CI container has it.
  expect(mount.stderr.toString()).toBe("");
  expect(mount.exitCode).toBe(0);
  mounted = true;
  const config = writeProxyConfig(mountPoint, `[[listeners]]\naddr = "127.0.0.1:0"\n${routes()}`);
  proxy = await startProxy(config);
  await proxy.waitForLog(/msg="database seeded from config"/);
  // The seed is in the -wal file; the database file itself has yet to grow to hold it.
  const filled = fillDisk(join(mountPoint, "filler"));
  expect(filled).toBeGreaterThan(0);
  const code = await proxy.stop("SIGTERM");
  expect(code).toBe(0);
  const text = proxy.logs.join("\n");
  const error = await proxy.waitForLog(
    /level=ERROR msg="database checkpoint failed at shutdown; committed changes are only in the -wal file"/,
  );
  expect(error).toContain(`path=${join(mountPoint, "mc-proxy.db")}`);
  expect(error).toMatch(/error="[^"]*(full|disk|space)/i);
  expect(text).toMatch(/msg="stopped"/);
}, 60_000);
