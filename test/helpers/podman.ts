// podman for test/container.test.ts and test/systemd.test.ts: the cached base images of
// scripts/test-images.sh, podman commands with bounded time, and `podman logs -f` followed
// line by line.
import { resolve } from "node:path";
import type { Subprocess } from "bun";

const ROOT = resolve(import.meta.dir, "../..");

export interface PodmanSetup {
  /** CONTAINERS_CONF and CONTAINERS_STORAGE_CONF: the tests' private podman settings. */
  env: Record<string, string>;
  debianImage: string;
  bunImage: string;
  distrolessImage: string;
}

let setup: PodmanSetup | undefined;

/**
 * Runs scripts/test-images.sh (builds the base images when the cache lacks them: minutes
 * on a cold cache, well under a second on a warm one) and returns the podman environment.
 */
export function podmanSetup(): PodmanSetup {
  if (setup) return setup;
  const result = Bun.spawnSync(["bash", resolve(ROOT, "scripts/test-images.sh"), "--env"], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 1_200_000,
  });
  if (result.exitCode !== 0) {
    throw new Error(
      `scripts/test-images.sh failed (exit ${result.exitCode ?? result.signalCode}):\n${result.stderr}`,
    );
  }
  const values = new Map<string, string>();
  for (const line of result.stdout.toString().split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const get = (key: string) => {
    const value = values.get(key);
    if (!value)
      throw new Error(`scripts/test-images.sh --env printed no ${key}:\n${result.stdout}`);
    return value;
  };
  const found = {
    env: {
      CONTAINERS_CONF: get("CONTAINERS_CONF"),
      CONTAINERS_STORAGE_CONF: get("CONTAINERS_STORAGE_CONF"),
    },
    debianImage: get("DEBIAN_IMAGE"),
    bunImage: get("BUN_IMAGE"),
    distrolessImage: get("DISTROLESS_IMAGE"),
  };
  removeLeftovers(found.env);
  setup = found;
  return setup;
}

/**
 * Removes the containers and volumes that uniqueName() named for a test process that is
 * gone (killed before its afterAll ran). Those of live processes, other runs included, stay.
 */
function removeLeftovers(env: Record<string, string>): void {
  const run = (args: string[]) =>
    Bun.spawnSync(["podman", ...args], {
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "pipe",
      timeout: 60_000,
    });
  const dead = (name: string) => {
    const pid = Number(name.match(/^mc-proxy-[a-z]+-(\d+)-[a-z0-9]+$/)?.[1]);
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };
  const containers = run(["ps", "-a", "--format", "{{.Names}}"]).stdout.toString().split("\n");
  for (const name of containers.filter(dead)) run(["rm", "-f", "-t", "0", name]);
  const volumes = run(["volume", "ls", "--format", "{{.Name}}"]).stdout.toString().split("\n");
  for (const name of volumes.filter(dead)) run(["volume", "rm", "-f", name]);
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `podman args…` with the tests' settings; killed after `timeoutMs`. */
export async function podman(
  args: string[],
  options: { timeoutMs?: number; cwd?: string; stdin?: string } = {},
): Promise<CommandResult> {
  const { env } = podmanSetup();
  const proc = Bun.spawn(["podman", ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...env },
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timeoutMs = options.timeoutMs ?? 60_000;
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  if (proc.signalCode === "SIGKILL") {
    throw new Error(`podman ${args.join(" ")}: no answer within ${timeoutMs} ms\n${stderr}`);
  }
  return { exitCode, stdout, stderr };
}

/** As podman(), but fails with the command's stderr unless it exits 0; returns stdout. */
export async function podmanOk(
  args: string[],
  options: { timeoutMs?: number; cwd?: string; stdin?: string } = {},
): Promise<string> {
  const result = await podman(args, options);
  if (result.exitCode !== 0) {
    throw new Error(
      `podman ${args.join(" ")} exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

export interface FollowedLog {
  readonly lines: string[];
  /** Resolves with the first line (already seen or future) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): void;
}

/** `podman logs -f name` (stdout and stderr), line by line. */
export function followLogs(name: string): FollowedLog {
  const { env } = podmanSetup();
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["podman", "logs", "-f", name], {
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onLine = (line: string) => {
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pattern.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      let newline = rest.indexOf("\n");
      while (newline !== -1) {
        onLine(rest.slice(0, newline));
        rest = rest.slice(newline + 1);
        newline = rest.indexOf("\n");
      }
    }
    if (rest) onLine(rest);
  };
  pump(proc.stdout);
  pump(proc.stderr);
  return {
    lines,
    waitFor(pattern: RegExp, timeoutMs = 20_000) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `${name}: no log line matching ${pattern} within ${timeoutMs}ms; log:\n${lines.join("\n")}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolvePromise(line);
          },
        });
      });
    },
    stop() {
      proc.kill();
    },
  };
}

/** A name unique to this run, for containers and volumes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
