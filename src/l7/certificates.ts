// An l7 route's certificate and key, read and checked once into a TLS context (never per connection).
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";

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
