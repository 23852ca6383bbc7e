// What tests leave outside their own memory — temporary directories and child processes — is
// registered here, so that it is removed and stopped even when a test fails: preload.ts calls
// cleanupAll() after the last test file and again, synchronously, when the runner exits.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The part of a Bun.Subprocess that cleanup needs. */
export interface ChildProcess {
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signalCode?: number | string | null;
  readonly exited: Promise<number>;
  kill(signal?: number | NodeJS.Signals): void;
}

const dirs = new Set<string>();
const children = new Set<ChildProcess>();

function running(child: ChildProcess): boolean {
  return child.exitCode === null && (child.signalCode ?? null) === null;
}

/** A fresh directory under the temp directory (TMPDIR), removed by cleanupAll at the latest. */
export function tempDir(prefix = "mc-proxy-test-"): string {
  return trackDir(mkdtempSync(join(tmpdir(), prefix)));
}

/** Registers a directory a test made itself, for removal by cleanupAll. */
export function trackDir(dir: string): string {
  dirs.add(dir);
  return dir;
}

/** Removes a registered directory now (a test that wants its disk space back early). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Registers a child process, stopped by cleanupAll if it still runs then. */
export function trackProcess<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.exited.then(
    () => children.delete(child),
    () => children.delete(child),
  );
  return child;
}

/**
 * Stops every registered child that still runs (SIGTERM, SIGKILL after `graceMs`) and removes
 * every registered directory. Returns what it had to clean up (0 and 0 when the tests did it).
 */
export async function cleanupAll(graceMs = 5_000): Promise<{ processes: number; dirs: number }> {
  const left = [...children].filter(running);
  await Promise.all(
    left.map(async (child) => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await child.exited.catch(() => {});
      clearTimeout(timer);
    }),
  );
  children.clear();
  const removed = dirs.size;
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
  return { processes: left.length, dirs: removed };
}

/** The synchronous last resort for process exit: SIGKILL what runs, remove what is left. */
export function cleanupAllSync(): void {
  for (const child of children) if (running(child)) child.kill("SIGKILL");
  children.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

/** Bun.spawn, with the child registered for cleanup (trackProcess). */
export const spawn = ((...args: Parameters<typeof Bun.spawn>) =>
  trackProcess(Bun.spawn(...args))) as typeof Bun.spawn;
