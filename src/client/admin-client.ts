// The one typed client of the admin API, used by `mc-proxy status` and `mcproxyctl`.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { type CallOptions, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ProxyAdminServiceClient } from "../../gen/mc_proxy/v1/admin.ts";
import type {
  ExplainRequest,
  Explanation,
  RouteInput,
  RuntimeStatus,
  StatsSnapshot,
} from "../domain/reports.ts";
import type { FirewallRule, GrpcConfig, RouteSpec } from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";
import {
  explanationFromProto,
  routeFromProto,
  routeInputToProto,
  ruleFromProtoStrict,
  ruleToProto,
  statsFromProto,
  statusFromProto,
} from "../wire/convert.ts";

/** Per-call deadline unless the options say otherwise. */
export const DEFAULT_DEADLINE_MS = 5000;

export interface AdminConnectOptions {
  /** `host:port` of the admin API; `:port` and unspecified hosts mean this machine. */
  addr: string;
  /** PEM file of the CA (or the pinned self-signed certificate) that verifies the server. */
  ca: string;
  /** With `ca` "": verify the server against the system's trusted CAs. */
  systemTrust?: boolean;
  /** PEM client certificate and key, for a server that requires mTLS. Both or neither. */
  cert?: string;
  key?: string;
  deadlineMs?: number;
}

/** One listener's routes, as listRoutes returns them. */
export interface ListenerRoutes {
  listenerAddr: string;
  routes: RouteSpec[];
}

/** A call the server refused or that could not reach it. */
export class AdminCallError extends Error {
  override readonly name = "AdminCallError";
  /** INVALID_ARGUMENT is the user's input (exit 2); anything else is a runtime failure (exit 1). */
  readonly exitCode: number;

  constructor(
    /** `AddRoute`, … */
    readonly rpc: string,
    /** The gRPC status code. */
    readonly code: status,
    /** The server's message (or grpc-js's, when the server was not reached). */
    readonly details: string,
  ) {
    super(`${rpc}: ${status[code] ?? code}: ${details}`);
    this.exitCode = code === status.INVALID_ARGUMENT ? 2 : 1;
  }

  /** `NOT_FOUND`, `UNAVAILABLE`, … */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/**
 * A connection setting that cannot be used (unreadable file, cert without key). `exitCode` is
 * what the CLI's exitCodeFor maps it to (2, a usage mistake); this class knows no CLI class.
 */
export class AdminConnectError extends Error {
  override readonly name = "AdminConnectError";
  readonly exitCode = 2;
}

/**
 * What `status` and `mcproxyctl -c` use from a config's [grpc] section. The server is verified
 * against the CA that signs it: `server_ca` when set; else `client_ca` (the usual layout: one
 * private CA signs the server's and the clients' certificates); else `tls_cert` itself when it
 * is self-signed (pinned); else the system's trusted CAs (a publicly issued certificate). The
 * client presents `client_cert`/`client_key` when set.
 */
export function connectOptionsFromGrpcConfig(grpc: GrpcConfig): AdminConnectOptions {
  const identity = { cert: grpc.clientCert || undefined, key: grpc.clientKey || undefined };
  if (grpc.serverCa !== "") return { addr: grpc.addr, ca: grpc.serverCa, ...identity };
  if (grpc.clientCa !== "") return { addr: grpc.addr, ca: grpc.clientCa, ...identity };
  if (isSignedByAnother(grpc.tlsCert)) {
    return { addr: grpc.addr, ca: "", systemTrust: true, ...identity };
  }
  return { addr: grpc.addr, ca: grpc.tlsCert, ...identity };
}

/**
 * True when the first certificate in the file is readable and not self-signed: pinning it as a
 * trust anchor would fail with "unable to verify the first certificate". Unreadable: false (the
 * connect then names the file).
 */
function isSignedByAnother(certPath: string): boolean {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(readFileSync(certPath));
  } catch {
    return false;
  }
  return !(certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey));
}

/**
 * The address to dial for a configured admin addr: a listen address on every interface
 * (`:9090`, `0.0.0.0:9090`, `[::]:9090`) is reached on `localhost`, the name the server's
 * certificate is expected to carry; any other host is dialled and verified as written.
 */
export function dialTarget(addr: string): string {
  const parsed = parseHostPort(addr, { allowEmptyHost: true, allowPortZero: false });
  if ("error" in parsed) {
    throw new AdminConnectError(`admin address ${JSON.stringify(addr)}: ${parsed.error}`);
  }
  const { host, port } = parsed.value;
  if (host === "" || host === "0.0.0.0" || host === "::") return `localhost:${port}`;
  return addr;
}

/**
 * The SNI sent when the target is an IP address. grpc-js passes the target host as the TLS
 * servername, and Bun's tls.connect throws for an IP there (Node only warns; RFC 6066 §3 allows
 * DNS names only). The admin server presents one certificate whatever the SNI, and the
 * certificate is still verified against the IP itself (its IP SANs), so this name is only a
 * placeholder on the wire.
 */
const IP_TARGET_SERVER_NAME = "localhost";

