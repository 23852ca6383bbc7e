// The admin API's gRPC server: mTLS, ProxyAdminService, health and reflection (SPEC §8).
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor-set.ts";
import { ProxyAdminServiceService } from "../../gen/mc_proxy/v1/admin.ts";
import type { GrpcConfig } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Store } from "../store/index.ts";
import { type AdminServiceDeps, createAdminService } from "./admin-service.ts";
import { addHealthService } from "./health.ts";
import { addReflectionServices, DescriptorIndex } from "./reflection.ts";

/** The fully-qualified name of the admin service, as health checks and reflection name it. */
export const ADMIN_SERVICE_NAME = "mc_proxy.v1.ProxyAdminService";

/** How long stop() lets in-flight calls finish before cancelling them. */
const SHUTDOWN_GRACE_MS = 2000;

/** The admin API could not start: unreadable certificate, address in use, … (exit code 1). */
export class AdminServerError extends Error {
  override readonly name = "AdminServerError";
  readonly exitCode = 1;
}

export interface AdminServerOptions {
  grpc: GrpcConfig;
  store: Store;
  runtime: AdminServiceDeps["runtime"];
  updates?: AdminServiceDeps["updates"];
  logger: Logger;
  /** The release version GetStatus reports. */
  version: string;
}

export interface AdminServer {
  /** The bound port (the kernel's choice when the config says port 0). */
  port: number;
  /** Ends open streams, lets in-flight calls finish for up to 2 s, then cancels the rest. */
  stop(): Promise<void>;
}

/**
 * Starts the admin API on `grpc.addr`. With `grpc.client_ca` set, the TLS handshake refuses a
 * client without a certificate signed by it; without it, the server is TLS-only (any client).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const bound = await bindAdminServer(options.grpc);
  bound.serve(options);
  return bound;
}

/** An admin API that is bound (certificates checked, port taken) but serves nothing yet. */
export interface BoundAdminServer extends AdminServer {
  /** Adds the services: calls are answered from now on. */
  serve(options: Omit<AdminServerOptions, "grpc">): void;
}

/**
 * The first half of startAdminServer, for a start-up that must know the admin API can run
 * (readable certificates, a free address) before it writes the database. Until serve(), a call
 * is answered UNIMPLEMENTED.
 */
export async function bindAdminServer(grpc: GrpcConfig): Promise<BoundAdminServer> {
  const credentials = serverCredentials(grpc);
  const openStreams = new Set<{ end(): void }>();
  const server = new Server();
  const port = await bind(server, grpc.addr, credentials);
  let stopping: Promise<void> | null = null;
  return {
    port,
    serve(options) {
      const index = new DescriptorIndex(Buffer.from(DESCRIPTOR_SET_BASE64, "base64"));
      server.addService(ProxyAdminServiceService, createAdminService(options));
      addHealthService(server, [ADMIN_SERVICE_NAME], openStreams);
      addReflectionServices(server, index, index.serviceNames(), openStreams);
    },
    stop: () => {
      stopping ??= shutdown(server, openStreams);
      return stopping;
    },
  };
}

function serverCredentials(grpc: GrpcConfig): ServerCredentials {
  const certChain = readPem("grpc.tls_cert", grpc.tlsCert);
  const privateKey = readPem("grpc.tls_key", grpc.tlsKey);
  const clientCa = grpc.clientCa === "" ? null : readPem("grpc.client_ca", grpc.clientCa);
  checkKeyPair(grpc, certChain, privateKey);
  if (clientCa !== null) parseCertificate("grpc.client_ca", grpc.clientCa, clientCa);
  return ServerCredentials.createSsl(
    clientCa,
    [{ private_key: privateKey, cert_chain: certChain }],
    clientCa !== null,
  );
}

/**
 * grpc-js only parses the PEM files when it binds, and then reports a bare OpenSSL error
 * against the address; checking here names the file that is wrong.
 */
function checkKeyPair(grpc: GrpcConfig, certChain: Buffer, privateKey: Buffer): void {
  const certificate = parseCertificate("grpc.tls_cert", grpc.tlsCert, certChain);
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKey);
  } catch (error) {
    throw new AdminServerError(
      `admin API: grpc.tls_key ${JSON.stringify(grpc.tlsKey)}: not a PEM private key: ${describe(error)}`,
      { cause: error },
    );
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new AdminServerError(
      `admin API: grpc.tls_key ${JSON.stringify(grpc.tlsKey)} is not the key of grpc.tls_cert ${JSON.stringify(grpc.tlsCert)}`,
    );
  }
}

function parseCertificate(key: string, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new AdminServerError(
      `admin API: ${key} ${JSON.stringify(path)}: not a PEM certificate: ${describe(error)}`,
      { cause: error },
    );
  }
}

function readPem(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new AdminServerError(
      `admin API: ${key} ${JSON.stringify(path)}: cannot read: ${describe(error)}`,
      {
        cause: error,
      },
    );
  }
}

function bind(server: Server, addr: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, credentials, (error, port) => {
      if (error) {
        reject(
          new AdminServerError(
            `admin API: cannot listen on grpc.addr ${JSON.stringify(addr)}: ${error.message}`,
            { cause: error },
          ),
        );
        return;
      }
      resolve(port);
    });
  });
}

async function shutdown(server: Server, openStreams: Set<{ end(): void }>): Promise<void> {
  for (const stream of openStreams) stream.end();
  openStreams.clear();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
