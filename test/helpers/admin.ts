// The admin API's mTLS material for end-to-end tests: one CA, a server certificate for
// localhost, a client certificate, the [grpc] section that uses them, and the client options.
import { readFileSync, writeFileSync } from "node:fs";
import { AdminClient, type AdminConnectOptions } from "../../src/client/index.ts";
import { type CertPair, makeCa, type TestCa } from "./certs.ts";
import { logField, type RunningProxy } from "./proxy.ts";

export interface AdminMtls {
  /** The CA that signed both ends (its dir holds every file). */
  ca: TestCa;
  /** The admin API's certificate, for localhost, 127.0.0.1 and ::1. */
  server: CertPair;
  /** The admin client's certificate (CN `admin` unless named otherwise). */
  client: CertPair;
  /**
   * A `[grpc]` section on `addr` (default 127.0.0.1:0: the kernel picks the port, which the
   * proxy logs; see boundAdminAddr) requiring client certificates from the CA. `withClient`
   * adds client_cert/client_key, which `mc-proxy status -c` and `mcproxyctl -c` present.
   */
  grpcToml(options?: { addr?: string; withClient?: boolean }): string;
  /** Options for AdminClient.connect and mcproxyctl's flags, at `addr`. */
  clientOptions(addr: string): AdminConnectOptions;
  /** `--addr <addr> --ca … --cert … --key …` for mcproxyctl. */
  flags(addr: string): string[];
  connect(addr: string): AdminClient;
}

/** A CA (label `caLabel`) in `dir` (or a fresh temp dir) and the admin certificates it signs. */
export function makeAdminMtls(
  caLabel = "admin-ca",
  options: { dir?: string; clientName?: string } = {},
): AdminMtls {
  const ca = options.dir ? makeCa(caLabel, options.dir) : makeCa(caLabel);
  const server = ca.issue("localhost", ["localhost"]);
  const clientName = options.clientName ?? "admin";
  const client = ca.issue(clientName, [clientName]);
  const clientOptions = (addr: string): AdminConnectOptions => ({
    addr,
    ca: ca.cert,
    cert: client.cert,
    key: client.key,
  });
  return {
    ca,
    server,
    client,
    grpcToml({ addr = "127.0.0.1:0", withClient = true } = {}) {
      return `[grpc]
addr = "${addr}"
tls_cert = "${server.cert}"
tls_key = "${server.key}"
client_ca = "${ca.cert}"
${withClient ? `client_cert = "${client.cert}"\nclient_key = "${client.key}"\n` : ""}`;
    },
    clientOptions,
    flags: (addr) => ["--addr", addr, "--ca", ca.cert, "--cert", client.cert, "--key", client.key],
    connect: (addr) => AdminClient.connect(clientOptions(addr)),
  };
}

/** The admin API's bound address (`127.0.0.1:<port>`), from its "admin API listening" line. */
export async function boundAdminAddr(proxy: RunningProxy): Promise<string> {
  return logField(await proxy.waitForLog(/msg="admin API listening"/), "addr")!;
}

/** The metrics server's bound address, from its "metrics listening" line. */
export async function boundMetricsAddr(proxy: RunningProxy): Promise<string> {
  return logField(await proxy.waitForLog(/msg="metrics listening"/), "addr")!;
}

/**
 * Rewrites the `addr` of the config's [grpc] and [metrics] sections from port 0 to what the
 * running proxy bound, so that clients reading the config (`mc-proxy status -c`,
 * `mcproxyctl -c`) find them. The proxy itself reads its config only at start.
 */
export async function pinBoundAddrs(configPath: string, proxy: RunningProxy): Promise<void> {
  let text = readFileSync(configPath, "utf8");
  for (const [section, line] of [
    ["grpc", /msg="admin API listening"/],
    ["metrics", /msg="metrics listening"/],
  ] as const) {
    const pattern = new RegExp(`(\\[${section}\\]\\naddr = ")([^"]*:0)(")`);
    if (!pattern.test(text)) continue;
    const bound = logField(await proxy.waitForLog(line), "addr")!;
    text = text.replace(pattern, `$1${bound}$3`);
  }
  writeFileSync(configPath, text);
}
