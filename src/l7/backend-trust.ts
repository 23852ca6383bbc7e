// What backend_tls trusts: the system store plus [proxy] backend_ca, built into one TLS context.
import { readFileSync } from "node:fs";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";

/** An unusable [proxy] backend_ca file: a configuration mistake, exit code 2 at start. */
export class BackendTrustError extends Error {
  override readonly name = "BackendTrustError";
  readonly exitCode = 2;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;

/**
 * Built once per path: parsing the ~120 system roots costs milliseconds, too much for every
 * backend connection. The server calls this at start so a bad file stops it there; later
 * calls (every backend TLS dial) get the cached context.
 */
const contexts = new Map<string, SecureContext>();

/**
 * The context backend TLS connections verify against. `caPath` "" means the system store
 * only. Throws BackendTrustError naming the path when the file is missing or holds no
 * certificate OpenSSL accepts.
 */
export function backendTrust(caPath: string): SecureContext {
  const cached = contexts.get(caPath);
  if (cached) return cached;
  const ca: string[] = [...rootCertificates];
  if (caPath !== "") {
    let pem: string;
    try {
      pem = readFileSync(caPath, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new BackendTrustError(
        `proxy.backend_ca ${JSON.stringify(caPath)}: cannot read: ${code === "ENOENT" ? "no such file" : String(error)}`,
        { cause: error },
      );
    }
    if (!PEM_CERTIFICATE.test(pem)) {
      throw new BackendTrustError(
        `proxy.backend_ca ${JSON.stringify(caPath)}: no PEM certificate in it`,
      );
    }
    ca.push(pem);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ ca });
  } catch (error) {
    throw new BackendTrustError(
      `proxy.backend_ca ${JSON.stringify(caPath)}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  contexts.set(caPath, context);
  return context;
}
