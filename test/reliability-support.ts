// Shared set-up of the reliability tests: a real mc-proxy with its admin API, watched through
// GetStatus (active connections) and /proc/<pid>/fd, plus timed TLS clients and raw peers.
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { AdminClient, AdminConnectOptions } from "../src/client/index.ts";
import { boundAdminAddr, makeAdminMtls } from "./helpers/admin.ts";
import type { TestCa } from "./helpers/certs.ts";
import {
  logField,
  proxyConfigText,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { openFds } from "./helpers/tcp.ts";
import { eventually } from "./helpers/wait.ts";

export const LISTENER = "127.0.0.1:0";
export const MIB = 1024 * 1024;

export interface RouteToml {
  hostname: string;
  backend: string;
}

export interface WatchedProxy {
  readonly proxy: RunningProxy;
  readonly pid: number;
  /** The listener's bound port. */
  readonly port: number;
  readonly admin: AdminClient;
  /** How to reach the admin API again (after a restart, say). */
  readonly adminOptions: AdminConnectOptions;
  readonly dir: string;
  readonly databasePath: string;
  readonly configPath: string;
  readonly ca: TestCa;
  /** Open descriptors once warmed up: listener, admin API and its one client channel, runtime. */
  readonly baselineFds: number;
  /** GetStatus: the listener's active_connections. */
  active(): Promise<number>;
  fds(): number;
  /** `msg="connection"` end lines so far whose outcome is `outcome`. */
  countOutcome(outcome: string): number;
  /**
   * Waits until GetStatus reports 0 active connections and the descriptors are back at the
   * baseline; resolves with the last figures either way (the caller asserts on them).
   */
  settle(timeoutMs?: number): Promise<{ active: number; fds: number }>;
  stop(): Promise<void>;
}

export interface WatchedProxyOptions {
  routes: RouteToml[];
  /** Lines for the [proxy] section, e.g. `hello_timeout = "3s"`. */
  proxyToml?: string;
  /** Extra lines for the [[listeners]] table. */
  listenerToml?: string;
  /** MC_PROXY_LOG_LEVEL; info keeps one end line per connection (what countOutcome reads). */
  logLevel?: string;
  /** Warm-up: a name routed to a backend that answers, to touch every code path once. */
  warmUp?: (port: number) => Promise<void>;
}

export function proxyConfigToml(options: {
  dir: string;
  routes: RouteToml[];
  proxyToml?: string;
  listenerToml?: string;
  grpcToml: string;
}): string {
  const routes = options.routes
    .map(
      (route) => `  [[listeners.routes]]
  hostname = "${route.hostname}"
  backend = "${route.backend}"
`,
    )
    .join("");
  return proxyConfigText(
    options.dir,
    `[[listeners]]
addr = "${LISTENER}"
${options.listenerToml ?? ""}
${routes}
${options.grpcToml}
[proxy]
${options.proxyToml ?? ""}
`,
  );
}

export async function startWatchedProxy(options: WatchedProxyOptions): Promise<WatchedProxy> {
  const dir = tempDir("mc-proxy-reliability-");
  const mtls = makeAdminMtls("reliability-ca", { dir });
  const configPath = writeFile(
    dir,
    "mc-proxy.toml",
    proxyConfigToml({
      dir,
      routes: options.routes,
      proxyToml: options.proxyToml,
      listenerToml: options.listenerToml,
      grpcToml: mtls.grpcToml(),
    }),
  );
  const proxy = await startProxy(configPath, {
    env: { MC_PROXY_LOG_LEVEL: options.logLevel ?? "info" },
  });
  const adminOptions = mtls.clientOptions(await boundAdminAddr(proxy));
  const admin = mtls.connect(adminOptions.addr);
  const active = async () => {
    const status = await admin.status();
    return status.listeners.find((listener) => listener.addr === LISTENER)!.activeConnections;
  };
  await active(); // opens the admin channel: one descriptor in the proxy from now on
  if (options.warmUp) await options.warmUp(proxy.port(LISTENER));
  const fds = () => openFds(proxy.pid);
  // Let the warm-up's connections end, then wait until their descriptors are gone too: three
  // equal readings in a row, 100 ms apart.
  await eventually(active, (count) => count === 0);
  const readings: number[] = [];
  await eventually(
    () => {
      readings.push(fds());
      return readings.slice(-3);
    },
    (last) => last.length === 3 && last.every((count) => count === last[0]),
    { stepMs: 100 },
  );
  const baselineFds = Math.min(...readings.slice(-3));
  const countOutcome = (outcome: string) =>
    proxy.logs.filter(
      (line) => line.includes('msg="connection"') && logField(line, "outcome") === outcome,
    ).length;
  return {
    proxy,
    pid: proxy.pid,
    port: proxy.port(LISTENER),
    admin,
    adminOptions,
    dir,
    databasePath: join(dir, "mc-proxy.db"),
    configPath,
    ca: mtls.ca,
    baselineFds,
    active,
    fds,
    countOutcome,
    settle: (timeoutMs = 15_000) =>
      eventually(
        async () => ({ active: await active(), fds: fds() }),
        (last) => last.active === 0 && last.fds <= baselineFds,
        { timeoutMs, stepMs: 100 },
      ),
    async stop() {
      admin.close();
      await proxy.stop();
    },
  };
}

/** Nearest-rank percentile of samples (ms). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface TimedHandshake {
  /** "secure" or the error. */
  outcome: string;
  /** From connect() to the first byte the server sent (its ServerHello), ms. */
  firstByteMs: number;
  /** From connect() to the completed handshake, ms. */
  handshakeMs: number;
  peerCommonName: string | null;
}

