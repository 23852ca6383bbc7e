// What to do about an admin API connection the TLS handshake refused, in the operator's terms.
import { status } from "@grpc/grpc-js";
import { AdminCallError } from "../client/index.ts";

export interface ConnectionSource {
  /** Whether the client presented a certificate. */
  presentsCertificate: boolean;
  /** The config whose [grpc] section gave the settings, or null for --addr/--ca/--cert/--key. */
  configPath: string | null;
}

// BoringSSL's names, as grpc-js passes them on: the server's alert, our own verification.
const CERTIFICATE_REQUIRED = /CERTIFICATE_REQUIRED|certificate required/i;
const UNTRUSTED_SERVER =
  /unable to verify|unable to get (local )?issuer|self[- ]signed certificate|CERTIFICATE_VERIFY_FAILED|certificate verify failed/i;

/**
 * One sentence on how to fix a refused handshake, naming the config keys (or flags) to set, or
 * null when the error is not one of those. Only for UNAVAILABLE: a server that answered at all
 * accepted the connection.
 */
export function connectHint(error: AdminCallError, source: ConnectionSource): string | null {
  if (error.code !== status.UNAVAILABLE) return null;
  if (CERTIFICATE_REQUIRED.test(error.details) && !source.presentsCertificate) {
    return source.configPath
      ? `the admin API asks for a client certificate (mTLS, the server's grpc.client_ca), and [grpc] in ${source.configPath} sets no client_cert and client_key: set both, to a certificate signed by that CA and its key`
      : "the admin API asks for a client certificate (mTLS): give --cert and --key, a certificate signed by the server's client_ca and its key";
  }
  if (UNTRUSTED_SERVER.test(error.details)) {
    return source.configPath
      ? `the server's certificate is not signed by what this client trusts (server_ca, else client_ca, else tls_cert itself when self-signed): set grpc.server_ca in ${source.configPath} to the CA that signs grpc.tls_cert`
      : "the server's certificate is not signed by the --ca given: give --ca the CA that signs it";
  }
  return null;
}

/** The same error with the hint appended to its details, or the error itself without a hint. */
export function withConnectHint(error: unknown, source: ConnectionSource): unknown {
  if (!(error instanceof AdminCallError)) return error;
  const hint = connectHint(error, source);
  return hint === null
    ? error
    : new AdminCallError(error.rpc, error.code, `${error.details}; ${hint}`);
}
