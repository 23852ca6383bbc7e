// A real HAProxy (Debian haproxy 2.6) as the load balancer in front of mc-proxy: tcp relays
// that prepend a PROXY v1 or v2 header, from a generated config in a temp directory.
import { readFileSync, rmSync } from "node:fs";
import type { Subprocess } from "bun";
import { freePort } from "./clients.ts";
import { tempDir, writeFile } from "./proxy.ts";

/** One `frontend` + `backend` pair: everything accepted on `port` goes to `target`. */
export interface HaproxyRelay {
  /** Section name (letters, digits, `_`). */
  name: string;
  /** host:port of the one server, e.g. mc-proxy's listener. */
  target: string;
  /** The header HAProxy writes before the client's bytes: `send-proxy` or `send-proxy-v2`. */
  sendProxy: "v1" | "v2" | "none";
  /** More `server` keywords, e.g. "check check-send-proxy inter 200" for health checks. */
  serverOptions?: string;
}

export interface RunningHaproxy {
  /** The 127.0.0.1 port of each relay, by name. */
  port(name: string): number;
  /** What haproxy wrote to stderr so far (alerts and warnings). */
  stderr(): string;
  stop(): Promise<void>;
}

const SEND_PROXY = { v1: " send-proxy", v2: " send-proxy-v2", none: "" } as const;

/** True once a socket listens on 127.0.0.1:port (read from /proc: no probe connection to log). */
export function isListening(port: number, host = "127.0.0.1"): boolean {
  const hexHost = host
    .split(".")
    .map((part) => Number(part).toString(16).padStart(2, "0").toUpperCase())
    .reverse()
    .join("");
  const wanted = `${hexHost}:${port.toString(16).padStart(4, "0").toUpperCase()}`;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
    const fields = line.trim().split(/\s+/);
    // Field 1 is local_address, field 3 the state: 0A is TCP_LISTEN.
    if (fields[1] === wanted && fields[3] === "0A") return true;
  }
  return false;
}

/** Polls until every port listens, the process exits, or `timeoutMs` passes. */
export async function waitUntilListening(
  what: string,
  proc: Subprocess,
  ports: number[],
  diagnostics: () => string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ports.every((port) => isListening(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}): ${diagnostics()}`);
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`${what} did not listen on ${ports.join(", ")} in time: ${diagnostics()}`);
    }
    await Bun.sleep(50);
  }
}

/** Kills a child (SIGTERM, then SIGKILL after `graceMs`) and waits for it to be gone. */
export async function stopProcess(proc: Subprocess, graceMs = 5_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/**
 * Starts `haproxy -db -f <tmp>/haproxy.cfg` in the foreground with one tcp relay per entry,
 * each bound to 127.0.0.1 on a port from freePort(); resolves once all of them listen.
 * No health checks: HAProxy sends only the headers of real client connections.
 */
export async function startHaproxy(relays: HaproxyRelay[]): Promise<RunningHaproxy> {
  if (!Bun.which("haproxy")) throw new Error("haproxy is not installed (apt-get install haproxy)");
  const ports = new Map<string, number>();
  for (const relay of relays) ports.set(relay.name, await freePort());
  const dir = tempDir("mc-proxy-haproxy-");
  const sections = relays.map(
    (relay) => `
frontend fe_${relay.name}
  bind 127.0.0.1:${ports.get(relay.name)}
  default_backend be_${relay.name}

backend be_${relay.name}
  server s1 ${relay.target}${SEND_PROXY[relay.sendProxy]} ${relay.serverOptions ?? ""}
`,
  );
  const config = writeFile(
    dir,
    "haproxy.cfg",
    `global
  maxconn 200

defaults
  mode tcp
  timeout connect 3s
  timeout client 15s
  timeout server 15s
${sections.join("")}`,
  );
  const proc = Bun.spawn(["haproxy", "-db", "-f", config], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let stderr = "";
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  await waitUntilListening("haproxy", proc, [...ports.values()], () => stderr);
  return {
    port(name: string) {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no haproxy relay named ${name}`);
      return port;
    },
    stderr: () => stderr,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
