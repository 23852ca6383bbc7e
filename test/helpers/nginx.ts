// A real nginx (Debian nginx 1.22) as a backend that expects a PROXY header: it answers every
// HTTPS request with the addresses the header carried, so tests see what the backend learned.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CertPair } from "./certs.ts";
import { onFreshPorts, stopProcess, waitUntilListening } from "./haproxy.ts";
import { writeFile } from "./proxy.ts";
import { removeDir, tempDir, trackProcess } from "./scratch.ts";

export interface RunningNginx {
  /** The 127.0.0.1 port of the `ssl proxy_protocol` server. */
  port: number;
  /** nginx's error log so far (it logs a broken PROXY header there). */
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * The body nginx returns: `$proxy_protocol_addr $proxy_protocol_port
 * $proxy_protocol_server_addr $proxy_protocol_server_port`, i.e. the header's source and
 * destination. A connection without a valid header gets no response at all (nginx closes it).
 */
export function parseEchoBody(body: string): {
  source: string;
  destination: string;
} {
  const [sourceAddress, sourcePort, destinationAddress, destinationPort] = body.trim().split(" ");
  return {
    source: `${sourceAddress}:${sourcePort}`,
    destination: `${destinationAddress}:${destinationPort}`,
  };
}

/**
 * Starts nginx in the foreground (`daemon off; master_process off`, as root: no `user`) with
 * `-p <tmp> -c <tmp>/nginx.conf`, every path (pid, logs, temp dirs) under the temp dir, and an
 * http server on `listen 127.0.0.1:<port> ssl proxy_protocol` using `pair` (a port from
 * onFreshPorts: nginx cannot report a port the kernel chose).
 */
export async function startNginxProxyEcho(pair: CertPair): Promise<RunningNginx> {
  if (!Bun.which("nginx")) throw new Error("nginx is not installed (apt-get install nginx)");
  return await onFreshPorts(1, ([port]) => startNginxOn(pair, port!));
}

async function startNginxOn(pair: CertPair, port: number): Promise<RunningNginx> {
  const dir = tempDir("mc-proxy-nginx-");
  const errorLog = join(dir, "error.log");
  const config = writeFile(
    dir,
    "nginx.conf",
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${errorLog} info;

events {
  worker_connections 64;
}

http {
  access_log off;
  client_body_temp_path ${join(dir, "client_body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};

  server {
    listen 127.0.0.1:${port} ssl proxy_protocol;
    server_name _;
    ssl_certificate ${pair.cert};
    ssl_certificate_key ${pair.key};
    location / {
      default_type text/plain;
      return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";
    }
  }
}
`,
  );
  // -e: nginx opens its error log before reading the config; keep even that one in the temp dir.
  const proc = trackProcess(
    Bun.spawn(["nginx", "-p", dir, "-e", errorLog, "-c", config], {
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
  const readErrorLog = (): string => {
    try {
      return readFileSync(errorLog, "utf8");
    } catch {
      return "";
    }
  };
  try {
    await waitUntilListening("nginx", proc, [port], () => `${stderr}\n${readErrorLog()}`);
  } catch (error) {
    await stopProcess(proc);
    removeDir(dir);
    throw error;
  }
  return {
    port,
    errorLog: readErrorLog,
    async stop() {
      await stopProcess(proc);
      removeDir(dir);
    },
  };
}