/** The host of `host:port` / `[v6]:port` when it is an IP literal, else null. */
function ipLiteralHost(target: string): string | null {
  const host = target.startsWith("[")
    ? target.slice(1, target.indexOf("]"))
    : target.slice(0, target.lastIndexOf(":"));
  return isIP(host) === 0 ? null : host;
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AdminConnectError(`${what} ${JSON.stringify(path)}: cannot read: ${reason}`);
  }
}

/** A generated unary method, in its (request, metadata, options, callback) form. */
type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown;

export class AdminClient {
  private constructor(
    private readonly client: ProxyAdminServiceClient,
    /** What was dialled, for messages. */
    readonly target: string,
    private readonly deadlineMs: number,
    /** Whether this client presents a certificate (for the hint when the server wants one). */
    readonly presentsCertificate: boolean,
  ) {}

  /** Creates the channel; nothing is sent until the first call (which then connects). */
  static connect(options: AdminConnectOptions): AdminClient {
    if (Boolean(options.cert) !== Boolean(options.key)) {
      throw new AdminConnectError(
        `client certificate ${JSON.stringify(options.cert ?? "")} and key ${JSON.stringify(options.key ?? "")}: give both or neither`,
      );
    }
    if (!options.ca && !options.systemTrust) {
      throw new AdminConnectError("a CA file to verify the server is required");
    }
    const target = dialTarget(options.addr);
    const ipHost = ipLiteralHost(target);
    const channel = credentials.createSsl(
      options.ca ? readPem("CA", options.ca) : null,
      options.key ? readPem("client key", options.key) : null,
      options.cert ? readPem("client certificate", options.cert) : null,
      ipHost === null
        ? {}
        : {
            checkServerIdentity: (_name: string, cert: PeerCertificate) =>
              checkServerIdentity(ipHost, cert),
          },
    );
    const client = new ProxyAdminServiceClient(
      target,
      channel,
      ipHost === null ? {} : { "grpc.ssl_target_name_override": IP_TARGET_SERVER_NAME },
    );
    return new AdminClient(
      client,
      target,
      options.deadlineMs ?? DEFAULT_DEADLINE_MS,
      Boolean(options.cert),
    );
  }

  /** One listener's routes; with no listener, every listener's (the list from GetStatus). */
  async listRoutes(listenerAddr?: string): Promise<ListenerRoutes[]> {
    const addrs =
      listenerAddr === undefined
        ? (await this.status()).listeners.map((listener) => listener.addr)
        : [listenerAddr];
    const result: ListenerRoutes[] = [];
    for (const addr of addrs) {
      const response = await this.call("ListRoutes", this.client.listRoutes, {
        listenerAddr: addr,
      });
      result.push({ listenerAddr: addr, routes: response.routes.map(routeFromProto) });
    }
    return result;
  }

  async addRoute(listenerAddr: string, route: RouteInput): Promise<void> {
    await this.call("AddRoute", this.client.addRoute, {
      listenerAddr,
      route: routeInputToProto(route),
    });
  }

  async removeRoute(listenerAddr: string, hostname: string): Promise<void> {
    await this.call("RemoveRoute", this.client.removeRoute, { listenerAddr, hostname });
  }

  async firewallRules(): Promise<FirewallRule[]> {
    const response = await this.call("GetFirewallRules", this.client.getFirewallRules, {});
    return response.rules.map(ruleFromProtoStrict);
  }

  async addFirewallRule(rule: FirewallRule): Promise<void> {
    await this.call("AddFirewallRule", this.client.addFirewallRule, { rule: ruleToProto(rule) });
  }

  async removeFirewallRule(rule: FirewallRule): Promise<void> {
    await this.call("RemoveFirewallRule", this.client.removeFirewallRule, {
      rule: ruleToProto(rule),
    });
  }

  async status(): Promise<RuntimeStatus> {
    return statusFromProto(await this.call("GetStatus", this.client.getStatus, {}));
  }

  /** Counters since start: per listener, per route, per firewall rule. */
  async stats(): Promise<StatsSnapshot> {
    return statsFromProto(await this.call("GetStats", this.client.getStats, {}));
  }

  /** The decision the proxy would take now for a client and SNI name on a listener. */
  async explain(request: ExplainRequest): Promise<Explanation> {
    const response = await this.call("Explain", this.client.explain, {
      listenerAddr: request.listenerAddr,
      sni: request.sni,
      clientAddr: request.clientAddr,
    });
    return explanationFromProto(response);
  }

  close(): void {
    this.client.close();
  }

  /**
   * The one way every RPC is made: fresh metadata, the deadline, and a failure turned into an
   * AdminCallError naming the RPC. `method` is the generated client's method for it.
   */
  private call<Request, Response>(
    rpc: string,
    method: UnaryMethod<Request, Response>,
    request: Request,
  ): Promise<Response> {
    return new Promise((resolve, reject) => {
      method.call(
        this.client,
        request,
        new Metadata(),
        { deadline: Date.now() + this.deadlineMs },
        (error, response) => {
          if (error)
            reject(
              new AdminCallError(rpc, error.code, cleanDetails(error.details || error.message)),
            );
          else resolve(response);
        },
      );
    });
  }
}

/** grpc-js ends connection failures with an empty "Resolution note: "; drop that noise. */
function cleanDetails(details: string): string {
  return details.replace(/\.? ?Resolution note: ?$/, "").trim();
}
