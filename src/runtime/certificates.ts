// An l7 route's certificate and key, read and checked once into a TLS context (never per connection).
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs";
import { open } from "node:fs/promises";
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

/**
 * Largest certificate or key file read. A chain of a leaf and two intermediates is under
 * 10 KiB; a path naming /dev/zero or a huge file must not grow the process (it grew ~400 MB/s).
 */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;

/**
 * O_NONBLOCK: opening a FIFO must not wait for a writer (it froze all traffic). The file is
 * then refused by fstat before a byte is read, as is every other non-regular file.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

interface CachedPem {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  text: string;
}

/**
 * Files read so far, by path. A route-table build (every route change) re-checks each l7
 * route's files with open + fstat only, and reads again only a file that changed; the admin
 * API reads a new route's files off the event loop first (preloadRouteCertificate), so the
 * synchronous build finds them here. CertificateCache.retainOnly drops the paths no route
 * names any more.
 */
const pemCache = new Map<string, CachedPem>();

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

function cannotRead(field: string, path: string, error: unknown): CertificateError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(error);
  return new CertificateError(`${field} ${JSON.stringify(path)}: cannot read: ${reason}`, {
    cause: error,
  });
}

/** Refuses anything but a regular file of at most MAX_PEM_FILE_BYTES, before reading it. */
function checkFile(field: string, path: string, stats: Stats): void {
  if (!stats.isFile()) {
    throw new CertificateError(
      `${field} ${JSON.stringify(path)}: not a regular file (a FIFO, device or directory is refused)`,
    );
  }
  if (stats.size > MAX_PEM_FILE_BYTES) {
    throw new CertificateError(
      `${field} ${JSON.stringify(path)}: ${stats.size} bytes, over the ${MAX_PEM_FILE_BYTES}-byte limit`,
    );
  }
}

function cached(path: string, stats: Stats): string | null {
  const entry = pemCache.get(path);
  if (
    entry === undefined ||
    entry.dev !== stats.dev ||
    entry.ino !== stats.ino ||
    entry.size !== stats.size ||
    entry.mtimeMs !== stats.mtimeMs
  ) {
    return null;
  }
  return entry.text;
}

function remember(path: string, stats: Stats, bytes: Uint8Array, length: number): string {
  if (length !== stats.size) {
    // The file changed while it was read: do not keep a text that matches no version of it.
    pemCache.delete(path);
    return Buffer.from(bytes.buffer, bytes.byteOffset, length).toString("utf8");
  }
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, length).toString("utf8");
  pemCache.set(path, {
    dev: stats.dev,
    ino: stats.ino,
    size: stats.size,
    mtimeMs: stats.mtimeMs,
    text,
  });
  return text;
}

function readPem(field: string, path: string): string {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    throw cannotRead(field, path, error);
  }
  try {
    const stats = fstatSync(fd);
    checkFile(field, path, stats);
    const hit = cached(path, stats);
    if (hit !== null) return hit;
    // One byte more than the size: a file that grew meanwhile is still cut at the limit.
    const bytes = new Uint8Array(Math.min(stats.size + 1, MAX_PEM_FILE_BYTES + 1));
    let length = 0;
    while (length < bytes.length) {
      const read = readSync(fd, bytes, length, bytes.length - length, length);
      if (read === 0) break;
      length += read;
    }
    if (length > MAX_PEM_FILE_BYTES) {
      throw new CertificateError(
        `${field} ${JSON.stringify(path)}: over the ${MAX_PEM_FILE_BYTES}-byte limit`,
      );
    }
    return remember(path, stats, bytes, length);
  } catch (error) {
    if (error instanceof CertificateError) throw error;
    throw cannotRead(field, path, error);
  } finally {
    closeSync(fd);
  }
}

async function preloadPem(field: string, path: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (error) {
    throw cannotRead(field, path, error);
  }
  try {
    const stats = await handle.stat();
    checkFile(field, path, stats);
    if (cached(path, stats) !== null) return;
    const bytes = new Uint8Array(Math.min(stats.size + 1, MAX_PEM_FILE_BYTES + 1));
    let length = 0;
    while (length < bytes.length) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_PEM_FILE_BYTES) {
      throw new CertificateError(
        `${field} ${JSON.stringify(path)}: over the ${MAX_PEM_FILE_BYTES}-byte limit`,
      );
    }
    remember(path, stats, bytes, length);
  } catch (error) {
    if (error instanceof CertificateError) throw error;
    throw cannotRead(field, path, error);
  } finally {
    await handle.close();
  }
}

/**
 * Reads an l7 route's certificate and key off the event loop (the admin API calls this before
 * building a route table), with the same checks as loadRouteCertificate's own reads, so the
 * synchronous build that follows only stats them.
 */
export async function preloadRouteCertificate(certPath: string, keyPath: string): Promise<void> {
  await preloadPem("tls_cert", certPath);
  await preloadPem("tls_key", keyPath);
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
    // The file texts too (a cache only: a miss reads the file again).
    const paths = new Set<string>();
    for (const spec of inUse) if (spec.mode === "l7") paths.add(spec.tlsCert).add(spec.tlsKey);
    for (const path of pemCache.keys()) if (!paths.has(path)) pemCache.delete(path);
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
