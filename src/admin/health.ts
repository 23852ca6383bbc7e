// The standard grpc.health.v1.Health service: the admin API is SERVING while it is up.
import { type Server, type ServerWritableStream, status } from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
  HealthService,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health.ts";

/**
 * Check answers SERVING for "" (the whole server) and for each name in `services`, NOT_FOUND
 * for any other name, as the health protocol says. Watch sends the current status once and keeps
 * the stream open (the status never changes while the server is up); shutdown ends it, which a
 * watcher sees as the end of the stream. An unknown name gets SERVICE_UNKNOWN on Watch.
 */
export function addHealthService(
  server: Server,
  services: readonly string[],
  openStreams: Set<{ end(): void }>,
): void {
  const known = new Set(["", ...services]);
  const implementation: HealthServer = {
    check: (call, callback) => {
      const service = call.request.service;
      if (!known.has(service)) {
        callback({ code: status.NOT_FOUND, details: `service ${JSON.stringify(service)} unknown` });
        return;
      }
      callback(null, { status: ServingStatus.SERVING });
    },
    watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const serving = known.has(call.request.service);
      call.write({ status: serving ? ServingStatus.SERVING : ServingStatus.SERVICE_UNKNOWN });
      openStreams.add(call);
      call.on("cancelled", () => openStreams.delete(call));
      call.on("error", () => openStreams.delete(call));
    },
  };
  server.addService(HealthService, implementation);
}
