// Runs the real mc-proxy (sources, or the compiled executable named by MC_PROXY_BIN) as a child.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

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

export function tempDir(prefix = "mc-proxy-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * Writes `dir/mc-proxy.toml`: a database in `dir`, then `body` (listeners, [firewall], …).
 * Returns the config's path.
 */
export function writeProxyConfig(dir: string, body: string): string {
  return writeFile(
    dir,
    "mc-proxy.toml",
    `[database]\npath = "${join(dir, "mc-proxy.db")}"\n\n${body}`,
  );
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
 * with the collected log when it exits first or takes longer than 20 s.
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
  const proc = Bun.spawn([...command, "server", "-c", configPath], {
    cwd: options.cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, MC_PROXY_LOG_LEVEL: "debug", ...options.env },
  });
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
  (async () => {
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

  const waitForLog = (pattern: RegExp, timeoutMs = 10_000, fromLine = 0): Promise<string> => {
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

  const started = waitForLog(/msg="mc-proxy started"/, 20_000);
  const outcome = await Promise.race([started.then(() => "started"), exited.then(() => "exited")]);
  if (outcome === "exited") {
    await Bun.sleep(50);
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