/**
 * One full TLS handshake with node:tls through the proxy, timed. node:tls runs over a Duplex
 * fed by a plain TCP socket, so the first byte from the server can be timestamped.
 */
export function timedHandshake(
  port: number,
  servername: string,
  timeoutMs = 10_000,
): Promise<TimedHandshake> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let firstByteMs = -1;
    const raw = netConnect({ host: "127.0.0.1", port });
    const duplex = new Duplex({
      read() {
        raw.resume();
      },
      write(chunk, _encoding, callback) {
        raw.write(chunk, callback);
      },
      final(callback) {
        raw.end();
        callback();
      },
      destroy(error, callback) {
        raw.destroy();
        callback(error);
      },
    });
    raw.on("data", (chunk: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - startedAt;
      if (!duplex.push(chunk)) raw.pause();
    });
    raw.on("end", () => duplex.push(null));
    raw.on("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    const socket = tls.connect({ socket: duplex, servername, rejectUnauthorized: false });
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    let done = false;
    function finish(outcome: string, cn: string | null = null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const handshakeMs = performance.now() - startedAt;
      socket.destroy();
      raw.destroy();
      resolve({ outcome, firstByteMs, handshakeMs, peerCommonName: cn });
    }
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      finish("secure", typeof cert?.subject?.CN === "string" ? cert.subject.CN : null);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.once("close", () => finish("closed"));
  });
}

/** The soft and hard open-file limits of a process, from /proc/<pid>/limits. */
export function openFileLimits(pid: number | "self"): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((text) => text.startsWith("Max open files"));
  const match = line?.match(/Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/);
  if (!match) throw new Error(`no open-file limit for ${pid}`);
  const value = (text: string) => (text === "unlimited" ? Number.POSITIVE_INFINITY : Number(text));
  return { soft: value(match[1]!), hard: value(match[2]!) };
}

/**
 * Raises a process's soft open-file limit to its hard limit with prlimit(1) (no privilege
 * needed below the hard limit). Returns the limits afterwards.
 */
export function raiseOpenFileLimit(pid: number): { soft: number; hard: number } {
  const { hard } = openFileLimits(pid);
  const value = Number.isFinite(hard) ? String(hard) : "unlimited";
  const result = Bun.spawnSync(["prlimit", `--pid=${pid}`, `--nofile=${value}:${value}`], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) throw new Error(`prlimit: ${result.stderr.toString()}`);
  return openFileLimits(pid);
}
