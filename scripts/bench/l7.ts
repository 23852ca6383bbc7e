// Requests per second through an l7 route, next to nginx terminating the same certificate.
//
//   bun scripts/bench/l7.ts [--rounds 3] [--seconds 5] [--connections 32] [--streams 10]
//
// One backend (Bun.serve in its own process, a 13-byte answer) behind two TLS-terminating
// reverse proxies: mc-proxy (an l7 route) and nginx 1.22 (one worker, `ssl http2`, upstream
// keep-alive, X-Forwarded-* set as mc-proxy sets them). Both present the same certificate and
// key (EC P-256) and both keep backend connections alive, so the figure compares the
// proxies, not their defaults. Load: wrk (HTTP/1.1, keep-alive, one thread) and, when
// installed, h2load (h2, --streams concurrent streams per connection). Each round runs every
// proxy once, the order alternating, after a warm-up; medians of the rounds are printed with
// the ratio mc-proxy / nginx. On a 2-core machine the load generator, the proxy and the
// backend share the cores: read the ratio, not the absolute figures.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { makeCa } from "../../test/helpers/certs.ts";
import { freePort } from "../../test/helpers/clients.ts";
import { startProxy } from "../../test/helpers/proxy.ts";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    streams: { type: "string", default: "10" },
  },
});
const ROUNDS = Number(flags.rounds);
const SECONDS = Number(flags.seconds);
const CONNECTIONS = Number(flags.connections);
const STREAMS = Number(flags.streams);
/** wrk and h2load take the SNI from the URL; "localhost" resolves without touching /etc/hosts. */
const HOSTNAME = "localhost";

for (const tool of ["wrk", "nginx"]) {
  if (!Bun.which(tool)) {
    console.error(`${tool} is not installed (apt-get install ${tool})`);
    process.exit(2);
  }
}
const withH2 = Bun.which("h2load") !== null;

const dir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-l7-"));
const children: Subprocess[] = [];

/** The backend: a child process, so its work is not charged to the load generator or a proxy. */
async function startBackend(): Promise<number> {
  const script = join(dir, "backend.ts");
  writeFileSync(
    script,
    `const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello, world\\n") });
console.log(server.port);`,
  );
  const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
  children.push(proc);
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return Number(new TextDecoder().decode(value).trim());
}

async function startNginx(cert: string, key: string, backendPort: number): Promise<number> {
  const port = await freePort();
  const config = join(dir, "nginx.conf");
  writeFileSync(
    config,
    `worker_processes 1;
daemon off;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "nginx-error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl http2;
    server_name ${HOSTNAME};
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
    }
  }
}
`,
  );
  const proc = Bun.spawn(["nginx", "-p", dir, "-e", join(dir, "nginx-error.log"), "-c", config], {
    stdout: "inherit",
    stderr: "inherit",
  });
  children.push(proc);
  await waitForHttps(port);
  return port;
}

async function startMcProxy(cert: string, key: string, backendPort: number): Promise<number> {
  const config = join(dir, "mc-proxy.toml");
  writeFileSync(
    config,
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "127.0.0.1:0"

  [[listeners.routes]]
  hostname = "${HOSTNAME}"
  backend = "127.0.0.1:${backendPort}"
  mode = "l7"
  tls_cert = "${cert}"
  tls_key = "${key}"
`,
  );
  const proxy = await startProxy(config, { env: { MC_PROXY_LOG_LEVEL: "info" } });
  children.push(proxy.proc);
  const port = proxy.port("127.0.0.1:0");
  await waitForHttps(port);
  return port;
}

async function waitForHttps(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const result = await run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url(port)]);
    if (result.text === "200") return;
    await Bun.sleep(100);
  }
  throw new Error(`nothing answers 200 on ${url(port)}`);
}

const url = (port: number) => `https://${HOSTNAME}:${port}/`;

/**
 * Runs a load generator to the end. Asynchronously: a blocking spawnSync would stop this
 * process from draining mc-proxy's log pipe, and a full pipe stalls the proxy mid-run.
 */
async function run(argv: string[]): Promise<{ exitCode: number; text: string }> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, text: stdout + stderr };
}

/** wrk: HTTP/1.1 keep-alive, requests/s; refuses a run with socket errors or non-2xx answers. */
async function runWrk(port: number, seconds: number): Promise<number> {
  const { exitCode, text } = await run([
    "wrk",
    "-t1",
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    url(port),
  ]);
  const rps = text.match(/Requests\/sec:\s+([\d.]+)/);
  if (exitCode !== 0 || !rps) throw new Error(`wrk failed:\n${text}`);
  if (/Non-2xx|Socket errors/.test(text))
    throw new Error(`wrk saw errors on ${url(port)}:\n${text}`);
  return Number(rps[1]);
}

/** h2load: h2 with STREAMS concurrent streams per connection, requests/s; all must succeed. */
async function runH2load(port: number, seconds: number): Promise<number> {
  const { exitCode, text } = await run([
    "h2load",
    `-c${CONNECTIONS}`,
    `-m${STREAMS}`,
    "-t1",
    `-D${seconds}`,
    url(port),
  ]);
  const rps = text.match(/finished in [\d.]+\w+, ([\d.]+) req\/s/);
  const status = text.match(
    /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/,
  );
  if (exitCode !== 0 || !rps || !status) throw new Error(`h2load failed:\n${text}`);
  if (status[4] !== "0" || status[5] !== "0")
    throw new Error(`h2load saw failures on ${url(port)}:\n${text}`);
  return Number(rps[1]);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

try {
  const ca = makeCa("bench-ca", dir);
  const pair = ca.issue(HOSTNAME, [HOSTNAME]);
  const backendPort = await startBackend();
  const ports = {
    "mc-proxy": await startMcProxy(pair.cert, pair.key, backendPort),
    nginx: await startNginx(pair.cert, pair.key, backendPort),
  };
  const systems = Object.keys(ports) as (keyof typeof ports)[];
  const loads = withH2
    ? ([
        ["HTTP/1.1 (wrk)", runWrk],
        ["h2 (h2load)", runH2load],
      ] as const)
    : ([["HTTP/1.1 (wrk)", runWrk]] as const);
  console.log(
    `l7 bench: ${ROUNDS} rounds × ${SECONDS}s, ${CONNECTIONS} keep-alive connections${withH2 ? `, h2 ${STREAMS} streams each` : ""}`,
  );
  for (const [, load] of loads) for (const system of systems) await load(ports[system], 1); // warm-up
  const results = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    for (const [label, load] of loads) {
      for (const system of order) {
        const rps = await load(ports[system], SECONDS);
        const key = `${label}|${system}`;
        results.set(key, [...(results.get(key) ?? []), rps]);
        console.log(
          `  round ${round + 1}  ${label.padEnd(15)} ${system.padEnd(9)} ${rps.toFixed(0).padStart(8)} req/s`,
        );
      }
    }
  }
  console.log("\nmedians:");
  for (const [label] of loads) {
    const mc = median(results.get(`${label}|mc-proxy`)!);
    const nginx = median(results.get(`${label}|nginx`)!);
    console.log(
      `  ${label.padEnd(15)} mc-proxy ${mc.toFixed(0).padStart(7)} req/s   nginx ${nginx.toFixed(0).padStart(7)} req/s   ratio mc-proxy/nginx ${(mc / nginx).toFixed(2)}`,
    );
  }
} finally {
  for (const child of children) child.kill();
  await Promise.all(children.map((child) => child.exited));
  rmSync(dir, { recursive: true, force: true });
}
