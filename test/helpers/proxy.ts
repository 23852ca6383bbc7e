// Runs the real mc-proxy (sources, or the compiled executable named by MC_PROXY_BIN) as a child.
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { trackProcess } from "./scratch.ts";
import { EVENTUALLY_MS } from "./wait.ts";

export { tempDir } from "./scratch.ts";

const ROOT = resolve(import.meta.dir, "../..");

/** argv prefix for `mc-proxy`: MC_PROXY_BIN when set (CI runs the suite against it), else sources. */
export function mcProxyCommand(): string[] {
  const bin = process.env.MC_PROXY_BIN;
  return bin ? [resolve(bin)] : [process.execPath, join(ROOT, "src/cmd/mc-proxy.ts")];
}

/** argv prefix for `mcproxyctl`, likewise from MCPROXYCTL_BIN. */
export function mcproxyctlCommand(): string[] {
  const bin = process.env.MCPROXYCTL_BIN;
  return bin ? [resolve(bin)] : [process.execPath, join(ROOT, "src/cmd/mcproxyctl.ts")];
}

export function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * The one builder of test configs: a [database] section (by default `dir/mc-proxy.db`), then
 * `body` (listeners, [firewall], [grpc], …).
 */
export function proxyConfigText(dir: string, body: string, databasePath?: string): string {
  return `[database]\npath = "${databasePath ?? join(dir, "mc-proxy.db")}"\n\n${body}`;
}

/** Writes proxyConfigText(dir, body) to `dir/mc-proxy.toml`; returns the config's path. */
export function writeProxyConfig(dir: string, body: string, databasePath?: string): string {
  return writeFile(dir, "mc-proxy.toml", proxyConfigText(dir, body, databasePath));
}

/** A `[[listeners]]` block at `addr` with one l4 route `hostname` → 127.0.0.1:`backendPort`. */
export function listenerWithRoute(
  addr: string,
  hostname: string,
  backendPort: number,
  listenerOptions = "",
): string {
  return `[[listeners]]
addr = "${addr}"
${listenerOptions}
  [[listeners.routes]]
  hostname = "${hostname}"
  backend = "127.0.0.1:${backendPort}"
`;
}

export interface RunningProxy {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  readonly pid: number;
  /** Every stderr line so far. */
  readonly logs: string[];
  /** The bound port of a listener, by its configured addr. */
  port(listenerAddr: string): number;
  /**
   * Resolves with the first line (already seen or future) matching `pattern`; with `fromLine`,
   * only lines from that index of `logs` on count (for an event that repeats a line).
   */
  waitForLog(pattern: RegExp, timeoutMs?: number, fromLine?: number): Promise<string>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  readonly exited: Promise<number>;
}

/** A single logfmt field's value from a log line (`key=value` or `key="quoted value"`). */
export function logField(line: string, key: string): string | undefined {
  const match = line.match(new RegExp(`(?:^| )${key}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`));
  if (!match) return undefined;
  const raw = match[1]!;
  return raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
}

/**
 * Starts `mc-proxy server -c <configPath>` and waits for `msg="mc-proxy started"`. Fails
 * with the collected log when it exits first or takes longer than 45 s.
 */
export async function startProxy(
  configPath: string,
  options: {
    env?: Record<string, string>;
    /** argv prefix instead of mcProxyCommand() (a copied executable, a wrapper). */
    command?: string[];
    cwd?: string;
  } = {},
): Promise<RunningProxy> {
  const command = options.command ?? mcProxyCommand();
  const proc = trackProcess(
    Bun.spawn([...command, "server", "-c", configPath], {
      cwd: options.cwd,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, MC_PROXY_LOG_LEVEL: "debug", ...options.env },
    }),
  );
  const logs: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const ports = new Map<string, number>();
  const onLine = (line: string) => {
    logs.push(line);
    if (line.includes('msg="listening"')) {
      const addr = logField(line, "addr") ?? "";
      ports.set(logField(line, "listener") ?? "", Number(addr.slice(addr.lastIndexOf(":") + 1)));
    }
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pattern.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  };
  const exited = proc.exited;
  const readerDone = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stderr) {
      rest += decoder.decode(chunk, { stream: true });
      let newline = rest.indexOf("\n");
      while (newline !== -1) {
        onLine(rest.slice(0, newline));
        rest = rest.slice(newline + 1);
        newline = rest.indexOf("\n");
      }
    }
    if (rest) onLine(rest);
  })();

  const waitForLog = (
    pattern: RegExp,
    timeoutMs = EVENTUALLY_MS,
    fromLine = 0,
  ): Promise<string> => {
    const seen = logs.slice(fromLine).find((line) => pattern.test(line));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no log line matching ${pattern} within ${timeoutMs}ms; log:\n${logs.join("\n")}`,
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
  };

  // A hang guard: a start takes well under a second on an idle machine, far longer on a busy one.
  const started = waitForLog(/msg="mc-proxy started"/, 45_000);
  const outcome = await Promise.race([started.then(() => "started"), exited.then(() => "exited")]);
  if (outcome === "exited") {
    await readerDone; // the last lines it wrote
    throw new Error(
      `mc-proxy exited with ${proc.exitCode} before starting; log:\n${logs.join("\n")}`,
    );
  }
  return {
    proc,
    pid: proc.pid,
    logs,
    exited,
    port(listenerAddr: string) {
      const port = ports.get(listenerAddr);
      if (port === undefined) throw new Error(`no listener ${listenerAddr} in the log`);
      return port;
    },
    waitForLog,
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15_000) {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/**
 * True once process `pid` has a handler of its own for `signal` (its SigCgt mask in
 * /proc/<pid>/status): from then on the signal reaches the program instead of the default action.
 */
export function catchesSignal(pid: number, signal: keyof typeof SIGNAL_NUMBERS): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return false;
  }
  const mask = status.match(/^SigCgt:\s+([0-9a-f]+)$/m)?.[1];
  return (
    mask !== undefined && ((BigInt(`0x${mask}`) >> BigInt(SIGNAL_NUMBERS[signal] - 1)) & 1n) === 1n
  );
}
