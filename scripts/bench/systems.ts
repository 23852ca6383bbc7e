// Adapters for the systems under test: mc-proxy, HAProxy (stock and 128 KiB buffers), nginx,
// the Bun floor (bun-relay.ts), direct.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { readLines } from "./lines.ts";
import type { BackendPorts } from "./native.ts";
import type { Purpose, RuleSet } from "./rules.ts";

const ROOT = resolve(import.meta.dir, "../..");
const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
/** HAProxy needs about two descriptors per connection; the sandbox allows ~20,000 in all. */
const HAPROXY_MAXCONN = 9_600;

export type SystemId = "mc-proxy" | "haproxy" | "haproxy-128k" | "nginx" | "bun-relay" | "direct";

export const SYSTEM_LABELS: Record<SystemId, string> = {
  "mc-proxy": "mc-proxy",
  haproxy: "HAProxy",
  "haproxy-128k": "HAProxy 128k",
  nginx: "nginx",
  "bun-relay": "Bun floor",
  direct: "direct",
};

export interface RunningSystem {
  readonly id: SystemId;
  /** Root process to measure (/proc); null for `direct`. */
  readonly pid: number | null;
  /** The port a client dials for a purpose (one listener for all of them behind a proxy). */
  port(purpose: Purpose): number;
  /** Anything the system wrote to its error log, for failure reports. */
  diagnostics(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  rules: RuleSet;
  backend: BackendPorts;
  /** Extra arguments for bun before the script (e.g. --cpu-prof); mc-proxy from sources only. */
  bunArgs?: string[];
  /**
   * Event loops per system (--workers): mc-proxy `[proxy] workers`, HAProxy `nbthread`, nginx
   * `worker_processes`. The Bun floor stays one thread (it is the per-loop cost). Default 1.
   */
  workers?: number;
  /**
   * mc-proxy only: the rate route's backends as several ports (`backends = [...]`, the
   * default least_connections) instead of `backend.rate` (the pool workload).
   */
  rateBackends?: number[];
}

export async function startSystem(id: SystemId, options: StartOptions): Promise<RunningSystem> {
  switch (id) {
    case "mc-proxy":
      return startMcProxy(options);
    case "haproxy":
      return startHaproxy(options, false);
    case "haproxy-128k":
      return startHaproxy(options, true);
    case "nginx":
      return startNginx(options);
    case "bun-relay":
      return startBunRelay(options);
    case "direct":
      return {
        id,
        pid: null,
        port: (purpose) => options.backend[purpose],
        diagnostics: () => "",
        stop: async () => {},
      };
  }
}

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** True once 127.0.0.1:port is in LISTEN state (from /proc: no probe connection to count). */
function isListening(port: number): boolean {
  const wanted = `0100007F:${port.toString(16).padStart(4, "0").toUpperCase()}`;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === wanted && fields[3] === "0A") return true;
  }
  return false;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Spawns `argv` (stderr to `<dir>/stderr.log`), waits until `port` listens, and returns the
 * adapter around it; `logPaths` are other logs worth showing when it fails.
 */
