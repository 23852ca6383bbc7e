// mcproxyctl's connection flags (--addr --ca --cert --key, or -c <config>) and output flag.
import { resolve } from "node:path";
import type { ArgsDef } from "citty";
import {
  AdminClient,
  type AdminConnectOptions,
  connectOptionsFromGrpcConfig,
} from "../../client/index.ts";
import { loadConfig } from "../../config/load-config.ts";
import { withConnectHint } from "../admin-hints.ts";
import { UsageError } from "../errors.ts";

/** Flags every mcproxyctl subcommand takes. Explicit flags override what -c gives. */
export const connectionArgs = {
  config: {
    type: "string",
    alias: "c",
    description: "take the admin API's addr and certificates from this config's [grpc] section",
    valueHint: "path",
  },
  addr: {
    type: "string",
    description: "admin API address (host:port)",
    valueHint: "host:port",
  },
  ca: {
    type: "string",
    description: "PEM CA (or the server's self-signed certificate) to verify the server",
    valueHint: "path",
  },
  cert: { type: "string", description: "PEM client certificate (mTLS)", valueHint: "path" },
  key: { type: "string", description: "PEM client key (mTLS)", valueHint: "path" },
  json: { type: "boolean", description: "print JSON instead of a table", default: false },
} satisfies ArgsDef;

export interface ConnectionFlags {
  config?: string;
  addr?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * The connection settings from the flags: -c first (its [grpc] section, see
 * connectOptionsFromGrpcConfig), then each explicit flag on top.
 */
export function connectOptionsFromFlags(flags: ConnectionFlags): AdminConnectOptions {
  let base: Partial<AdminConnectOptions> = {};
  if (flags.config) {
    const config = loadConfig(flags.config);
    if (config.grpc === null) {
      throw new UsageError(
        `-c ${JSON.stringify(flags.config)}: the config has no [grpc] section (addr, tls_cert, tls_key)`,
      );
    }
    base = connectOptionsFromGrpcConfig(config.grpc);
  }
  const addr = flags.addr || base.addr;
  const ca = flags.ca || base.ca || "";
  if (!addr) throw new UsageError("--addr <host:port> (or -c <config>) is required");
  if (!ca && !base.systemTrust)
    throw new UsageError("--ca <path> (or -c <config>) is required to verify the server");
  const systemTrust = !flags.ca && base.systemTrust === true;
  return { addr, ca, systemTrust, cert: flags.cert || base.cert, key: flags.key || base.key };
}

/** Runs `work` with a connected client and closes it afterwards. */
export async function withClient<T>(
  flags: ConnectionFlags,
  work: (client: AdminClient) => Promise<T>,
): Promise<T> {
  const client = AdminClient.connect(connectOptionsFromFlags(flags));
  try {
    return await work(client);
  } catch (error) {
    throw withConnectHint(error, {
      presentsCertificate: client.presentsCertificate,
      configPath: flags.config ? resolve(flags.config) : null,
    });
  } finally {
    client.close();
  }
}

/** Writes a value as indented JSON with a final newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
