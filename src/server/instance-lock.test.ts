import { afterEach, expect, test } from "bun:test";
import { InstanceLock, InstanceLockError } from "./instance-lock.ts";

const locks: InstanceLock[] = [];
afterEach(() => {
  for (const lock of locks.splice(0)) lock.release();
});

function newLock(): InstanceLock {
  const lock = new InstanceLock();
  locks.push(lock);
  return lock;
}

const key = `test:${process.pid}:${Math.random()}`;

test("a second holder is refused with the caller's message, until the first releases", () => {
  const first = newLock();
  first.take(key, "unused");
  expect(() => newLock().take(key, "port 443 is in use")).toThrow(
    new InstanceLockError("port 443 is in use"),
  );
  first.release();
  newLock().take(key, "unused");
});

test("another process is refused too; its lock goes when it is killed", async () => {
  const script = `import { InstanceLock } from "${import.meta.dir}/instance-lock.ts";
new InstanceLock().take(${JSON.stringify(key)}, "x"); console.log("held"); setInterval(() => {}, 1000);`;
  const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe" });
  try {
    const reader = proc.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("held\n");
    expect(() => newLock().take(key, "taken")).toThrow("taken");
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
  newLock().take(key, "unused");
});
