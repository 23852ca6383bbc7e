// A real nginx (Debian nginx 1.22) as a backend that expects a PROXY header: it answers every
// HTTPS request with the addresses the header carried, so tests see what the backend learned.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { CertPair } from "./certs.ts";
import { freePort } from "./clients.ts";
import { stopProcess, waitUntilListening } from "./haproxy.ts";
import { tempDir, writeFile } from "./proxy.ts";

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
 * http server on `listen 127.0.0.1:<freePort()> ssl proxy_protocol` using `pair`.
 */
export async function startNginxProxyEcho(pair: CertPair): Promise<RunningNginx> {
  if (!Bun.which("nginx")) throw new Error("nginx is not installed (apt-get install nginx)");
  const port = await freePort();
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
  const proc = Bun.spawn(["nginx", "-p", dir, "-e", errorLog, "-c", config], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
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
  await waitUntilListening("nginx", proc, [port], () => `${stderr}\n${readErrorLog()}`);
  return {
    port,
    errorLog: readErrorLog,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