async function launch(
  id: SystemId,
  argv: string[],
  port: number,
  dir: string,
  logPaths: string[],
  env?: Record<string, string | undefined>,
): Promise<RunningSystem> {
  const stderrPath = join(dir, "stderr.log");
  const proc: Subprocess = Bun.spawn(argv, {
    cwd: dir,
    env,
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(stderrPath),
  });
  const diagnostics = () => [stderrPath, ...logPaths].map(readText).join("").slice(-2000);
  const deadline = Date.now() + 60_000; // 50,000 rules and 10,000 routes take a while to seed
  while (!isListening(port)) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${id} exited before listening: ${diagnostics()}`);
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`${id} did not listen on ${port} within 60 s: ${diagnostics()}`);
    }
    await Bun.sleep(50);
  }
  return {
    id,
    pid: proc.pid,
    port: () => port,
    diagnostics,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await proc.exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * mc-proxy with its defaults: the config names only the database, routes and firewall rules,
 * and `[proxy] workers` (the bench's --workers, 1 unless given).
 */
async function startMcProxy({
  rules,
  backend,
  bunArgs = [],
  workers = 1,
  rateBackends,
}: StartOptions): Promise<RunningSystem> {
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-"));
  const port = await freePort();
  const lines = [
    "[database]",
    `path = ${JSON.stringify(join(dir, "mc-proxy.db"))}`,
    "",
    "[[listeners]]",
    `addr = "127.0.0.1:${port}"`,
  ];
  for (const route of rules.routes) {
    const pool = route.purpose === "rate" ? rateBackends : undefined;
    lines.push(
      "",
      "  [[listeners.routes]]",
      `  hostname = "${route.hostname}"`,
      pool === undefined
        ? `  backend = "127.0.0.1:${backend[route.purpose]}"`
        : `  backends = [${pool.map((p) => `"127.0.0.1:${p}"`).join(", ")}]`,
    );
  }
  if (rules.cidrs.length > 0) {
    lines.push("", "[firewall]", `blocked_cidrs = [${rules.cidrs.map((c) => `"${c}"`).join(",")}]`);
  }
  lines.push("", "[proxy]", `workers = ${workers}`);
  const config = join(dir, "mc-proxy.toml");
  writeFileSync(config, `${lines.join("\n")}\n`);
  // MC_PROXY_BIN: a compiled executable; MC_PROXY_ENTRY: another checkout's mc-proxy.ts (A/B).
  const bin = process.env.MC_PROXY_BIN;
  const entry = resolve(process.env.MC_PROXY_ENTRY ?? join(ROOT, "src/cmd/mc-proxy.ts"));
  const argv = bin
    ? [resolve(bin), "server", "-c", config]
    : [process.execPath, ...bunArgs, entry, "server", "-c", config];
  // The default log level (info): one line per connection, to a file as a service's stderr.
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.MC_PROXY_LOG_LEVEL;
  delete env.JOURNAL_STREAM;
  return launch("mc-proxy", argv, port, dir, [], env);
}

/** HAProxy 2.6, `nbthread` = --workers, SNI routing by a map, the CIDRs as a `src -f` list. */
async function startHaproxy(
  { rules, backend, workers = 1 }: StartOptions,
  bigBuffers: boolean,
): Promise<RunningSystem> {
  const id: SystemId = bigBuffers ? "haproxy-128k" : "haproxy";
  if (!Bun.which("haproxy")) throw new Error("haproxy is not installed (apt-get install haproxy)");
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-haproxy-"));
  const port = await freePort();
  const map = join(dir, "routes.map");
  writeFileSync(map, rules.routes.map((r) => `${r.hostname} be_${r.purpose}\n`).join(""));
  const blocked = join(dir, "blocked.lst");
  writeFileSync(blocked, rules.cidrs.map((c) => `${c}\n`).join(""));
  const purposes = [...new Set(rules.routes.map((r) => r.purpose))];
  const config = `global
  nbthread ${workers}
  maxconn ${HAPROXY_MAXCONN}
${bigBuffers ? "  tune.bufsize 131072\n" : ""}
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s

frontend fe_bench
  bind 127.0.0.1:${port}
${rules.cidrs.length > 0 ? `  tcp-request connection reject if { src -f ${blocked} }\n` : ""}  tcp-request inspect-delay 10s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend %[req.ssl_sni,lower,map(${map})]
${purposes.map((p) => `\nbackend be_${p}\n  server s1 127.0.0.1:${backend[p]}\n`).join("")}`;
  const path = join(dir, "haproxy.cfg");
  writeFileSync(path, config);
  return launch(id, ["haproxy", "-db", "-f", path], port, dir, []);
}

/**
 * nginx 1.22 stream with ssl_preread, `worker_processes` = --workers (each accepts on its own
 * SO_REUSEPORT socket); the CIDRs in a `geo` block (a radix tree).
 */
async function startNginx({ rules, backend, workers = 1 }: StartOptions): Promise<RunningSystem> {
  if (!Bun.which("nginx")) throw new Error("nginx is not installed (apt-get install nginx)");
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-nginx-"));
  const port = await freePort();
  // Stream has no `if`: a blocked client's key misses the map and goes to a closed port.
  const withRules = rules.cidrs.length > 0;
  const key = withRules ? "$bench_blocked$ssl_preread_server_name" : "$ssl_preread_server_name";
  const prefix = withRules ? "0" : "";
  const routes = rules.routes
    .map((r) => `    "${prefix}${r.hostname}" 127.0.0.1:${backend[r.purpose]};\n`)
    .join("");
  const geo = withRules
    ? `  geo $bench_blocked {\n    default 0;\n${rules.cidrs.map((c) => `    ${c} 1;\n`).join("")}  }\n`
    : "";
  const config = `load_module ${NGINX_STREAM_MODULE};
daemon off;
worker_processes ${workers};
worker_rlimit_nofile 19900;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;

events {
  worker_connections 19500;
}

stream {
  map_hash_max_size 65536;
  map_hash_bucket_size 128;
${geo}  map ${key} $bench_backend {
    default 127.0.0.1:1;
${routes}  }
  server {
    listen 127.0.0.1:${port}${workers > 1 ? " reuseport" : ""};
    ssl_preread on;
    preread_timeout 10s;
    proxy_connect_timeout 5s;
    proxy_timeout 300s;
    proxy_pass $bench_backend;
  }
}
`;
  const path = join(dir, "nginx.conf");
  writeFileSync(path, config);
  const errorLog = join(dir, "error.log");
  return launch("nginx", ["nginx", "-p", dir, "-e", errorLog, "-c", path], port, dir, [errorLog]);
}

const PURPOSES = ["rate", "sink", "source", "idle"] as const satisfies readonly Purpose[];

/**
 * The Bun floor: bun-relay.ts, one listener per backend (it has no routes; it never runs the
 * scale workload). It exits when its stdin closes, so a dying bench leaves it no orphan.
 */
async function startBunRelay({ backend }: StartOptions): Promise<RunningSystem> {
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-bun-relay-"));
  const stderrPath = join(dir, "stderr.log");
  const script = join(import.meta.dir, "bun-relay.ts");
  const proc = Bun.spawn(
    [process.execPath, script, ...PURPOSES.map((purpose) => String(backend[purpose]))],
    { stdin: "pipe", stdout: "pipe", stderr: Bun.file(stderrPath) },
  );
  const diagnostics = () => readText(stderrPath).slice(-2000);
  const first = await Promise.race([readLines(proc.stdout).next(), Bun.sleep(10_000)]);
  const line = (first && !first.done && first.value) || "";
  const words = line.split(" ");
  const ports = words.slice(1).map(Number);
  if (words[0] !== "PORTS" || ports.length !== PURPOSES.length) {
    proc.kill("SIGKILL");
    await proc.exited;
    const text = diagnostics();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`bun-relay did not report its ports (got ${JSON.stringify(line)}): ${text}`);
  }
  return {
    id: "bun-relay",
    pid: proc.pid,
    port: (purpose) => ports[PURPOSES.indexOf(purpose)]!,
    diagnostics,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.stdin.end();
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await proc.exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
