// A real HAProxy (Debian haproxy 2.6) as the load balancer in front of mc-proxy: tcp relays
// that prepend a PROXY v1 or v2 header, from a generated config in a temp directory.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Subprocess } from "bun";
import { freePort } from "./clients.ts";
import { writeFile } from "./proxy.ts";
import { removeDir, tempDir, trackProcess } from "./scratch.ts";

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

/** Socket inodes of the TCP listeners on host:port (read from /proc: no probe connection to log). */
function listenerInodes(port: number, host = "127.0.0.1"): string[] {
  const hexHost = host
    .split(".")
    .map((part) => Number(part).toString(16).padStart(2, "0").toUpperCase())
    .reverse()
    .join("");
  const wanted = `${hexHost}:${port.toString(16).padStart(4, "0").toUpperCase()}`;
  const inodes: string[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
    const fields = line.trim().split(/\s+/);
    // Field 1 is local_address, field 3 the state (0A is TCP_LISTEN), field 9 the inode.
    if (fields[1] === wanted && fields[3] === "0A") inodes.push(fields[9]!);
  }
  return inodes;
}

/**
 * True once process `pid` itself listens on 127.0.0.1:port: one of its descriptors is the
 * listening socket. A listener of some other process on that port does not count.
 */
export function listensOn(pid: number, port: number): boolean {
  const inodes = listenerInodes(port);
  if (inodes.length === 0) return false;
  let links: string[];
  try {
    links = readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "";
      }
    });
  } catch {
    return false;
  }
  return inodes.some((inode) => links.includes(`socket:[${inode}]`));
}

/**
 * For peers that cannot listen on port 0 and report the port (HAProxy, nginx): `count` ports
 * that were free a moment ago, handed to `start`. Nothing keeps such a port free, so when
 * another process bound one first `start` fails with "Address already in use" and is tried
 * again with new ports; once the peer holds its ports, nobody else can take them (neither peer
 * sets SO_REUSEPORT: haproxy.cfg says `noreuseport`).
 */
export async function onFreshPorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    try {
      return await start(ports);
    } catch (error) {
      if (attempt >= attempts || !/address already in use/i.test(String(error))) throw error;
    }
  }
}

/** Polls until `proc` listens on every port itself, exits, or `timeoutMs` passes. */
export async function waitUntilListening(
  what: string,
  proc: Subprocess,
  ports: number[],
  diagnostics: () => string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ports.every((port) => listensOn(proc.pid, port))) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}): ${diagnostics()}`);
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`${what} did not listen on ${ports.join(", ")} in time: ${diagnostics()}`);
    }
    await Bun.sleep(20);
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
 * each bound to 127.0.0.1 on its own port (onFreshPorts); resolves once haproxy itself
 * listens on all of them. No health checks: HAProxy sends only the headers of real client
 * connections.
 */
export async function startHaproxy(relays: HaproxyRelay[]): Promise<RunningHaproxy> {
  if (!Bun.which("haproxy")) throw new Error("haproxy is not installed (apt-get install haproxy)");
  return await onFreshPorts(relays.length, (chosen) => startHaproxyOn(relays, chosen));
}

async function startHaproxyOn(relays: HaproxyRelay[], chosen: number[]): Promise<RunningHaproxy> {
  const ports = new Map<string, number>(relays.map((relay, i) => [relay.name, chosen[i]!]));
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
  noreuseport

defaults
  mode tcp
  timeout connect 3s
  timeout client 15s
  timeout server 15s
${sections.join("")}`,
  );
  const proc = trackProcess(
    Bun.spawn(["haproxy", "-db", "-f", config], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    }),
  );
  let stderr = "";
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  try {
    await waitUntilListening("haproxy", proc, [...ports.values()], () => stderr);
  } catch (error) {
    await stopProcess(proc);
    removeDir(dir);
    throw error;
  }
  return {
    port(name: string) {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no haproxy relay named ${name}`);
      return port;
    },
    stderr: () => stderr,
    async stop() {
      await stopProcess(proc);
      removeDir(dir);
    },
  };
}
