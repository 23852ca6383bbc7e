// An l7 route's certificate and key, read and checked once into a TLS context (never per connection).
import { readFileSync, statSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";
import type { RouteSpec } from "../domain/types.ts";

/**
 * A certificate or key file that cannot be used. The message names the file and why, and it is
 * a configuration mistake (exit code 2 at start, INVALID_ARGUMENT from the admin API).
 */
export class CertificateError extends Error {
  override readonly name = "CertificateError";
  readonly exitCode = 2;
}

// RFC 7468 §2: textual encodings are delimited by "-----BEGIN <label>-----".
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PEM_PRIVATE_KEY = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

/**
 * Reads the PEM certificate chain and private key of an l7 route and builds the context TLS
 * termination uses. Checked here rather than at the first handshake: a missing file, a file
 * without PEM, an encrypted key, or a key that does not belong to the certificate throws a
 * CertificateError naming the path.
 */
export function loadRouteCertificate(certPath: string, keyPath: string): SecureContext {
  const cert = readPem("tls_cert", certPath);
  const key = readPem("tls_key", keyPath);
  if (!PEM_CERTIFICATE.test(cert)) {
    throw new CertificateError(`tls_cert ${JSON.stringify(certPath)}: no PEM certificate in it`);
  }
  const keyLabel = key.match(PEM_PRIVATE_KEY);
  if (keyLabel === null) {
    throw new CertificateError(`tls_key ${JSON.stringify(keyPath)}: no PEM private key in it`);
  }
  if (keyLabel[0].includes("ENCRYPTED")) {
    // There is nobody to type a passphrase at start or on an admin API call.
    throw new CertificateError(
      `tls_key ${JSON.stringify(keyPath)}: the key is encrypted; give an unencrypted PEM key`,
    );
  }
  try {
    return createSecureContext({ cert, key });
  } catch (error) {
    throw new CertificateError(
      `tls_cert ${JSON.stringify(certPath)} / tls_key ${JSON.stringify(keyPath)}: ${describeTlsError(error)}`,
      { cause: error },
    );
  }
}

function readPem(field: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(error);
    throw new CertificateError(`${field} ${JSON.stringify(path)}: cannot read: ${reason}`, {
      cause: error,
    });
  }
}

/** OpenSSL's codes made readable; anything else keeps its own message. */
function describeTlsError(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH") return "the key does not match the certificate";
  if (code === "ERR_OSSL_PEM_NO_START_LINE") return "not a valid PEM certificate or key";
  return error instanceof Error ? error.message : String(error);
}

/**
 * The compile step between validated routes and a route table: one TLS context per l7
 * certificate/key pair, cached by both paths and keyed by each file's mtime and size, so a route
 * change loads only certificates that are new or whose files changed on disk (AddRoute loads one)
 * and a connection never touches the disk.
 */
export class CertificateCache {
  private readonly entries = new Map<string, { stamp: string; context: SecureContext }>();
  /** How many times a pair was read from disk (a cache miss); for tests. */
  loads = 0;

  /**
   * The TLS context of an l7 route, loaded or taken from the cache. Throws a CertificateError
   * naming the route and the path when a file cannot be used.
   */
  forRoute(spec: RouteSpec): SecureContext {
    const key = `${spec.tlsCert}\0${spec.tlsKey}`;
    const stamp = `${fileStamp(spec.tlsCert)}/${fileStamp(spec.tlsKey)}`;
    const cached = this.entries.get(key);
    if (cached !== undefined && cached.stamp === stamp) return cached.context;
    let context: SecureContext;
    try {
      context = loadRouteCertificate(spec.tlsCert, spec.tlsKey);
    } catch (error) {
      if (!(error instanceof CertificateError)) throw error;
      throw new CertificateError(`route ${spec.hostname}: ${error.message}`, { cause: error });
    }
    this.loads++;
    this.entries.set(key, { stamp, context });
    return context;
  }

  /** Drops pairs no route of `inUse` names, so replaced certificates are not kept forever. */
  retainOnly(inUse: Iterable<RouteSpec>): void {
    const keep = new Set<string>();
    for (const spec of inUse) if (spec.mode === "l7") keep.add(`${spec.tlsCert}\0${spec.tlsKey}`);
    for (const key of this.entries.keys()) if (!keep.has(key)) this.entries.delete(key);
  }
}

/** mtime and size of a file, or "missing" (loadRouteCertificate then names the error). */
function fileStamp(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
  } catch {
    return "missing";
  }
}
