// The bench's C helpers: built with gcc into a cache directory at run time, never committed.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { readLines } from "./lines.ts";

const SOURCES = ["loadgen", "backend"] as const;
export type Tool = (typeof SOURCES)[number];

/**
 * Compiles loadgen.c and backend.c (once per source version: the cache key is a hash of the
 * text) and returns the path of each executable.
 */
export function buildTools(): Record<Tool, string> {
  if (!Bun.which("gcc")) throw new Error("gcc is not installed (apt-get install gcc)");
  const paths = {} as Record<Tool, string>;
  for (const name of SOURCES) {
    const source = join(import.meta.dir, `${name}.c`);
    const hash = Bun.hash(readFileSync(source)).toString(16);
    const dir = join(tmpdir(), "mc-proxy-bench-tools");
    mkdirSync(dir, { recursive: true });
    const binary = join(dir, `${name}-${hash}`);
    if (!existsSync(binary)) {
      const result = Bun.spawnSync(["gcc", "-O2", "-Wall", "-Wextra", "-o", binary, source], {
        stderr: "pipe",
      });
      if (result.exitCode !== 0) throw new Error(`gcc ${name}.c failed:\n${result.stderr}`);
    }
    paths[name] = binary;
  }
  return paths;
}

export interface BackendPorts {
  rate: number;
  sink: number;
  source: number;
  idle: number;
}

export interface RunningBackend {
  ports: BackendPorts;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the C backend; it exits when its stdin closes (stop(), or the bench dying). */
export async function startBackend(binary: string): Promise<RunningBackend> {
  const proc: Subprocess<"pipe", "pipe", "inherit"> = Bun.spawn([binary], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = readLines(proc.stdout);
  const first = await Promise.race([lines.next(), Bun.sleep(5000).then(() => null)]);
  const words = first?.value?.split(" ") ?? [];
  if (words[0] !== "PORTS" || words.length !== 5) {
    proc.kill("SIGKILL");
    throw new Error(`backend did not report its ports (got ${JSON.stringify(first?.value)})`);
  }
  const [rate, sink, source, idle] = words.slice(1).map(Number) as [number, number, number, number];
  return {
    ports: { rate, sink, source, idle },
    pid: proc.pid,
    async stop() {
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 2000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
